package streamlog

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/warren-mq/warren/internal/recordbatch"
)

// FuzzRecover: whatever follows a segment header, Open never panics, keeps
// a valid prefix (every batch it serves checks, offsets contiguous from 0),
// a second Open finds the same log, and appends continue after it.
func FuzzRecover(f *testing.F) {
	var valid []byte
	for i := 0; i < 4; i++ {
		b := valueBatch(1+i, 20, int64(i))
		setBatchOffsets(b, int64(i*(i+1)/2), 0)
		valid = append(valid, b...)
	}
	f.Add(valid)
	f.Add(valid[:len(valid)-5])
	f.Add(append(bytes.Clone(valid), 0xff, 0, 0, 0))
	f.Add([]byte{})
	f.Add(controlBatch(1, 0, false))
	f.Add(append([]byte{0x81}, bytes.Repeat([]byte("abcdefgh"), 40)...))
	f.Fuzz(func(t *testing.T, body []byte) {
		if len(body) > 0 && body[0]&1 == 1 {
			body = validThenCut(body)
		}
		dir := t.TempDir()
		seg := append(appendFileHeader(nil, segMagic, 0), body...)
		if err := os.WriteFile(filepath.Join(dir, "00000000000000000000.seg"), seg, 0o644); err != nil {
			t.Fatal(err)
		}
		l, err := Open(dir, Options{}, nil)
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		next := l.NextOffset()
		off := int64(0)
		for _, h := range readAll(t, l, 0, 1<<20) {
			if h.BaseOffset != off {
				t.Fatalf("batch at %d, want %d", h.BaseOffset, off)
			}
			off = h.LastOffset() + 1
		}
		if off != next {
			t.Fatalf("batches end at %d, next %d", off, next)
		}
		if fi, _ := os.Stat(filepath.Join(dir, "00000000000000000000.seg")); fi.Size() > int64(len(seg)) {
			t.Fatal("recovery grew the segment")
		}
		l.Close()
		l, err = Open(dir, Options{}, nil)
		if err != nil {
			t.Fatalf("second open: %v", err)
		}
		defer l.Close()
		if l.NextOffset() != next {
			t.Fatalf("second open: next %d, first %d", l.NextOffset(), next)
		}
		r, err := appendSync(t, l, valueBatch(1, 3, 0))
		if err != nil || r.BaseOffset != next {
			t.Fatalf("append after recovery: %+v %v", r, err)
		}
	})
}

// FuzzParseBatchHeader: the log's batch checks (header, CRC, records,
// control markers) and compaction's rewrite never panic nor read outside
// their input; a batch that checks and decodes rewrites (keeping every other
// record, as compaction would) to one that checks and holds exactly the kept
// records byte for byte, and keeping all of them leaves it as it was.
func FuzzParseBatchHeader(f *testing.F) {
	f.Add(valueBatch(2, 5, 1))
	f.Add(controlBatch(3, 1, true))
	f.Add(buildBatch([]testRec{{key: []byte("k")}, {key: nil, value: []byte("v")}}, noProducer()))
	for _, c := range []recordbatch.Compression{recordbatch.Gzip, recordbatch.Snappy, recordbatch.LZ4, recordbatch.Zstd} {
		f.Add(compressBatch(valueBatch(3, 10, 1), c))
	}
	f.Add(make([]byte, recordbatch.HeaderSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := peekHeader(b)
		if err != nil {
			return
		}
		if h.Size() < recordbatch.HeaderSize {
			t.Fatalf("size %d", h.Size())
		}
		controlCommit(b)
		ch, err := checkBatch(b, len(b))
		if err != nil {
			return
		}
		checkRecords(b[:ch.Size()], ch)
		b = b[:ch.Size()]
		var it recordbatch.Iterator
		var scratch []byte
		i := 0
		everyOther := func(recordbatch.BatchHeader, *recordbatch.Record) bool { i++; return i%2 == 1 }
		nb, what := retain(nil, b, &it, everyOther, &scratch)
		if what == opaque || what == keptWhole {
			if !bytes.Equal(nb, b) {
				t.Fatalf("%v: batch changed", what)
			}
			return
		}
		_, recs, err := recordbatch.Decode(b, maxDecompressed)
		if err != nil {
			t.Fatalf("retain decoded what Decode refuses: %v", err)
		}
		if all, what := retain(nil, b, &it, func(recordbatch.BatchHeader, *recordbatch.Record) bool { return true }, &scratch); what != keptWhole || !bytes.Equal(all, b) {
			t.Fatalf("keeping all: %v", what)
		}
		var want []recordbatch.Record
		for j := 0; j < len(recs); j += 2 {
			want = append(want, recs[j])
		}
		if what == dropped {
			if len(nb) != 0 || len(want) != 0 {
				t.Fatalf("dropped %d bytes holding %d records to keep", len(nb), len(want))
			}
			return
		}
		nh, err := checkBatch(nb, len(nb))
		if err != nil || nh.Size() != len(nb) {
			t.Fatalf("rewritten batch: %v", err)
		}
		if nh.BaseOffset != ch.BaseOffset || nh.LastOffsetDelta != ch.LastOffsetDelta || nh.MaxTimestamp != ch.MaxTimestamp ||
			nh.BaseTimestamp != ch.BaseTimestamp || nh.ProducerID != ch.ProducerID || nh.Compression() != ch.Compression() {
			t.Fatalf("rewritten header %+v, was %+v", nh, ch)
		}
		_, again, err := recordbatch.Decode(nb, maxDecompressed)
		if err != nil || len(again) != len(want) {
			t.Fatalf("rewritten batch decodes to %d records (%v), want %d", len(again), err, len(want))
		}
		for j := range want {
			if again[j].OffsetDelta != want[j].OffsetDelta || again[j].TimestampMs != want[j].TimestampMs ||
				!bytes.Equal(again[j].Key, want[j].Key) || !bytes.Equal(again[j].Value, want[j].Value) {
				t.Fatalf("record %d changed", j)
			}
		}
	})
}

// validThenCut makes fuzz input into valid batches (one record of up to 50
// input bytes each, contiguous offsets), cut at a point the first byte
// chooses and with one byte flipped if bit 1 is set: torn tails of real
// logs rather than noise that fails the first CRC.
func validThenCut(in []byte) []byte {
	mode, data := in[0], in[1:]
	var out []byte
	off := int64(0)
	for len(data) > 0 {
		n := min(len(data), 50)
		b := buildBatch([]testRec{{key: data[:n/2], value: data[n/2 : n]}}, noProducer())
		setBatchOffsets(b, off, 0)
		off++
		out = append(out, b...)
		data = data[n:]
	}
	cut := len(out) * int(mode>>2) / 63
	out = out[:cut]
	if mode&2 != 0 && len(out) > 0 {
		out[len(out)*int(mode)/256] ^= 0x40
	}
	return out
}
