package store

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// Segment indexes (index.go): many queues written interleaved, as a fanout
// writes them, are read back through the index, whole and in order, in the
// life that wrote them and after clean and crashed restarts, with index
// files missing or damaged.

const (
	idxQueues = 400 // × ~60 bytes a record: a queue's records are ~24 KiB apart
	idxPer    = 60
)

func idxQueue(i int) string { return fmt.Sprintf("q%03d", i) }

// fillInterleaved appends idxPer tail records to each of idxQueues queues,
// one record of every queue per ID, plus a dense queue "big" in between.
func fillInterleaved(t *testing.T, s *File) {
	t.Helper()
	for id := range uint64(idxPer) {
		recs := make([]MessageRecord, 0, idxQueues+1)
		for i := range idxQueues {
			recs = append(recs, tailMsg("/", idxQueue(i), id))
		}
		mustAppend(t, s, recs...)
		var big []MessageRecord
		for k := range uint64(20) {
			big = append(big, tailMsg("/", "big", id*20+k))
		}
		mustAppend(t, s, big...)
	}
}

// checkInterleaved reads every queue's tail and checks it is the IDs from
// `from` on (big's too), in order, with their data (readAllTail).
func checkInterleaved(t *testing.T, s *File, from uint64) {
	t.Helper()
	for i := range idxQueues {
		if got := tailIDs(readAllTail(t, s, "/", idxQueue(i))); !slices.Equal(got, seq(from, idxPer)) {
			t.Fatalf("%s: tail %v, want %d..%d", idxQueue(i), got, from, idxPer-1)
		}
	}
	if got := tailIDs(readAllTail(t, s, "/", "big")); !slices.Equal(got, seq(from, idxPer*20)) {
		t.Fatalf("big: tail of %d records, want %d", len(got), idxPer*20-from)
	}
}

func idxFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.idx"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestStoreIndexInterleaved(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentSize: 256 << 10}
	s := openTest(t, dir, opts)
	fillInterleaved(t, s)
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	checkInterleaved(t, s, 0)
	if s.indexedRuns.Load() == 0 {
		t.Fatal("no run was read through an index")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Close waits for the indexer: every sealed segment has its file (the
	// head keeps its index in memory).
	if segs, idx := s.Stats().Segments, len(idxFiles(t, dir)); idx == 0 || idx < segs-1 {
		t.Fatalf("%d index files for %d segments", idx, segs)
	}
}

// After a restart the index files serve the recovery's reads and the tails';
// a damaged or missing one only means scanning, and the indexer writes a
// missing one again.
func TestStoreIndexRestart(t *testing.T) {
	for _, mode := range []string{"clean", "crash", "damaged"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			opts := Options{SegmentSize: 256 << 10}
			s := openTest(t, dir, opts)
			fillInterleaved(t, s)
			var r *File
			switch mode {
			case "crash":
				if err := s.Sync(); err != nil {
					t.Fatal(err)
				}
				s.indexWait() // the copy would race with its renames
				r = crashCopy(t, dir, opts)
			case "damaged":
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				files := idxFiles(t, dir)
				if len(files) < 3 {
					t.Fatalf("index files %v", files)
				}
				os.Remove(files[0])
				b, err := os.ReadFile(files[1])
				if err != nil {
					t.Fatal(err)
				}
				b[len(b)/2] ^= 0xff // a section's checksum fails
				os.WriteFile(files[1], b, 0o644)
				os.WriteFile(files[2], b[:30], 0o644) // the directory's fails
				r = openTest(t, dir, opts)
			default:
				r = reopen(t, s, dir, opts)
			}
			rs := recoverTail(t, r, 3)
			checkRecovered(t, rs)
			for i := range idxQueues {
				if got := ids(rs, "/", idxQueue(i)); !slices.Equal(got, seq(0, idxPer)) {
					t.Fatalf("%s recovered %v", idxQueue(i), got)
				}
			}
			checkInterleaved(t, r, 3)
			if r.indexedRuns.Load() == 0 {
				t.Fatal("no run was read through an index")
			}
			if mode == "damaged" {
				if err := r.Close(); err != nil {
					t.Fatal(err)
				}
				if _, err := os.Stat(idxFiles(t, dir)[0]); err != nil {
					t.Fatalf("missing index not written again: %v", err)
				}
			}
		})
	}
}

// Deleting the queues and acking everything removes segments and their
// index files; a stray index file goes at Open.
func TestStoreIndexRemoved(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentSize: 256 << 10}
	s := openTest(t, dir, opts)
	fillInterleaved(t, s)
	checkInterleaved(t, s, 0)
	for i := range idxQueues {
		if err := s.DeleteQueue("/", idxQueue(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteQueue("/", "big"); err != nil {
		t.Fatal(err)
	}
	if err := s.settle(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if files := idxFiles(t, dir); len(files) != 0 {
		t.Fatalf("index files of removed segments: %v", files)
	}
	stray := filepath.Join(dir, "99999999.idx")
	os.WriteFile(stray, []byte("x"), 0o644)
	openTest(t, dir, opts)
	if _, err := os.Stat(stray); !os.IsNotExist(err) {
		t.Fatalf("stray index file kept: %v", err)
	}
}
