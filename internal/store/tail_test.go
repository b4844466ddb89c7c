package store

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
)

// recoverTail recovers with fn keeping the first `window` records of every
// queue in the window and the rest in the tail, and returns what it saw.
func recoverTail(t testing.TB, s Store, window int) []recovered {
	t.Helper()
	var out []recovered
	seen := map[qkey]int{}
	err := s.Recover(func(rec MessageRecord, delivered bool) (bool, error) {
		rec.Data = slices.Clone(rec.Data)
		out = append(out, recovered{rec, delivered})
		k := qkey{rec.VHost, rec.Queue}
		seen[k]++
		return seen[k] > window, nil
	}, nil)
	if err != nil {
		t.Fatalf("recover: %v", err)
	}
	return out
}

func tailIDs(recs []TailRecord) []uint64 {
	var out []uint64
	for _, r := range recs {
		out = append(out, r.ID)
	}
	return out
}

// Records Recover leaves in the tail come back with ReadTail, delivery marks
// included, and survive further restarts, clean and crashed.
func TestStoreTailRecoverReopen(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentSize: 4096}
	s := openTest(t, dir, opts)
	for id := range uint64(20) {
		mustAppend(t, s, msg("/", "q", id), msg("/", "other", id))
	}
	for id := uint64(20); id < 600; id += 10 {
		var recs []MessageRecord
		for k := id; k < id+10; k++ {
			recs = append(recs, tailMsg("/", "q", k), tailMsg("/", "other", k))
		}
		mustAppend(t, s, recs...)
	}
	s.MarkDelivered("/", "q", seq(0, 20))
	s.Ack("/", "q", []uint64{0, 1, 2, 3, 11})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openTest(t, dir, opts)
	rs := recoverTail(t, s, 5)
	checkRecovered(t, rs)
	want := append(append(seq(4, 11), seq(12, 20)...), seq(20, 600)...)
	if got := ids(rs, "/", "q"); !slices.Equal(got, want) {
		t.Fatalf("recovered %v\nwant %v", got, want)
	}
	if st := s.Stats(); st.TailMessages != len(want)-5+600-5 || st.LiveMessages != len(want)+600 {
		t.Fatalf("stats %+v", st)
	}
	for _, id := range seq(4, 9) {
		if m, err := s.ReadMessage("/", "q", id); err != nil || !bytes.Equal(m.Data, msg("/", "q", id).Data) {
			t.Fatalf("window record #%d: %v", id, err)
		}
	}
	if _, err := s.ReadMessage("/", "q", 9); err == nil {
		t.Fatal("tail record #9 readable by ID before ReadTail")
	}
	// Half of the tail is read (its delivery marks come with it), acked in part.
	got, err := s.ReadTail("/", "q", 10, 1<<20)
	if err != nil || !slices.Equal(tailIDs(got), []uint64{9, 10, 12, 13, 14, 15, 16, 17, 18, 19}) {
		t.Fatalf("read tail %v %v", tailIDs(got), err)
	}
	for _, r := range got {
		if !r.Delivered {
			t.Fatalf("#%d lost its delivery mark in the tail", r.ID)
		}
	}
	got, _ = s.ReadTail("/", "q", 200, 1<<20)
	if !slices.Equal(tailIDs(got), seq(20, 220)) || got[0].Delivered {
		t.Fatalf("read tail %v", tailIDs(got))
	}
	s.Ack("/", "q", seq(20, 120))
	if n, err := s.DropTail("/", "other", 100); n != 100 || err != nil {
		t.Fatalf("drop %d %v", n, err)
	}
	// settle, not only Sync: the crash copy must not race with the
	// deletion of segments emptied by the acks.
	if err := s.settle(); err != nil {
		t.Fatal(err)
	}
	check := func(s *File) {
		t.Helper()
		rs := recoverTail(t, s, 1000)
		checkRecovered(t, rs)
		want := append(append(seq(4, 11), seq(12, 20)...), seq(120, 600)...)
		if got := ids(rs, "/", "q"); !slices.Equal(got, want) {
			t.Fatalf("recovered %v\nwant %v", got, want)
		}
		if got := ids(rs, "/", "other"); !slices.Equal(got, append(seq(0, 5), seq(105, 600)...)) {
			t.Fatalf("other recovered %v", got)
		}
		for _, r := range rs {
			if r.rec.Queue == "q" && r.delivered != (r.rec.ID < 20) {
				t.Fatalf("#%d delivered=%v", r.rec.ID, r.delivered)
			}
		}
	}
	check(crashCopy(t, dir, opts))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	check(openTest(t, dir, opts))
}

// ReadTail never returns a record before it is written.
func TestStoreTailUnwritten(t *testing.T) {
	fs := newFaultFS()
	s := openTest(t, t.TempDir(), Options{fs: fs})
	mustAppend(t, s, tailMsg("/", "q", 1))
	gate := make(chan struct{})
	fs.set(func(fs *faultFS) { fs.gate = gate })
	ch := make(chan error, 1)
	s.AppendMessages([]MessageRecord{tailMsg("/", "q", 2), tailMsg("/", "q", 3)}, func(err error) { ch <- err })
	if got := readTail(t, s, "/", "q", 10, 1<<20); !slices.Equal(got, []uint64{1}) {
		t.Fatalf("read %v while #2 is being written", got)
	}
	if got := readTail(t, s, "/", "q", 10, 1<<20); len(got) != 0 {
		t.Fatalf("read %v while #2 is being written", got)
	}
	fs.set(func(fs *faultFS) { fs.gate = nil })
	close(gate)
	if err := <-ch; err != nil {
		t.Fatal(err)
	}
	if got := readTail(t, s, "/", "q", 10, 1<<20); !slices.Equal(got, []uint64{2, 3}) {
		t.Fatalf("read %v after the write", got)
	}
}

// Compaction copies next to their originals (a crash before the originals'
// segment was removed) must reach the tail once each, also across restarts.
func TestStoreTailCompactionCrashDuplicates(t *testing.T) {
	crash, kept, opts := crashWithCopies(t)
	c := openTest(t, crash, opts)
	rs := recoverTail(t, c, 3)
	if got := ids(rs, "/", "q"); !slices.Equal(got, kept) {
		t.Fatalf("recovered %v, want %v", got, kept)
	}
	if st := c.Stats(); st.TailMessages != len(kept)-3 || st.LiveMessages != len(kept) {
		t.Fatalf("stats %+v", st)
	}
	if err := c.settle(); err != nil { // the ack log is rewritten: the moved originals must stay unacked
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c = openTest(t, crash, opts)
	rs = recoverTail(t, c, 2)
	if got := ids(rs, "/", "q"); !slices.Equal(got, kept) {
		t.Fatalf("after a restart %v, want %v", got, kept)
	}
	got := readAllTail(t, c, "/", "q")
	if !slices.Equal(tailIDs(got), kept[2:]) {
		t.Fatalf("tail %v, want %v", tailIDs(got), kept[2:])
	}
	c.Ack("/", "q", kept[:len(kept)/2])
	if err := c.settle(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c = openTest(t, crash, opts)
	if got := ids(recoverTail(t, c, 1), "/", "q"); !slices.Equal(got, kept[len(kept)/2:]) {
		t.Fatalf("after acking half: %v, want %v", got, kept[len(kept)/2:])
	}
}

// readAllTail reads a queue's whole tail in batches.
func readAllTail(t testing.TB, s Store, vhost, queue string) []TailRecord {
	t.Helper()
	var out []TailRecord
	for {
		recs, err := s.ReadTail(vhost, queue, 100, 64<<10)
		if err != nil {
			t.Fatalf("read tail: %v", err)
		}
		if len(recs) == 0 {
			return out
		}
		for _, r := range recs {
			if want := msg(vhost, queue, r.ID).Data; !bytes.Equal(r.Data, want) {
				t.Fatalf("tail #%d data %q, want %q", r.ID, r.Data, want)
			}
		}
		out = append(out, recs...)
	}
}

// Segments holding tail records are not compacted (doc.go); once the tail
// is read and acked they are, and nothing is lost or doubled on the way.
func TestStoreTailCompaction(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentSize: 8192, compactChunk: 1024}
	s := openTest(t, dir, opts)
	var acked []uint64
	for id := range uint64(1000) {
		mustAppend(t, s, msg("/", "w", id), tailMsg("/", "t", id))
		if id%20 != 0 {
			acked = append(acked, id)
		}
	}
	s.Ack("/", "w", acked)
	if err := s.settle(); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Compactions != 0 || st.TailMessages != 1000 {
		t.Fatalf("compacted segments holding tail records: %+v", st)
	}
	// Half the tail read and mostly acked: its segments can go or be compacted.
	got := tailIDs(mustReadTail(t, s, "t", 500))
	if !slices.Equal(got, seq(0, 500)) {
		t.Fatalf("tail %v", got)
	}
	var tAcked []uint64
	for id := range uint64(500) {
		if id%50 != 0 {
			tAcked = append(tAcked, id)
		}
	}
	s.Ack("/", "t", tAcked)
	if err := s.settle(); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Compactions == 0 {
		t.Fatalf("nothing compacted once the tail moved on: %+v", st)
	}
	check := func(s *File) {
		t.Helper()
		rs := recoverTail(t, s, 10)
		checkRecovered(t, rs)
		var wantW, wantT []uint64
		for id := range uint64(1000) {
			if id%20 == 0 {
				wantW = append(wantW, id)
			}
			if id >= 500 || id%50 == 0 {
				wantT = append(wantT, id)
			}
		}
		if got := ids(rs, "/", "w"); !slices.Equal(got, wantW) {
			t.Fatalf("w recovered %v", got)
		}
		if got := ids(rs, "/", "t"); !slices.Equal(got, wantT) {
			t.Fatalf("t recovered %v", got)
		}
		if got := tailIDs(readAllTail(t, s, "/", "t")); !slices.Equal(got, wantT[10:]) {
			t.Fatalf("t tail %v", got)
		}
	}
	check(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	check(openTest(t, dir, opts))
}

func mustReadTail(t testing.TB, s Store, queue string, n int) []TailRecord {
	t.Helper()
	recs, err := s.ReadTail("/", queue, n, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// reopen closes s and opens dir again.
func reopen(t *testing.T, s *File, dir string, opts Options) *File {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return openTest(t, dir, opts)
}

// Appends made after Open but before Recover meet the records found on disk
// in one merge: ID order, and an ID appended again replaces the old record.
func TestStoreTailAppendBeforeRecover(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentSize: 4096}
	s := openTest(t, dir, opts)
	for id := range uint64(50) {
		mustAppend(t, s, tailMsg("/", "q", id))
	}
	s = reopen(t, s, dir, opts)
	again := MessageRecord{VHost: "/", Queue: "q", ID: 7, Data: []byte("again")}
	mustAppend(t, s, again, msg("/", "q", 60))
	mustAppend(t, s, tailMsg("/", "q", 61), tailMsg("/", "q", 62))
	var got []uint64
	err := s.Recover(func(rec MessageRecord, delivered bool) (bool, error) {
		got = append(got, rec.ID)
		if rec.ID == 7 && string(rec.Data) != "again" {
			t.Errorf("#7 recovered as %q", rec.Data)
		}
		return rec.ID >= 20 && rec.ID < 50, nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := append(seq(0, 50), 60, 61, 62)
	if !slices.Equal(got, want) {
		t.Fatalf("recovered %v\nwant %v", got, want)
	}
	if m, err := s.ReadMessage("/", "q", 7); err != nil || string(m.Data) != "again" {
		t.Fatalf("read #7: %q %v", m.Data, err)
	}
	// The tail: what fn left there from disk, then the appends (61, 62).
	if ids := tailIDs(readAllTail2(t, s)); !slices.Equal(ids, append(seq(20, 50), 61, 62)) {
		t.Fatalf("tail %v", ids)
	}
	s = reopen(t, s, dir, opts)
	rs := recoverAll(t, s)
	if got := ids(rs, "/", "q"); !slices.Equal(got, want) {
		t.Fatalf("after restart %v", got)
	}
	if st := s.Stats(); st.LiveMessages != len(want) {
		t.Fatalf("stats %+v", st)
	}
}

// readAllTail2 reads queue "q"'s tail without checking data against msg.
func readAllTail2(t *testing.T, s Store) []TailRecord {
	t.Helper()
	var out []TailRecord
	for {
		recs, err := s.ReadTail("/", "q", 7, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			return out
		}
		out = append(out, recs...)
	}
}

// A queue deleted before Recover handed its records out loses them for good.
func TestStoreTailDeleteBeforeRecover(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentSize: 4096}
	s := openTest(t, dir, opts)
	for id := range uint64(300) {
		mustAppend(t, s, tailMsg("/", "gone", id), msg("/", "kept", id))
	}
	s.Ack("/", "kept", seq(0, 100))
	s = reopen(t, s, dir, opts)
	if err := s.DeleteQueue("/", "gone"); err != nil {
		t.Fatal(err)
	}
	rs := recoverTail(t, s, 10)
	if st := s.Stats(); st.LiveMessages != 200 {
		t.Fatalf("stats after delete and recover %+v", st)
	}
	if len(ids(rs, "/", "gone")) != 0 || !slices.Equal(ids(rs, "/", "kept"), seq(100, 300)) {
		t.Fatalf("recovered %v / %v", ids(rs, "/", "gone"), ids(rs, "/", "kept"))
	}
	if err := s.settle(); err != nil {
		t.Fatal(err)
	}
	s = reopen(t, s, dir, opts)
	rs = recoverAll(t, s)
	if len(ids(rs, "/", "gone")) != 0 || len(rs) != 200 {
		t.Fatalf("after restart: %d records, gone %v", len(rs), ids(rs, "/", "gone"))
	}
}

// A Recover that fn stops leaves the rest for the next one: nothing lost,
// nothing handed out twice.
func TestStoreTailRecoverStopped(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentSize: 4096}
	s := openTest(t, dir, opts)
	for id := range uint64(200) {
		mustAppend(t, s, tailMsg("/", "a", id), tailMsg("/", "b", id))
	}
	s = reopen(t, s, dir, opts)
	stop := errors.New("stop")
	seen := map[string][]uint64{}
	n := 0
	err := s.Recover(func(rec MessageRecord, delivered bool) (bool, error) {
		if n++; n == 150 {
			return false, stop
		}
		seen[rec.Queue] = append(seen[rec.Queue], rec.ID)
		return len(seen[rec.Queue]) > 5, nil
	}, nil)
	if err != stop {
		t.Fatalf("recover: %v", err)
	}
	// The second one sees everything again, in ID order, once each.
	again := map[string][]uint64{}
	err = s.Recover(func(rec MessageRecord, delivered bool) (bool, error) {
		again[rec.Queue] = append(again[rec.Queue], rec.ID)
		return true, nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(again["a"], seq(0, 200)) || !slices.Equal(again["b"], seq(0, 200)) {
		t.Fatalf("second recover: %v / %v", again["a"], again["b"])
	}
	for _, q := range []string{"a", "b"} {
		var all []uint64
		got, err := s.ReadTail("/", q, 1000, 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, tailIDs(got)...)
		for id := range uint64(200) {
			if _, err := s.ReadMessage("/", q, id); err == nil && !slices.Contains(all, id) {
				all = append(all, id)
			}
		}
		slices.Sort(all)
		if !slices.Equal(all, seq(0, 200)) {
			t.Fatalf("queue %s holds %v", q, all)
		}
	}
	if st := s.Stats(); st.LiveMessages != 400 || st.TailMessages != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// An ID appended again whose old record's ack was lost in a crash: the
// newer record (higher recno) is the one recovered, in window or tail.
func TestStoreTailRecoverReappended(t *testing.T) {
	for _, window := range []int{0, 10} {
		dir := t.TempDir()
		opts := Options{}
		s := openTest(t, dir, opts)
		for id := range uint64(10) {
			mustAppend(t, s, msg("/", "q", id))
		}
		mustAppend(t, s, MessageRecord{VHost: "/", Queue: "q", ID: 5, Data: []byte("old")})
		if err := s.settle(); err != nil {
			t.Fatal(err)
		}
		crash := t.TempDir()
		copyStore(t, dir, crash, nil)
		mustAppend(t, s, MessageRecord{VHost: "/", Queue: "q", ID: 5, Data: []byte("new")})
		if err := s.settle(); err != nil {
			t.Fatal(err)
		}
		// The segments as they are now, the ack log from before: the old #5's
		// ack never made it.
		copyStore(t, dir, crash, func(name string, b []byte) []byte {
			if name == "acks.log" {
				return nil
			}
			return b
		})
		c := openTest(t, crash, opts)
		var got []string
		err := c.Recover(func(rec MessageRecord, delivered bool) (bool, error) {
			got = append(got, fmt.Sprintf("%d:%s", rec.ID, rec.Data[:3]))
			return len(got) > window, nil
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 10 || got[5] != "5:new" {
			t.Fatalf("window %d: recovered %v", window, got)
		}
		if window == 0 {
			recs := readAllTail2(t, c)
			if len(recs) != 10 || string(recs[5].Data) != "new" {
				t.Fatalf("tail %+v", recs)
			}
		} else if m, err := c.ReadMessage("/", "q", 5); err != nil || string(m.Data) != "new" {
			t.Fatalf("read #5: %q %v", m.Data, err)
		}
		c = reopen(t, c, crash, opts)
		rs := recoverAll(t, c)
		if len(rs) != 10 || string(rs[5].rec.Data) != "new" {
			t.Fatalf("window %d: after restart %d records, #5 %q", window, len(rs), rs[5].rec.Data)
		}
	}
}

// ReadTail, DropTail, appends and DeleteQueue racing: every record is read
// at most once, and the store's counts stay right (run with -race).
func TestStoreTailConcurrent(t *testing.T) {
	s := openTest(t, t.TempDir(), Options{SegmentSize: 16 << 10, Sync: SyncNever})
	const n = 3000
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for id := uint64(0); id < n; id += 10 {
			var recs []MessageRecord
			for k := id; k < id+10; k++ {
				recs = append(recs, tailMsg("/", "q", k), tailMsg("/", "other", k))
			}
			mustAppend(t, s, recs...)
		}
	}()
	seen := map[uint64]bool{}
	dropped := 0
	for len(seen)+dropped < n {
		recs, err := s.ReadTail("/", "q", 17, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if seen[r.ID] {
				t.Fatalf("#%d read twice", r.ID)
			}
			seen[r.ID] = true
		}
		d, err := s.DropTail("/", "q", 3)
		if err != nil {
			t.Fatal(err)
		}
		dropped += d
		if _, err := s.ReadTail("/", "other", 5, 1<<20); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if err := s.DeleteQueue("/", "other"); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.LiveMessages != len(seen) || st.TailMessages != 0 {
		t.Fatalf("stats %+v, read %d", st, len(seen))
	}
}
