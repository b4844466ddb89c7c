package streamlog

import (
	"errors"
	"os"
	"sync"
	"testing"
)

// breakActiveFile swaps the idle writer's active segment file for a
// read-only one, so that its next write fails while reads keep working.
func breakActiveFile(t *testing.T, l *Log) {
	t.Helper()
	seg := l.w.seg
	ro, err := os.Open(seg.path)
	if err != nil {
		t.Fatal(err)
	}
	seg.mu.Lock()
	old := seg.f
	seg.f = ro
	seg.mu.Unlock()
	old.Close()
}

// writtenOut is what AppendWritten's callbacks saw, in the order they ran.
type writtenOut struct {
	mu     sync.Mutex
	events []string
	wres   AppendResult
	dres   AppendResult
	err    error
	// At written: the published next offset, the syncs so far and whether
	// a read at the append's offset returned anything.
	nextAtWritten  int64
	syncsAtWritten int64
	readAtWritten  int
	nextAtDone     int64
	done           chan struct{}
}

// appendWritten appends b with AppendWritten and waits for done.
func appendWritten(t *testing.T, l *Log, b []byte) *writtenOut {
	t.Helper()
	o := &writtenOut{done: make(chan struct{})}
	l.AppendWritten(b, func(r AppendResult) {
		o.mu.Lock()
		defer o.mu.Unlock()
		o.events = append(o.events, "written")
		o.wres = r
		o.nextAtWritten, o.syncsAtWritten = l.NextOffset(), l.syncs.Load()
		c, err := l.Read(r.BaseOffset, 1<<20)
		if err != nil {
			t.Errorf("read at written: %v", err)
			return
		}
		bs, _ := c.Bytes()
		c.Close()
		o.readAtWritten = len(bs)
	}, func(r AppendResult, err error) {
		o.mu.Lock()
		defer o.mu.Unlock()
		o.events = append(o.events, "done")
		o.dres, o.err, o.nextAtDone = r, err, l.NextOffset()
		close(o.done)
	})
	<-o.done
	o.mu.Lock()
	defer o.mu.Unlock()
	return o
}

// TestStreamlogAppendWritten: written runs before the sync with done's
// offsets; readers see nothing of the append until the sync, after which
// done runs.
func TestStreamlogAppendWritten(t *testing.T) {
	l := openTest(t, t.TempDir(), Options{})
	defer l.Close()
	mustAppend(t, l, valueBatch(2, 10, 1))
	syncs := l.syncs.Load()
	o := appendWritten(t, l, valueBatch(3, 10, 1))
	if o.err != nil || len(o.events) != 2 || o.events[0] != "written" {
		t.Fatalf("events %v, err %v", o.events, o.err)
	}
	if want := (AppendResult{BaseOffset: 2, LastOffset: 4}); o.wres != want || o.dres != want {
		t.Fatalf("written %+v, done %+v, want %+v", o.wres, o.dres, want)
	}
	if o.nextAtWritten != 2 || o.syncsAtWritten != syncs || o.readAtWritten != 0 {
		t.Fatalf("at written: next %d (want 2), syncs %d (want %d), read %d bytes (want 0)", o.nextAtWritten, o.syncsAtWritten, syncs, o.readAtWritten)
	}
	if o.nextAtDone != 5 || l.syncs.Load() != syncs+1 {
		t.Fatalf("at done: next %d, syncs %d", o.nextAtDone, l.syncs.Load()-syncs)
	}
	if hs := readAll(t, l, 0, 1<<20); len(hs) != 2 {
		t.Fatalf("%d batches", len(hs))
	}
}

// TestStreamlogAppendWrittenConcurrent: many appenders, with written
// (acks=1) or without (acks=all), mixed or all with written (the writer then
// never waits for a sync), and with rolls: every written runs before its
// done, both in offset order; at written the append is not readable (when
// no roll, which syncs, came in its round), at done it is; a reader sees
// contiguous batches throughout.
func TestStreamlogAppendWrittenConcurrent(t *testing.T) {
	for _, c := range []struct {
		name      string
		allAcks1  bool
		segBytes  int64
		checkSeen bool
	}{
		{"mixed", false, 0, true},
		{"acks1", true, 0, true},
		{"acks1-rolls", true, 16 << 10, false},
		{"mixed-rolls", false, 16 << 10, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			testAppendWrittenConcurrent(t, c.allAcks1, c.segBytes, c.checkSeen)
		})
	}
}

func testAppendWrittenConcurrent(t *testing.T, allAcks1 bool, segBytes int64, checkSeen bool) {
	l := openTest(t, t.TempDir(), Options{SegmentBytes: segBytes})
	defer l.Close()
	const writers, per = 6, 40
	var mu sync.Mutex
	var writtenOrder, doneOrder []int64
	var wg sync.WaitGroup
	stopReader := readContiguously(t, l)
	for g := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range per {
				done := make(chan struct{})
				var wrote bool // written and done run on the writer goroutine, in turn
				var written func(AppendResult)
				if allAcks1 || g%2 == 0 {
					written = func(r AppendResult) {
						wrote = true
						if next := l.NextOffset(); checkSeen && next > r.BaseOffset {
							t.Errorf("append at %d readable at written (next %d)", r.BaseOffset, next)
						}
						mu.Lock()
						writtenOrder = append(writtenOrder, r.BaseOffset)
						mu.Unlock()
					}
				}
				l.AppendWritten(valueBatch(2, 50, 1), written, func(r AppendResult, err error) {
					if err != nil {
						t.Error(err)
					}
					if written != nil && !wrote {
						t.Errorf("done at %d before written", r.BaseOffset)
					}
					if next := l.NextOffset(); next <= r.LastOffset {
						t.Errorf("append at %d not readable at done (next %d)", r.BaseOffset, next)
					}
					mu.Lock()
					doneOrder = append(doneOrder, r.BaseOffset)
					mu.Unlock()
					close(done)
				})
				<-done
			}
		}()
	}
	wg.Wait()
	stopReader()
	wantWritten := writers / 2 * per
	if allAcks1 {
		wantWritten = writers * per
	}
	if len(doneOrder) != writers*per || len(writtenOrder) != wantWritten {
		t.Fatalf("%d dones, %d writtens", len(doneOrder), len(writtenOrder))
	}
	for i, off := range doneOrder {
		if off != int64(2*i) {
			t.Fatalf("done %d at offset %d: out of order", i, off)
		}
	}
	for i := 1; i < len(writtenOrder); i++ {
		if writtenOrder[i] <= writtenOrder[i-1] {
			t.Fatalf("written out of order: %v", writtenOrder[i-1:i+1])
		}
	}
	if hs := readAll(t, l, 0, 1<<20); len(hs) != writers*per {
		t.Fatalf("%d batches in the log", len(hs))
	}
}

// TestStreamlogAppendWrittenRefused: a refused batch, a sequence gap and a
// failed write get only done with the error; a duplicate is told its
// original offsets at written.
func TestStreamlogAppendWrittenRefused(t *testing.T) {
	l := openTest(t, t.TempDir(), Options{})
	first := mustAppend(t, l, idemBatch(7, 0, 0, 3, false))
	o := appendWritten(t, l, idemBatch(7, 0, 0, 3, false))
	if want := (AppendResult{BaseOffset: 0, LastOffset: 2, Duplicate: true}); o.err != nil || o.wres != want || o.dres != want || first.BaseOffset != 0 {
		t.Fatalf("duplicate: written %+v, done %+v, %v", o.wres, o.dres, o.err)
	}
	corrupt := valueBatch(1, 10, 1)
	corrupt[len(corrupt)-1] ^= 0xff
	for _, c := range []struct {
		name  string
		batch []byte
		want  error
	}{
		{"corrupt", corrupt, ErrCorrupt},
		{"sequence gap", idemBatch(7, 0, 9, 1, false), ErrOutOfOrderSequence},
		{"old epoch", idemBatch(7, -1, 0, 1, false), ErrInvalidProducerEpoch},
	} {
		o := appendWritten(t, l, c.batch)
		if len(o.events) != 1 || !errors.Is(o.err, c.want) {
			t.Fatalf("%s: events %v, err %v, want %v", c.name, o.events, o.err, c.want)
		}
	}
	breakActiveFile(t, l)
	for _, name := range []string{"failed write", "sticky error"} {
		o := appendWritten(t, l, valueBatch(1, 10, 1))
		if len(o.events) != 1 || o.events[0] != "done" || o.err == nil {
			t.Fatalf("%s: events %v, err %v", name, o.events, o.err)
		}
	}
	if l.NextOffset() != 3 {
		t.Fatalf("next %d after the failed write", l.NextOffset())
	}
	if err := l.Close(); err == nil {
		t.Fatal("Close hid the sticky error")
	}
}

// TestStreamlogAppendWrittenSyncFails: when the sync after a written round
// fails, written has run (acks=1 was answered: the records are in the page
// cache) but done gets the error, readers never see the records, and the
// error sticks (the next append is not told it was written).
func TestStreamlogAppendWrittenSyncFails(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, dir, Options{})
	mustAppend(t, l, valueBatch(1, 10, 1))
	injected := errors.New("injected sync failure")
	l.syncFile = func(*os.File) error { return injected } // the writer is idle; Append's lock orders this before its next sync
	o := appendWritten(t, l, valueBatch(2, 10, 1))
	if len(o.events) != 2 || o.events[0] != "written" || !errors.Is(o.err, injected) || o.wres.BaseOffset != 1 {
		t.Fatalf("events %v, written %+v, err %v", o.events, o.wres, o.err)
	}
	if _, err := appendSync(t, l, valueBatch(1, 10, 1)); !errors.Is(err, injected) {
		t.Fatalf("acks=all append after the failure: %v", err)
	}
	if o := appendWritten(t, l, valueBatch(1, 10, 1)); len(o.events) != 1 || !errors.Is(o.err, injected) {
		t.Fatalf("acks=1 append after the failure: events %v, err %v", o.events, o.err)
	}
	if l.NextOffset() != 1 || len(readAll(t, l, 0, 1<<20)) != 1 {
		t.Fatalf("readers see up to %d after the failed sync", l.NextOffset())
	}
	if err := l.Close(); !errors.Is(err, injected) {
		t.Fatalf("Close: %v", err)
	}
	// The page cache still held the written batch: the reopened log has it,
	// as a broker restarted after kill -9 would.
	l = openTest(t, dir, Options{})
	defer l.Close()
	if l.NextOffset() != 3 {
		t.Fatalf("after reopen the log ends at %d, want 3", l.NextOffset())
	}
}
