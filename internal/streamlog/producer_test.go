package streamlog

import (
	"errors"
	"slices"
	"testing"
)

func TestStreamlogIdempotentProducer(t *testing.T) {
	dir := t.TempDir()
	o := Options{SegmentBytes: 4096}
	l := openTest(t, dir, o)
	r0 := mustAppend(t, l, idemBatch(7, 0, 0, 3, false))
	r1 := mustAppend(t, l, idemBatch(7, 0, 3, 2, false))
	if r0.BaseOffset != 0 || r1.BaseOffset != 3 || r1.LastOffset != 4 {
		t.Fatalf("%+v %+v", r0, r1)
	}
	check := func(l *Log) {
		t.Helper()
		if r, err := appendSync(t, l, idemBatch(7, 0, 0, 3, false)); err != nil || r != (AppendResult{0, 2, true}) {
			t.Fatalf("duplicate: %+v %v", r, err)
		}
		if _, err := appendSync(t, l, idemBatch(7, 0, 9, 1, false)); !errors.Is(err, ErrOutOfOrderSequence) {
			t.Fatalf("gap: %v", err)
		}
	}
	check(l)
	next := l.NextOffset()
	if next != 5 {
		t.Fatalf("duplicates written: next %d", next)
	}
	l.Close()
	l = openTest(t, dir, o) // state rebuilt from the active segment
	check(l)
	// Other producers and rolls; then a reopen rebuilds from the snapshot.
	for i := 0; i < 100; i++ {
		mustAppend(t, l, idemBatch(8, 0, int32(i), 1, false))
		mustAppend(t, l, valueBatch(1, 100, 0))
	}
	l.Close()
	l = openTest(t, dir, o)
	defer l.Close()
	check(l)
	if r, err := appendSync(t, l, idemBatch(8, 0, 99, 1, false)); err != nil || !r.Duplicate {
		t.Fatalf("duplicate after roll and reopen: %+v %v", r, err)
	}
	if r := mustAppend(t, l, idemBatch(8, 0, 100, 1, false)); r.Duplicate {
		t.Fatal("next sequence taken for a duplicate")
	}
	// Only the last five batches are remembered.
	if _, err := appendSync(t, l, idemBatch(8, 0, 90, 1, false)); !errors.Is(err, ErrOutOfOrderSequence) {
		t.Fatalf("old duplicate: %v", err)
	}
	// A new epoch starts at sequence 0 and fences the old one.
	if _, err := appendSync(t, l, idemBatch(8, 1, 5, 1, false)); !errors.Is(err, ErrOutOfOrderSequence) {
		t.Fatalf("new epoch at 5: %v", err)
	}
	mustAppend(t, l, idemBatch(8, 1, 0, 1, false))
	if _, err := appendSync(t, l, idemBatch(8, 0, 101, 1, false)); !errors.Is(err, ErrInvalidProducerEpoch) {
		t.Fatalf("old epoch: %v", err)
	}
	// An unknown producer may start anywhere (its state may have expired).
	if _, err := appendSync(t, l, idemBatch(99, 0, 42, 1, false)); err != nil {
		t.Fatal(err)
	}
	// An idempotent batch must be alone in its append.
	if _, err := appendSync(t, l, append(idemBatch(9, 0, 0, 1, false), idemBatch(9, 0, 1, 1, false)...)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("two idempotent batches: %v", err)
	}
}

func TestStreamlogTransactions(t *testing.T) {
	dir := t.TempDir()
	o := Options{SegmentBytes: 4096}
	l := openTest(t, dir, o)
	mustAppend(t, l, idemBatch(1, 0, 0, 2, true)) // 0-1, txn of 1 opens
	mustAppend(t, l, idemBatch(2, 0, 0, 2, true)) // 2-3, txn of 2 opens
	mustAppend(t, l, valueBatch(1, 10, 0))        // 4
	if lso := l.LastStableOffset(); lso != 0 {
		t.Fatalf("lso %d, want 0", lso)
	}
	mustAppend(t, l, controlBatch(1, 0, true)) // 5: commit 1
	if lso := l.LastStableOffset(); lso != 2 {
		t.Fatalf("lso %d after commit, want 2", lso)
	}
	// Many batches so the abort lands segments later, then a reopen
	// must still know the open transaction (from the snapshot).
	for i := 0; i < 60; i++ {
		mustAppend(t, l, valueBatch(1, 200, 0))
	}
	l.Close()
	l = openTest(t, dir, o)
	if lso := l.LastStableOffset(); lso != 2 {
		t.Fatalf("lso %d after reopen, want 2", lso)
	}
	abortAt := mustAppend(t, l, controlBatch(2, 0, false)).BaseOffset
	if lso, next := l.LastStableOffset(), l.NextOffset(); lso != next {
		t.Fatalf("lso %d, next %d: nothing open", lso, next)
	}
	want := []AbortedTxn{{ProducerID: 2, FirstOffset: 2, LastOffset: abortAt}}
	check := func(l *Log) {
		t.Helper()
		if got := l.AbortedTxns(0, l.NextOffset()); !slices.Equal(got, want) {
			t.Fatalf("aborted %+v, want %+v", got, want)
		}
		if got := l.AbortedTxns(abortAt+1, l.NextOffset()); !slices.Equal(got, want[1:]) {
			t.Fatalf("aborted after the first marker: %+v", got)
		}
		if got := l.AbortedTxns(0, 2); len(got) != 0 {
			t.Fatalf("aborted before the txn: %+v", got)
		}
	}
	check(l)
	// A second transaction of 2, aborted in the active segment.
	first := mustAppend(t, l, idemBatch(2, 0, 2, 1, true)).BaseOffset
	second := mustAppend(t, l, controlBatch(2, 0, false)).BaseOffset
	want = append(want, AbortedTxn{2, first, second})
	check(l)
	l.Close()
	l = openTest(t, dir, o)
	defer l.Close()
	check(l)
	// A marker from a fenced epoch is refused.
	mustAppend(t, l, idemBatch(2, 1, 0, 1, true))
	if _, err := appendSync(t, l, controlBatch(2, 0, false)); !errors.Is(err, ErrInvalidProducerEpoch) {
		t.Fatalf("old epoch marker: %v", err)
	}
	open2 := l.NextOffset() - 1
	// Retention drops aborted transactions with their segments.
	for i := 0; i < 60; i++ {
		mustAppend(t, l, valueBatch(1, 200, 0))
	}
	o.MaxBytes = 1
	l.SetOptions(o)
	l.runMaintenance()
	if l.StartOffset() <= second {
		t.Fatalf("start %d: retention kept the markers' segments", l.StartOffset())
	}
	if got := l.AbortedTxns(0, l.NextOffset()); len(got) != 0 {
		t.Fatalf("after retention: %+v", got)
	}
	if lso := l.LastStableOffset(); lso != max(open2, l.StartOffset()) {
		t.Fatalf("lso %d, want the open transaction's %d or the start %d", lso, open2, l.StartOffset())
	}
}

func TestStreamlogReadBelowAndWaitStable(t *testing.T) {
	l := openTest(t, t.TempDir(), Options{SegmentBytes: 8192})
	defer l.Close()
	for i := 0; i < 40; i++ {
		mustAppend(t, l, valueBatch(2, 100, int64(i)))
	}
	first := mustAppend(t, l, idemBatch(5, 0, 0, 1, true)).BaseOffset // txn opens: lso stops here
	for i := 0; i < 40; i++ {
		mustAppend(t, l, valueBatch(1, 100, 0))
	}
	if l.LastStableOffset() != first {
		t.Fatalf("lso %d, want %d", l.LastStableOffset(), first)
	}
	// Reads below the stable offset never include a batch at or past it,
	// wherever they start and whatever their size.
	for off := l.StartOffset(); off < first; off++ {
		for _, max := range []int{1, 500, 1 << 20} {
			c, err := l.ReadBelow(off, max, first)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := c.Bytes()
			c.Close()
			if len(b) == 0 {
				t.Fatalf("ReadBelow(%d, %d) empty", off, max)
			}
			for len(b) > 0 {
				h, err := checkBatch(b, len(b))
				if err != nil || h.BaseOffset >= first {
					t.Fatalf("ReadBelow(%d, %d): batch %d, %v", off, max, h.BaseOffset, err)
				}
				b = b[h.Size():]
			}
		}
	}
	if c, err := l.ReadBelow(first, 1<<20, first); err != nil || c.Len() != 0 {
		t.Fatalf("ReadBelow at the stable offset: %v %v", c.Len(), err)
	}
	if c, err := l.ReadBelow(first-1, 1<<20, first-1); err != nil || c.Len() != 0 {
		t.Fatalf("ReadBelow inside a batch at the limit: %v %v", c.Len(), err)
	}
	// Every chunk was closed: only the view holds the segments.
	l.view.Load().each(func(si *segInfo) bool {
		if n := si.seg.refs.Load(); n != 1 {
			t.Errorf("segment %d has %d references", si.seg.base, n)
		}
		return true
	})
	ch := l.WaitStable(first)
	select {
	case <-ch:
		t.Fatal("stable before the commit")
	default:
	}
	<-l.WaitStable(first - 1)
	mustAppend(t, l, valueBatch(1, 100, 0)) // not the commit: still waiting
	select {
	case <-ch:
		t.Fatal("woken by an unrelated append")
	default:
	}
	mustAppend(t, l, controlBatch(5, 0, true))
	<-ch
	if l.LastStableOffset() != l.NextOffset() {
		t.Fatalf("lso %d next %d", l.LastStableOffset(), l.NextOffset())
	}
	later := l.WaitStable(l.NextOffset() + 5)
	l.Close()
	<-later
}
