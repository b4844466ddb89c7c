package crash

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// TestStreamCrashKeepsConfirmedRecords: an AMQP publisher with confirms
// writes into a stream while the broker is killed with SIGKILL (and, every
// other round, stopped with SIGTERM instead). After each restart the stream
// still exists with its arguments, its offsets are contiguous from 0, every
// confirmed record is there, and the records keep their publish order.
func TestStreamCrashKeepsConfirmedRecords(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the broker binary; skipped with -short")
	}
	w := newWarren(t, buildWarren(t), dataDir(t))
	w.start()
	args := amqp.Table{"x-queue-type": "stream", "x-max-age": "7D"}
	c, ch := streamChannel(t, w)
	if _, err := ch.QueueDeclare("crash-stream", true, false, false, false, args); err != nil {
		t.Fatal(err)
	}
	c.Close()
	confirmed := map[int]bool{}
	next := 0
	for round := 1; round <= 4 && !t.Failed(); round++ {
		next = streamLoad(t, w, next, confirmed, 300*time.Millisecond)
		if round%2 == 0 {
			w.stop()
		} else {
			w.kill()
		}
		w.start()
		checkStream(t, w, args, confirmed)
	}
}

// streamLoad publishes bodies from..., with confirms, for about d, then
// returns (leaving publishes in flight for the kill); confirmed records
// their numbers.
func streamLoad(t *testing.T, w *warren, from int, confirmed map[int]bool, d time.Duration) int {
	t.Helper()
	c, ch := streamChannel(t, w)
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	deadline := time.Now().Add(d)
	i := from
	for ; time.Now().Before(deadline) || i < from+50; i++ {
		dc, err := ch.PublishWithDeferredConfirmWithContext(context.Background(), "", "crash-stream", false, false, amqp.Publishing{Body: []byte(strconv.Itoa(i))})
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func(n int) {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if ok, err := dc.WaitContext(ctx); ok && err == nil {
				mu.Lock()
				confirmed[n] = true
				mu.Unlock()
			}
		}(i)
	}
	wg.Wait() // every confirm in; the next round's kill hits a broker at rest or a new burst
	// A burst left unconfirmed when the kill comes.
	for j := 0; j < 200; j++ {
		_ = ch.PublishWithContext(context.Background(), "", "crash-stream", false, false, amqp.Publishing{Body: []byte(strconv.Itoa(i))})
		i++
	}
	c.Close()
	return i
}

// checkStream reads the whole stream and checks it against what was confirmed.
func checkStream(t *testing.T, w *warren, args amqp.Table, confirmed map[int]bool) {
	t.Helper()
	c, ch := streamChannel(t, w)
	defer c.Close()
	q, err := ch.QueueDeclare("crash-stream", true, false, false, false, args)
	if err != nil {
		t.Fatalf("stream after restart %d: %v", w.runs, err)
	}
	if err := ch.Qos(500, 0, false); err != nil {
		t.Fatal(err)
	}
	// A marker published now is the last record: read until it comes.
	marker := fmt.Sprintf("marker-%d", w.runs)
	if err := ch.PublishWithContext(context.Background(), "", q.Name, false, false, amqp.Publishing{Body: []byte(marker)}); err != nil {
		t.Fatal(err)
	}
	ds, err := ch.Consume(q.Name, "", false, false, false, false, amqp.Table{"x-stream-offset": "first"})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	last := -1
	for off := int64(0); ; off++ {
		var d amqp.Delivery
		select {
		case d = <-ds:
		case <-time.After(15 * time.Second):
			t.Fatalf("run %d: stream read stalled at offset %d", w.runs, off)
		}
		if got := d.Headers["x-stream-offset"]; got != off {
			t.Fatalf("run %d: offset %v, want %d (offsets must be contiguous)", w.runs, got, off)
		}
		_ = d.Ack(false)
		body := string(d.Body)
		if body == marker {
			break
		}
		n, err := strconv.Atoi(body)
		if err != nil {
			continue // an earlier run's marker
		}
		if n <= last && !seen[n] {
			t.Fatalf("run %d: record %d after %d: publish order lost", w.runs, n, last)
		}
		seen[n] = true
		last = max(last, n)
	}
	missing := 0
	for n := range confirmed {
		if !seen[n] {
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("run %d: %d confirmed records lost (of %d)", w.runs, missing, len(confirmed))
	}
	t.Logf("run %d: %d records, %d confirmed, all there", w.runs, len(seen), len(confirmed))
}

func streamChannel(t *testing.T, w *warren) (*amqp.Connection, *amqp.Channel) {
	t.Helper()
	c, err := amqp.Dial(w.URL())
	if err != nil {
		t.Fatal(err)
	}
	ch, err := c.Channel()
	if err != nil {
		c.Close()
		t.Fatal(err)
	}
	return c, ch
}
