package streamlog

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"io"
)

// record is one record of a batch, as compaction needs it: its bytes
// (without the length prefix), offset delta and key, and whether its value
// is null (a tombstone).
type record struct {
	raw         []byte
	offsetDelta int64
	key         []byte
	nullKey     bool
	tombstone   bool
}

// maxDecompressed bounds what compaction decompresses from one batch;
// a larger batch is kept whole.
const maxDecompressed = 64 << 20

// batchRecords decodes the records of a batch whose payload (after the
// 61-byte header) is plain or, through decompress, compressed. ok is false
// if they could not be decoded: compaction then keeps the batch whole.
func batchRecords(batch []byte, h BatchHeader, decompress func(codec int, src []byte) ([]byte, error)) ([]record, bool) {
	p := batch[BatchHeaderSize:h.Size()]
	if c := h.Compression(); c != 0 {
		var err error
		if c == 1 {
			p, err = gunzip(p)
		} else if decompress != nil {
			p, err = decompress(c, p)
		} else {
			return nil, false
		}
		if err != nil || len(p) > maxDecompressed {
			return nil, false
		}
	}
	// A record takes 7 bytes at least: the count cannot make us allocate
	// more than the payload justifies.
	recs := make([]record, 0, min(max(int(h.NumRecords), 0), len(p)/7))
	for range h.NumRecords {
		n, k := binary.Varint(p)
		if k <= 0 || n < 0 || int64(len(p)-k) < n {
			return nil, false
		}
		r, ok := parseRecord(p[k : k+int(n)])
		if !ok || r.offsetDelta > int64(h.LastOffsetDelta) {
			return nil, false
		}
		recs = append(recs, r)
		p = p[k+int(n):]
	}
	return recs, len(p) == 0
}

// recordsFrame reports whether p holds exactly n records of valid framing
// with offset deltas 0..n-1, as a producer writes them: an uncompressed
// batch is checked whole at append, without allocating.
func recordsFrame(p []byte, n int32) bool {
	for i := range int64(n) {
		l, k := binary.Varint(p)
		if k <= 0 || l < 0 || int64(len(p)-k) < l {
			return false
		}
		r, ok := parseRecord(p[k : k+int(l)])
		if !ok || r.offsetDelta != i {
			return false
		}
		p = p[k+int(l):]
	}
	return len(p) == 0
}

// parseRecord decodes attributes i8 | timestampDelta varlong | offsetDelta
// varint | key length varint | key | value length varint | value | headers.
func parseRecord(raw []byte) (record, bool) {
	r := record{raw: raw}
	if len(raw) < 1 {
		return r, false
	}
	p := raw[1:]
	var vals [3]int64 // timestamp delta, offset delta, key length
	for i := range vals {
		v, k := binary.Varint(p)
		if k <= 0 {
			return r, false
		}
		vals[i], p = v, p[k:]
	}
	r.offsetDelta = vals[1]
	if r.offsetDelta < 0 {
		return r, false
	}
	switch kl := vals[2]; {
	case kl < 0:
		r.nullKey = true
	case kl > int64(len(p)):
		return r, false
	default:
		r.key, p = p[:kl], p[kl:]
	}
	vl, k := binary.Varint(p)
	if k <= 0 || vl > int64(len(p)-k) {
		return r, false
	}
	r.tombstone = vl < 0
	return r, true
}

func gunzip(p []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(p))
	if err != nil {
		return nil, err
	}
	defer zr.Close()
	return io.ReadAll(io.LimitReader(zr, maxDecompressed+1))
}

// rebuildBatch encodes a batch holding only recs (a subset of h's records,
// in order), uncompressed, with h's offsets, timestamps and producer
// fields; offsets not kept become gaps, as Kafka's compaction leaves them.
func rebuildBatch(dst []byte, orig []byte, h BatchHeader, recs []record) []byte {
	start := len(dst)
	dst = append(dst, orig[:BatchHeaderSize]...)
	for _, r := range recs {
		dst = binary.AppendVarint(dst, int64(len(r.raw)))
		dst = append(dst, r.raw...)
	}
	b := dst[start:]
	binary.BigEndian.PutUint32(b[offBatchLength:], uint32(len(b)-batchLengthOverhead))
	binary.BigEndian.PutUint16(b[offAttributes:], uint16(h.Attributes&^attrCompression))
	binary.BigEndian.PutUint32(b[offRecordCount:], uint32(len(recs)))
	binary.BigEndian.PutUint32(b[offCRC:], crc32Checksum(b[offAttributes:]))
	return dst
}
