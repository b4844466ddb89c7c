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

var sumMagic = [4]byte{'W', 'S', 'U', 'M'}

// segSum collects a segment's summary while the syncer writes it.
type segSum struct {
	recno    uint64 // next recno as far as the segment knows
	messages int
	bytes    int64
	size     int64   // the segment's size, once sealed
	lastOff  int64   // where its last record starts
	lastHdr  [8]byte // and that record's length and crc: Open checks them
	queues   map[qkey]*loadQueue
	order    []*loadQueue
	lastKey  qkey
	last     *loadQueue
}

func newSegSum(base uint64) *segSum {
	return &segSum{recno: base, queues: map[qkey]*loadQueue{}}
}

// add notes one record written to the segment (rec, encoded).
func (ss *segSum) add(seg *segment, it *item, rec []byte) {
	ss.lastOff, ss.lastHdr = int64(it.off), [8]byte(rec[:8])
	ss.messages++
	ss.bytes += int64(it.size)
	ss.recno = max(ss.recno, it.recno+1)
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
	q.runs = addToRuns(q.runs, seg, int64(it.off), int64(it.size), it.id, int64(len(it.data)))
}

// addToRuns extends a queue's last run in a segment with its next persistent
// record, or starts a new one where the IDs stop increasing: what Open's
// scan and the summaries both build.
func addToRuns(runs []*run, seg *segment, off, size int64, id uint64, data int64) []*run {
	if n := len(runs); n > 0 && runs[n-1].lastID < id {
		r := runs[n-1]
		r.end, r.lastID = off+size, id
		r.count++
		r.bytes += data
		r.recBytes += size
		return runs
	}
	return append(runs, &run{seg: seg, start: off, end: off + size, firstID: id, minID: id, lastID: id,
		count: 1, bytes: data, recBytes: size, kind: runFresh})
}

func (s *File) sumPath(num uint32) string {
	return filepath.Join(s.dir, strings.TrimSuffix(filepath.Base(s.segPath(num)), ".seg")+".sum")
}

// encodeSummary encodes a sealed segment's summary file.
func encodeSummary(num uint32, size int64, ss *segSum) []byte {
	b := appendLogHeader(nil, sumMagic)
	b, start := beginRecord(b, recSummary)
	b = binary.LittleEndian.AppendUint32(b, num)
	b = binary.LittleEndian.AppendUint64(b, uint64(size))
	b = binary.LittleEndian.AppendUint64(b, ss.recno)
	b = binary.LittleEndian.AppendUint64(b, uint64(ss.lastOff))
	b = append(b, ss.lastHdr[:]...)
	b = binary.AppendUvarint(b, uint64(ss.messages))
	b = binary.AppendUvarint(b, uint64(ss.bytes))
	b = binary.AppendUvarint(b, uint64(len(ss.order)))
	for _, q := range ss.order {
		b = append(b, byte(len(q.key.vhost)))
		b = append(b, q.key.vhost...)
		b = append(b, byte(len(q.key.queue)))
		b = append(b, q.key.queue...)
		b = binary.AppendUvarint(b, uint64(len(q.runs)))
		for _, r := range q.runs {
			for _, v := range []uint64{uint64(r.start), uint64(r.end - r.start), r.firstID, r.lastID - r.firstID,
				uint64(r.count), uint64(r.bytes), uint64(r.recBytes)} {
				b = binary.AppendUvarint(b, v)
			}
		}
	}
	endRecord(b, start)
	return b
}

var errSummary = errors.New("store: invalid segment summary")

// decodeSummary checks a summary file against its segment (number, size,
// the header of its last record) and fills l with its runs.
func decodeSummary(b []byte, seg *segment, size int64, l *segLoad) error {
	if parseLogHeader(b, sumMagic) != nil {
		return errSummary
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
	l.recno = max(l.recno, binary.LittleEndian.Uint64(p[12:]))
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
			if r.start < segHeaderSize || r.end > size || r.end <= r.start || r.count < 1 || r.recBytes > r.end-r.start || r.lastID < r.firstID {
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
		s.log.Warn("store: ignoring invalid segment summary, scanning the segment", "segment", seg.num)
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
		b := encodeSummary(seg.num, ss.size, ss)
		tmp := s.sumPath(seg.num) + ".tmp"
		err := os.WriteFile(tmp, b, 0o644)
		if err == nil && s.opts.Sync != SyncNever {
			err = syncPath(tmp)
		}
		if err == nil {
			err = os.Rename(tmp, s.sumPath(seg.num))
		}
		if err != nil {
			os.Remove(tmp)
			s.log.Debug("store: segment summary not written", "segment", seg.num, "err", err)
		}
	}
	s.w.sealed = s.w.sealed[:0]
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
