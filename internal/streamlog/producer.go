package streamlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"sort"

	"github.com/warren-mq/warren/internal/recordbatch"
)

// Idempotent producers and transactions.
//
// The writer keeps, per producer id, its epoch, the sequence numbers and
// offsets of its last five batches (Kafka's max.in.flight window) and the
// first offset of its open transaction. At each roll it writes this state
// as of the new segment's base offset to <base>.snap; Open loads the
// active segment's snapshot and replays the active segment on it, so the
// state is rebuilt from at most one segment's scan. A log without that
// snapshot (written by an older Warren, or whose first segment is active)
// knows only the producers of its last segment; an unknown producer's
// first batch is accepted whatever its sequence, as Kafka does since
// KIP-360.
//
// Aborted transactions are kept in memory, sorted by their abort marker's
// offset, and on disk per segment in <base>.txn (the segment holding the
// marker): entries of producer id i64 | first offset i64 | marker offset
// i64, little endian. An entry is written and synced before its marker is
// written, so a durable marker always has its entry; entries past the
// recovered end of the log are dropped at Open.

const (
	txnSuffix     = ".txn"
	snapSuffix    = ".snap"
	txnEntrySize  = 24
	producerBatch = 5 // batches remembered per producer for duplicates
)

var snapMagic = [4]byte{'W', 'S', 'P', 'S'}

// seqBatch is one remembered batch of a producer.
type seqBatch struct {
	firstSeq, lastSeq int32
	base, last        int64
}

type producerState struct {
	epoch    int16
	batches  []seqBatch // oldest first, at most producerBatch
	txnFirst int64      // first offset of the open transaction, -1 if none
}

// producers is the writer's producer and transaction state.
type producers struct {
	byID    map[int64]*producerState
	open    map[int64]int64 // producer id -> first offset of its open transaction
	aborted []AbortedTxn    // sorted by LastOffset
}

func newProducers() producers {
	return producers{byID: map[int64]*producerState{}, open: map[int64]int64{}}
}

// lso is the first offset of the earliest open transaction, or next.
func (p *producers) lso(next int64) int64 {
	for _, first := range p.open {
		next = min(next, first)
	}
	return next
}

func nextSeq(s int32) int32 {
	if s == math.MaxInt32 {
		return 0
	}
	return s + 1
}

func lastSeq(h recordbatch.BatchHeader) int32 {
	return int32((int64(h.BaseSequence) + int64(h.LastOffsetDelta)) % (math.MaxInt32 + 1))
}

// check checks an append's batch against its producer's state: a duplicate
// of one of its last batches returns the original offsets and true.
func (p *producers) check(hdrs []recordbatch.BatchHeader) (AppendResult, bool, error) {
	if len(hdrs) != 1 || hdrs[0].ProducerID < 0 {
		return AppendResult{}, false, nil
	}
	h := hdrs[0]
	st := p.byID[h.ProducerID]
	if st == nil {
		return AppendResult{}, false, nil
	}
	if h.ProducerEpoch < st.epoch {
		return AppendResult{}, false, ErrInvalidProducerEpoch
	}
	if h.Control() || h.BaseSequence < 0 {
		return AppendResult{}, false, nil
	}
	if h.ProducerEpoch > st.epoch {
		if h.BaseSequence != 0 {
			return AppendResult{}, false, ErrOutOfOrderSequence
		}
		return AppendResult{}, false, nil
	}
	last := lastSeq(h)
	for _, b := range st.batches {
		if b.firstSeq == h.BaseSequence && b.lastSeq == last {
			return AppendResult{BaseOffset: b.base, LastOffset: b.last, Duplicate: true}, true, nil
		}
	}
	if n := len(st.batches); n > 0 && h.BaseSequence != nextSeq(st.batches[n-1].lastSeq) {
		return AppendResult{}, false, ErrOutOfOrderSequence
	}
	return AppendResult{}, false, nil
}

// record updates the state for a batch written at h.BaseOffset; batch is
// its bytes (for a control batch's type). It returns the transaction a
// control batch aborted, if any.
func (p *producers) record(h recordbatch.BatchHeader, batch []byte) (AbortedTxn, bool) {
	if h.ProducerID < 0 {
		return AbortedTxn{}, false
	}
	st := p.byID[h.ProducerID]
	if st == nil {
		st = &producerState{epoch: h.ProducerEpoch, txnFirst: -1}
		p.byID[h.ProducerID] = st
	}
	if h.ProducerEpoch > st.epoch {
		st.epoch, st.batches = h.ProducerEpoch, st.batches[:0]
	}
	if h.Control() {
		if st.txnFirst < 0 {
			return AbortedTxn{}, false
		}
		first := st.txnFirst
		st.txnFirst = -1
		delete(p.open, h.ProducerID)
		if commit, err := controlCommit(batch); err == nil && !commit {
			return AbortedTxn{ProducerID: h.ProducerID, FirstOffset: first, LastOffset: h.BaseOffset}, true
		}
		return AbortedTxn{}, false
	}
	if h.BaseSequence >= 0 {
		if len(st.batches) == producerBatch {
			st.batches = append(st.batches[:0], st.batches[1:]...)
		}
		st.batches = append(st.batches, seqBatch{h.BaseSequence, lastSeq(h), h.BaseOffset, h.LastOffset()})
	}
	if h.Transactional() && st.txnFirst < 0 {
		st.txnFirst = h.BaseOffset
		p.open[h.ProducerID] = h.BaseOffset
	}
	return AbortedTxn{}, false
}

// LastStableOffset is the first offset of the earliest open transaction,
// or NextOffset() if none is open: read_committed consumers read below it.
// It is never below StartOffset() (a transaction whose start retention
// removed holds it there until it ends).
func (l *Log) LastStableOffset() int64 { return l.view.Load().lso }

// AbortedTxns returns the aborted transactions with records in [from, to):
// those whose marker is at or after from and whose first offset is before to.
func (l *Log) AbortedTxns(from, to int64) []AbortedTxn {
	ab := l.view.Load().aborted
	i := sort.Search(len(ab), func(i int) bool { return ab[i].LastOffset >= from })
	var out []AbortedTxn
	for _, a := range ab[i:] {
		if a.FirstOffset < to {
			out = append(out, a)
		}
	}
	return out
}

// writeAborted appends a to the active segment's transaction index and
// syncs it, before the marker itself is written.
func (l *Log) writeAborted(a AbortedTxn) error {
	w := &l.w
	if w.txnF == nil {
		f, err := os.OpenFile(segName(l.dir, w.seg.base, txnSuffix), os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return err
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return err
		}
		w.txnF, w.txnSize = f, fi.Size()/txnEntrySize*txnEntrySize
	}
	if _, err := w.txnF.WriteAt(appendAbortedEntry(nil, a), w.txnSize); err != nil {
		return err
	}
	if err := fdatasync(w.txnF); err != nil {
		return err
	}
	w.txnSize += txnEntrySize
	return nil
}

func appendAbortedEntry(b []byte, a AbortedTxn) []byte {
	b = binary.LittleEndian.AppendUint64(b, uint64(a.ProducerID))
	b = binary.LittleEndian.AppendUint64(b, uint64(a.FirstOffset))
	return binary.LittleEndian.AppendUint64(b, uint64(a.LastOffset))
}

// readAborted reads a segment's transaction index, keeping entries whose
// marker lies before end; missing is empty.
func readAborted(path string, end int64) ([]AbortedTxn, bool, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	var out []AbortedTxn
	cut := len(b)%txnEntrySize != 0
	for ; len(b) >= txnEntrySize; b = b[txnEntrySize:] {
		a := AbortedTxn{
			ProducerID:  int64(binary.LittleEndian.Uint64(b)),
			FirstOffset: int64(binary.LittleEndian.Uint64(b[8:])),
			LastOffset:  int64(binary.LittleEndian.Uint64(b[16:])),
		}
		if a.LastOffset >= end {
			cut = true
			break
		}
		out = append(out, a)
	}
	return out, cut, nil
}

// writeSnapshot writes the producer state as of offset base to
// <base>.snap: header, then count u32 | crc32c u32 of what follows, then
// per producer: id i64 | epoch i16 | open txn first offset i64 | n u8 |
// n × (first seq i32 | last seq i32 | base offset i64 | last offset i64).
// Producers with nothing left in the log (no open transaction, last batch
// below start) are dropped.
func (l *Log) writeSnapshot(base, start int64) error {
	p := &l.w.prod
	var body []byte
	n := 0
	for id, st := range p.byID {
		if st.txnFirst < 0 && (len(st.batches) == 0 || st.batches[len(st.batches)-1].last < start) {
			delete(p.byID, id)
			continue
		}
		n++
		body = binary.LittleEndian.AppendUint64(body, uint64(id))
		body = binary.LittleEndian.AppendUint16(body, uint16(st.epoch))
		body = binary.LittleEndian.AppendUint64(body, uint64(st.txnFirst))
		body = append(body, byte(len(st.batches)))
		for _, b := range st.batches {
			body = binary.LittleEndian.AppendUint32(body, uint32(b.firstSeq))
			body = binary.LittleEndian.AppendUint32(body, uint32(b.lastSeq))
			body = binary.LittleEndian.AppendUint64(body, uint64(b.base))
			body = binary.LittleEndian.AppendUint64(body, uint64(b.last))
		}
	}
	b := appendFileHeader(nil, snapMagic, base)
	b = binary.LittleEndian.AppendUint32(b, uint32(n))
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(body, castagnoli))
	b = append(b, body...)
	return writeFileAtomic(segName(l.dir, base, snapSuffix), b)
}

// readSnapshot loads <base>.snap into a fresh state; false if it is missing.
func readSnapshot(path string, base int64) (producers, bool, error) {
	p := newProducers()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return p, false, nil
	}
	if err != nil {
		return p, false, err
	}
	if err := parseFileHeader(b, snapMagic, base); err != nil {
		return p, false, err
	}
	b = b[fileHeaderSize:]
	if len(b) < 8 {
		return p, false, io.ErrUnexpectedEOF
	}
	n := binary.LittleEndian.Uint32(b)
	if crc32.Checksum(b[8:], castagnoli) != binary.LittleEndian.Uint32(b[4:]) {
		return p, false, fmt.Errorf("streamlog: %s: checksum mismatch", path)
	}
	b = b[8:]
	for range n {
		if len(b) < 19 {
			return p, false, io.ErrUnexpectedEOF
		}
		id := int64(binary.LittleEndian.Uint64(b))
		st := &producerState{epoch: int16(binary.LittleEndian.Uint16(b[8:])), txnFirst: int64(binary.LittleEndian.Uint64(b[10:]))}
		k := int(b[18])
		b = b[19:]
		if k > producerBatch || len(b) < k*24 {
			return p, false, io.ErrUnexpectedEOF
		}
		for range k {
			st.batches = append(st.batches, seqBatch{
				int32(binary.LittleEndian.Uint32(b)), int32(binary.LittleEndian.Uint32(b[4:])),
				int64(binary.LittleEndian.Uint64(b[8:])), int64(binary.LittleEndian.Uint64(b[16:])),
			})
			b = b[24:]
		}
		p.byID[id] = st
		if st.txnFirst >= 0 {
			p.open[id] = st.txnFirst
		}
	}
	return p, true, nil
}

// writeFileAtomic writes a whole file: temporary file, sync, rename.
func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = fdatasync(f)
	}
	if err = errors.Join(err, f.Close()); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}
