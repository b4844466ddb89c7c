package limits

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// mountTmpfs mounts a tmpfs of the given size (mount's syntax, "64m") on a
// new directory and returns it; the test is skipped where that is not allowed.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "disk")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() != 0 {
		t.Skip("skipped: mounting a small tmpfs to fill needs root")
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("skipped: cannot mount a tmpfs on %s (%v: %s)", dir, err, strings.TrimSpace(string(out)))
	}
	// Registered after TempDir's cleanup, so it runs before it; the broker's
	// kill, registered later still, runs first of all.
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

func freeBytes(t *testing.T, dir string) uint64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return st.Bavail * uint64(st.Bsize)
}

// fillDisk writes a file at path until the file system is full, as another
// process on the same disk might.
func fillDisk(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, chunk := range []int{1 << 20, 4 << 10, 1} {
		b := make([]byte, chunk)
		for {
			if _, err := f.Write(b); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatalf("filling the disk: %v", err)
				}
				break
			}
		}
	}
}

// publishLedger publishes n persistent messages numbered 0..n-1 (the number
// in the first 8 bytes of a 1 KB body) to queue and waits for their confirms.
func publishLedger(t *testing.T, url, queue string, n int) {
	t.Helper()
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	var pending []*amqp.DeferredConfirmation
	body := make([]byte, 1024)
	for i := 0; i < n; i++ {
		binary.BigEndian.PutUint64(body, uint64(i))
		dc, err := ch.PublishWithDeferredConfirm("", queue, false, false, amqp.Publishing{DeliveryMode: amqp.Persistent, Body: body})
		if err != nil {
			t.Fatal(err)
		}
		pending = append(pending, dc)
		if len(pending) == 500 || i == n-1 {
			for _, dc := range pending {
				if !dc.Wait() {
					t.Fatalf("message %d nacked", dc.DeliveryTag-1)
				}
			}
			pending = pending[:0]
		}
	}
}

// ackLogRecnos counts the record numbers that acks.log (format in
// internal/store/doc.go) holds as acked and as delivered, up to the first
// record that is not whole yet.
func ackLogRecnos(t *testing.T, path string) (acked, delivered int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	castagnoli := crc32.MakeTable(crc32.Castagnoli)
	for p := 8; p+9 <= len(b); {
		n := int(binary.LittleEndian.Uint32(b[p:]))
		if n < 1 || p+8+n > len(b) {
			break
		}
		crc := crc32.Update(crc32.Checksum(b[p:p+4], castagnoli), castagnoli, b[p+8:p+8+n])
		if crc != binary.LittleEndian.Uint32(b[p+4:]) {
			break
		}
		typ, payload := b[p+8], b[p+9:p+8+n]
		if count, k := binary.Uvarint(payload); k > 0 {
			switch typ {
			case 3:
				acked += int(count)
			case 4:
				delivered += int(count)
			}
		}
		p += 8 + n
	}
	return acked, delivered
}

// TestLimitsDiskFullAcksKept fills the disk under a broker whose consumers
// then ack: the acks must still reach the disk (the store's space reserve),
// so that after a kill -9 no acknowledged message comes back, and none at all
// comes back without redelivered=true. Confirmed messages that were not
// acked all come back.
func TestLimitsDiskFullAcksKept(t *testing.T) {
	if testing.Short() {
		t.Skip("fills a disk")
	}
	disk := mountTmpfs(t, "64m")
	data := filepath.Join(disk, "data")
	// A low free-space limit: this test is about a disk filled by someone else.
	flags := []string{"--disk-free-limit", "1MB", "--log-level", "info"}
	w := startWarren(t, data, flags...)
	const n, k = 20000, 10000
	publishLedger(t, w.URL(), "ledger", n)
	filler := filepath.Join(disk, "filler")
	fillDisk(t, filler)
	t.Logf("published %d confirmed messages; disk filled, %d bytes free", n, freeBytes(t, disk))

	conn, err := amqp.Dial(w.URL())
	if err != nil {
		t.Fatal(err)
	}
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Qos(100, 0, false); err != nil {
		t.Fatal(err)
	}
	ds, err := ch.Consume("ledger", "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	acked := map[uint64]bool{}
	for len(acked) < k {
		select {
		case d := <-ds:
			acked[binary.BigEndian.Uint64(d.Body)] = true
			if err := d.Ack(false); err != nil {
				t.Fatal(err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("only %d deliveries on a full disk", len(acked))
		}
	}
	// A round trip on the channel: the broker has taken every ack before it
	// answers. Then wait until the store has written them (or give up and
	// let the restart count what a full disk cost).
	if err := ch.Qos(100, 0, false); err != nil {
		t.Fatal(err)
	}
	ackLog := filepath.Join(data, "acks.log")
	deadline := time.Now().Add(20 * time.Second)
	for {
		a, _ := ackLogRecnos(t, ackLog)
		if a >= k {
			break
		}
		if time.Now().After(deadline) {
			t.Logf("after 20 s the ack log holds %d of %d acks", a, k)
			break
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not synchronisation
	}
	a, dl := ackLogRecnos(t, ackLog)
	w.kill()
	conn.Close()
	log := w.logText()
	t.Logf("killed with %d acks and %d delivery marks in the ack log; broker log: %d lines, %d warnings", a, dl, strings.Count(log, "\n"), strings.Count(log, "level=WARN"))
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") {
			t.Logf("broker: %s", line)
		}
	}

	// Space comes back; the broker restarts on the same data.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	w = startWarren(t, data, flags...)
	conn, err = amqp.Dial(w.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err = conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	st, err := ch.QueueDeclarePassive("ledger", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	var silentDups, flaggedDups, lost, unacked atomic.Int64
	seen := map[uint64]bool{}
	for i := 0; i < st.Messages; i++ {
		d, ok, err := ch.Get("ledger", true)
		if err != nil || !ok {
			t.Fatalf("get %d of %d: %v, %v", i, st.Messages, ok, err)
		}
		id := binary.BigEndian.Uint64(d.Body)
		seen[id] = true
		switch {
		case acked[id] && !d.Redelivered:
			silentDups.Add(1)
		case acked[id]:
			flaggedDups.Add(1)
		default:
			unacked.Add(1)
		}
	}
	for id := uint64(0); id < n; id++ {
		if !acked[id] && !seen[id] {
			lost.Add(1)
		}
	}
	t.Logf("after the restart: %d messages; %d unacked back, %d acked back with redelivered=true, %d acked back with redelivered=false, %d confirmed and unacked lost",
		st.Messages, unacked.Load(), flaggedDups.Load(), silentDups.Load(), lost.Load())
	if silentDups.Load() != 0 {
		t.Errorf("%d acknowledged messages came back with redelivered=false", silentDups.Load())
	}
	if lost.Load() != 0 {
		t.Errorf("%d confirmed, unacknowledged messages lost", lost.Load())
	}
}

// TestLimitsDiskAlarmInTime publishes confirmed persistent messages as fast
// as one client can onto a 64 MiB disk with the default 50 MB free-space
// limit: the disk alarm must block the publisher long before the disk is
// full (the store checks free space as it writes, not once a second), and the
// broker must not fill its log with warnings.
func TestLimitsDiskAlarmInTime(t *testing.T) {
	if testing.Short() {
		t.Skip("fills a disk")
	}
	disk := mountTmpfs(t, "64m")
	const limit = 50e6
	w := startWarren(t, filepath.Join(disk, "data"), "--disk-free-limit", fmt.Sprint(int64(limit)), "--log-level", "info")
	conn, err := amqp.Dial(w.URL())
	if err != nil {
		t.Fatal(err)
	}
	blocked, _ := countBlocks(conn)
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare("fill", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	var confirmed atomic.Int64
	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		body := make([]byte, 4<<10)
		var pending []*amqp.DeferredConfirmation
		for i := 0; i < 64<<20/len(body); i++ { // the whole disk's worth
			dc, err := ch.PublishWithDeferredConfirm("", "fill", false, false, amqp.Publishing{DeliveryMode: amqp.Persistent, Body: body})
			if err != nil {
				return // the broker was killed at the end
			}
			if pending = append(pending, dc); len(pending) == 200 {
				for _, dc := range pending {
					if dc.Wait() {
						confirmed.Add(1)
					}
				}
				pending = pending[:0]
			}
		}
	}()
	// Done once the publisher is blocked and the disk has stopped filling
	// (what the broker had read before blocking is written).
	lastFree, still := uint64(0), 0
	checkFor(t, 60*time.Second, "the publisher to be blocked with the disk no longer filling", func() bool {
		f := freeBytes(t, disk)
		select {
		case <-pubDone:
			return true
		default:
		}
		if blocked.Load() == 0 || f != lastFree {
			lastFree, still = f, 0
			return false
		}
		still++
		return still >= 50
	})
	free := freeBytes(t, disk)
	log := w.logText()
	warns := strings.Count(log, "level=WARN")
	t.Logf("%d MiB confirmed; blocked %d times; %d MB free at the end (limit %d MB); %d warnings in the broker's log",
		confirmed.Load()*4>>10, blocked.Load(), free/1e6, int64(limit/1e6), warns)
	w.kill()
	conn.Close()
	<-pubDone
	if blocked.Load() == 0 {
		t.Fatal("the publisher was never blocked")
	}
	if free < limit/2 {
		t.Errorf("only %d bytes free when the publisher stopped: the disk alarm (%d) fired late", free, int64(limit))
	}
	if strings.Contains(log, "no space") || strings.Contains(log, "disk full") {
		t.Errorf("the broker met a full disk:\n%s", w.logTail(20))
	}
	if warns > 20 {
		t.Errorf("%d warnings in the broker's log", warns)
	}
}
