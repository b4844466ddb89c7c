package streamlog

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/warren-mq/warren/internal/recordbatch"
)

// keyedRec is a record as a test model sees it.
type keyedRec struct {
	off       int64
	key       string
	value     string
	tombstone bool
	ts        int64
}

// logRecords reads every record of the log (batches that do not decode
// are counted in opaque).
func logRecords(t *testing.T, l *Log) (recs []keyedRec, opaque int) {
	t.Helper()
	for _, h := range readAllBatches(t, l) {
		_, rs, err := recordbatch.Decode(h.b, 1<<30)
		if err != nil {
			opaque++
			continue
		}
		for _, r := range rs {
			recs = append(recs, keyedRec{off: h.h.BaseOffset + int64(r.OffsetDelta), key: string(r.Key), value: string(r.Value),
				tombstone: r.Value == nil, ts: h.h.MaxTimestamp})
		}
	}
	return recs, opaque
}

type rawBatch struct {
	h recordbatch.BatchHeader
	b []byte
}

func readAllBatches(t *testing.T, l *Log) []rawBatch {
	t.Helper()
	var out []rawBatch
	off := l.StartOffset()
	for off < l.NextOffset() {
		c, err := l.Read(off, 1<<20)
		if err != nil {
			t.Fatalf("read %d: %v", off, err)
		}
		b, _ := c.Bytes()
		c.Close()
		if len(b) == 0 {
			break
		}
		for len(b) > 0 {
			h, err := checkBatch(b, len(b))
			if err != nil {
				t.Fatalf("batch at %d: %v", off, err)
			}
			if h.BaseOffset < off-int64(h.LastOffsetDelta) {
				t.Fatalf("batch %d read for %d", h.BaseOffset, off)
			}
			out = append(out, rawBatch{h, b[:h.Size()]})
			off = h.LastOffset() + 1
			b = b[h.Size():]
		}
	}
	return out
}

func TestStreamlogCompaction(t *testing.T) {
	dir := t.TempDir()
	clock := &fakeClock{}
	now := int64(10 * time.Hour / time.Millisecond)
	clock.ms.Store(now)
	o := Options{SegmentBytes: 4096, DeleteRetention: time.Hour}
	l := openClock(t, dir, o, clock)
	rng := rand.New(rand.NewPCG(3, 4))
	var model []keyedRec
	opaqueBatches := 0
	firstOpaque := int64(1 << 62)
	codecAt := map[int64]recordbatch.Compression{} // batches stay in their codec
	for i := 0; i < 300; i++ {
		n := 1 + rng.IntN(4)
		ts := now - int64(2*time.Hour/time.Millisecond) + int64(i)*20_000 // the last ~100 batches within DeleteRetention
		var recs []testRec
		for j := 0; j < n; j++ {
			k := fmt.Sprintf("k%d", rng.IntN(15))
			v := []byte(fmt.Sprintf("v%d-%d", i, j))
			if rng.IntN(8) == 0 {
				v = nil
			}
			recs = append(recs, testRec{key: []byte(k), value: v})
		}
		o := noProducer()
		o.baseTs = ts
		b := buildBatch(recs, o)
		switch i % 10 {
		case 1:
			b = compressBatch(b, recordbatch.Snappy)
		case 3:
			b = compressBatch(b, recordbatch.Gzip)
		case 5:
			b = compressBatch(b, recordbatch.LZ4)
		case 6:
			b = compressBatch(b, recordbatch.Zstd)
		case 7:
			b = opaqueBatch(b) // unknown codec: kept whole
			opaqueBatches++
		case 8:
			b = xerialBatch(b)
		}
		r := mustAppend(t, l, b)
		h, _ := recordbatch.PeekHeader(b)
		codecAt[r.BaseOffset] = h.Compression()
		if i%10 == 7 {
			firstOpaque = min(firstOpaque, r.BaseOffset)
			continue
		}
		for j, rec := range recs {
			model = append(model, keyedRec{off: r.BaseOffset + int64(j), key: string(rec.key), value: string(rec.value), tombstone: rec.value == nil, ts: ts})
		}
	}
	before, _ := l.Read(0, 1<<20)
	beforeBytes, _ := before.Bytes()
	sealedEnd := l.view.Load().active.seg.base
	next := l.NextOffset()
	compactNow(l, &o)
	// Expected: in the sealed part a record stays unless a later sealed
	// record has its key, or it is a tombstone older than an hour.
	cutoff := now - int64(time.Hour/time.Millisecond)
	later := map[string]bool{}
	keep := map[int64]bool{}
	for i := len(model) - 1; i >= 0; i-- {
		m := model[i]
		if m.off >= sealedEnd {
			keep[m.off] = true
			continue
		}
		if !later[m.key] && (!m.tombstone || m.ts >= cutoff || m.off > firstOpaque) {
			keep[m.off] = true
		}
		later[m.key] = true
	}
	check := func(l *Log) {
		t.Helper()
		got, opaque := logRecords(t, l)
		if opaque != opaqueBatches {
			t.Fatalf("%d opaque batches, want %d kept whole", opaque, opaqueBatches)
		}
		var want []keyedRec
		for _, m := range model {
			if keep[m.off] {
				want = append(want, m)
			}
		}
		if len(got) != len(want) {
			t.Fatalf("%d records after compaction, want %d (of %d)", len(got), len(want), len(model))
		}
		for i := range got {
			g, w := got[i], want[i]
			if g.off != w.off || g.key != w.key || g.value != w.value || g.tombstone != w.tombstone {
				t.Fatalf("record %d: got %+v, want %+v", i, g, w)
			}
		}
		if l.NextOffset() != next {
			t.Fatalf("next %d, want %d", l.NextOffset(), next)
		}
		for _, b := range readAllBatches(t, l) {
			if c, ok := codecAt[b.h.BaseOffset]; !ok || c != b.h.Compression() {
				t.Fatalf("batch %d: codec %v, appended as %v (%v)", b.h.BaseOffset, b.h.Compression(), c, ok)
			}
		}
		// Every offset is still readable: it gives the batch holding it or
		// the next one.
		for off := l.StartOffset(); off < l.NextOffset(); off += 7 {
			c, err := l.Read(off, 1)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := c.Bytes()
			c.Close()
			if len(b) > 0 {
				if h, _ := recordbatch.PeekHeader(b); h.LastOffset() < off {
					t.Fatalf("read %d gave batch ending %d", off, h.LastOffset())
				}
			}
		}
		// OffsetForTime over the compacted log: the first remaining batch
		// whose maxTimestamp reaches ts.
		batches := readAllBatches(t, l)
		for ts := now - int64(3*time.Hour/time.Millisecond); ts <= now+1; ts += 7_000 {
			want := l.NextOffset()
			for _, b := range batches {
				if b.h.MaxTimestamp >= ts {
					want = b.h.BaseOffset
					break
				}
			}
			if got := l.OffsetForTime(ts); got != want {
				t.Fatalf("OffsetForTime(%d) = %d, want %d", ts, got, want)
			}
		}
	}
	if len(keep) == len(model) {
		t.Fatal("model keeps everything: the test writes too few duplicates")
	}
	check(l)
	// A chunk read before the pass still has the old bytes.
	var buf bytes.Buffer
	before.WriteTo(&buf)
	before.Close()
	if !bytes.Equal(buf.Bytes(), beforeBytes) {
		t.Fatal("chunk changed by compaction")
	}
	l.Close()
	l = openClock(t, dir, o, clock)
	defer l.Close()
	check(l)
	if r := mustAppend(t, l, valueBatch(1, 5, now)); r.BaseOffset != next {
		t.Fatalf("append after compaction at %d, want %d", r.BaseOffset, next)
	}
}

func TestStreamlogCompactionConcurrent(t *testing.T) {
	dir := t.TempDir()
	o := Options{SegmentBytes: 4096, Compact: true}
	l := openTest(t, dir, o)
	latest := map[string]string{}
	stop := make(chan struct{})
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for {
			select {
			case <-stop:
				return
			default:
			}
			off := l.StartOffset()
			for off < l.NextOffset() {
				c, err := l.Read(off, 8192)
				if err != nil {
					t.Error(err)
					return
				}
				b, err := c.Bytes()
				c.Close()
				if err != nil {
					t.Error(err)
					return
				}
				if len(b) == 0 {
					break
				}
				for len(b) > 0 {
					h, err := checkBatch(b, len(b))
					if err != nil || h.LastOffset() < off {
						t.Errorf("read %d: %+v %v", off, h, err)
						return
					}
					off = h.LastOffset() + 1
					b = b[h.Size():]
				}
			}
		}
	}()
	for i := 0; i < 400; i++ {
		k := fmt.Sprintf("k%d", i%20)
		v := fmt.Sprintf("v%d", i)
		latest[k] = v
		o := noProducer()
		mustAppend(t, l, buildBatch([]testRec{{key: []byte(k), value: []byte(v)}, {key: []byte("pad"), value: bytes.Repeat([]byte("p"), 100)}}, o))
	}
	close(stop)
	<-readerDone
	l.runMaintenance()
	got, _ := logRecords(t, l)
	last := map[string]string{}
	for _, r := range got {
		last[r.key] = r.value
	}
	for k, v := range latest {
		if last[k] != v {
			t.Fatalf("key %s: latest %q, log has %q", k, v, last[k])
		}
	}
	if len(got) >= 800 {
		t.Fatalf("%d records: nothing compacted", len(got))
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestStreamlogCompactionTombstones: a tombstone goes with its key's older
// values once it is DeleteRetention old, unless a batch compaction cannot
// read comes before it (which might hold an older value of its key).
func TestStreamlogCompactionTombstones(t *testing.T) {
	now := int64(10 * time.Hour / time.Millisecond)
	old := now - int64(2*time.Hour/time.Millisecond)
	for _, opaqueFirst := range []bool{false, true} {
		clock := &fakeClock{}
		clock.ms.Store(now)
		o := Options{SegmentBytes: 4096, DeleteRetention: time.Hour}
		l := openClock(t, t.TempDir(), o, clock)
		at := func(ts int64, recs ...testRec) []byte {
			bo := noProducer()
			bo.baseTs = ts
			return buildBatch(recs, bo)
		}
		if opaqueFirst {
			mustAppend(t, l, opaqueBatch(at(old, testRec{key: []byte("gone"), value: []byte("hidden")})))
		}
		mustAppend(t, l, at(old, testRec{key: []byte("gone"), value: []byte("v1")}))
		mustAppend(t, l, at(old, testRec{key: []byte("gone")}, testRec{key: []byte("young"), value: []byte("v")}))
		mustAppend(t, l, at(now, testRec{key: []byte("young")}))
		for i := 0; i < 20; i++ {
			mustAppend(t, l, at(now, testRec{key: []byte("pad"), value: bytes.Repeat([]byte("p"), 400)}))
		}
		compactNow(l, &o)
		got, _ := logRecords(t, l)
		var keys []string
		for _, r := range got {
			if r.key != "pad" {
				keys = append(keys, fmt.Sprintf("%s=%s/%v", r.key, r.value, r.tombstone))
			}
		}
		want := "[young=/true]"
		if opaqueFirst {
			want = "[gone=/true young=/true]"
		}
		if fmt.Sprint(keys) != want {
			t.Fatalf("opaque first %v: %v, want %s", opaqueFirst, keys, want)
		}
		l.Close()
	}
}
