package streamlog

import "github.com/warren-mq/warren/internal/recordbatch"

// The batch format (header layout, parsing, CRC, the record encoding) is
// internal/recordbatch's; the log adds its limits and its own errors
// (ErrCorrupt, ErrBatchTooLarge) on top.

// peekHeader decodes the batch header at the start of b, which may hold only
// the header, as recordbatch.PeekHeader does, failing with ErrCorrupt.
func peekHeader(b []byte) (recordbatch.BatchHeader, error) {
	h, err := recordbatch.PeekHeader(b)
	if err != nil {
		return h, ErrCorrupt
	}
	return h, nil
}

// batchHeader decodes the header of the batch at the start of b and checks
// that the batch lies wholly in b and is at most max bytes, not its CRC.
func batchHeader(b []byte, max int) (recordbatch.BatchHeader, error) {
	h, err := recordbatch.ParseHeader(b)
	if err != nil {
		return h, ErrCorrupt
	}
	if h.Size() > max {
		return h, ErrBatchTooLarge
	}
	return h, nil
}

// checkBatch verifies the batch at the start of b wholly (header, length
// within b and at most max, CRC) and returns its header.
func checkBatch(b []byte, max int) (recordbatch.BatchHeader, error) {
	h, err := batchHeader(b, max)
	if err == nil && recordbatch.CheckCRC(b, &h) != nil {
		err = ErrCorrupt
	}
	return h, err
}

// setBatchOffsets writes baseOffset and partitionLeaderEpoch into the batch
// at the start of b; both lie outside the CRC.
func setBatchOffsets(b []byte, base int64, epoch int32) {
	recordbatch.SetBaseOffset(b, base)
	recordbatch.SetPartitionLeaderEpoch(b, epoch)
}

// checkRecords checks a producer's batch b (exactly one batch, whose header
// batchHeader returned as h) beyond its header: the CRC, and for an
// uncompressed batch its records, with offset deltas 0..n-1 as producers
// write them. A control batch must be uncompressed and its first record a
// commit or abort marker. Compressed records are not decompressed here;
// readers check them as they decode.
func checkRecords(b []byte, h recordbatch.BatchHeader) error {
	if h.Compression() != recordbatch.None {
		if h.Control() || recordbatch.CheckCRC(b, &h) != nil {
			return ErrCorrupt
		}
		return nil
	}
	var it recordbatch.Iterator
	if it.Reset(b, len(b)) != nil {
		return ErrCorrupt
	}
	var r recordbatch.Record
	for i := int32(0); it.NextNoHeaders(&r); i++ {
		if r.OffsetDelta != i {
			return ErrCorrupt
		}
		if i == 0 && h.Control() {
			if _, ok, err := recordbatch.ParseControl(&r); !ok || err != nil {
				return ErrCorrupt
			}
		}
	}
	if it.Err() != nil {
		return ErrCorrupt
	}
	return nil
}

// controlCommit reports whether the control batch b (checked when it was
// appended) is a commit marker rather than an abort.
func controlCommit(b []byte) (bool, error) {
	var it recordbatch.Iterator
	var r recordbatch.Record
	if it.Reset(b, len(b)) != nil || !it.Header().Control() || !it.Next(&r) {
		return false, ErrCorrupt
	}
	m, ok, err := recordbatch.ParseControl(&r)
	if !ok || err != nil {
		return false, ErrCorrupt
	}
	return m.Commit, nil
}
