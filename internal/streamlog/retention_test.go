package streamlog

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is an injectable clock for retention tests.
type fakeClock struct{ ms atomic.Int64 }

func (c *fakeClock) now() time.Time { return time.UnixMilli(c.ms.Load()) }

func openClock(t *testing.T, dir string, o Options, c *fakeClock) *Log {
	t.Helper()
	l, err := open(dir, o, testLogger(t), c.now)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestStreamlogOffsetForTime(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, dir, Options{SegmentBytes: 4096})
	rng := rand.New(rand.NewPCG(1, 2))
	type bt struct{ base, maxTs int64 }
	var all []bt
	for i := 0; i < 300; i++ {
		ts := int64(i*10) + rng.Int64N(40) - 20 // mostly increasing, some out of order
		r := mustAppend(t, l, valueBatch(1+rng.IntN(3), 60, ts))
		all = append(all, bt{r.BaseOffset, ts})
	}
	want := func(ts int64) int64 {
		for _, b := range all {
			if b.maxTs >= ts {
				return b.base
			}
		}
		return l.NextOffset()
	}
	check := func(l *Log) {
		for ts := int64(-50); ts < 3100; ts += 7 {
			if got := l.OffsetForTime(ts); got != want(ts) {
				t.Fatalf("OffsetForTime(%d) = %d, want %d", ts, got, want(ts))
			}
		}
	}
	check(l)
	l.Close()
	l = openTest(t, dir, Options{SegmentBytes: 4096})
	defer l.Close()
	check(l)
}

// segmentBases lists the segment files of dir.
func segmentBases(t *testing.T, dir string) []int64 {
	t.Helper()
	b, err := listSegments(dir)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestStreamlogRetentionMaxBytes(t *testing.T) {
	dir := t.TempDir()
	o := Options{SegmentBytes: 4096}
	l := openTest(t, dir, o)
	for i := 0; i < 100; i++ {
		mustAppend(t, l, valueBatch(1, 400, int64(i)))
	}
	segs := len(segmentBases(t, dir))
	o.MaxBytes = 20_000
	l.SetOptions(o)
	l.runMaintenance()
	v := l.view.Load()
	total := v.active.size
	for _, si := range v.sealed {
		total += si.size
	}
	if total < o.MaxBytes || len(v.sealed) > 0 && total-v.sealed[0].size >= o.MaxBytes {
		t.Fatalf("%d bytes kept, limit %d", total, o.MaxBytes)
	}
	start := l.StartOffset()
	if start == 0 || len(segmentBases(t, dir)) >= segs {
		t.Fatalf("start %d, %d segments of %d", start, len(segmentBases(t, dir)), segs)
	}
	if _, err := l.Read(start-1, 100); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("read below start: %v", err)
	}
	if hs := readAll(t, l, start, 1<<20); len(hs) != int(l.NextOffset()-start) || hs[0].BaseOffset != start {
		t.Fatalf("read from start: %d batches", len(hs))
	}
	l.Close()
	l = openTest(t, dir, o)
	defer l.Close()
	if l.StartOffset() != start || l.NextOffset() != 100 {
		t.Fatalf("reopened: start %d next %d", l.StartOffset(), l.NextOffset())
	}
}

func TestStreamlogRetentionMaxAge(t *testing.T) {
	dir := t.TempDir()
	clock := &fakeClock{}
	clock.ms.Store(100_000)
	o := Options{SegmentBytes: 4096, MaxAge: 30 * time.Second}
	l := openClock(t, dir, o, clock)
	defer l.Close()
	for i := 0; i < 100; i++ {
		mustAppend(t, l, valueBatch(1, 400, int64(i)*1000)) // ts 0 .. 99 s
	}
	l.runMaintenance()
	// Segments whose newest batch is older than 70 s are gone; the first
	// kept one holds a batch of 70 s or later.
	start := l.StartOffset()
	if start == 0 {
		t.Fatal("nothing deleted")
	}
	first := l.view.Load()
	newest := int64(-1)
	first.each(func(si *segInfo) bool { newest = si.maxTs; return false })
	if newest < 70_000 {
		t.Fatalf("kept a segment with newest %d", newest)
	}
	if start > 70 {
		t.Fatalf("start %d: deleted a segment with records of 70 s or later", start)
	}
	// Everything expired, the active segment too: it is rolled and goes.
	clock.ms.Store(1_000_000)
	l.runMaintenance()
	if l.StartOffset() != 100 || l.NextOffset() != 100 {
		t.Fatalf("start %d next %d after all expired", l.StartOffset(), l.NextOffset())
	}
	if r := mustAppend(t, l, valueBatch(1, 10, 1_000_000)); r.BaseOffset != 100 {
		t.Fatalf("append after expiry at %d", r.BaseOffset)
	}
	if hs := readAll(t, l, 100, 1000); len(hs) != 1 {
		t.Fatalf("%d batches", len(hs))
	}
}

func TestStreamlogChunkSurvivesRetention(t *testing.T) {
	dir := t.TempDir()
	o := Options{SegmentBytes: 4096}
	l := openTest(t, dir, o)
	defer l.Close()
	for i := 0; i < 30; i++ {
		mustAppend(t, l, valueBatch(1, 400, int64(i)))
	}
	c, err := l.Read(0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := c.Bytes()
	o.MaxBytes = 1
	l.SetOptions(o)
	l.runMaintenance()
	if l.StartOffset() == 0 {
		t.Fatal("segment 0 not deleted")
	}
	seg0 := filepath.Join(dir, "00000000000000000000.seg")
	if _, err := os.Stat(seg0); err != nil {
		t.Fatalf("segment 0 removed while a chunk reads it: %v", err)
	}
	var buf bytes.Buffer
	if _, err := c.WriteTo(&buf); err != nil || !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("chunk after deletion: %v", err)
	}
	c.Close()
	if _, err := os.Stat(seg0); !os.IsNotExist(err) {
		t.Fatalf("segment 0 still there after the chunk closed: %v", err)
	}
	if _, err := c.Bytes(); err == nil {
		t.Fatal("closed chunk read")
	}
}

func TestStreamlogDelete(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "s")
	l := openTest(t, dir, Options{})
	mustAppend(t, l, valueBatch(1, 10, 1))
	c, _ := l.Read(0, 100)
	if err := l.Delete(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("directory left: %v", err)
	}
	if b, err := c.Bytes(); err != nil || len(b) == 0 {
		t.Fatalf("open chunk after Delete: %v", err)
	}
	c.Close()
	if _, err := appendSync(t, l, valueBatch(1, 10, 1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after delete: %v", err)
	}
	if _, err := l.Read(0, 100); !errors.Is(err, ErrClosed) {
		t.Fatalf("read after delete: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestStreamlogOrphansRemoved(t *testing.T) {
	dir := t.TempDir()
	o := Options{SegmentBytes: 4096}
	l := openTest(t, dir, o)
	for i := 0; i < 30; i++ {
		mustAppend(t, l, valueBatch(1, 400, int64(i)))
	}
	o.MaxBytes = 1
	l.SetOptions(o)
	l.runMaintenance()
	l.Close()
	// A crash between removing a segment and its side files.
	for _, suffix := range []string{idxSuffix, txnSuffix, snapSuffix} {
		os.WriteFile(segName(dir, 0, suffix), []byte("x"), 0o644)
	}
	l = openTest(t, dir, o)
	defer l.Close()
	for _, suffix := range []string{idxSuffix, txnSuffix, snapSuffix} {
		if _, err := os.Stat(segName(dir, 0, suffix)); !os.IsNotExist(err) {
			t.Fatalf("orphan %s kept: %v", suffix, err)
		}
	}
	if l.StartOffset() == 0 {
		t.Fatal("retention did not run")
	}
}
