package broker

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/warren-mq/warren/internal/store"
	"github.com/warren-mq/warren/internal/testfs"
)

// recoverCounter counts what the broker's Recover is handed: records one by
// one (fn) and records in bulk (tail runs).
type recoverCounter struct {
	store.Store
	calls, bulk, runs int
}

func (c *recoverCounter) Recover(fn store.RecordFunc, tail store.TailFunc) error {
	return c.Store.Recover(func(rec store.MessageRecord, delivered bool) (bool, error) {
		c.calls++
		return fn(rec, delivered)
	}, func(run store.TailRun) error {
		c.runs++
		c.bulk += run.Count
		return tail(run)
	})
}

// TestQueueBacklogRecoverBulk: a restart with a backlog (clean, and a crash
// that never closed the store) hands the broker the window one message at a
// time and the rest in bulk, with exact counts and body bytes (max-length-
// bytes and management see them), the total in the log, and every message
// delivered afterwards in order, those delivered before redelivered.
func TestQueueBacklogRecoverBulk(t *testing.T) {
	for _, crash := range []bool{false, true} {
		t.Run(fmt.Sprintf("crash=%v", crash), func(t *testing.T) {
			n := &tailNode{t: t, dir: t.TempDir()}
			n.open()
			q := n.declare("q", true, nil)
			const total = tailWindow + 30_000
			n.publishRange("q", 0, total, true)
			// Deliver the first 100 without acking them, then take the next
			// 50 for good: acks at the head, delivery marks.
			s := &tailSink{credit: 150}
			c := &Consumer{Tag: "t", Sink: s}
			if err := q.Consume(c); err != nil {
				t.Fatal(err)
			}
			q.Kick()
			var got []Entry
			waitFor(t, "deliveries", func() bool { got = append(got, s.take()...); return len(got) == 150 })
			q.Ack(got[100:])
			if err := n.st.Sync(); err != nil {
				t.Fatal(err)
			}
			if crash {
				cp := filepath.Join(t.TempDir(), "copy")
				if err := testfs.CopyLive(cp, n.dir); err != nil {
					t.Fatal(err)
				}
				os.Remove(filepath.Join(cp, "LOCK"))
				n.dir = cp
			}
			n.b.Close()

			st, err := store.Open(n.dir, store.Options{Sync: store.SyncNever, Logger: quietLogger(), Weigh: RecordBodyLen})
			if err != nil {
				t.Fatal(err)
			}
			counter := &recoverCounter{Store: st}
			var logs syncBuffer
			b, err := New(Config{Store: counter, Logger: slog.New(slog.NewTextHandler(&logs, nil)), StreamDir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			n.st, n.b = st, b
			n.v, _ = b.VHost("/")
			q = n.queue("q")
			want := total - 50
			t.Logf("fn called %d times, %d messages in %d bulk runs", counter.calls, counter.bulk, counter.runs)
			if counter.calls > tailWindow+1 || counter.calls+counter.bulk != want {
				t.Fatalf("fn called %d times and %d in bulk, want at most %d and %d in all", counter.calls, counter.bulk, tailWindow+1, want)
			}
			if m, _ := q.Counts(); m != want {
				t.Fatalf("%d messages after the restart, want %d", m, want)
			}
			if qi := q.Info(); qi.MessageBytesReady != 8*int64(want) {
				t.Fatalf("%d bytes ready after the restart, want %d", qi.MessageBytesReady, 8*want)
			}
			if line := fmt.Sprintf("messages=%d", want); !strings.Contains(logs.String(), line) {
				t.Fatalf("log does not say %s:\n%s", line, logs.String())
			}
			es := consume(t, q, want, nil)
			i := 0
			for k := range total {
				if k >= 100 && k < 150 {
					continue
				}
				if es[i].n != k || es[i].Redelivered != (k < 100) {
					t.Fatalf("message %d is #%d (redelivered %v), want #%d", i, es[i].n, es[i].Redelivered, k)
				}
				i++
			}
		})
	}
}
