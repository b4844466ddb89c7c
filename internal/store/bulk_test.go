package store

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// Recover in bulk (Store.Recover's tail callback): what it reports, checked
// the same way over Memory and File.

// bulkEvent is one report of a Recover: a fn call (run nil) or a TailRun.
type bulkEvent struct {
	rec       MessageRecord
	delivered bool
	tail      bool // fn's answer
	run       *TailRun
}

// recoverBulk recovers with a bulk callback, fn keeping the first `window`
// records of every queue in the window (and tail records in the tail, as the
// broker does), and returns every report in order.
func recoverBulk(t testing.TB, s Store, window int) []bulkEvent {
	t.Helper()
	var out []bulkEvent
	seen := map[qkey]int{}
	err := s.Recover(func(rec MessageRecord, delivered bool) (bool, error) {
		rec.Data = slices.Clone(rec.Data)
		k := qkey{rec.VHost, rec.Queue}
		seen[k]++
		tail := rec.Tail || seen[k] > window
		out = append(out, bulkEvent{rec: rec, delivered: delivered, tail: tail})
		return tail, nil
	}, func(run TailRun) error {
		if run.Count <= 0 {
			t.Errorf("empty tail run %+v", run)
		}
		out = append(out, bulkEvent{run: &run})
		return nil
	})
	if err != nil {
		t.Fatalf("recover: %v", err)
	}
	return out
}

// bulkWant is what a queue holds: its live IDs (sorted) and which of them
// are marked delivered.
type bulkWant struct {
	live  []uint64
	deliv map[uint64]bool
}

// checkBulk checks one Recover's reports against want: every live record
// reported exactly once (through fn, with its data, or inside a TailRun whose
// count and bytes match the live IDs it covers), TailRuns only after fn put
// one of the queue's records in the tail. Then it drains every queue's tail
// and checks that ReadTail returns, in ID order and exactly once, every record
// reported in bulk, and that what it does not return is in the window
// (ReadMessage). Delivery marks are what fn or ReadTail say. weigh is the
// store's Options.Weigh (len for Memory). It returns how often fn was called.
func checkBulk(t *testing.T, s Store, evs []bulkEvent, want map[qkey]bulkWant, weigh func([]byte) int64) int {
	t.Helper()
	type qstate struct {
		max      uint64
		any      bool
		tailed   bool
		reported map[uint64]bool // by fn
		bulk     map[uint64]bool
		deliv    map[uint64]bool
	}
	st := map[qkey]*qstate{}
	get := func(k qkey) *qstate {
		q := st[k]
		if q == nil {
			q = &qstate{reported: map[uint64]bool{}, bulk: map[uint64]bool{}, deliv: map[uint64]bool{}}
			st[k] = q
		}
		return q
	}
	calls := 0
	for _, ev := range evs {
		if ev.run == nil {
			calls++
			k := qkey{ev.rec.VHost, ev.rec.Queue}
			q := get(k)
			id := ev.rec.ID
			if q.any && id <= q.max {
				t.Fatalf("%v#%d reported after #%d", k, id, q.max)
			}
			if !bytes.Equal(ev.rec.Data, msg(k.vhost, k.queue, id).Data) {
				t.Fatalf("%v#%d data %q", k, id, ev.rec.Data)
			}
			q.max, q.any = id, true
			q.reported[id] = true
			q.deliv[id] = ev.delivered
			q.tailed = q.tailed || ev.tail
			continue
		}
		r := *ev.run
		k := qkey{r.VHost, r.Queue}
		q := get(k)
		if !q.tailed {
			t.Fatalf("tail run %+v before fn put a record of its queue in the tail", r)
		}
		// Its records are the live IDs in (q.max, r.LastID].
		n, b := 0, int64(0)
		for _, id := range want[k].live {
			if id > q.max && id <= r.LastID {
				n++
				b += weigh(msg(k.vhost, k.queue, id).Data)
				q.bulk[id] = true
			}
		}
		if r.LastID <= q.max || n != r.Count || b != r.Bytes {
			t.Fatalf("tail run %+v after #%d: want %d records of %d bytes", r, q.max, n, b)
		}
		q.max = r.LastID
	}
	for k, w := range want {
		q := get(k)
		if len(q.reported)+len(q.bulk) != len(w.live) {
			t.Fatalf("%v: %d reported by fn, %d in bulk, want %d live", k, len(q.reported), len(q.bulk), len(w.live))
		}
		for _, id := range w.live {
			if !q.reported[id] && !q.bulk[id] {
				t.Fatalf("%v#%d not reported", k, id)
			}
		}
		var drained []uint64
		for _, r := range readAllTail(t, s, k.vhost, k.queue) {
			if n := len(drained); n > 0 && r.ID <= drained[n-1] {
				t.Fatalf("%v: tail #%d after #%d", k, r.ID, drained[n-1])
			}
			drained = append(drained, r.ID)
			if !q.reported[r.ID] {
				q.deliv[r.ID] = r.Delivered
			}
		}
		for id := range q.bulk {
			if _, ok := slices.BinarySearch(drained, id); !ok {
				t.Fatalf("%v#%d reported in bulk, not in the tail (tail %v)", k, id, drained)
			}
		}
		for _, id := range w.live {
			if _, ok := slices.BinarySearch(drained, id); ok {
				continue
			}
			if _, err := s.ReadMessage(k.vhost, k.queue, id); err != nil {
				t.Fatalf("%v#%d neither in the tail nor in the window: %v", k, id, err)
			}
		}
		for _, id := range w.live {
			if q.deliv[id] != w.deliv[id] {
				t.Fatalf("%v#%d delivered=%v, want %v", k, id, q.deliv[id], w.deliv[id])
			}
		}
	}
	return calls
}

// bulkScenario fills s as a broker would (a window, then a tail, with a
// second queue written interleaved), moves part of the tail into the window,
// acknowledges records at the head, in the middle of what becomes one run
// at a restart, and of the other queue, and marks some delivered.
func bulkScenario(t *testing.T, s Store) map[qkey]bulkWant {
	const n = 600
	q, other := qkey{"/", "q"}, qkey{"v", "other"}
	for id := uint64(0); id < n; id += 20 {
		var recs []MessageRecord
		for k := id; k < id+20; k++ {
			r := msg(q.vhost, q.queue, k)
			r.Tail = k >= 5
			recs = append(recs, r, msg(other.vhost, other.queue, k))
		}
		mustAppend(t, s, recs...)
	}
	if got := readTail(t, s, q.vhost, q.queue, 40, 1<<20); len(got) != 40 {
		t.Fatalf("read tail: %v", got)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.Ack(q.vhost, q.queue, []uint64{0, 1, 20, 21}))
	must(s.Ack(other.vhost, other.queue, seq(300, 320)))
	must(s.MarkDelivered(q.vhost, q.queue, []uint64{3, 30, 31, 32}))
	must(s.MarkDelivered(other.vhost, other.queue, []uint64{7, 450}))
	want := map[qkey]bulkWant{}
	for _, k := range []qkey{q, other} {
		w := bulkWant{deliv: map[uint64]bool{}}
		for id := range uint64(n) {
			if k == q && slices.Contains([]uint64{0, 1, 20, 21}, id) || k == other && id >= 300 && id < 320 {
				continue
			}
			w.live = append(w.live, id)
		}
		want[k] = w
	}
	for _, id := range []uint64{3, 30, 31, 32} {
		want[q].deliv[id] = true
	}
	for _, id := range []uint64{7, 450} {
		want[other].deliv[id] = true
	}
	return want
}

// weighPlus is a Weigh that differs from len, so that tests see it is used.
func weighPlus(d []byte) int64 { return int64(len(d)) + 1000 }

func TestStoreBulkRecoverConformance(t *testing.T) {
	const window = 5
	t.Run("Memory", func(t *testing.T) {
		s := NewMemory()
		want := bulkScenario(t, s)
		evs := recoverBulk(t, s, window)
		checkBulk(t, s, evs, want, func(d []byte) int64 { return int64(len(d)) })
	})
	for _, tc := range []struct {
		name  string
		seg   int64
		crash bool
		noSum bool // Open scans every segment
	}{
		{"File/Close", 0, false, false},
		{"File/Crash", 0, true, false},
		{"File/SmallSegments/Close", 4096, false, false},
		{"File/SmallSegments/Crash", 4096, true, false},
		{"File/SmallSegments/Scanned", 4096, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := Options{SegmentSize: tc.seg, Weigh: weighPlus}
			dir := t.TempDir()
			s := openTest(t, dir, opts)
			want := bulkScenario(t, s)
			restart := func(s *File) *File {
				if tc.crash {
					if err := s.Sync(); err != nil {
						t.Fatal(err)
					}
					return crashCopy(t, dir, opts)
				}
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				if tc.noSum {
					sums, _ := filepath.Glob(filepath.Join(dir, "*.sum"))
					for _, f := range sums {
						os.Remove(f)
					}
				}
				return openTest(t, dir, opts)
			}
			s = restart(s)
			// Twice: the first restart's bulk state is in memory only, the
			// second finds the same on disk.
			for range 2 {
				calls := checkBulk(t, s, recoverBulk(t, s, window), want, weighPlus)
				total := len(want[qkey{"/", "q"}].live) + len(want[qkey{"v", "other"}].live)
				if calls >= total {
					t.Fatalf("fn called %d times for %d records: nothing in bulk", calls, total)
				}
				if st := s.Stats(); st.LiveMessages != total {
					t.Fatalf("stats %+v, want %d live", st, total)
				}
				// Read into the window by checkBulk, not acked: all of it
				// comes back after the next restart, and nothing else.
				if tc.crash {
					dir = s.dir
				}
				s = restart(s)
			}
		})
	}
}

// A restart of a 200k-record single-queue store calls fn for the window and
// the record after it only: the rest is reported in bulk, without reading
// it, and reads back in order. Acked records at the head (a consumer took
// some before the restart) and delivery marks do not change that.
func TestStoreBulkRecoverCalls(t *testing.T) {
	const n, window = 200_000, 4096
	for _, crash := range []bool{false, true} {
		dir := t.TempDir()
		opts := Options{Sync: SyncNever, SegmentSize: 1 << 20}
		s := openTest(t, dir, opts)
		fillTailData(t, s, 0, n, []byte("0123456789abcdef"))
		got, err := s.ReadTail("/", "q", 1000, 1<<20)
		if err != nil || len(got) != 1000 {
			t.Fatalf("read tail: %d %v", len(got), err)
		}
		s.Ack("/", "q", seq(0, 600))
		s.MarkDelivered("/", "q", seq(600, 1000))
		if crash {
			if err := s.Sync(); err != nil {
				t.Fatal(err)
			}
			s = crashCopy(t, dir, opts)
		} else {
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openTest(t, dir, opts)
		}
		calls, bulk, next := 0, 0, uint64(600)
		err = s.Recover(func(rec MessageRecord, delivered bool) (bool, error) {
			if rec.ID != next || delivered != (rec.ID < 1000) {
				t.Fatalf("recovered #%d delivered=%v, want #%d", rec.ID, delivered, next)
			}
			next++
			calls++
			return calls > window, nil
		}, func(run TailRun) error {
			if run.LastID-uint64(run.Count)+1 != next || run.Bytes != 16*int64(run.Count) {
				t.Fatalf("tail run %+v after #%d", run, next-1)
			}
			next = run.LastID + 1
			bulk += run.Count
			return nil
		})
		if err != nil || next != n {
			t.Fatalf("recovered up to #%d: %v", next, err)
		}
		t.Logf("crash=%v: fn called %d times, %d records in bulk", crash, calls, bulk)
		if calls != window+1 || calls+bulk != n-600 {
			t.Fatalf("fn called %d times, %d in bulk, want %d and %d", calls, bulk, window+1, n-600-window-1)
		}
		if st := s.Stats(); st.LiveMessages != n-600 || st.TailMessages != n-600-window {
			t.Fatalf("stats %+v", st)
		}
		next = window + 600
		for {
			recs, err := s.ReadTail("/", "q", 4096, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) == 0 {
				break
			}
			for _, r := range recs {
				if r.ID != next || string(r.Data) != "0123456789abcdef" || r.Delivered != (r.ID < 1000) {
					t.Fatalf("tail #%d %q delivered=%v, want #%d", r.ID, r.Data, r.Delivered, next)
				}
				next++
			}
		}
		if next != n {
			t.Fatalf("tail ended at #%d", next)
		}
	}
}

// A summary of format version 1 counts as missing: the segment is scanned
// once and summarised again, so the next Open reads summaries only.
func TestStoreSummaryVersion1(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentSize: 4096}
	s := openTest(t, dir, opts)
	for id := range uint64(300) {
		mustAppend(t, s, tailMsg("/", "q", id))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	sums, _ := filepath.Glob(filepath.Join(dir, "*.sum"))
	if len(sums) < 3 {
		t.Fatalf("%d summaries", len(sums))
	}
	for _, f := range sums[:2] {
		b, _ := os.ReadFile(f)
		b[4] = 1 // the version field: v1 decoded this layout without recno ranges
		os.WriteFile(f, b, 0o644)
	}
	for i, want := range []int64{3, 1} { // two v1 summaries and the head, then the head only
		s = openTest(t, dir, opts)
		if got := s.scanned.Load(); got != want {
			t.Fatalf("open %d scanned %d segments, want %d", i, got, want)
		}
		rs := recoverBulk(t, s, 5)
		checkBulk(t, s, rs, map[qkey]bulkWant{{"/", "q"}: {live: seq(0, 300)}}, func(d []byte) int64 { return int64(len(d)) })
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
