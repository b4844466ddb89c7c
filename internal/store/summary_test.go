package store

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// Sealed segments get a summary; Open reads those instead of scanning the
// segments, and finds exactly what a scan finds. Directories without
// summaries (older Warrens), with invalid ones or with strays open as well.
func TestStoreSummary(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentSize: 4096}
	s := openTest(t, dir, opts)
	for id := range uint64(600) {
		w := msg("/", "w", id)
		w.Transient = id%7 == 3
		tr := tailMsg("/", "t", id)
		tr.Transient = id%11 == 5
		mustAppend(t, s, w, tr, tailMsg("v", "t", id))
	}
	s.Ack("/", "w", seq(0, 200))
	s.MarkDelivered("/", "w", seq(200, 300))
	if n, err := s.DropTail("v", "t", 100); n != 100 || err != nil {
		t.Fatalf("drop: %d %v", n, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	sums, _ := filepath.Glob(filepath.Join(dir, "*.sum"))
	if len(segs) < 10 || len(sums) != len(segs)-1 {
		t.Fatalf("%d segments, %d summaries", len(segs), len(sums))
	}
	variant := func(name string, change func(dir string)) string {
		d := filepath.Join(t.TempDir(), name)
		os.Mkdir(d, 0o755)
		copyStore(t, dir, d, nil)
		change(d)
		return d
	}
	noSums := variant("nosums", func(d string) {
		files, _ := filepath.Glob(filepath.Join(d, "*.sum"))
		for _, f := range files {
			os.Remove(f)
		}
	})
	bad := variant("bad", func(d string) {
		b, _ := os.ReadFile(sums[2])
		b[len(b)-3] ^= 1
		os.WriteFile(filepath.Join(d, filepath.Base(sums[2])), b, 0o644)
		// A summary naming another segment, and one whose segment is gone.
		b, _ = os.ReadFile(sums[3])
		os.WriteFile(filepath.Join(d, filepath.Base(sums[4])), b, 0o644)
		os.WriteFile(filepath.Join(d, "99999999.sum"), b, 0o644)
	})
	// A segment that no longer ends with the record its summary names (cut
	// and written again, by an older Warren say) is scanned.
	rewritten := variant("rewritten", func(d string) {
		seg := filepath.Join(d, strings.TrimSuffix(filepath.Base(sums[5]), ".sum")+".seg")
		b, _ := os.ReadFile(seg)
		_, offs, _, _ := scanSegmentBytes(b, 1<<20)
		b[offs[len(offs)-1]+5] ^= 1 // the last record's crc
		os.WriteFile(seg, b, 0o644)
	})
	type result struct {
		recovered []recovered
		tails     map[string][]TailRecord
		stats     Stats
	}
	load := func(d string) (result, int64) {
		s := openTest(t, d, opts)
		scanned := s.scanned.Load()
		var r result
		r.recovered = recoverTail(t, s, 7)
		r.tails = map[string][]TailRecord{}
		for _, k := range []qkey{{"/", "w"}, {"/", "t"}, {"v", "t"}} {
			r.tails[k.vhost+k.queue] = readAllTail(t, s, k.vhost, k.queue)
		}
		// What maintenance did meanwhile (it runs once Recover is done)
		// depends on timing; the content does not.
		st := s.Stats()
		r.stats = Stats{LiveMessages: st.LiveMessages, LiveBytes: st.LiveBytes, TailMessages: st.TailMessages}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		return r, scanned
	}
	want, scanned := load(noSums)
	if scanned != int64(len(segs)) {
		t.Fatalf("without summaries Open scanned %d of %d segments", scanned, len(segs))
	}
	checkRecovered(t, want.recovered)
	if len(want.recovered) < 1000 || len(want.tails["/t"]) < 400 {
		t.Fatalf("recovered %d, tail %d", len(want.recovered), len(want.tails["/t"]))
	}
	got, scanned := load(dir)
	if scanned != 1 {
		t.Fatalf("with summaries Open scanned %d segments, want only the head", scanned)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("with summaries:\n%+v\nwithout:\n%+v", got.stats, want.stats)
	}
	got, scanned = load(bad)
	if scanned != 3 {
		t.Fatalf("with two bad summaries Open scanned %d segments, want 3", scanned)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("with bad summaries:\n%+v\nwithout:\n%+v", got.stats, want.stats)
	}
	if _, err := os.Stat(filepath.Join(bad, "99999999.sum")); !os.IsNotExist(err) {
		t.Fatalf("stray summary kept: %v", err)
	}
	// A segment that no longer ends with the record its summary names (cut
	// and written again, by an older Warren say) is scanned.
	if s := openTest(t, rewritten, opts); s.scanned.Load() != 2 {
		t.Fatalf("with a rewritten segment Open scanned %d segments, want 2", s.scanned.Load())
	}
	// Restarted again, each holds the same records (the tails were read
	// into the window), and the one without summaries no longer scans:
	// Open summarised the sealed segments it scanned.
	var again [][]recovered
	for _, d := range []string{dir, noSums, bad} {
		s := openTest(t, d, opts)
		if d == noSums && s.scanned.Load() != 1 {
			t.Fatalf("reopened, the directory without summaries scanned %d segments, want the head only", s.scanned.Load())
		}
		rs := recoverAll(t, s)
		s.Close()
		// Queues interleave in disk order, which compaction changed.
		slices.SortStableFunc(rs, func(a, b recovered) int {
			return strings.Compare(a.rec.VHost+"/"+a.rec.Queue, b.rec.VHost+"/"+b.rec.Queue)
		})
		again = append(again, rs)
	}
	if !reflect.DeepEqual(again[0], again[1]) || !reflect.DeepEqual(again[0], again[2]) || len(again[0]) != len(want.recovered) {
		t.Fatalf("second restart: %d, %d, %d records, want %d", len(again[0]), len(again[1]), len(again[2]), len(want.recovered))
	}
}

// A summarized segment corrupt in the middle (not cut at Open, which does
// not scan it): Recover hands out what comes before the bad record, gives up
// the rest of that segment, and the store goes on (maintenance included).
func TestStoreSummaryCorruptSegment(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentSize: 4096}
	s := openTest(t, dir, opts)
	for id := range uint64(300) {
		mustAppend(t, s, tailMsg("/", "q", id))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	seg := filepath.Join(dir, "00000002.seg")
	b, _ := os.ReadFile(seg)
	b[len(b)/2] ^= 0xff
	os.WriteFile(seg, b, 0o644)
	var logs logBuffer
	opts.Logger = logs.logger()
	s = openTest(t, dir, opts)
	rs := recoverTail(t, s, 5)
	got := ids(rs, "/", "q")
	if len(got) < 100 || len(got) >= 300 || !slices.IsSorted(got) {
		t.Fatalf("recovered %d records", len(got))
	}
	if !strings.Contains(logs.String(), "unreadable during recovery") {
		t.Fatalf("no error logged:\n%s", logs.String())
	}
	if st := s.Stats(); st.LiveMessages != len(got) || st.TailMessages != len(got)-5 {
		t.Fatalf("stats %+v for %d recovered", st, len(got))
	}
	if err := s.settle(); err != nil { // maintenance does not wait for the lost records
		t.Fatal(err)
	}
	if n := len(readAllTail2(t, s)); n != len(got)-5 {
		t.Fatalf("tail read %d, want %d", n, len(got)-5)
	}
}
