package store

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
)

// Segment summaries (see doc.go): when the syncer seals a segment it writes
// NNNNNNNN.sum, the runs Open would find scanning it, so that Open reads a
// few bytes instead of the segment. A missing or invalid summary, or one
// whose segment size does not match, only means the segment is scanned.

const recSummary byte = 7 // the one record of a .sum file

// sumVersion is the summary format: 2 added each run's recno range. A
// summary of another version counts as missing.
const sumVersion = 2

var sumMagic = [4]byte{'W', 'S', 'U', 'M'}

// sumHead is what a summary says about its segment as a whole; the syncer
// (segSum) and a scan at Open (segLoad) both collect it.
type sumHead struct {
	recno    uint64 // next recno as far as the segment knows
	messages int
	bytes    int64
	lastOff  int64   // where its last record starts
	lastHdr  [8]byte // and that record's length and crc: Open checks them
}

// note counts one record of the segment (rec, encoded, at off).
func (h *sumHead) note(off int64, rec []byte, recno uint64) {
	h.lastOff, h.lastHdr = off, [8]byte(rec[:8])
	h.messages++
	h.bytes += int64(len(rec))
	h.recno = max(h.recno, recno+1)
}

// segSum collects a segment's summary while the syncer writes it.
type segSum struct {
	sumHead
	size    int64 // the segment's size, once sealed
	queues  map[qkey]*loadQueue
	order   []*loadQueue
	lastKey qkey
	last    *loadQueue
}

func newSegSum(base uint64) *segSum {
	return &segSum{sumHead: sumHead{recno: base}, queues: map[qkey]*loadQueue{}}
}

// add notes one record written to the segment (rec, encoded), whose data
// weighs weight (Options.Weigh).
func (ss *segSum) add(seg *segment, it *item, rec []byte, weight int64) {
	ss.note(int64(it.off), rec, it.recno)
	if it.flags&flagTransient != 0 {
		return
	}
	q := ss.last
	if q == nil || it.key != ss.lastKey {
		if q = ss.queues[it.key]; q == nil {
			q = &loadQueue{key: it.key}
			ss.queues[it.key] = q
			ss.order = append(ss.order, q)
		}
		ss.last, ss.lastKey = q, it.key
	}
	q.runs = addToRuns(q.runs, seg, int64(it.off), int64(it.size), it.id, it.recno, weight)
}

// addToRuns extends a queue's last run in a segment with its next persistent
// record, or starts a new one where the IDs stop increasing: what Open's
// scan and the summaries both build.
func addToRuns(runs []*run, seg *segment, off, size int64, id, recno uint64, weight int64) []*run {
	if n := len(runs); n > 0 && runs[n-1].lastID < id {
		r := runs[n-1]
		r.end, r.lastID = off+size, id
		r.count++
		r.bytes += weight
		r.recBytes += size
		if recno <= r.hiRecno {
			r.recnoAsc = false // a compaction copy
		}
		r.loRecno, r.hiRecno = min(r.loRecno, recno), max(r.hiRecno, recno)
		return runs
	}
	return append(runs, &run{seg: seg, start: off, end: off + size, firstID: id, minID: id, lastID: id,
		count: 1, bytes: weight, recBytes: size, kind: runFresh, loRecno: recno, hiRecno: recno, recnoAsc: true})
}

func (s *File) sumPath(num uint32) string {
	return filepath.Join(s.dir, strings.TrimSuffix(filepath.Base(s.segPath(num)), ".seg")+".sum")
}

// encodeSummary encodes a sealed segment's summary file: h about the
// segment, then the runs of each queue in order.
func encodeSummary(num uint32, size int64, h *sumHead, order []*loadQueue) []byte {
	b := append(sumMagic[:len(sumMagic):len(sumMagic)], 0, 0, 0, 0)
	binary.LittleEndian.PutUint32(b[4:], sumVersion)
	b, start := beginRecord(b, recSummary)
	b = binary.LittleEndian.AppendUint32(b, num)
	b = binary.LittleEndian.AppendUint64(b, uint64(size))
	b = binary.LittleEndian.AppendUint64(b, h.recno)
	b = binary.LittleEndian.AppendUint64(b, uint64(h.lastOff))
	b = append(b, h.lastHdr[:]...)
	b = binary.AppendUvarint(b, uint64(h.messages))
	b = binary.AppendUvarint(b, uint64(h.bytes))
	b = binary.AppendUvarint(b, uint64(len(order)))
	for _, q := range order {
		b = append(b, byte(len(q.key.vhost)))
		b = append(b, q.key.vhost...)
		b = append(b, byte(len(q.key.queue)))
		b = append(b, q.key.queue...)
		b = binary.AppendUvarint(b, uint64(len(q.runs)))
		for _, r := range q.runs {
			var flags uint64
			if r.recnoAsc {
				flags |= sumRecnoAsc
			}
			for _, v := range []uint64{uint64(r.start), uint64(r.end - r.start), r.firstID, r.lastID - r.firstID,
				uint64(r.count), uint64(r.bytes), uint64(r.recBytes), r.loRecno, r.hiRecno - r.loRecno, flags} {
				b = binary.AppendUvarint(b, v)
			}
		}
	}
	endRecord(b, start)
	return b
}

// sumRecnoAsc is the run flag for recnoAsc.
const sumRecnoAsc = 1

var errSummary = errors.New("store: invalid segment summary")

// errSummaryVersion is a summary of another format version: not an error
// worth a warning (the segment is scanned, and summarised again).
var errSummaryVersion = errors.New("store: segment summary of another version")

// decodeSummary checks a summary file against its segment (number, size,
// the header of its last record) and fills l with its runs.
func decodeSummary(b []byte, seg *segment, size int64, l *segLoad) error {
	if len(b) < logHeaderSize || [4]byte(b[:4]) != sumMagic {
		return errSummary
	}
	if binary.LittleEndian.Uint32(b[4:]) != sumVersion {
		return errSummaryVersion
	}
	typ, p, err := checkRecord(b[logHeaderSize:])
	if err != nil || typ != recSummary || len(p) < 36 {
		return errSummary
	}
	if binary.LittleEndian.Uint32(p) != seg.num || int64(binary.LittleEndian.Uint64(p[4:])) != size {
		return errSummary
	}
	// The segment must still end with the record the summary saw last (a
	// segment cut and written again to the same size would not).
	lastOff := int64(binary.LittleEndian.Uint64(p[20:]))
	var hdr [8]byte
	if lastOff < segHeaderSize || lastOff+8 > size || readFull(seg.f, hdr[:], lastOff) != nil || hdr != [8]byte(p[28:36]) ||
		lastOff+recHeader+int64(binary.LittleEndian.Uint32(hdr[:])) != size {
		return errSummary
	}
	next := binary.LittleEndian.Uint64(p[12:])
	l.recno = max(l.recno, next)
	p = p[36:]
	bad := false
	uv := func() uint64 {
		v, n := binary.Uvarint(p)
		if n <= 0 {
			bad = true
			return 0
		}
		p = p[n:]
		return v
	}
	name := func() []byte {
		if len(p) < 1 || len(p) < 1+int(p[0]) {
			bad = true
			return nil
		}
		v := p[1 : 1+int(p[0])]
		p = p[1+int(p[0]):]
		return v
	}
	l.messages = int(uv())
	l.bytes = int64(uv())
	nq := uv()
	for i := uint64(0); i < nq && !bad; i++ {
		vhost, queue := name(), name()
		nr := uv()
		if bad || nr == 0 || nr > uint64(size) {
			return errSummary
		}
		q := l.queue(vhost, queue)
		for j := uint64(0); j < nr && !bad; j++ {
			r := &run{seg: seg, kind: runFresh}
			r.start = int64(uv())
			r.end = r.start + int64(uv())
			r.firstID = uv()
			r.lastID = r.firstID + uv()
			r.minID = r.firstID
			r.count = int(uv())
			r.bytes = int64(uv())
			r.recBytes = int64(uv())
			r.loRecno = uv()
			r.hiRecno = r.loRecno + uv()
			flags := uv()
			r.recnoAsc = flags&sumRecnoAsc != 0
			if r.start < segHeaderSize || r.end > size || r.end <= r.start || r.count < 1 || r.recBytes > r.end-r.start ||
				r.lastID < r.firstID || r.hiRecno < r.loRecno || r.hiRecno >= next || flags&^sumRecnoAsc != 0 {
				return errSummary
			}
			if n := len(q.runs); n > 0 && q.runs[n-1].end > r.start {
				return errSummary
			}
			q.runs = append(q.runs, r)
		}
	}
	if bad || len(p) != 0 {
		return errSummary
	}
	return nil
}

// loadSummary fills l from the segment's summary, if it has a valid one.
func (s *File) loadSummary(seg *segment, size int64, l *segLoad) bool {
	b, err := os.ReadFile(s.sumPath(seg.num))
	if err != nil {
		return false
	}
	if err := decodeSummary(b, seg, size, l); err != nil {
		if err == errSummaryVersion {
			s.log.Debug("store: segment summary of another version, scanning the segment", "segment", seg.num)
		} else {
			s.log.Warn("store: ignoring invalid segment summary, scanning the segment", "segment", seg.num)
		}
		clear(l.queues)
		l.order, l.last = nil, nil
		return false
	}
	return true
}

// writeSummaries writes the summaries of segments sealed in the last round
// (after the round's writes succeeded: a rollback would have changed them).
// A summary that cannot be written is only a slower Open.
func (s *File) writeSummaries() {
	for _, seg := range s.w.sealed {
		ss := seg.sum
		seg.sum = nil
		if ss == nil {
			continue
		}
		s.writeSummary(seg.num, encodeSummary(seg.num, ss.size, &ss.sumHead, ss.order))
	}
	s.w.sealed = s.w.sealed[:0]
}

// writeSummary writes one summary file: temporary file, fdatasync unless
// SyncNever, rename. A failure is logged at debug level only.
func (s *File) writeSummary(num uint32, b []byte) {
	tmp := s.sumPath(num) + ".tmp"
	err := os.WriteFile(tmp, b, 0o644)
	if err == nil && s.opts.Sync != SyncNever {
		err = syncPath(tmp)
	}
	if err == nil {
		err = os.Rename(tmp, s.sumPath(num))
	}
	if err != nil {
		os.Remove(tmp)
		s.log.Debug("store: segment summary not written", "segment", num, "err", err)
	}
}

func syncPath(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	err = fdatasync(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
