package durability

import (
	"encoding/binary"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warren-mq/warren/internal/broker"
	"github.com/warren-mq/warren/internal/testbroker"
)

// TestDurablePagingQueueLongerThanMemory fills queues with far more message
// bytes than the memory limit: bodies are paged out to the store, publishers
// are not blocked for good, memory stays bounded, and every message comes
// back in order with its body.
//
// The broker counts what a queued message really costs (about 350 B besides
// a paged-out body: see TestBrokerMemoryAccounting), and bodies queued
// before paging started stay in memory, so the limit is sized for what the
// queues hold apart from their paged bodies: 24,000 messages, 16 MiB of early
// bodies and about 9 MB of the rest, under a 32 MiB limit.
func TestDurablePagingQueueLongerThanMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 200 MiB")
	}
	const limit = 32 << 20
	const n, size = 12000, 4 << 10 // 48 MiB per queue
	inst := testbroker.Start(t, testbroker.Options{DataDir: t.TempDir(), Broker: broker.Config{MemoryLimit: limit}})
	conn, err := amqp.Dial(inst.URL)
	must(t, err)
	defer conn.Close()
	// amqp091-go stops reading while a notification channel is full: make room.
	blocked := conn.NotifyBlocked(make(chan amqp.Blocking, 2*n))
	ch, err := conn.Channel()
	must(t, err)
	must(t, ch.Confirm(false))
	queues := []struct {
		name    string
		durable bool
		mode    uint8
	}{{"paged-persistent", true, amqp.Persistent}, {"paged-transient", false, amqp.Transient}}
	peak, peakRSS := uint64(0), uint64(0)
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	start := time.Now()
	for _, q := range queues {
		t.Logf("%v: filling %s", time.Since(start), q.name)
		_, err := ch.QueueDeclare(q.name, q.durable, false, false, false, nil)
		must(t, err)
		body := make([]byte, size)
		for i := 0; i < n; i++ {
			binary.BigEndian.PutUint64(body, uint64(i))
			dc, err := ch.PublishWithDeferredConfirm("", q.name, false, false, amqp.Publishing{DeliveryMode: q.mode, Body: body})
			must(t, err)
			if i%500 == 499 {
				if !dc.Wait() {
					t.Fatalf("%s: publish %d nacked", q.name, i)
				}
				// The alarm blocks the publish after the one that reached
				// the limit: that one may be over it, by less than itself.
				if used := inst.Broker.MemoryUsed(); used > limit+2*size {
					t.Fatalf("%s: broker holds %d bytes of messages after %d publishes, more than one message over the %d limit", q.name, used, i+1, limit)
				}
				if h := heap(); h > peak {
					peak = h
				}
				if r := rss(); r > peakRSS {
					peakRSS = r
				}
			}
		}
	}
	// Bodies leave memory once written (after the fsync of their round), so a
	// publisher may be held back briefly while writes catch up; never for good.
	t.Logf("%v: filled; the publisher was blocked %d times on the way", time.Since(start), len(blocked)/2)
	// About 94 MiB of bodies are queued; the heap (broker and test client together)
	// must stay far below that.
	if peak > 64<<20 {
		t.Fatalf("heap peaked at %d MiB with %d MiB queued", peak>>20, 2*n*size>>20)
	}
	t.Logf("heap peak while filling: %d MiB, process RSS peak %d MiB, for %d MiB queued", peak>>20, peakRSS>>20, 2*n*size>>20)
	if peakRSS > 128<<20 && !raceEnabled {
		t.Fatalf("process RSS peaked at %d MiB with %d MiB queued", peakRSS>>20, 2*n*size>>20)
	}

	cch, err := conn.Channel()
	must(t, err)
	must(t, cch.Qos(200, 0, false))
	for _, q := range queues {
		t.Logf("%v: draining %s", time.Since(start), q.name)
		ds, err := cch.Consume(q.name, "", false, false, false, false, nil)
		must(t, err)
		for i := 0; i < n; i++ {
			select {
			case d := <-ds:
				if len(d.Body) != size || binary.BigEndian.Uint64(d.Body) != uint64(i) {
					t.Fatalf("%s: message %d: got %d bytes starting %d", q.name, i, len(d.Body), binary.BigEndian.Uint64(d.Body))
				}
				must(t, d.Ack(false))
				if i%2000 == 0 {
					if r := rss(); r > peakRSS {
						peakRSS = r
					}
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("%s: only %d of %d messages came back", q.name, i, n)
			}
		}
	}
	t.Logf("process RSS peak through the drain: %d MiB", peakRSS>>20)
	if peakRSS > 128<<20 && !raceEnabled {
		t.Fatalf("process RSS peaked at %d MiB while draining", peakRSS>>20)
	}
	testbroker.CheckFor(t, 10*time.Second, func() bool { return inst.Broker.MemoryUsed() == 0 })
	testbroker.CheckFor(t, 10*time.Second, func() bool {
		st := inst.Broker.StoreStats()
		return st.LiveMessages == 0
	})
}

// rss returns this process's resident set size (Linux), 0 if unknown.
func rss() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseUint(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}
