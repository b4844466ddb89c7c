package limits

import (
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// backlogLimit is the --memory-limit of the backlog tests: the 2 M queued
// messages would take about 1 GB held in memory (450-550 B each), so they
// can only be held on disk.
const backlogLimit = 64 << 20

// backlogMessages is how many messages the backlog tests queue;
// WARREN_BACKLOG_MESSAGES changes it.
func backlogMessages() int {
	if n, err := strconv.Atoi(os.Getenv("WARREN_BACKLOG_MESSAGES")); err == nil && n > 0 {
		return n
	}
	return 2_000_000
}

// TestLimitsBacklogRestart holds a disk-resident backlog to issue #11's
// promises, from outside the process: one durable queue gets 2 M persistent
// 16 B messages under a 64 MiB memory limit; a consumer takes the first
// 10,000 without acknowledging them; the broker stops (SIGTERM, or kill -9)
// and starts again. Then the queue holds every message, they come out in
// publish order, the 10,000 delivered before carry the redelivered flag (after
// a clean stop; after kill -9 the delivery marks may not have been synced)
// and no other message does, and neither process's peak RSS went over 1.5
// times the limit.
func TestLimitsBacklogRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("queues millions of messages")
	}
	for _, how := range []string{"SIGTERM", "SIGKILL"} {
		t.Run(how, func(t *testing.T) { backlogRestart(t, how, 0) })
	}
}

// TestLimitsBacklogPriority is TestLimitsBacklogRestart for a priority queue
// (x-max-priority 9), whose backlog is on disk a tail per priority: a
// quarter as many messages, message i at priority i%10; the first 10,000
// delivered before the stop are the highest priority's; after the restart
// every message comes out highest priority first and in publish order
// within a priority, redelivered flags as there.
func TestLimitsBacklogPriority(t *testing.T) {
	if testing.Short() {
		t.Skip("queues hundreds of thousands of messages")
	}
	for _, how := range []string{"SIGTERM", "SIGKILL"} {
		t.Run(how, func(t *testing.T) { backlogRestart(t, how, 10) })
	}
}

// backlogRestart runs the backlog tests: a plain queue if levels is 0, else
// a priority queue with levels priorities.
func backlogRestart(t *testing.T, how string, levels int) {
	const delivered = 10_000
	queue, n, args := "backlog", backlogMessages(), amqp.Table(nil)
	// expect returns the message the k-th delivery must be: in publish
	// order; for a priority queue the highest priority's first.
	expect := func(k int) uint64 { return uint64(k) }
	if levels > 0 {
		queue, n, args = "prio", n/4, amqp.Table{"x-max-priority": int32(levels - 1)}
		expect = func(k int) uint64 {
			for l := levels - 1; l >= 0; l-- {
				c := (n - l + levels - 1) / levels // messages at priority l
				if k < c {
					return uint64(k*levels + l)
				}
				k -= c
			}
			return ^uint64(0)
		}
	}
	dir := t.TempDir()
	limit := []string{"--memory-limit", fmt.Sprint(backlogLimit), "--log-level", "warn"}
	w := startWarren(t, dir, limit...)
	start := time.Now()
	publishPriorities(t, w.URL(), queue, n, 16, levels)
	t.Logf("%d messages of 16 B (%d priorities) confirmed in %v", n, levels, time.Since(start).Round(time.Millisecond))
	checkPeak(t, w, "filling")

	conn, err := amqp.Dial(w.URL())
	if err != nil {
		t.Fatal(err)
	}
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Qos(delivered, 0, false); err != nil {
		t.Fatal(err)
	}
	ds, err := ch.Consume(queue, "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < delivered; i++ {
		d := <-ds
		if got := binary.BigEndian.Uint64(d.Body); got != expect(i) || d.Redelivered {
			t.Fatalf("delivery %d before the restart: message %d (priority %d), want %d; redelivered %v", i, got, d.Priority, expect(i), d.Redelivered)
		}
	}
	// Stopped with the 10,000 delivered and unacknowledged.
	if how == "SIGTERM" {
		w.stop()
	} else {
		w.kill()
	}
	conn.Close()

	w = startWarren(t, dir, limit...)
	c, err := amqp.Dial(w.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ch, err = c.Channel()
	if err != nil {
		t.Fatal(err)
	}
	st, err := ch.QueueDeclarePassive(queue, true, false, false, false, args)
	if err != nil {
		t.Fatal(err)
	}
	if st.Messages != n {
		t.Fatalf("after %s and a restart the queue holds %d messages, want %d", how, st.Messages, n)
	}
	if err := ch.Qos(1000, 0, false); err != nil {
		t.Fatal(err)
	}
	ds, err = ch.Consume(queue, "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	redelivered := 0
	for i := 0; i < n; i++ {
		d, ok := <-ds
		if !ok {
			t.Fatalf("consumer closed after %d of %d messages", i, n)
		}
		got := binary.BigEndian.Uint64(d.Body)
		if got != expect(i) {
			t.Fatalf("after the restart delivery %d is message %d (priority %d), want %d: out of order", i, got, d.Priority, expect(i))
		}
		if levels > 0 && int(d.Priority) != int(got)%levels {
			t.Fatalf("message %d has priority %d", got, d.Priority)
		}
		if d.Redelivered {
			redelivered++
			if i >= delivered {
				t.Fatalf("delivery %d (message %d), never delivered before the restart, is flagged redelivered", i, got)
			}
		} else if how == "SIGTERM" && i < delivered {
			t.Fatalf("delivery %d (message %d), delivered before a clean stop, is not flagged redelivered", i, got)
		}
		if i%1000 == 999 || i == n-1 {
			if err := d.Ack(true); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Logf("drained %d in order in %v after %s; %d flagged redelivered", n, time.Since(start).Round(time.Millisecond), how, redelivered)
	checkPeak(t, w, "restarting and draining")
	st, err = ch.QueueDeclarePassive(queue, true, false, false, false, args)
	if err != nil {
		t.Fatal(err)
	}
	if st.Messages != 0 {
		t.Errorf("after the drain the queue holds %d messages", st.Messages)
	}
}

// checkPeak fails the test if the process's peak RSS (VmHWM) went over 1.5
// times backlogLimit.
func checkPeak(t *testing.T, w *warren, phase string) {
	t.Helper()
	peak, err := w.status("VmHWM")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: peak RSS %d MiB (limit %d MiB)", phase, peak>>20, backlogLimit>>20)
	if peak > backlogLimit*3/2 {
		t.Errorf("%s: peak RSS %d MiB is over 1.5 times the %d MiB limit", phase, peak>>20, backlogLimit>>20)
	}
}

// publishPriorities publishes n persistent messages of size bytes (at least
// 8) numbered 0..n-1 in their first 8 bytes to a durable queue it declares —
// a priority queue with x-max-priority levels-1 if levels is not 0, message
// i at priority i%levels — keeping up to 4,096 unconfirmed, and fails unless
// all are confirmed.
func publishPriorities(t *testing.T, url, queue string, n, size, levels int) {
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
	var args amqp.Table
	if levels > 0 {
		args = amqp.Table{"x-max-priority": int32(levels - 1)}
	}
	if _, err := ch.QueueDeclare(queue, true, false, false, false, args); err != nil {
		t.Fatal(err)
	}
	const window = 4096
	ring := make([]*amqp.DeferredConfirmation, 0, window)
	body := make([]byte, max(size, 8))
	for i := 0; i < n; i++ {
		if len(ring) == window {
			if !ring[0].Wait() {
				t.Fatalf("message %d nacked", ring[0].DeliveryTag-1)
			}
			ring = ring[1:]
		}
		binary.BigEndian.PutUint64(body, uint64(i))
		msg := amqp.Publishing{DeliveryMode: amqp.Persistent, Body: body}
		if levels > 0 {
			msg.Priority = uint8(i % levels)
		}
		dc, err := ch.PublishWithDeferredConfirm("", queue, false, false, msg)
		if err != nil {
			t.Fatal(err)
		}
		ring = append(ring, dc)
	}
	for _, dc := range ring {
		if !dc.Wait() {
			t.Fatalf("message %d nacked", dc.DeliveryTag-1)
		}
	}
}
