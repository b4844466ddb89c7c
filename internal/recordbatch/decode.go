package recordbatch

import (
	"encoding/binary"
	"fmt"
)

// minRecordSize is the smallest encoded record: length, attributes, timestamp
// delta, offset delta, key length, value length and header count, one byte each.
// It bounds how many records a hostile count may make Decode preallocate.
const minRecordSize = 7

// Decode parses the batch at the start of b (trailing bytes after it are
// ignored: a fetch may end in a partial batch): header, CRC, records,
// decompressing them into at most maxDecompressed bytes. Records alias b or
// the decompressed copy. With LogAppendTime set, every record's timestamp is
// MaxTimestamp, as Kafka's readers do.
func Decode(b []byte, maxDecompressed int) (BatchHeader, []Record, error) {
	var it Iterator
	it.noIntern = true
	if err := it.Reset(b, maxDecompressed); err != nil {
		return it.h, nil, err
	}
	recs := make([]Record, 0, min(int(it.h.NumRecords), len(it.data)/minRecordSize))
	for {
		var r Record
		if !it.Next(&r) {
			break
		}
		recs = append(recs, r)
	}
	if it.err != nil {
		return it.h, nil, it.err
	}
	return it.h, recs, nil
}

// Iterator walks the records of one batch at a time without allocating per
// record: Next fills the caller's Record, whose Key and Value alias the batch
// (or the iterator's decompression buffer, reused across batches), whose
// Headers slice is reused, and whose header keys are interned per iterator.
// So a record is valid until the next call to Next or Reset; copy what lives
// longer. An Iterator is not safe for concurrent use; the zero value is ready.
type Iterator struct {
	h        BatchHeader
	data     []byte // the records, uncompressed
	scratch  []byte // decompression buffer, kept across Resets
	off      int
	last     int // where the record Next last parsed starts
	i        int
	active   bool // records left to walk
	err      error
	hdrs     []Header
	keys     map[string]string
	noIntern bool // Decode hands out records that outlive the iterator
}

// maxInterned bounds the per-iterator table of header keys, so a stream of
// distinct keys costs allocations, not unbounded memory.
const maxInterned = 256

// Reset starts iterating the batch at the start of b: it parses the header,
// checks the CRC and decompresses the records (ErrTooLarge past maxDecompressed).
func (it *Iterator) Reset(b []byte, maxDecompressed int) error {
	it.release()
	h, err := ParseHeader(b)
	it.h = h
	if err == nil {
		err = CheckCRC(b, &h)
	}
	if err != nil {
		it.err = err
		return err
	}
	raw := b[HeaderSize:h.Size()]
	if c := h.Compression(); c == None {
		if len(raw) > maxDecompressed {
			err = ErrTooLarge
		}
		it.data = raw
	} else {
		var dst []byte
		if !it.noIntern {
			dst = it.scratch[:0]
		}
		dst, err = decompress(dst, raw, c, maxDecompressed)
		if !it.noIntern && cap(dst) <= 8<<20 {
			it.scratch = dst
		}
		it.data = dst
	}
	if err != nil {
		it.err = err
		it.data = nil
		return err
	}
	it.active = true
	return nil
}

// release drops the iterator's references to the batch it walked (records
// and header values), keeping its own buffers. Next then reports no record.
func (it *Iterator) release() {
	it.off, it.last, it.i, it.err, it.data, it.active = 0, 0, 0, nil, nil, false
	clear(it.hdrs[:cap(it.hdrs)])
}

// Header is the batch's header as Reset parsed it.
func (it *Iterator) Header() BatchHeader { return it.h }

// Raw is the record Next last filled as it is encoded in the batch, its
// varint length prefix included; it aliases like Key. Compaction keeps
// records byte for byte by concatenating them (AppendRetained).
func (it *Iterator) Raw() []byte { return it.data[it.last:it.off] }

// Err is the first error Reset or Next met; nil after a complete walk.
func (it *Iterator) Err() error { return it.err }

// Next parses the next record into r and reports whether there was one. At
// the end it checks that the batch held exactly its declared record count and
// no trailing bytes, as Kafka does; Err says why iteration stopped early.
func (it *Iterator) Next(r *Record) bool { return it.next(r, true) }

// NextNoHeaders is Next leaving r.Headers nil: the headers are checked as
// Next checks them but not decoded, which saves their key lookups for a
// caller that needs only keys, values and offsets (the log's append check
// and compaction).
func (it *Iterator) NextNoHeaders(r *Record) bool { return it.next(r, false) }

func (it *Iterator) next(r *Record, headers bool) bool {
	if !it.active {
		return false
	}
	if it.i >= int(it.h.NumRecords) {
		if it.off != len(it.data) {
			it.fail("%d bytes after the last of %d records", len(it.data)-it.off, it.h.NumRecords)
		}
		it.active = false
		return false
	}
	if !it.parse(r, headers) {
		return false
	}
	it.i++
	if it.h.LogAppendTime() {
		r.TimestampMs = it.h.MaxTimestamp
	}
	return true
}

func (it *Iterator) fail(format string, args ...any) {
	it.err = fmt.Errorf("%w: record %d: %s", ErrCorrupt, it.i, fmt.Sprintf(format, args...))
	it.active = false
}

// parse decodes one record at it.off, its headers into r.Headers if
// headers; every length is checked against the record's own claimed size,
// which is checked against the batch.
func (it *Iterator) parse(r *Record, headers bool) bool {
	size, n := binary.Varint(it.data[it.off:])
	if n <= 0 || size < 0 || size > int64(len(it.data)-it.off-n) {
		it.fail("bad record length")
		return false
	}
	p := it.data[it.off+n : it.off+n+int(size)]
	it.last = it.off
	it.off += n + int(size)
	if len(p) < 1 {
		it.fail("empty record")
		return false
	}
	p = p[1:] // attributes: unused by Kafka
	var ok bool
	var tsDelta, offDelta int64
	if tsDelta, p, ok = varint(p); !ok {
		it.fail("bad timestamp delta")
		return false
	}
	if offDelta, p, ok = varint(p); !ok || offDelta < 0 || offDelta > int64(it.h.LastOffsetDelta) {
		it.fail("bad offset delta")
		return false
	}
	r.TimestampMs = it.h.BaseTimestamp + tsDelta
	r.OffsetDelta = int32(offDelta)
	if r.Key, p, ok = nullableBytes(p); !ok {
		it.fail("bad key")
		return false
	}
	if r.Value, p, ok = nullableBytes(p); !ok {
		it.fail("bad value")
		return false
	}
	var count int64
	if count, p, ok = varint(p); !ok || count < 0 || count > int64(len(p))/2 {
		it.fail("bad header count")
		return false
	}
	hdrs := it.hdrs[:0]
	if !headers {
		hdrs = nil
	} else if it.noIntern {
		hdrs = nil
		if count > 0 {
			hdrs = make([]Header, 0, count)
		}
	}
	for range count {
		var k, v []byte
		if k, p, ok = nullableBytes(p); !ok || k == nil {
			it.fail("bad header key")
			return false
		}
		if v, p, ok = nullableBytes(p); !ok {
			it.fail("bad header value")
			return false
		}
		if headers {
			hdrs = append(hdrs, Header{Key: it.intern(k), Value: v})
		}
	}
	if len(p) != 0 {
		it.fail("%d bytes after the headers", len(p))
		return false
	}
	if headers && !it.noIntern {
		it.hdrs = hdrs
	}
	r.Headers = hdrs
	if count == 0 {
		r.Headers = nil
	}
	return true
}

// intern returns k as a string, from the iterator's table when it was seen
// before (the map lookup by string(k) does not allocate).
func (it *Iterator) intern(k []byte) string {
	if it.noIntern {
		return string(k)
	}
	if s, ok := it.keys[string(k)]; ok {
		return s
	}
	s := string(k)
	if it.keys == nil {
		it.keys = make(map[string]string)
	}
	if len(it.keys) < maxInterned {
		it.keys[s] = s
	}
	return s
}

// varint reads one zig-zag varint off p. Most are one byte (small lengths
// and deltas), read inline without binary.Varint's loop.
func varint(p []byte) (int64, []byte, bool) {
	if len(p) > 0 && p[0] < 0x80 {
		u := int64(p[0])
		return u>>1 ^ -(u & 1), p[1:], true
	}
	v, n := binary.Varint(p)
	if n <= 0 {
		return 0, p, false
	}
	return v, p[n:], true
}

// nullableBytes reads a varint length and that many bytes; -1 is nil. An
// empty value aliases p so that it is non-nil.
func nullableBytes(p []byte) ([]byte, []byte, bool) {
	n, p, ok := varint(p)
	if !ok || n < -1 || n > int64(len(p)) {
		return nil, p, false
	}
	if n == -1 {
		return nil, p, true
	}
	return p[:n:n], p[n:], true
}
