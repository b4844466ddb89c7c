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
	if err := s.Sync(); err != nil {
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
