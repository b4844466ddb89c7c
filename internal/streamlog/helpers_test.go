package streamlog

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"hash/crc32"
	"log/slog"
	"os"
	"testing"
)

// testRec is one record of a test batch; a nil Value is a tombstone.
type testRec struct {
	key, value []byte
	tsDelta    int64
}

// batchOpts are the producer fields of a test batch.
type batchOpts struct {
	baseTs   int64
	pid      int64
	epoch    int16
	seq      int32
	attrs    int16
	maxTsAdd int64 // added to the computed max timestamp (tests of odd timestamps)
}

func noProducer() batchOpts { return batchOpts{pid: -1, epoch: -1, seq: -1} }

// buildBatch encodes an uncompressed v2 batch as a producer sends it
// (baseOffset 0, CRC over attributes..end).
func buildBatch(recs []testRec, o batchOpts) []byte {
	var body []byte
	maxTs := o.baseTs
	for i, r := range recs {
		var rec []byte
		rec = append(rec, 0)
		rec = binary.AppendVarint(rec, r.tsDelta)
		rec = binary.AppendVarint(rec, int64(i))
		if r.key == nil {
			rec = binary.AppendVarint(rec, -1)
		} else {
			rec = binary.AppendVarint(rec, int64(len(r.key)))
			rec = append(rec, r.key...)
		}
		if r.value == nil {
			rec = binary.AppendVarint(rec, -1)
		} else {
			rec = binary.AppendVarint(rec, int64(len(r.value)))
			rec = append(rec, r.value...)
		}
		rec = binary.AppendVarint(rec, 0)
		body = binary.AppendVarint(body, int64(len(rec)))
		body = append(body, rec...)
		maxTs = max(maxTs, o.baseTs+r.tsDelta)
	}
	b := make([]byte, BatchHeaderSize, BatchHeaderSize+len(body))
	binary.BigEndian.PutUint32(b[offBatchLength:], uint32(BatchHeaderSize-batchLengthOverhead+len(body)))
	b[offMagic] = 2
	binary.BigEndian.PutUint16(b[offAttributes:], uint16(o.attrs))
	binary.BigEndian.PutUint32(b[offLastOffsetDelta:], uint32(len(recs)-1))
	binary.BigEndian.PutUint64(b[offBaseTimestamp:], uint64(o.baseTs))
	binary.BigEndian.PutUint64(b[offMaxTimestamp:], uint64(maxTs+o.maxTsAdd))
	binary.BigEndian.PutUint64(b[offProducerID:], uint64(o.pid))
	binary.BigEndian.PutUint16(b[offProducerEpoch:], uint16(o.epoch))
	binary.BigEndian.PutUint32(b[offBaseSequence:], uint32(o.seq))
	binary.BigEndian.PutUint32(b[offRecordCount:], uint32(len(recs)))
	b = append(b, body...)
	binary.BigEndian.PutUint32(b[offCRC:], crc32.Checksum(b[offAttributes:], castagnoli))
	return b
}

// valueBatch is a batch of n records with values "v<i>" of size bytes.
func valueBatch(n, size int, ts int64) []byte {
	recs := make([]testRec, n)
	for i := range recs {
		v := make([]byte, size)
		for j := range v {
			v[j] = byte('a' + (i+j)%26)
		}
		recs[i] = testRec{value: v}
	}
	o := noProducer()
	o.baseTs = ts
	return buildBatch(recs, o)
}

type appendOut struct {
	res AppendResult
	err error
}

// appendSync appends and waits for done.
func appendSync(t testing.TB, l *Log, b []byte) (AppendResult, error) {
	t.Helper()
	ch := make(chan appendOut, 1)
	l.Append(b, func(r AppendResult, err error) { ch <- appendOut{r, err} })
	o := <-ch
	return o.res, o.err
}

func mustAppend(t testing.TB, l *Log, b []byte) AppendResult {
	t.Helper()
	r, err := appendSync(t, l, b)
	if err != nil {
		t.Fatalf("append: %v", err)
	}
	return r
}

func openTest(t testing.TB, dir string, o Options) *Log {
	t.Helper()
	l, err := Open(dir, o, testLogger(t))
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return l
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("STREAMLOG_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.DiscardHandler)
}

// readAll reads every batch from offset to the end, through Read.
func readAll(t testing.TB, l *Log, from int64, maxBytes int) []BatchHeader {
	t.Helper()
	var hs []BatchHeader
	off := from
	for off < l.NextOffset() {
		c, err := l.Read(off, maxBytes)
		if err != nil {
			t.Fatalf("read %d: %v", off, err)
		}
		b, err := c.Bytes()
		c.Close()
		if err != nil {
			t.Fatalf("bytes: %v", err)
		}
		if len(b) == 0 {
			break
		}
		for len(b) > 0 {
			h, err := checkBatch(b, len(b))
			if err != nil {
				t.Fatalf("read at %d: bad batch: %v", off, err)
			}
			hs = append(hs, h)
			b = b[h.Size():]
			off = h.LastOffset() + 1
		}
	}
	return hs
}

// controlBatch is a transaction marker as the coordinator writes it.
func controlBatch(pid int64, epoch int16, commit bool) []byte {
	key := []byte{0, 0, 0, 0}
	if commit {
		key[3] = 1
	}
	return buildBatch([]testRec{{key: key, value: []byte{0, 0, 0, 0, 0, 0}}},
		batchOpts{pid: pid, epoch: epoch, seq: -1, attrs: attrControl | attrTransactional})
}

// producerBatch is a batch of n records of an idempotent producer.
func idemBatch(pid int64, epoch int16, seq int32, n int, txn bool) []byte {
	recs := make([]testRec, n)
	for i := range recs {
		recs[i] = testRec{value: []byte("x")}
	}
	o := batchOpts{pid: pid, epoch: epoch, seq: seq}
	if txn {
		o.attrs = attrTransactional
	}
	return buildBatch(recs, o)
}

// compressBatch rewrites an uncompressed test batch with its records
// region gzipped (codec 1), or with codec set to c and the bytes left as
// they are (a codec the package cannot read).
func compressBatch(b []byte, c int) []byte {
	recs := b[BatchHeaderSize:]
	if c == 1 {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write(recs)
		zw.Close()
		recs = buf.Bytes()
	}
	out := append(bytes.Clone(b[:BatchHeaderSize]), recs...)
	binary.BigEndian.PutUint32(out[offBatchLength:], uint32(len(out)-batchLengthOverhead))
	attrs := binary.BigEndian.Uint16(out[offAttributes:])
	binary.BigEndian.PutUint16(out[offAttributes:], attrs&^attrCompression|uint16(c))
	binary.BigEndian.PutUint32(out[offCRC:], crc32.Checksum(out[offAttributes:], castagnoli))
	return out
}

func varint(p []byte) (int64, int) { return binary.Varint(p) }
