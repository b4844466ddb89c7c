package recordbatch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// HeaderSize is the size of the fixed record batch v2 header, up to and
// including the record count.
const HeaderSize = 61

// Byte offsets of the header fields. baseOffset and partitionLeaderEpoch lie
// before the CRC's range, so the log can set them without recomputing it.
const (
	offBaseOffset      = 0
	offLength          = 8
	offLeaderEpoch     = 12
	offMagic           = 16
	offCRC             = 17
	offAttributes      = 21
	offLastOffsetDelta = 23
	offBaseTimestamp   = 27
	offMaxTimestamp    = 35
	offProducerID      = 43
	offProducerEpoch   = 51
	offBaseSequence    = 53
	offNumRecords      = 57
)

// lengthOverhead is what the batch length field does not count: baseOffset and
// the length itself.
const lengthOverhead = 12

// Attribute bits of a v2 batch.
const (
	attrCompressionMask = 0x07
	attrLogAppendTime   = 0x08
	attrTransactional   = 0x10
	attrControl         = 0x20
)

// Compression is a batch's codec, the attribute bits 0-2.
type Compression int8

// The codecs Kafka defines, with their attribute values.
const (
	None   Compression = 0
	Gzip   Compression = 1
	Snappy Compression = 2
	LZ4    Compression = 3
	Zstd   Compression = 4
)

// String names the codec as Kafka's compression.type does.
func (c Compression) String() string {
	switch c {
	case None:
		return "none"
	case Gzip:
		return "gzip"
	case Snappy:
		return "snappy"
	case LZ4:
		return "lz4"
	case Zstd:
		return "zstd"
	}
	return fmt.Sprintf("compression(%d)", int8(c))
}

// Errors Decode and ParseHeader return; tests and front ends match them with errors.Is.
var (
	// ErrCorrupt: the batch is malformed (short, bad length, bad CRC, records
	// that do not parse). Kafka's CORRUPT_MESSAGE.
	ErrCorrupt = errors.New("recordbatch: corrupt batch")
	// ErrMagic: the batch is not magic 2. Kafka's UNSUPPORTED_FOR_MESSAGE_FORMAT
	// (or CORRUPT_MESSAGE, as a produce of v0/v1 gets it).
	ErrMagic = errors.New("recordbatch: unsupported magic")
	// ErrCompression: an unknown codec in the attributes. Kafka's UNSUPPORTED_COMPRESSION_TYPE.
	ErrCompression = errors.New("recordbatch: unsupported compression")
	// ErrTooLarge: the records decompress to more than the caller's limit.
	// Kafka's MESSAGE_TOO_LARGE / RECORD_LIST_TOO_LARGE.
	ErrTooLarge = errors.New("recordbatch: decompressed records over the limit")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// BatchHeader is the fixed part of a record batch v2, field for field as Kafka
// lays it out. It is the only decoding of it: the log, the Kafka front end and
// the AMQP stream consumers all read headers with PeekHeader or ParseHeader.
type BatchHeader struct {
	BaseOffset           int64
	Length               int32 // bytes after this field: the batch is Length+12 bytes long
	PartitionLeaderEpoch int32
	Magic                int8
	CRC                  uint32 // CRC32C over attributes..end
	Attributes           int16
	LastOffsetDelta      int32
	BaseTimestamp        int64
	MaxTimestamp         int64
	ProducerID           int64
	ProducerEpoch        int16
	BaseSequence         int32
	NumRecords           int32
}

// Compression is the codec of the records.
func (h BatchHeader) Compression() Compression {
	return Compression(h.Attributes & attrCompressionMask)
}

// LogAppendTime reports timestamp type 1: the broker's append time, held in
// MaxTimestamp, is every record's timestamp.
func (h BatchHeader) LogAppendTime() bool { return h.Attributes&attrLogAppendTime != 0 }

// Transactional reports the transactional bit.
func (h BatchHeader) Transactional() bool { return h.Attributes&attrTransactional != 0 }

// Control reports a control batch (transaction commit or abort markers).
func (h BatchHeader) Control() bool { return h.Attributes&attrControl != 0 }

// Idempotent reports whether the batch carries a producer id and base
// sequence, which the log checks for duplicates and gaps.
func (h BatchHeader) Idempotent() bool { return h.ProducerID >= 0 && h.BaseSequence >= 0 }

// Size is the whole batch's length in bytes.
func (h BatchHeader) Size() int { return int(h.Length) + lengthOverhead }

// LastOffset is the offset of the batch's last record (as set by the log).
func (h BatchHeader) LastOffset() int64 { return h.BaseOffset + int64(h.LastOffsetDelta) }

// PeekHeader decodes the fixed header at the start of b, which may hold
// just those HeaderSize bytes: a reader walking a file or a fetch reads
// headers before it knows where a batch ends. It checks what the header says
// of itself (magic 2, a length of at least a header, no negative counts),
// neither that the batch is all in b nor the CRC.
func PeekHeader(b []byte) (BatchHeader, error) {
	var h BatchHeader
	if len(b) < HeaderSize {
		return h, fmt.Errorf("%w: %d bytes, shorter than a batch header", ErrCorrupt, len(b))
	}
	be := binary.BigEndian
	h.BaseOffset = int64(be.Uint64(b[offBaseOffset:]))
	h.Length = int32(be.Uint32(b[offLength:]))
	h.PartitionLeaderEpoch = int32(be.Uint32(b[offLeaderEpoch:]))
	h.Magic = int8(b[offMagic])
	h.CRC = be.Uint32(b[offCRC:])
	h.Attributes = int16(be.Uint16(b[offAttributes:]))
	h.LastOffsetDelta = int32(be.Uint32(b[offLastOffsetDelta:]))
	h.BaseTimestamp = int64(be.Uint64(b[offBaseTimestamp:]))
	h.MaxTimestamp = int64(be.Uint64(b[offMaxTimestamp:]))
	h.ProducerID = int64(be.Uint64(b[offProducerID:]))
	h.ProducerEpoch = int16(be.Uint16(b[offProducerEpoch:]))
	h.BaseSequence = int32(be.Uint32(b[offBaseSequence:]))
	h.NumRecords = int32(be.Uint32(b[offNumRecords:]))
	if h.Magic != 2 {
		return h, fmt.Errorf("%w %d", ErrMagic, h.Magic)
	}
	if h.Length < HeaderSize-lengthOverhead {
		return h, fmt.Errorf("%w: length %d", ErrCorrupt, h.Length)
	}
	if h.NumRecords < 0 || h.LastOffsetDelta < 0 {
		return h, fmt.Errorf("%w: record count %d, last offset delta %d", ErrCorrupt, h.NumRecords, h.LastOffsetDelta)
	}
	return h, nil
}

// ParseHeader is PeekHeader for a batch that must lie wholly in b. It does
// not check the CRC (CheckCRC does): a reader that only needs offsets can
// skip the work.
func ParseHeader(b []byte) (BatchHeader, error) {
	h, err := PeekHeader(b)
	if err == nil && h.Size() > len(b) {
		err = fmt.Errorf("%w: length %d with %d bytes present", ErrCorrupt, h.Length, len(b))
	}
	return h, err
}

// PutHeader writes h as the header of b, which holds exactly one whole batch
// (records included): Length becomes len(b)-12 and the CRC is computed over
// b, so the other fields are the caller's. Build, BuildControl and
// AppendRetained write their headers with it.
func PutHeader(b []byte, h BatchHeader) {
	be := binary.BigEndian
	be.PutUint64(b[offBaseOffset:], uint64(h.BaseOffset))
	be.PutUint32(b[offLength:], uint32(len(b)-lengthOverhead))
	be.PutUint32(b[offLeaderEpoch:], uint32(h.PartitionLeaderEpoch))
	b[offMagic] = byte(h.Magic)
	be.PutUint16(b[offAttributes:], uint16(h.Attributes))
	be.PutUint32(b[offLastOffsetDelta:], uint32(h.LastOffsetDelta))
	be.PutUint64(b[offBaseTimestamp:], uint64(h.BaseTimestamp))
	be.PutUint64(b[offMaxTimestamp:], uint64(h.MaxTimestamp))
	be.PutUint64(b[offProducerID:], uint64(h.ProducerID))
	be.PutUint16(b[offProducerEpoch:], uint16(h.ProducerEpoch))
	be.PutUint32(b[offBaseSequence:], uint32(h.BaseSequence))
	be.PutUint32(b[offNumRecords:], uint32(h.NumRecords))
	be.PutUint32(b[offCRC:], crc32.Checksum(b[offAttributes:], castagnoli))
}

// CheckCRC verifies the CRC32C of the batch at the start of b, whose header
// ParseHeader returned as h.
func CheckCRC(b []byte, h *BatchHeader) error {
	if got := crc32.Checksum(b[offAttributes:h.Size()], castagnoli); got != h.CRC {
		return fmt.Errorf("%w: CRC %08x, computed %08x", ErrCorrupt, h.CRC, got)
	}
	return nil
}

// SetBaseOffset sets the base offset of the batch at the start of b; it lies
// outside the CRC, so the batch stays valid.
func SetBaseOffset(b []byte, offset int64) {
	binary.BigEndian.PutUint64(b[offBaseOffset:], uint64(offset))
}

// SetPartitionLeaderEpoch sets the leader epoch of the batch at the start of
// b; like the base offset it lies outside the CRC.
func SetPartitionLeaderEpoch(b []byte, epoch int32) {
	binary.BigEndian.PutUint32(b[offLeaderEpoch:], uint32(epoch))
}

// Record is one record of a batch. Decode's records alias the batch (or its
// decompressed copy): copy what outlives it. A nil Key or Value is Kafka's
// null (length -1), distinct from an empty one; a nil Value is a tombstone.
type Record struct {
	OffsetDelta int32
	TimestampMs int64
	Key, Value  []byte
	Headers     []Header
}

// Header is a Kafka record header. Kafka allows repeated keys; a nil Value is null.
type Header struct {
	Key   string
	Value []byte
}

// BuildOptions say how Build writes a batch. The zero value builds an
// uncompressed, non-idempotent batch (producer id, epoch and base sequence -1),
// as an AMQP publish into a stream needs.
type BuildOptions struct {
	Compression Compression
	// Idempotent writes ProducerID, ProducerEpoch and BaseSequence; without
	// it (and without Transactional) all three are -1.
	Idempotent    bool
	ProducerID    int64
	ProducerEpoch int16
	BaseSequence  int32
	// Transactional sets the transactional bit; it implies Idempotent.
	Transactional bool
	// LogAppendTime sets timestamp type 1 with MaxTimestamp = AppendTimeMs.
	LogAppendTime bool
	AppendTimeMs  int64
	// KeepOffsetDeltas writes each record's OffsetDelta as given (increasing,
	// as compaction leaves them); otherwise record i gets delta i.
	KeepOffsetDeltas bool
	// Level is the codec's level; 0 is the codec's default.
	Level int
}

// Build encodes recs as one record batch v2 with base offset 0 and leader
// epoch -1, which the log sets. Timestamps are taken from the records: the
// first is the base timestamp, the largest the max timestamp. An empty recs
// gives a batch of no records (last offset delta 0), which a log should refuse.
func Build(recs []Record, o BuildOptions) []byte {
	return AppendBuild(nil, recs, o)
}

// AppendBuild is Build appending to dst, so a caller can reuse a buffer.
func AppendBuild(dst []byte, recs []Record, o BuildOptions) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, HeaderSize)...)
	var baseTs, maxTs int64 = -1, -1
	if len(recs) > 0 {
		baseTs, maxTs = recs[0].TimestampMs, recs[0].TimestampMs
	}
	var lastDelta int32
	for i := range recs {
		if t := recs[i].TimestampMs; t > maxTs {
			maxTs = t
		}
		d := int32(i)
		if o.KeepOffsetDeltas {
			d = recs[i].OffsetDelta
		}
		if d > lastDelta {
			lastDelta = d
		}
	}
	if o.Compression == None {
		for i := range recs {
			dst = appendRecord(dst, &recs[i], baseTs, offsetDelta(recs, i, o))
		}
	} else {
		raw := getBuf()
		for i := range recs {
			*raw = appendRecord(*raw, &recs[i], baseTs, offsetDelta(recs, i, o))
		}
		dst = compress(dst, *raw, o.Compression, o.Level)
		putBuf(raw)
	}
	attrs := int16(o.Compression) & attrCompressionMask
	if o.LogAppendTime {
		attrs |= attrLogAppendTime
		maxTs = o.AppendTimeMs
	}
	pid, epoch, seq := int64(-1), int16(-1), int32(-1)
	if o.Idempotent || o.Transactional {
		pid, epoch, seq = o.ProducerID, o.ProducerEpoch, o.BaseSequence
	}
	if o.Transactional {
		attrs |= attrTransactional
	}
	putHeader(dst[start:], attrs, lastDelta, baseTs, maxTs, pid, epoch, seq, int32(len(recs)))
	return dst
}

func offsetDelta(recs []Record, i int, o BuildOptions) int32 {
	if o.KeepOffsetDeltas {
		return recs[i].OffsetDelta
	}
	return int32(i)
}

// putHeader fills the header of the batch b (exactly one whole batch) as
// Build writes it: base offset 0 and leader epoch -1, which the log sets.
func putHeader(b []byte, attrs int16, lastDelta int32, baseTs, maxTs, pid int64, epoch int16, seq, n int32) {
	PutHeader(b, BatchHeader{PartitionLeaderEpoch: -1, Magic: 2, Attributes: attrs, LastOffsetDelta: lastDelta,
		BaseTimestamp: baseTs, MaxTimestamp: maxTs, ProducerID: pid, ProducerEpoch: epoch, BaseSequence: seq, NumRecords: n})
}

// AppendRetained appends to dst the batch h with only some of its records
// left, as compaction rewrites it: records holds them as Iterator.Raw gave
// them, concatenated, n of them, and is compressed with c. Base offset, last
// offset delta, timestamps, producer fields and the other attribute bits stay
// h's, so removed offsets become gaps and record timestamp deltas stay valid,
// as Kafka's cleaner leaves a batch.
func AppendRetained(dst []byte, h BatchHeader, records []byte, n int32, c Compression) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, HeaderSize)...)
	dst = compress(dst, records, c, 0)
	h.Attributes = h.Attributes&^attrCompressionMask | int16(c)&attrCompressionMask
	h.NumRecords = n
	PutHeader(dst[start:], h)
	return dst
}

// appendRecord appends one record: its varint length, then attributes (0),
// timestamp delta, offset delta, key, value and headers.
func appendRecord(b []byte, r *Record, baseTs int64, delta int32) []byte {
	body := 1 + varlongLen(r.TimestampMs-baseTs) + varintLen(int64(delta)) +
		bytesLen(r.Key) + bytesLen(r.Value) + varintLen(int64(len(r.Headers)))
	for i := range r.Headers {
		h := &r.Headers[i]
		body += varintLen(int64(len(h.Key))) + len(h.Key) + bytesLen(h.Value)
	}
	b = binary.AppendVarint(b, int64(body))
	b = append(b, 0)
	b = binary.AppendVarint(b, r.TimestampMs-baseTs)
	b = binary.AppendVarint(b, int64(delta))
	b = appendBytes(b, r.Key)
	b = appendBytes(b, r.Value)
	b = binary.AppendVarint(b, int64(len(r.Headers)))
	for i := range r.Headers {
		h := &r.Headers[i]
		b = binary.AppendVarint(b, int64(len(h.Key)))
		b = append(b, h.Key...)
		b = appendBytes(b, h.Value)
	}
	return b
}

// appendBytes appends a varint length and the bytes; nil is length -1 (null).
func appendBytes(b, v []byte) []byte {
	if v == nil {
		return append(b, 1) // zig-zag -1
	}
	b = binary.AppendVarint(b, int64(len(v)))
	return append(b, v...)
}

func bytesLen(v []byte) int {
	if v == nil {
		return 1
	}
	return varintLen(int64(len(v))) + len(v)
}

func varlongLen(v int64) int { return varintLen(v) }

// varintLen is the size of v zig-zag encoded as binary.AppendVarint writes it.
func varintLen(v int64) int {
	u := uint64(v<<1) ^ uint64(v>>63)
	n := 1
	for u >= 0x80 {
		u >>= 7
		n++
	}
	return n
}

// Control record types (the key's second int16).
const (
	controlAbort  = 0
	controlCommit = 1
)

// BuildControl builds a control batch holding one end-transaction marker
// (commit or abort) for the producer, as the transaction coordinator writes
// it: transactional and control bits set, base sequence -1, key = int16
// version 0 + int16 type, value = int16 version 0 + int32 coordinator epoch 0.
func BuildControl(producerID int64, epoch int16, commit bool, tsMs int64) []byte {
	return BuildControlEpoch(producerID, epoch, commit, tsMs, 0)
}

// BuildControlEpoch is BuildControl with the coordinator epoch written in the marker.
func BuildControlEpoch(producerID int64, epoch int16, commit bool, tsMs int64, coordinatorEpoch int32) []byte {
	typ := uint16(controlAbort)
	if commit {
		typ = controlCommit
	}
	key := binary.BigEndian.AppendUint16([]byte{0, 0}, typ)
	value := binary.BigEndian.AppendUint32([]byte{0, 0}, uint32(coordinatorEpoch))
	rec := Record{TimestampMs: tsMs, Key: key, Value: value}
	b := make([]byte, HeaderSize, HeaderSize+32)
	b = appendRecord(b, &rec, tsMs, 0)
	putHeader(b, attrTransactional|attrControl, 0, tsMs, tsMs, producerID, epoch, -1, 1)
	return b
}

// ControlMarker is a decoded end-transaction marker.
type ControlMarker struct {
	Commit           bool
	CoordinatorEpoch int32
}

// ParseControl decodes the marker of a control batch's record: ErrCorrupt
// for a key too short to hold a type, ok=false (no error) for a type other
// than commit or abort, which Kafka's readers skip.
func ParseControl(r *Record) (m ControlMarker, ok bool, err error) {
	if len(r.Key) < 4 {
		return m, false, fmt.Errorf("%w: control key of %d bytes", ErrCorrupt, len(r.Key))
	}
	switch binary.BigEndian.Uint16(r.Key[2:]) {
	case controlAbort:
	case controlCommit:
		m.Commit = true
	default:
		return m, false, nil
	}
	if len(r.Value) >= 6 {
		m.CoordinatorEpoch = int32(binary.BigEndian.Uint32(r.Value[2:]))
	}
	return m, true, nil
}
