package broker

import (
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warren-mq/warren/internal/store"
)

func liveHeap() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// TestBrokerMemoryAccounting checks what the broker counts per queued
// message against what the messages really take on the heap (after a GC),
// for small and 1 KB bodies, transient and persistent, in memory and paged
// out: the count must not fall behind the heap (the memory limit would not
// hold) nor overstate it by much (the limit would hold fewer messages).
func TestBrokerMemoryAccounting(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes what allocations cost")
	}
	for _, size := range []int{16, 1024} {
		for _, persistent := range []bool{false, true} {
			for _, paged := range []bool{false, true} {
				t.Run(fmt.Sprintf("%dB/persistent=%v/paged=%v", size, persistent, paged), func(t *testing.T) {
					measureAccounting(t, size, persistent, paged)
				})
			}
		}
	}
}

func measureAccounting(t *testing.T, size int, persistent, paged bool) {
	st, err := store.Open(t.TempDir(), store.Options{Sync: store.SyncNever})
	if err != nil {
		t.Fatal(err)
	}
	limit := int64(0)
	if paged {
		limit = 1 // past half of it from the first message: every body is paged out
	}
	b, err := New(Config{Store: st, MemoryLimit: limit})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	v, _ := b.VHost("/")
	// Messages spread over queues that each hold less than the least window
	// (tailWindowLeast) stay in memory, as a message beyond a window would
	// be in the store's tail, costing nothing: in-memory messages are what
	// the accounting is about. What a queue costs once it holds messages
	// (its ring of 16, its index in the store, a map of 8) is paid before
	// the heap is measured: each queue gets a message first, then the 7
	// measured.
	const queues, n = 12500, 7 * 12500
	keys := make([]string, queues)
	for i := range keys {
		keys[i] = "q" + strconv.Itoa(i)
		if _, _, _, err := v.DeclareQueue(QueueDecl{Name: keys[i], Durable: persistent}); err != nil {
			t.Fatal(err)
		}
	}
	ex, _ := v.Exchange("")
	props := []byte{0x10, 0, 1} // delivery-mode, as clients send it
	if persistent {
		props[2] = 2
	}
	var r Router
	publish := func(n int) {
		for i := range n {
			m, err := NewMessage("", keys[i%queues], append([]byte(nil), props...), make([]byte, size))
			if err != nil {
				t.Fatal(err)
			}
			v.Publish(&r, ex, m, nil)
		}
		if err := st.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	publish(queues)
	before, usedBefore := liveHeap(), b.mem.Load()
	publish(n)
	real := (liveHeap() - before) / n
	counted := (b.mem.Load() - usedBefore) / n
	t.Logf("%d B body, persistent %v, paged %v: %d B per message on the heap, %d B counted", size, persistent, paged, real, counted)
	if counted < real*95/100 {
		t.Errorf("counted %d B per message, the heap holds %d B", counted, real)
	}
	// The count is what a message costs in a long queue, whose ring and
	// store index grow with it; here the first message paid for a queue's
	// ring of 16 and index of 8 (50-120 B per message in a long queue).
	if counted > real*150/100 {
		t.Errorf("counted %d B per message, the heap holds only %d B", counted, real)
	}
}

// TestBrokerMemoryAlarmHysteresis: the alarm sets at the limit and clears only
// below 90% of it, so usage hovering at the limit does not flap.
func TestBrokerMemoryAlarmHysteresis(t *testing.T) {
	b, err := New(Config{MemoryLimit: 100000})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	blocked := func() bool { r, _ := b.Alarm(); return r != "" }
	b.addMemory(99999)
	if blocked() {
		t.Fatal("blocked below the limit")
	}
	b.addMemory(1)
	if !blocked() {
		t.Fatal("not blocked at the limit")
	}
	for range 100 { // hovering just under the limit: stays blocked
		b.addMemory(-100)
		b.addMemory(100)
	}
	b.addMemory(-9999)
	if !blocked() || b.AlarmChanges() != 1 {
		t.Fatalf("blocked %v, %d changes at 90%% + 1 byte; want blocked, 1 change", blocked(), b.AlarmChanges())
	}
	b.addMemory(-2)
	if blocked() || b.AlarmChanges() != 2 {
		t.Fatalf("blocked %v, %d changes below 90%%; want unblocked, 2 changes", blocked(), b.AlarmChanges())
	}
	for range 100 {
		b.addMemory(9000)
		b.addMemory(-9000)
	}
	if blocked() || b.AlarmChanges() != 2 {
		t.Fatalf("blocked %v, %d changes below the limit", blocked(), b.AlarmChanges())
	}
}

// TestBrokerDiskAlarmHysteresis: the disk alarm sets below the free-space
// limit and clears only once free space is 10% above it; the store's write
// path can trigger a check between the periodic ones.
func TestBrokerDiskAlarmHysteresis(t *testing.T) {
	var free atomic.Uint64
	free.Store(200)
	b, err := New(Config{DiskFreeLimit: 100, DiskCheckInterval: time.Hour, FreeDisk: func() (uint64, error) { return free.Load(), nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	blocked := func() bool { r, _ := b.Alarm(); return r != "" }
	for _, step := range []struct {
		free    uint64
		blocked bool
	}{{150, false}, {99, true}, {100, true}, {109, true}, {110, false}, {100, false}, {99, true}} {
		free.Store(step.free)
		b.checkDisk()
		if blocked() != step.blocked {
			t.Fatalf("free %d: blocked %v, want %v", step.free, blocked(), step.blocked)
		}
	}
	if n := b.AlarmChanges(); n != 3 {
		t.Fatalf("%d alarm changes, want 3", n)
	}
}

// TestBrokerPagingSweep: once paging starts, the bodies queued before it go
// to disk too, not only those published after; they read back intact.
func TestBrokerPagingSweep(t *testing.T) {
	st, err := store.Open(t.TempDir(), store.Options{Sync: store.SyncNever})
	if err != nil {
		t.Fatal(err)
	}
	const limit = 1 << 20
	b, err := New(Config{Store: st, MemoryLimit: limit})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	v, _ := b.VHost("/")
	q, _, _, err := v.DeclareQueue(QueueDecl{Name: "q"})
	if err != nil {
		t.Fatal(err)
	}
	ex, _ := v.Exchange("")
	// 100 bodies of 4 KiB stay below half the limit; one of 200 KiB crosses it.
	sizes := make([]int, 101)
	for i := range 100 {
		sizes[i] = 4 << 10
	}
	sizes[100] = 200 << 10
	var r Router
	for i, size := range sizes {
		body := make([]byte, size)
		body[0] = byte(i)
		m, err := NewMessage("", "q", []byte{0, 0}, body)
		if err != nil {
			t.Fatal(err)
		}
		v.Publish(&r, ex, m, nil)
		if i == 99 && b.pagingNeeded() {
			t.Fatalf("paging at %d bytes, before half the limit", b.MemoryUsed())
		}
	}
	// Once every body is written out, a few hundred bytes a message are left.
	deadline := time.Now().Add(10 * time.Second)
	for b.MemoryUsed() > 101*1024 {
		if time.Now().After(deadline) {
			t.Fatalf("%d bytes still counted for 101 messages: bodies queued before paging started stayed in memory", b.MemoryUsed())
		}
		time.Sleep(time.Millisecond) // polling interval, not synchronisation
	}
	for i, size := range sizes {
		_, body, _, ok, err := q.Get(true)
		if err != nil || !ok || len(body) != size || body[0] != byte(i) {
			t.Fatalf("message %d: ok %v, err %v, %d bytes", i, ok, err, len(body))
		}
	}
	if used := b.MemoryUsed(); used != 0 {
		t.Fatalf("%d bytes counted with every queue empty", used)
	}
}

// TestBrokerAlarmLogRateLimited: an alarm that keeps changing state logs one
// line, not one per change (the rest are summed up after alarmLogEvery).
func TestBrokerAlarmLogRateLimited(t *testing.T) {
	var buf syncBuffer
	b, err := New(Config{MemoryLimit: 1000, Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	before := strings.Count(buf.String(), "alarm")
	for range 100 {
		b.addMemory(1000)
		b.addMemory(-1000)
	}
	if n := b.AlarmChanges(); n != 200 {
		t.Fatalf("%d alarm changes, want 200", n)
	}
	if n := strings.Count(buf.String(), "alarm") - before; n != 1 {
		t.Fatalf("%d alarm log lines for 200 changes, want 1:\n%s", n, buf.String())
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
