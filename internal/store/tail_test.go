package store

import (
	"bytes"
	"slices"
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
	})
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
