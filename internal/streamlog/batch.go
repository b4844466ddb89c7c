package streamlog

import (
	"encoding/binary"
	"hash/crc32"
)

// Layout of a Kafka record batch v2 header. All integers are big endian, as
// on the wire. baseOffset, batchLength, partitionLeaderEpoch, magic and crc
// lie outside the CRC, so the log can set baseOffset and the epoch without
// recomputing it.
const (
	// BatchHeaderSize is the fixed size of a v2 batch header, records excluded.
	BatchHeaderSize = 61

	offBaseOffset      = 0
	offBatchLength     = 8
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
	offRecordCount     = 57

	// batchLengthOverhead is what precedes the part batchLength counts.
	batchLengthOverhead = 12
)

// Attribute bits of a v2 batch.
const (
	attrCompression   = 0x07
	attrLogAppendTime = 0x08
	attrTransactional = 0x10
	attrControl       = 0x20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// BatchHeader is the decoded fixed header of a record batch v2.
type BatchHeader struct {
	BaseOffset           int64
	Length               int32 // the batchLength field: bytes after it
	PartitionLeaderEpoch int32
	Magic                int8
	CRC                  uint32
	Attributes           int16
	LastOffsetDelta      int32
	BaseTimestamp        int64
	MaxTimestamp         int64
	ProducerID           int64
	ProducerEpoch        int16
	BaseSequence         int32
	NumRecords           int32
}

// Size is the batch's whole size in bytes, header included.
func (h BatchHeader) Size() int { return batchLengthOverhead + int(h.Length) }

// LastOffset is the offset of the batch's last record.
func (h BatchHeader) LastOffset() int64 { return h.BaseOffset + int64(h.LastOffsetDelta) }

// Compression is the codec number: 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd.
func (h BatchHeader) Compression() int { return int(h.Attributes & attrCompression) }

// LogAppendTime reports whether the timestamps are the broker's append time.
func (h BatchHeader) LogAppendTime() bool { return h.Attributes&attrLogAppendTime != 0 }

// Transactional reports whether the batch belongs to a transaction.
func (h BatchHeader) Transactional() bool { return h.Attributes&attrTransactional != 0 }

// Control reports whether the batch is a control batch (transaction marker).
func (h BatchHeader) Control() bool { return h.Attributes&attrControl != 0 }

// Idempotent reports whether the batch carries a producer id and sequence
// that the log checks for duplicates and gaps.
func (h BatchHeader) Idempotent() bool { return h.ProducerID >= 0 && h.BaseSequence >= 0 }

// ParseBatchHeader decodes the fixed header at the start of b. It checks
// only what the header itself says (length and magic), not the CRC: b may
// hold just the header.
func ParseBatchHeader(b []byte) (BatchHeader, error) {
	if len(b) < BatchHeaderSize {
		return BatchHeader{}, ErrCorrupt
	}
	h := BatchHeader{
		BaseOffset:           int64(binary.BigEndian.Uint64(b[offBaseOffset:])),
		Length:               int32(binary.BigEndian.Uint32(b[offBatchLength:])),
		PartitionLeaderEpoch: int32(binary.BigEndian.Uint32(b[offLeaderEpoch:])),
		Magic:                int8(b[offMagic]),
		CRC:                  binary.BigEndian.Uint32(b[offCRC:]),
		Attributes:           int16(binary.BigEndian.Uint16(b[offAttributes:])),
		LastOffsetDelta:      int32(binary.BigEndian.Uint32(b[offLastOffsetDelta:])),
		BaseTimestamp:        int64(binary.BigEndian.Uint64(b[offBaseTimestamp:])),
		MaxTimestamp:         int64(binary.BigEndian.Uint64(b[offMaxTimestamp:])),
		ProducerID:           int64(binary.BigEndian.Uint64(b[offProducerID:])),
		ProducerEpoch:        int16(binary.BigEndian.Uint16(b[offProducerEpoch:])),
		BaseSequence:         int32(binary.BigEndian.Uint32(b[offBaseSequence:])),
		NumRecords:           int32(binary.BigEndian.Uint32(b[offRecordCount:])),
	}
	if h.Magic != 2 || h.Length < BatchHeaderSize-batchLengthOverhead || h.LastOffsetDelta < 0 {
		return h, ErrCorrupt
	}
	return h, nil
}

// checkBatch verifies the batch at the start of b wholly (header, length
// within b and at most max, CRC) and returns its header.
func checkBatch(b []byte, max int) (BatchHeader, error) {
	h, err := ParseBatchHeader(b)
	if err != nil {
		return h, err
	}
	n := h.Size()
	if n > len(b) {
		return h, ErrCorrupt
	}
	if n > max {
		return h, ErrBatchTooLarge
	}
	if crc32Checksum(b[offAttributes:n]) != h.CRC {
		return h, ErrCorrupt
	}
	return h, nil
}

// setBatchOffsets writes baseOffset and partitionLeaderEpoch into the batch
// at the start of b; both lie outside the CRC.
func setBatchOffsets(b []byte, base int64, epoch int32) {
	binary.BigEndian.PutUint64(b[offBaseOffset:], uint64(base))
	binary.BigEndian.PutUint32(b[offLeaderEpoch:], uint32(epoch))
}

func crc32Checksum(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }
