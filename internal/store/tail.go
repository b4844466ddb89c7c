package store

import (
	"fmt"
	"io"
	"slices"
)

// Queue tails (see doc.go): a queue's backlog held as runs, nothing per record.

// run is a stretch of one queue's records in one segment: tail records
// (qindex.tail) or records found at Open that no Recover has handed out yet
// (qindex.fresh). Its members lie in [start, end) in file order with
// increasing IDs; other records in between (other queues, dead ones) are
// skipped when it is read. Tens of bytes, however many records it holds.
type run struct {
	seg        *segment
	start, end int64 // offset of the first member left, end of the last
	// Members have IDs in [minID, lastID]; minID moves up as they are taken.
	firstID, minID, lastID uint64
	count                  int   // members left
	bytes                  int64 // their weight (Options.Weigh of TailRecord.Data)
	recBytes               int64 // their record bytes (segment.liveBytes)
	kind                   runKind
	// Members' recnos are in [loRecno, hiRecno] (fresh and recovered runs:
	// Recover tells a run without acked records from the ack log's sorted
	// recnos, and converts it without reading); recnoAsc says they increase
	// in file order (no compaction copies among them), so that the rest of
	// a run partly taken has recnos above the last one taken.
	loRecno, hiRecno uint64
	recnoAsc         bool
	// skip lists, in a recovered tail run, the offsets of other records of
	// the queue inside it that are not members although their IDs are in
	// range (acked before the restart, duplicates, window records).
	skip []uint32
	// deliv lists the recnos of members marked delivered in the ack log
	// (rather than by their record's flag), sorted.
	deliv []uint64
}

type runKind uint8

const (
	// runTail: tail records written by this store's life. Between its
	// members no other record of the queue has an ID in range: tail IDs
	// only grow and window IDs are below them.
	runTail runKind = iota
	// runRecovered: tail records Recover put there; members are persistent
	// and skip names the rest.
	runRecovered
	// runFresh: persistent records at Open; those the ack log had acked
	// (File.openAcked) are not members, and Recover drops them as it meets
	// them.
	runFresh
)

// member is one record a runReader found.
type member struct {
	h         msgHeader
	data      []byte
	off, size int64
	delivered bool
}

// runReader reads the members of a run sequentially from its segment, in
// large reads through the scanner that recovery uses.
type runReader struct {
	r      *run // a copy where the run may change meanwhile (ReadTail)
	key    qkey
	sc     *scanner
	acked  []uint64 // runFresh: File.openAcked
	deliv  []uint64 // runFresh: File.openDeliv; else the run's own
	skipAt int      // runRecovered: next index into r.skip
	// skipped lists the offsets of the queue's non-members since the last
	// member; dead those of them a fresh run counted (acked at Open).
	skipped []uint32
	dead    []member
	cur     member
}

// runReadMax bounds the reads of a run read on its own (ReadTail, DropTail,
// DeleteQueue): large sequential reads, one run at a time.
const runReadMax = 4 << 20

// newRunReader reads r's members; want estimates how many are needed, so
// that a short read does not fetch a whole segment, and its reads are at
// most maxRead bytes (more only for a record larger than that). acked and
// deliv are File.openAcked and openDeliv, for a fresh run.
func newRunReader(r *run, key qkey, want int, acked, deliv []uint64, buf []byte, maxRead int64) *runReader {
	span := r.end - r.start
	if want < r.count && r.count > 0 {
		span = span/int64(r.count)*int64(want)*5/4 + 64<<10
	}
	size := int(min(max(span, 64<<10), maxRead, r.end-r.start))
	var offs []uint32
	indexed := false
	if r.count > 0 && (r.end-r.start)/int64(r.count) >= idxMinGap && r.recBytes*4 < r.end-r.start {
		// Few of the span's records are the queue's: read only those.
		if offs, indexed = r.seg.keyOffsets(key, r.start, r.end); indexed {
			size = idxReadSize
		}
	}
	if cap(buf) < size || cap(buf) > 2*size+(1<<20) {
		buf = make([]byte, 0, size)
	}
	if indexed {
		buf = buf[:0:size] // the scanner reads cap(buf) at a time
	}
	rr := &runReader{r: r, key: key, sc: newScanner(r.seg.f, r.start, r.end, buf[:0]), acked: acked, deliv: deliv}
	rr.sc.indexed, rr.sc.offs = indexed, offs
	if r.kind != runFresh {
		rr.deliv = r.deliv
	}
	rr.skipAt, _ = slices.BinarySearch(r.skip, uint32(r.start))
	return rr
}

// next moves to the next member; false at the end of the run. A run whose
// records cannot be read back as they were written is an error.
func (rr *runReader) next() (bool, error) {
	rr.skipped, rr.dead = rr.skipped[:0], rr.dead[:0]
	for {
		rec, off, err := rr.sc.next()
		if err == io.EOF {
			if rr.sc.pos < rr.r.end {
				return false, fmt.Errorf("store: segment %d unreadable at %d: %w", rr.r.seg.num, rr.sc.pos, errCorrupt)
			}
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("store: segment %d: %w", rr.r.seg.num, err)
		}
		h, data, err := decodeMessage(rec[recHeader+1:])
		if err != nil || rec[recHeader] != recMessage {
			return false, fmt.Errorf("store: segment %d at %d: %w", rr.r.seg.num, off, errCorrupt)
		}
		if string(h.queue) != rr.key.queue || string(h.vhost) != rr.key.vhost {
			continue
		}
		m := member{h: h, data: data, off: off, size: int64(len(rec))}
		if !rr.isMember(h, off) {
			rr.skipped = append(rr.skipped, uint32(off))
			if rr.r.kind == runFresh && h.flags&flagTransient == 0 {
				rr.dead = append(rr.dead, m)
			}
			continue
		}
		rr.cur = m
		rr.cur.delivered = h.flags&flagDelivered != 0
		if _, ok := slices.BinarySearch(rr.deliv, h.recno); ok {
			rr.cur.delivered = true
		}
		return true, nil
	}
}

// isMember tells a member of the run from another record of its queue.
func (rr *runReader) isMember(h msgHeader, off int64) bool {
	r := rr.r
	switch r.kind {
	case runFresh:
		if h.flags&flagTransient != 0 {
			return false
		}
		_, dead := slices.BinarySearch(rr.acked, h.recno)
		return !dead
	case runRecovered:
		if h.flags&flagTransient != 0 || h.id < r.minID || h.id > r.lastID {
			return false
		}
		for rr.skipAt < len(r.skip) && int64(r.skip[rr.skipAt]) < off {
			rr.skipAt++
		}
		return rr.skipAt >= len(r.skip) || int64(r.skip[rr.skipAt]) != off
	}
	return h.id >= r.minID && h.id <= r.lastID
}

// tailBounds returns the lowest and highest tail ID of a queue, if it has
// a tail. Called with s.mu held.
func (s *File) tailBounds(k qkey) (lo, hi uint64, ok bool) { return s.queues[k].tailBounds() }

// tailBounds returns the lowest and highest ID of the queue's tail, if it has
// one (q may be nil).
func (q *qindex) tailBounds() (lo, hi uint64, ok bool) {
	hi, ok = q.tailMax()
	switch {
	case !ok:
	case len(q.tail) > 0:
		lo = q.tail[0].minID
	default:
		lo = q.pend[0].id
	}
	return lo, hi, ok
}

// tailMax returns the highest ID in the queue's tail, if it has one.
func (q *qindex) tailMax() (uint64, bool) {
	switch {
	case q == nil:
	case len(q.pend) > 0:
		return q.pend[len(q.pend)-1].id, true
	case len(q.tail) > 0:
		return q.tail[len(q.tail)-1].lastID, true
	}
	return 0, false
}

// pendIndex finds a pending tail append by recno (pend is in recno order).
func (q *qindex) pendIndex(recno uint64) int {
	if q == nil {
		return -1
	}
	if len(q.pend) > 0 && q.pend[0].recno == recno {
		return 0
	}
	i, ok := slices.BinarySearchFunc(q.pend, recno, func(p pendTail, r uint64) int { return compareU64(p.recno, r) })
	if !ok {
		return -1
	}
	return i
}

// unpend removes pend[i], usually the first: the syncer writes in order.
func (q *qindex) unpend(i int) {
	if i == 0 {
		q.pend[0] = pendTail{}
		q.pend = q.pend[1:]
	} else {
		q.pend = slices.Delete(q.pend, i, i+1)
	}
	if len(q.pend) == 0 {
		q.pend = nil // let go of the array
	}
}

// tailWrittenLocked adds a tail record the syncer wrote to its queue's runs.
func (s *File) tailWrittenLocked(q *qindex, it *item) {
	seg := it.seg
	seg.live++
	seg.liveBytes += int64(it.size)
	seg.tailLive++
	if n := len(q.tail); n > 0 {
		r := q.tail[n-1]
		if r.kind == runTail && r.seg == seg && int64(it.off) >= r.end {
			r.end = int64(it.off) + int64(it.size)
			r.lastID = it.id
			r.count++
			r.bytes += s.opts.Weigh(it.data)
			r.recBytes += int64(it.size)
			return
		}
	}
	q.tail = append(q.tail, &run{seg: seg, start: int64(it.off), end: int64(it.off) + int64(it.size),
		firstID: it.id, minID: it.id, lastID: it.id, count: 1, bytes: s.opts.Weigh(it.data), recBytes: int64(it.size)})
}

// inTail reports whether id is still in the queue's tail, given that it was
// put there once (tail records only leave from the front).
func (q *qindex) inTail(id uint64) bool {
	if q == nil {
		return false
	}
	if len(q.tail) > 0 {
		return id >= q.tail[0].minID && id <= q.tail[len(q.tail)-1].lastID
	}
	return false
}

// holds reports whether a record placed once (as a slot or in the tail) is
// still live.
func (q *qindex) holds(id, recno uint64) bool {
	if sl, ok := q.slotOf(id); ok && sl.recno == recno {
		return true
	}
	return q.inTail(id)
}

// taken is a tail record ReadTail or DropTail took.
type taken struct {
	id, recno       uint64
	off, size, data int64 // data: its weight
	flags           byte
}

// ReadTail implements Store.
func (s *File) ReadTail(vhost, queue string, maxRecs int, maxBytes int64) ([]TailRecord, error) {
	var out []TailRecord
	var total int64
	// Data is copied into blocks, cut into capacity-limited pieces; a block
	// is sized for what is left to read (as many more records like this
	// one, within maxBytes, 256 KiB at most): it stays in memory while any
	// piece of it does, and thousands of queues each reading a few records
	// would otherwise hold 256 KiB each.
	var block []byte
	k := qkey{vhost, queue}
	err := s.takeTail(k, maxRecs, func(m *member) bool {
		n := len(m.data)
		if len(out) > 0 && total+int64(n) > maxBytes {
			return false
		}
		total += int64(n)
		if cap(block)-len(block) < n {
			want := min(maxBytes-total+int64(n), int64(maxRecs-len(out))*int64(n), 256<<10)
			block = make([]byte, 0, max(n, int(want)))
		}
		block = append(block, m.data...)
		d := block[len(block)-n : len(block) : len(block)]
		out = append(out, TailRecord{ID: m.h.id, Transient: m.h.flags&flagTransient != 0, Delivered: m.delivered, Data: d})
		return true
	}, false)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DropTail implements Store. It reads the records' headers (the ack log
// names records by recno), not their data.
func (s *File) DropTail(vhost, queue string, n int) (int, error) {
	dropped := 0
	err := s.takeTail(qkey{vhost, queue}, n, func(*member) bool { dropped++; return true }, true)
	if err != nil {
		return 0, err
	}
	return dropped, nil
}

// takeTail takes up to max records from the front of a queue's tail, run by
// run, offering each to keep (which copies what it needs: m.data is the
// scanner's) until it says no. Taken records become window slots, or are
// acknowledged if drop. The reads happen without s.mu; q.readMu keeps other
// takers of the same tail out.
func (s *File) takeTail(k qkey, max int, keep func(m *member) bool, drop bool) error {
	s.mu.Lock()
	err := s.usableLocked()
	q := s.queues[k]
	s.mu.Unlock()
	if err != nil || q == nil || max <= 0 {
		return err
	}
	q.readMu.Lock()
	defer q.readMu.Unlock()
	var buf []byte
	var got []taken
	var datas [][]byte
	for left := max; left > 0; {
		s.mu.Lock()
		if err := s.usableLocked(); err != nil {
			s.mu.Unlock()
			return err
		}
		if s.queues[k] != q || len(q.tail) == 0 {
			s.mu.Unlock()
			return nil // deleted meanwhile, or nothing (written) left
		}
		p := q.tail[0]
		r := *p // a copy: the syncer may extend the run meanwhile
		s.mu.Unlock()
		rr := newRunReader(&r, k, left, nil, nil, buf, runReadMax)
		if rr.sc.indexed {
			s.indexedRuns.Add(1)
		}
		got, datas = got[:0], datas[:0]
		full := false
		for len(got) < left && len(got) < r.count {
			ok, err := rr.next()
			if err != nil {
				return s.readFailed(err)
			}
			if !ok {
				return s.readFailed(fmt.Errorf("store: %s/%s: tail run in segment %d ends early: %w", k.vhost, k.queue, r.seg.num, errCorrupt))
			}
			m := &rr.cur
			if !keep(m) {
				full = true
				break
			}
			got = append(got, taken{m.h.id, m.h.recno, m.off, m.size, s.opts.Weigh(m.data), m.h.flags})
			if !drop && m.delivered {
				got[len(got)-1].flags |= flagDelivered
			}
		}
		buf = rr.sc.buf
		if len(got) > 0 {
			s.mu.Lock()
			if s.queues[k] == q {
				s.tookLocked(q, p, got, drop)
			}
			s.mu.Unlock()
			if drop {
				s.kick()
			}
		}
		left -= len(got)
		if full || len(got) < r.count {
			return nil
		}
	}
	return nil
}

// readFailed turns a failed tail read into the caller's error: the store's
// own if it failed or closed meanwhile.
func (s *File) readFailed(err error) error {
	if uerr := s.usable(); uerr != nil {
		return uerr
	}
	s.log.Error("store: cannot read a queue's tail", "err", err)
	return err
}

// tookLocked moves taken records, the first of q's tail run r, into the
// window (or acknowledges them, if drop).
func (s *File) tookLocked(q *qindex, r *run, got []taken, drop bool) {
	seg := r.seg
	for _, t := range got {
		r.count--
		r.recBytes -= t.size
		r.bytes -= t.data
		seg.tailLive--
		s.inTail--
		if i, ok := slices.BinarySearch(r.deliv, t.recno); ok {
			r.deliv = slices.Delete(r.deliv, i, i+1)
		}
		if drop {
			s.live--
			seg.live--
			seg.liveBytes -= t.size
			if t.flags&flagTransient == 0 {
				seg.dead = append(seg.dead, t.recno)
				s.pendAcks = append(s.pendAcks, t.recno)
			}
			continue
		}
		if old, ok := q.slots[t.id]; ok {
			s.live--
			s.dropLocked(old)
		}
		q.slots[t.id] = slot{recno: t.recno, seg: seg.num, off: uint32(t.off), size: uint32(t.size), flags: slotWritten | t.flags&(flagTransient|flagDelivered)}
	}
	last := got[len(got)-1]
	r.start = last.off + last.size
	r.minID = last.id + 1
	if i, _ := slices.BinarySearch(r.skip, uint32(r.start)); i > 0 {
		r.skip = r.skip[i:]
	}
	if r.count == 0 {
		if i := slices.Index(q.tail, r); i == 0 {
			q.tail[0] = nil
			q.tail = q.tail[1:]
		} else if i > 0 {
			q.tail = slices.Delete(q.tail, i, i+1)
		}
	}
}
