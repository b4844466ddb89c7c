package streamlog

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/s2"
	"github.com/warren-mq/warren/internal/recordbatch"
)

// xerialBatch rewrites an uncompressed test batch with its records in the
// xerial snappy framing Java clients write, in chunks of 64 bytes so that
// there are several.
func xerialBatch(b []byte) []byte {
	raw := b[recordbatch.HeaderSize:]
	out := append(bytes.Clone(b[:recordbatch.HeaderSize]), 0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0, 0, 0, 0, 1, 0, 0, 0, 1)
	for len(raw) > 0 {
		n := min(len(raw), 64)
		blk := s2.EncodeSnappy(nil, raw[:n])
		out = append(binary.BigEndian.AppendUint32(out, uint32(len(blk))), blk...)
		raw = raw[n:]
	}
	return patchHeader(out, func(h *recordbatch.BatchHeader) { h.Attributes |= int16(recordbatch.Snappy) })
}

// padLog appends n batches of one 400-byte record of key "pad" at ts, so
// that what came before is sealed (segments of 4 KiB).
func padLog(t *testing.T, l *Log, n int, ts int64) {
	t.Helper()
	o := noProducer()
	o.baseTs = ts
	for range n {
		mustAppend(t, l, buildBatch([]testRec{{key: []byte("pad"), value: bytes.Repeat([]byte("p"), 400)}}, o))
	}
}

// describeLog lists the log's batches but the padding, oldest first: a
// data batch as its records key=value@offset (tombstones key=nil), a
// marker as commit(pid)@offset or abort(pid)@offset.
func describeLog(t *testing.T, l *Log) string {
	t.Helper()
	var out []string
	for _, b := range readAllBatches(t, l) {
		h, recs, err := recordbatch.Decode(b.b, 1<<20)
		if err != nil {
			t.Fatalf("batch %d: %v", b.h.BaseOffset, err)
		}
		if h.Control() {
			m, _, _ := recordbatch.ParseControl(&recs[0])
			out = append(out, fmt.Sprintf("%s(%d)@%d", map[bool]string{true: "commit", false: "abort"}[m.Commit], h.ProducerID, h.BaseOffset))
			continue
		}
		var rs []string
		for _, r := range recs {
			if string(r.Key) == "pad" {
				continue
			}
			v := string(r.Value)
			if r.Value == nil {
				v = "nil"
			}
			rs = append(rs, fmt.Sprintf("%s=%s@%d", r.Key, v, h.BaseOffset+int64(r.OffsetDelta)))
		}
		if len(rs) > 0 {
			out = append(out, "["+strings.Join(rs, " ")+"]")
		}
	}
	return strings.Join(out, " ")
}

// compactNow turns compaction on in *o and the log and runs a pass.
func compactNow(l *Log, o *Options) {
	o.Compact = true
	l.SetOptions(*o)
	l.runMaintenance()
}

// wantLog fails the test unless describeLog gives want.
func wantLog(t *testing.T, l *Log, when, want string) {
	t.Helper()
	if got := describeLog(t, l); got != want {
		t.Fatalf("%s:\n%s\nwant\n%s", when, got, want)
	}
}

// TestStreamlogCompactionCodecs: a batch of every codec (snappy raw and
// xerial) loses its overwritten records and old tombstones and is
// rewritten in its own codec, its header (offsets, timestamps, producer
// fields) as it was and its kept records' offsets and timestamps too.
func TestStreamlogCompactionCodecs(t *testing.T) {
	now := int64(10 * time.Hour / time.Millisecond)
	old := now - int64(2*time.Hour/time.Millisecond)
	codecs := map[string]func([]byte) []byte{
		"gzip":   func(b []byte) []byte { return compressBatch(b, recordbatch.Gzip) },
		"snappy": func(b []byte) []byte { return compressBatch(b, recordbatch.Snappy) },
		"xerial": xerialBatch,
		"lz4":    func(b []byte) []byte { return compressBatch(b, recordbatch.LZ4) },
		"zstd":   func(b []byte) []byte { return compressBatch(b, recordbatch.Zstd) },
	}
	for name, enc := range codecs {
		t.Run(name, func(t *testing.T) {
			clock := &fakeClock{}
			clock.ms.Store(now)
			o := Options{SegmentBytes: 4096, DeleteRetention: time.Hour}
			l := openClock(t, t.TempDir(), o, clock)
			defer l.Close()
			recs := []recordbatch.Record{
				{TimestampMs: old, Key: []byte("k1"), Value: []byte("a")},
				{TimestampMs: old + 5, Key: []byte("k2"), Value: []byte("b")},
				{TimestampMs: old + 3, Key: []byte("k1"), Value: []byte("c")},
				{TimestampMs: old + 9, Key: []byte("gone"), Value: nil}, // an old tombstone, its key's latest
				{TimestampMs: old + 7, Key: nil, Value: []byte("no key")},
				{TimestampMs: old + 1, Key: []byte("k3"), Value: nil}, // a tombstone, overwritten below
			}
			orig := enc(patchHeader(recordbatch.Build(recs, recordbatch.BuildOptions{Idempotent: true, ProducerID: 5, ProducerEpoch: 1}),
				func(h *recordbatch.BatchHeader) { h.PartitionLeaderEpoch = 0 }))
			first := mustAppend(t, l, orig)
			mustAppend(t, l, buildBatch([]testRec{{key: []byte("k2"), value: []byte("d")}, {key: []byte("k3"), value: []byte("e")}}, batchOpts{baseTs: now, pid: -1, epoch: -1, seq: -1}))
			padLog(t, l, 12, now)
			compactNow(l, &o)
			wantLog(t, l, "after compaction", "[k1=c@2 =no key@4] [k2=d@6 k3=e@7]")
			b := readAllBatches(t, l)[0]
			oh, _ := recordbatch.PeekHeader(orig)
			h := b.h
			if h.BaseOffset != first.BaseOffset || h.Compression() != oh.Compression() || h.LastOffsetDelta != oh.LastOffsetDelta ||
				h.BaseTimestamp != oh.BaseTimestamp || h.MaxTimestamp != oh.MaxTimestamp || h.ProducerID != 5 || h.ProducerEpoch != 1 ||
				h.BaseSequence != oh.BaseSequence || h.NumRecords != 2 {
				t.Fatalf("rewritten header %+v, appended %+v", h, oh)
			}
			_, got, err := recordbatch.Decode(b.b, 1<<20)
			if err != nil || got[0].TimestampMs != old+3 || got[1].TimestampMs != old+7 {
				t.Fatalf("kept records %+v %v", got, err)
			}
		})
	}
}

// TestStreamlogCompactionTransactions: below the stable offset committed
// transactional records compact like others, aborted ones go and hide
// nothing, commit markers go once old with no records left, abort markers
// stay; a transaction still open is left alone, and compacted once it
// commits.
func TestStreamlogCompactionTransactions(t *testing.T) {
	now := int64(10 * time.Hour / time.Millisecond)
	old := now - int64(2*time.Hour/time.Millisecond)
	clock := &fakeClock{}
	clock.ms.Store(now)
	o := Options{SegmentBytes: 4096, DeleteRetention: time.Hour}
	l := openClock(t, t.TempDir(), o, clock)
	defer l.Close()
	plain := func(ts int64, recs ...testRec) []byte {
		return buildBatch(recs, batchOpts{baseTs: ts, pid: -1, epoch: -1, seq: -1})
	}
	txn := func(pid int64, ts int64, recs ...testRec) []byte {
		return buildBatch(recs, batchOpts{baseTs: ts, pid: pid, seq: 0, txn: true})
	}
	kv := func(k, v string) testRec { return testRec{key: []byte(k), value: []byte(v)} }
	mustAppend(t, l, plain(old, kv("k1", "v0"), kv("k2", "v0")))            // 0-1
	mustAppend(t, l, txn(1, old, kv("k1", "t1")))                           // 2
	mustAppend(t, l, recordbatch.BuildControl(1, 0, true, old))             // 3
	mustAppend(t, l, txn(2, old, kv("k2", "aborted"), kv("k9", "aborted"))) // 4-5
	mustAppend(t, l, recordbatch.BuildControl(2, 0, false, old))            // 6
	mustAppend(t, l, txn(3, old, kv("k3", "x")))                            // 7
	mustAppend(t, l, recordbatch.BuildControl(3, 0, true, old))             // 8
	mustAppend(t, l, plain(old, kv("k3", "y")))                             // 9
	mustAppend(t, l, txn(4, old, kv("k4", "a")))                            // 10
	mustAppend(t, l, recordbatch.BuildControl(4, 0, true, now))             // 11: young
	mustAppend(t, l, plain(old, kv("k4", "b")))                             // 12
	mustAppend(t, l, txn(5, now, kv("k1", "open")))                         // 13: stays open for now
	mustAppend(t, l, plain(now, kv("k2", "late")))                          // 14
	padLog(t, l, 12, now)
	if l.LastStableOffset() != 13 {
		t.Fatalf("lso %d", l.LastStableOffset())
	}
	compactNow(l, &o)
	wantLog(t, l, "first pass", "[k2=v0@1] [k1=t1@2] commit(1)@3 abort(2)@6 [k3=y@9] commit(4)@11 [k4=b@12] [k1=open@13] [k2=late@14]")
	if ab := l.AbortedTxns(0, l.NextOffset()); len(ab) != 1 || ab[0] != (AbortedTxn{ProducerID: 2, FirstOffset: 4, LastOffset: 6}) {
		t.Fatalf("aborted index %+v", ab)
	}
	// Producer 5 commits: its record is now k1's latest (and k2=late,
	// stable now, k2's), so producer 1's marker has nothing left. The
	// padding makes the segments from offset 13 on (left dirty) at least
	// half the log, so the pass runs.
	marker := mustAppend(t, l, recordbatch.BuildControl(5, 0, true, now))
	padLog(t, l, 40, now)
	l.runMaintenance()
	wantLog(t, l, "after the commit", fmt.Sprintf("abort(2)@6 [k3=y@9] commit(4)@11 [k4=b@12] [k1=open@13] [k2=late@14] commit(5)@%d", marker.BaseOffset))
}
