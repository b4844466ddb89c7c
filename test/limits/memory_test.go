package limits

import (
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// TestLimitsMemoryRSS holds --memory-limit to what it promises: a publisher
// with no consumer tries to queue ten times the limit, and the process's peak
// RSS (VmHWM) stays within 1.5 times the limit. The broker gets there by
// paging bodies to disk and, once what cannot be paged (each message's
// routing data, properties and index entries) fills the limit, by blocking
// the publisher with connection.blocked. WARREN_BIG=1 adds a 256 MiB limit.
func TestLimitsMemoryRSS(t *testing.T) {
	limits := []int64{64 << 20}
	if os.Getenv("WARREN_BIG") != "" {
		limits = append(limits, 256<<20)
	}
	for _, limit := range limits {
		for _, size := range []int{16, 1024} {
			for _, persistent := range []bool{false, true} {
				name := fmt.Sprintf("%dMiB/%dB/persistent=%v", limit>>20, size, persistent)
				t.Run(name, func(t *testing.T) { fillPastLimit(t, limit, size, persistent) })
			}
		}
	}
}

func fillPastLimit(t *testing.T, limit int64, size int, persistent bool) {
	if testing.Short() {
		t.Skip("fills the broker's memory")
	}
	w := startWarren(t, t.TempDir(), "--memory-limit", fmt.Sprint(limit), "--log-level", "warn")
	pub, err := amqp.Dial(w.URL())
	if err != nil {
		t.Fatal(err)
	}
	blocked, unblocked := countBlocks(pub)
	ch, err := pub.Channel()
	if err != nil {
		t.Fatal(err)
	}
	q, err := ch.QueueDeclare("", persistent, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	mode := amqp.Transient
	if persistent {
		mode = amqp.Persistent
	}
	// Ten times the limit in bodies, but at most 2 M messages: beyond its
	// window a classic queue's backlog lives only on disk, so small messages
	// no longer bring the alarm, and 2 M show the RSS staying flat.
	target := min(10*limit/int64(size), 2_000_000)
	var sent atomic.Int64
	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		body := make([]byte, size)
		for i := int64(0); i < target; i++ {
			if ch.Publish("", q.Name, false, false, amqp.Publishing{DeliveryMode: mode, Body: body}) != nil {
				return // the broker was killed at the end of the test
			}
			sent.Add(1)
		}
	}()

	// A second connection, which publishes nothing and so is never blocked,
	// watches the queue fill.
	obs, err := amqp.Dial(w.URL())
	if err != nil {
		t.Fatal(err)
	}
	och, err := obs.Channel()
	if err != nil {
		t.Fatal(err)
	}
	queued := func() int64 {
		st, err := och.QueueDeclarePassive(q.Name, persistent, false, false, false, nil)
		if err != nil {
			t.Fatalf("passive declare: %v", err)
		}
		return int64(st.Messages)
	}
	// Done when the publisher has sent everything, or when it is blocked and
	// the queue has stopped growing (its messages all counted and routed).
	last, still := int64(-1), 0
	start := time.Now()
	checkFor(t, 120*time.Second, "the publisher to finish or stay blocked", func() bool {
		select {
		case <-pubDone:
			return queued() >= sent.Load()
		default:
		}
		n := queued()
		if n != last || blocked.Load() <= unblocked.Load() {
			last, still = n, 0
			return false
		}
		still++
		return still >= 100
	})
	peak, err := w.status("VmHWM")
	if err != nil {
		t.Fatal(err)
	}
	rss, _ := w.status("VmRSS")
	n := queued()
	t.Logf("limit %d MiB, %d B %s: %d messages queued (%d MiB of bodies, %.1fx the limit) in %v; RSS peak %d MiB (%.2fx the limit), now %d MiB; blocked %d, unblocked %d times",
		limit>>20, size, map[bool]string{false: "transient", true: "persistent"}[persistent], n, n*int64(size)>>20, float64(n*int64(size))/float64(limit),
		time.Since(start).Round(time.Millisecond), peak>>20, float64(peak)/float64(limit), rss>>20, blocked.Load(), unblocked.Load())
	if !w.alive() {
		t.Fatalf("broker died:\n%s", w.logTail(40))
	}
	for _, line := range strings.Split(w.logText(), "\n") {
		if strings.Contains(line, "alarm") {
			t.Logf("broker: %s", line)
		}
	}
	w.kill()
	pub.Close()
	obs.Close()
	<-pubDone
	if peak > uint64(limit)*3/2 {
		t.Errorf("peak RSS %d MiB is over 1.5 times the %d MiB limit", peak>>20, limit>>20)
	}
}
