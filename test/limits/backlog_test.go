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
		t.Run(how, func(t *testing.T) { backlogRestart(t, how) })
	}
}

func backlogRestart(t *testing.T, how string) {
	const queue, delivered = "backlog", 10_000
	n := backlogMessages()
	dir := t.TempDir()
	limit := []string{"--memory-limit", fmt.Sprint(backlogLimit), "--log-level", "warn"}
	w := startWarren(t, dir, limit...)
	start := time.Now()
	publishNumbered(t, w.URL(), queue, n, 16)
	t.Logf("%d messages of 16 B confirmed in %v", n, time.Since(start).Round(time.Millisecond))
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
		if got := binary.BigEndian.Uint64(d.Body); got != uint64(i) || d.Redelivered {
			t.Fatalf("delivery %d before the restart: message %d, redelivered %v", i, got, d.Redelivered)
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
	st, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
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
		if got := binary.BigEndian.Uint64(d.Body); got != uint64(i) {
			t.Fatalf("after the restart delivery %d is message %d: out of order", i, got)
		}
		if d.Redelivered {
			redelivered++
			if i >= delivered {
				t.Fatalf("message %d, never delivered before the restart, is flagged redelivered", i)
			}
		} else if how == "SIGTERM" && i < delivered {
			t.Fatalf("message %d, delivered before a clean stop, is not flagged redelivered", i)
		}
		if i%1000 == 999 || i == n-1 {
			if err := d.Ack(true); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Logf("drained %d in order in %v after %s; %d flagged redelivered", n, time.Since(start).Round(time.Millisecond), how, redelivered)
	checkPeak(t, w, "restarting and draining")
	st, err = ch.QueueDeclarePassive(queue, true, false, false, false, nil)
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

// publishNumbered publishes n persistent messages of size bytes (at least 8)
// numbered 0..n-1 in their first 8 bytes to a durable queue it declares,
// keeping up to 4,096 unconfirmed, and fails unless all are confirmed.
func publishNumbered(t *testing.T, url, queue string, n, size int) {
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
		dc, err := ch.PublishWithDeferredConfirm("", queue, false, false, amqp.Publishing{DeliveryMode: amqp.Persistent, Body: body})
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
