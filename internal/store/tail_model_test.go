package store

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// tailModel is what a File store must hold for one queue: window records by
// ID and the tail in order.
type tailModel struct {
	window map[uint64]*modelRec
	tail   []modelRec
	next   uint64
}

type modelRec struct {
	id                   uint64
	transient, delivered bool
}

// TestStoreTailModel runs random operations on queues with tails (appends to
// window and tail, ReadTail, DropTail, acks, delivery marks, clean restarts
// and crashes, small segments so runs cross them and compaction runs) and
// checks the store against a model after each.
func TestStoreTailModel(t *testing.T) {
	for seed := range uint64(8) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { runTailModel(t, seed) })
	}
}

func runTailModel(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 99))
	dir := t.TempDir()
	opts := Options{SegmentSize: 4096 + int64(rng.IntN(8192)), Sync: SyncNever, compactChunk: 1024, ackRewriteMin: 2048}
	s := openTest(t, dir, opts)
	queues := []string{"a", "b", "c"}
	models := map[string]*tailModel{}
	for _, q := range queues {
		models[q] = &tailModel{window: map[uint64]*modelRec{}}
	}
	var compactions, deleted uint64
	restart := func(crash bool) {
		st := s.Stats()
		compactions += st.Compactions
		deleted += st.Deleted
		if crash {
			// settle: the copy must not race with segment deletions.
			if err := s.settle(); err != nil {
				t.Fatal(err)
			}
			c := crashCopy(t, dir, opts)
			s.Close()
			dir = c.dir
			s = c
		} else {
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openTest(t, dir, opts)
		}
		window := rng.IntN(20)
		for _, m := range models {
			var all []modelRec
			for _, r := range m.window {
				if !r.transient {
					all = append(all, *r)
				}
			}
			for _, r := range m.tail {
				if !r.transient {
					all = append(all, r)
				}
			}
			slices.SortFunc(all, func(a, b modelRec) int { return compareU64(a.id, b.id) })
			m.window, m.tail = map[uint64]*modelRec{}, nil
			for i, r := range all {
				if i < window {
					m.window[r.id] = &all[i]
				} else {
					m.tail = append(m.tail, r)
				}
			}
		}
		rs := recoverTail(t, s, window)
		checkRecovered(t, rs)
		for _, q := range queues {
			m := models[q]
			var want []uint64
			for id := range m.window {
				want = append(want, id)
			}
			slices.Sort(want)
			for _, r := range m.tail {
				want = append(want, r.id)
			}
			if got := ids(rs, "/", q); !slices.Equal(got, want) {
				t.Fatalf("queue %s recovered %v\nwant %v", q, got, want)
			}
			for _, r := range rs {
				if r.rec.Queue != q {
					continue
				}
				wr, ok := m.window[r.rec.ID]
				if !ok {
					i, _ := slices.BinarySearchFunc(m.tail, r.rec.ID, func(a modelRec, id uint64) int { return compareU64(a.id, id) })
					wr = &m.tail[i]
				}
				if r.delivered != wr.delivered {
					t.Fatalf("queue %s #%d recovered delivered=%v, want %v", q, r.rec.ID, r.delivered, wr.delivered)
				}
			}
		}
	}
	check := func() {
		live, inTail := 0, 0
		for _, m := range models {
			live += len(m.window) + len(m.tail)
			inTail += len(m.tail)
		}
		if st := s.Stats(); st.LiveMessages != live || st.TailMessages != inTail {
			t.Fatalf("stats live %d tail %d, want %d %d", st.LiveMessages, st.TailMessages, live, inTail)
		}
	}
	for step := range 1500 {
		q := queues[rng.IntN(len(queues))]
		m := models[q]
		switch op := rng.IntN(100); {
		case op < 35: // publish a batch, to the tail once there is one
			var recs []MessageRecord
			for range rng.IntN(8) + 1 {
				r := msg("/", q, m.next)
				r.Transient = rng.IntN(5) == 0
				r.Tail = len(m.tail) > 0 || rng.IntN(3) > 0
				mr := modelRec{id: m.next, transient: r.Transient}
				if r.Tail {
					m.tail = append(m.tail, mr)
				} else {
					m.window[m.next] = &mr
				}
				m.next++
				recs = append(recs, r)
			}
			mustAppend(t, s, recs...)
		case op < 60:
			n := rng.IntN(20)
			maxBytes := int64(rng.IntN(400))
			got, err := s.ReadTail("/", q, n, maxBytes)
			if err != nil {
				t.Fatal(err)
			}
			var total int64
			for i, r := range got {
				if i >= len(m.tail) || r.ID != m.tail[i].id || r.Delivered != m.tail[i].delivered || r.Transient != m.tail[i].transient {
					t.Fatalf("step %d: queue %s read tail %+v at %d, model %v", step, q, r, i, m.tail[:min(len(m.tail), 5)])
				}
				if want := msg("/", q, r.ID).Data; string(r.Data) != string(want) {
					t.Fatalf("queue %s #%d data %q", q, r.ID, r.Data)
				}
				total += int64(len(r.Data))
			}
			// As many as the limits allow.
			want := 0
			var wb int64
			for want < n && want < len(m.tail) {
				l := int64(len(msg("/", q, m.tail[want].id).Data))
				if want > 0 && wb+l > maxBytes {
					break
				}
				wb += l
				want++
			}
			if len(got) != want {
				t.Fatalf("step %d: queue %s read %d of the tail, want %d", step, q, len(got), want)
			}
			for _, r := range m.tail[:want] {
				m.window[r.id] = &r
			}
			m.tail = m.tail[want:]
		case op < 65:
			n := rng.IntN(6)
			got, err := s.DropTail("/", q, n)
			if err != nil || got != min(n, len(m.tail)) {
				t.Fatalf("drop %d: %d %v (tail %d)", n, got, err, len(m.tail))
			}
			m.tail = m.tail[got:]
		case op < 85:
			var ack []uint64
			for id := range m.window {
				if rng.IntN(3) == 0 {
					ack = append(ack, id)
				}
			}
			for _, id := range ack {
				delete(m.window, id)
			}
			s.Ack("/", q, ack)
		case op < 93:
			var mark []uint64
			for id, r := range m.window {
				if rng.IntN(2) == 0 {
					mark = append(mark, id)
					if !r.transient {
						r.delivered = true
					}
				}
			}
			s.MarkDelivered("/", q, mark)
		case op < 95:
			if err := s.DeleteQueue("/", q); err != nil {
				t.Fatal(err)
			}
			models[q] = &tailModel{window: map[uint64]*modelRec{}}
		case op < 98:
			restart(false)
		default:
			restart(true)
		}
		check()
	}
	restart(false)
	check()
	t.Logf("compactions %d, segments deleted %d", compactions, deleted)
}
