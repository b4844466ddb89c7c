package broker

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/warren-mq/warren/internal/store"
)

// gatedStore holds metadata commits until the test lets them through, as a
// slow disk's fsync would.
type gatedStore struct {
	*store.Memory
	mu   sync.Mutex
	gate bool
	held chan func()
}

func (s *gatedStore) CommitMeta(rec []byte, done func(error)) {
	s.mu.Lock()
	gate := s.gate
	s.mu.Unlock()
	if !gate {
		s.Memory.CommitMeta(rec, done)
		return
	}
	s.held <- func() { s.Memory.CommitMeta(rec, done) }
}

// A durable declare waiting for its commit (the fsync) must not stall
// publishing and consuming in its vhost: the commit runs outside every lock
// routing takes.
func TestCommitDoesNotBlockRouting(t *testing.T) {
	st := &gatedStore{Memory: store.NewMemory(), held: make(chan func())}
	b, err := New(Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	v, _ := b.VHost("/")
	if _, _, _, err := v.DeclareQueue(QueueDecl{Name: "work", Durable: true}); err != nil {
		t.Fatal(err)
	}
	st.mu.Lock()
	st.gate = true
	st.mu.Unlock()
	declared := make(chan error, 1)
	go func() {
		_, _, _, err := v.DeclareQueue(QueueDecl{Name: "slow", Durable: true})
		declared <- err
	}()
	release := <-st.held // the declare is now waiting for its commit
	ex, _ := v.Exchange("")
	var r Router
	for i := range 100 {
		m, err := NewMessage("", "work", []byte{0, 0}, []byte(fmt.Sprint(i)))
		if err != nil {
			t.Fatal(err)
		}
		if res := v.Publish(&r, ex, m, nil); !res.Routed {
			t.Fatal("not routed while a declare was committing")
		}
	}
	q, _ := v.Queue("work")
	if _, _, _, ok, err := q.Get(true); !ok || err != nil {
		t.Fatalf("get while a declare was committing: %v %v", ok, err)
	}
	// Other metadata in the vhost goes on too: a transient declare needs no commit.
	if _, _, _, err := v.DeclareQueue(QueueDecl{Name: "transient"}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-declared:
		t.Fatalf("declare finished before its commit: %v", err)
	default:
	}
	release()
	if err := <-declared; err != nil {
		t.Fatal(err)
	}
	if _, ok := v.Queue("slow"); !ok {
		t.Fatal("declared queue missing")
	}
}

// BenchmarkCommitDurableDeclareParallel declares durable queues from many
// goroutines on a file store with fdatasync: commits per sync shows how many
// declares share each one.
func BenchmarkCommitDurableDeclareParallel(b *testing.B) {
	st, err := store.Open(b.TempDir(), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	br, err := New(Config{Store: st})
	if err != nil {
		b.Fatal(err)
	}
	defer br.Close()
	v, _ := br.VHost("/")
	var n sync.Mutex
	next := 0
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n.Lock()
			next++
			name := fmt.Sprintf("q%d", next)
			n.Unlock()
			if _, _, _, err := v.DeclareQueue(QueueDecl{Name: name, Durable: true}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	s := st.Stats()
	if s.MetaSyncs > 0 {
		b.ReportMetric(float64(s.MetaCommits)/float64(s.MetaSyncs), "commits/sync")
	}
}

// BenchmarkCommitDeleteDurableQueue deletes durable queues among n others:
// the time per delete must not grow with n (it once did, linearly).
func BenchmarkCommitDeleteDurableQueue(b *testing.B) {
	for _, n := range []int{1000, 20000} {
		b.Run(fmt.Sprintf("queues=%d", n), func(b *testing.B) {
			st, err := store.Open(b.TempDir(), store.Options{Sync: store.SyncNever})
			if err != nil {
				b.Fatal(err)
			}
			br, err := New(Config{Store: st})
			if err != nil {
				b.Fatal(err)
			}
			defer br.Close()
			v, _ := br.VHost("/")
			for i := range n + b.N {
				if _, _, _, err := v.DeclareQueue(QueueDecl{Name: fmt.Sprintf("q%d", i), Durable: true}); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			for i := range b.N {
				if _, err := v.DeleteQueue(fmt.Sprintf("q%d", i), false, false, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// max-queues holds for concurrent declares too: each takes a slot before its
// commit, so they cannot all pass the check and then all be applied.
func TestCommitMaxQueuesUnderConcurrency(t *testing.T) {
	b, err := New(Config{Store: store.NewMemory()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.SetVHostLimits("/", map[string]int64{LimitMaxQueues: 5}); err != nil {
		t.Fatal(err)
	}
	v, _ := b.VHost("/")
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, refused := 0, 0
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, _, err := v.DeclareQueue(QueueDecl{Name: fmt.Sprintf("q%d", i), Durable: i%2 == 0})
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				ok++
			} else if strings.Contains(err.Error(), "queue limit in vhost '/' (5) is reached") {
				refused++
			} else {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if ok != 5 || refused != 35 || len(v.Queues()) != 5 {
		t.Fatalf("%d declared, %d refused, %d queues; want 5, 35, 5", ok, refused, len(v.Queues()))
	}
}
