package crash

import (
	"encoding/binary"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

const (
	millionQueue = "crash.million"
	millionCount = 1_000_000
	millionBody  = 1024
	millionConns = 4
	// millionWindow is the unconfirmed publishes each connection keeps in
	// flight: large, so that group commit syncs thousands per fdatasync.
	millionWindow = 2000
	readyTarget   = 2 * time.Second // the target for a restart
)

// TestCrashRestartOneMillion measures how long a restart takes with a million
// persistent 1 KiB messages on disk, after kill -9 and after a clean stop: from
// process start until it accepts AMQP connections and passive queue.declare
// reports every message. Then it drains the queue and checks each message is
// there exactly once. It needs about 1.2 GB of disk and memory and a few
// minutes, so it runs only with WARREN_BIG=1.
func TestCrashRestartOneMillion(t *testing.T) {
	if os.Getenv("WARREN_BIG") != "1" {
		t.Skip("set WARREN_BIG=1 to publish and recover a million messages")
	}
	if testing.Short() {
		t.Skip("skipped with -short")
	}
	w := newWarren(t, buildWarren(t), dataDir(t), "--sync", "always", "--log-level", "debug")
	w.start()
	publishMillion(t, w.URL())

	w.kill()
	w.start()
	t.Logf("after kill -9: accepting AMQP %v after process start; %s", w.ready.Round(time.Millisecond), awaitCount(t, w))
	w.logRecovery()

	stopStart := time.Now()
	w.stop()
	t.Logf("clean stop (SIGTERM) took %v", time.Since(stopStart).Round(time.Millisecond))
	w.start()
	t.Logf("after clean stop: accepting AMQP %v after process start; %s", w.ready.Round(time.Millisecond), awaitCount(t, w))
	w.logRecovery()

	drainMillion(t, w.URL())
	w.stop()
	w.checkLogs()
}

// publishMillion publishes millionCount persistent messages over several
// connections, each body holding its number, and fails unless every one is
// confirmed.
func publishMillion(t *testing.T, url string) {
	t.Helper()
	conn, err := dial(url)
	if err != nil {
		t.Fatal(err)
	}
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(millionQueue, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	conn.Close()

	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, millionConns)
	unconfirmed := make([]int, millionConns)
	for c := 0; c < millionConns; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := publishRange(url, c, millionConns)
			unconfirmed[c] = n
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("publishing: %v", err)
	}
	for c, n := range unconfirmed {
		if n > 0 {
			t.Fatalf("publisher %d: %d messages not confirmed", c, n)
		}
	}
	took := time.Since(start)
	t.Logf("published and confirmed %d persistent %d-byte messages in %v (%.0f msg/s)",
		millionCount, millionBody, took.Round(time.Millisecond), millionCount/took.Seconds())
}

// publishRange publishes messages first, first+step, ... below millionCount
// and returns how many were not confirmed.
func publishRange(url string, first, step int) (int, error) {
	conn, err := dial(url)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return 0, err
	}
	if err := ch.Confirm(false); err != nil {
		return 0, err
	}
	var inflight []*amqp.DeferredConfirmation
	bad := 0
	settle := func() {
		if !inflight[0].Wait() {
			bad++
		}
		inflight = inflight[1:]
	}
	body := make([]byte, millionBody)
	for i := first; i < millionCount; i += step {
		binary.LittleEndian.PutUint32(body, uint32(i))
		dc, err := ch.PublishWithDeferredConfirm("", millionQueue, false, false, amqp.Publishing{DeliveryMode: amqp.Persistent, Body: body})
		if err != nil {
			return bad, err
		}
		inflight = append(inflight, dc)
		if len(inflight) >= millionWindow {
			settle()
		}
	}
	for len(inflight) > 0 {
		settle()
	}
	return bad, nil
}

// awaitCount asks with passive queue.declare until the queue reports every
// message, and says how long after process start that was.
func awaitCount(t *testing.T, w *warren) string {
	t.Helper()
	conn, err := dial(w.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		q, err := ch.QueueDeclarePassive(millionQueue, true, false, false, false, nil)
		if err != nil {
			t.Fatalf("passive declare: %v", err)
		}
		took := time.Since(w.started)
		if q.Messages == millionCount {
			verdict := "within"
			if took > readyTarget {
				verdict = "OVER"
			}
			return fmt.Sprintf("queue reports %d messages %v after process start (%s the %v target)",
				q.Messages, took.Round(time.Millisecond), verdict, readyTarget)
		}
		if q.Messages > millionCount || time.Now().After(deadline) {
			t.Fatalf("queue reports %d messages %v after start, want %d", q.Messages, took, millionCount)
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not synchronisation
	}
}

// drainMillion consumes the queue and checks every message number arrives
// exactly once with its body intact.
func drainMillion(t *testing.T, url string) {
	t.Helper()
	conn, err := dial(url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Qos(2000, 0, false); err != nil {
		t.Fatal(err)
	}
	dels, err := ch.Consume(millionQueue, "drain", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	seen := make([]bool, millionCount)
	dups, bad := 0, 0
	timeout := time.After(5 * time.Minute)
	for got := 0; got < millionCount; got++ {
		var d amqp.Delivery
		var ok bool
		select {
		case d, ok = <-dels:
			if !ok {
				t.Fatalf("drain: deliveries ended after %d of %d", got, millionCount)
			}
		case <-timeout:
			t.Fatalf("drain: %d of %d after 5 minutes", got, millionCount)
		}
		if len(d.Body) != millionBody {
			bad++
			continue
		}
		i := binary.LittleEndian.Uint32(d.Body)
		switch {
		case i >= millionCount:
			bad++
		case seen[i]:
			dups++
		default:
			seen[i] = true
		}
		if got%1000 == 999 {
			if err := d.Ack(true); err != nil {
				t.Fatal(err)
			}
		}
	}
	missing := 0
	for _, s := range seen {
		if !s {
			missing++
		}
	}
	t.Logf("drained %d messages in %v: %d missing, %d duplicates, %d bad bodies",
		millionCount, time.Since(start).Round(time.Millisecond), missing, dups, bad)
	if missing+dups+bad > 0 {
		t.Errorf("after the restarts: %d missing, %d duplicates, %d bad bodies", missing, dups, bad)
	}
}
