package store

import (
	"container/heap"
	"fmt"
	"io"
	"math"
	"slices"
)

// Recover hands out what Open found (each queue's fresh runs) and, on later
// calls, what the store holds. Nothing per record is built for what fn puts
// in the tail: the records become recovered tail runs, which name the few
// records inside them that are not members (skip).
//
// Bulk (Recover's tail callback): once fn has put a record of a simple
// queue in the tail, each of the queue's fresh runs that follows becomes a
// recovered tail run as it is, without being read, if no recno the ack log
// acked lies in its recno range: then every record of the queue in its
// stretch is a live member and its count is exact. A run with acked recnos
// in range (this queue's or an interleaved one's) is read as before; if its
// recnos ascend, the rest of it converts once the reading has passed the
// last of them. A 100 M-message backlog so costs about the window's reads
// and one callback per segment.
//
// A queue whose fresh runs follow each other in ID order (the usual case:
// a queue is written in ID order) is "simple": one pass over the segments,
// in order and in large reads, hands out all simple queues' records at once.
// Any other queue (runs overlapping in IDs: compaction copies, IDs appended
// again, a queue not written in ID order; or records appended since Open)
// is merged on its own from per-run readers, lowest ID first; records with
// one ID meet there and the copy that counts (highest recno, then highest
// segment) wins, so no record is handed out twice.

// recoverQueue is one queue's part of a Recover.
type recoverQueue struct {
	key qkey
	q   *qindex
	// simple queues: the fresh runs in file order and the one due.
	runs []*run
	i    int
	pl   placer
	// bulk: fn put one of the queue's records in the tail, so the rest may
	// go there without being read. dirty is a run that cannot convert
	// before its recnos pass dirtyTo (the last acked one in its range).
	bulk    bool
	dirty   *run
	dirtyTo uint64
	// merged queues: their sources.
	srcs []*source
}

// placer follows where one input of a Recover last put a record in the
// tail: the run it may extend, and the queue's other records met since,
// which the run must skip if it is extended over them.
type placer struct {
	seg  *segment
	open *run
	pend []uint32
}

// met notes a record of the queue that is not the open run's member.
func (pl *placer) met(seg *segment, off int64) {
	if pl.seg != seg {
		pl.seg, pl.open, pl.pend = seg, nil, pl.pend[:0]
	}
	if pl.open != nil {
		pl.pend = append(pl.pend, uint32(off))
	}
}

// source is one input of a merge: a run read sequentially, or (later
// Recovers) the window's slots read one by one.
type source struct {
	fresh  *run // the live fresh run, when rr reads one
	rq     *recoverQueue
	rr     *runReader
	tail   bool      // rr reads a copy of a tail run
	slots  []slotRef // or: window records, by ID
	first  uint64
	cur    member
	curSeg uint32
	pl     placer
	one    []byte
}

type slotRef struct {
	id uint64
	sl slot
}

// Recover implements Store.
func (s *File) Recover(fn RecordFunc, tail TailFunc) error {
	if err := s.Sync(); err != nil {
		return err
	}
	s.recoverMu.Lock()
	defer s.recoverMu.Unlock()
	s.mu.Lock()
	if err := s.usableLocked(); err != nil {
		s.mu.Unlock()
		return err
	}
	s.recovering++
	var simple, merged []*recoverQueue
	for k, q := range s.queues {
		rq := &recoverQueue{key: k, q: q}
		if len(q.fresh) > 0 && len(q.slots) == 0 && len(q.tail) == 0 && len(q.pend) == 0 && ascending(q.fresh) {
			rq.runs = slices.Clone(q.fresh)
			simple = append(simple, rq)
			continue
		}
		for _, r := range q.fresh {
			rq.srcs = append(rq.srcs, &source{fresh: r, rq: rq, first: r.firstID})
		}
		for _, r := range q.tail {
			c := *r
			rq.srcs = append(rq.srcs, &source{rr: &runReader{r: &c}, tail: true, first: r.minID})
		}
		var refs []slotRef
		for id, sl := range q.slots {
			if sl.flags&(slotWritten|flagTransient) == slotWritten {
				refs = append(refs, slotRef{id, sl})
			}
		}
		if len(refs) > 0 {
			slices.SortFunc(refs, func(a, b slotRef) int { return compareU64(a.id, b.id) })
			rq.srcs = append(rq.srcs, &source{slots: refs, first: refs[0].id})
		}
		if len(rq.srcs) > 0 {
			merged = append(merged, rq)
		}
	}
	r := recoverer{s: s, fn: fn, tail: tail, acked: s.openAcked, deliv: s.openDeliv}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.recovering--
		if s.fresh == 0 {
			s.openAcked, s.openDeliv = nil, nil
		}
		s.mu.Unlock()
		s.kick() // maintenance may have waited
	}()
	if err := r.simple(simple); err != nil {
		return err
	}
	for _, rq := range merged {
		if err := r.merge(rq); err != nil {
			return err
		}
	}
	return nil
}

// ascending reports whether runs in file order have increasing IDs
// throughout (so at most one per segment).
func ascending(runs []*run) bool {
	for i := 1; i < len(runs); i++ {
		if runs[i-1].lastID >= runs[i].firstID {
			return false
		}
	}
	return true
}

type recoverer struct {
	s            *File
	fn           RecordFunc
	tail         TailFunc
	acked, deliv []uint64 // File.openAcked, openDeliv
	key          []byte
	buf          []byte
	// free holds the read buffers of a merge's exhausted sources for the
	// next ones: a merge opens a reader per run, and one that kept every
	// buffer until the end would hold megabytes per segment of the queue.
	free [][]byte
}

// mergeReadMax bounds a merge source's reads: a merge has a reader open
// for every run that overlaps the IDs it is at (after compactions, a run of
// copies in each segment they went to), so each reads in small pieces.
const mergeReadMax = 256 << 10

// release gives back the read buffer of a source that is done.
func (r *recoverer) release(src *source) {
	if src.rr != nil && src.rr.sc != nil && src.rr.sc.buf != nil {
		r.free = append(r.free, src.rr.sc.buf[:0])
		src.rr.sc.buf = nil
	}
}

// reuse returns a buffer given back by release, if any.
func (r *recoverer) reuse() []byte {
	if n := len(r.free); n > 0 {
		b := r.free[n-1]
		r.free = r.free[:n-1]
		return b
	}
	return nil
}

// simple hands out the simple queues' records in one pass over the
// segments their runs are in, skipping (and not reading) the runs that go
// to the tail in bulk.
func (r *recoverer) simple(queues []*recoverQueue) error {
	if len(queues) == 0 {
		return nil
	}
	byKey := make(map[string]*recoverQueue, len(queues))
	type segRun struct {
		rq *recoverQueue
		fr *run
	}
	type span struct {
		seg  *segment
		runs []segRun // the simple queues' runs in the segment
	}
	spans := map[uint32]*span{}
	for _, rq := range queues {
		byKey[string(appendQueueKey(nil, rq.key.vhost, rq.key.queue))] = rq
		for _, run := range rq.runs {
			sp := spans[run.seg.num]
			if sp == nil {
				sp = &span{seg: run.seg}
				spans[run.seg.num] = sp
			}
			sp.runs = append(sp.runs, segRun{rq, run})
		}
	}
	order := make([]*span, 0, len(spans))
	for _, sp := range spans {
		order = append(order, sp)
	}
	slices.SortFunc(order, func(a, b *span) int { return compareU64(uint64(a.seg.num), uint64(b.seg.num)) })
	for _, sp := range order {
		// active counts the runs here that still need reading.
		lo, hi, active := int64(math.MaxInt64), int64(0), 0
		for _, x := range sp.runs {
			if x.fr.count == 0 {
				continue // taken meanwhile (a Recover that failed dropped acked ones)
			}
			done, err := r.tryBulk(x.rq, x.fr)
			if err != nil {
				return err
			}
			if !done {
				active++
				lo, hi = min(lo, x.fr.start), max(hi, x.fr.end)
			}
		}
		if active == 0 {
			continue
		}
		sc := newScanner(sp.seg.f, lo, hi, r.buf)
		var rq *recoverQueue
		for active > 0 {
			rec, off, err := sc.next()
			if err == io.EOF && sc.pos >= hi {
				break
			}
			if err == nil && rec[recHeader] != recMessage {
				err = errCorrupt
			}
			var h msgHeader
			var data []byte
			if err == nil {
				h, data, err = decodeMessage(rec[recHeader+1:])
			}
			if err != nil {
				r.buf = sc.buf
				if uerr := r.s.usable(); uerr != nil {
					return uerr
				}
				r.s.log.Error("store: segment unreadable during recovery, its records from here on are not recovered", "segment", sp.seg.num, "offset", sc.pos, "err", err)
				for _, x := range sp.runs {
					r.s.lostFresh(x.rq, x.fr)
				}
				break
			}
			if rq == nil || string(h.queue) != rq.key.queue || string(h.vhost) != rq.key.vhost {
				r.key = appendQueueKey(r.key[:0], h.vhost, h.queue)
				if rq = byKey[string(r.key)]; rq == nil {
					continue
				}
			}
			for rq.i < len(rq.runs) && (rq.runs[rq.i].seg.num < sp.seg.num || rq.runs[rq.i].seg == sp.seg && rq.runs[rq.i].end <= off) {
				rq.i++
			}
			var fr *run
			if rq.i < len(rq.runs) && rq.runs[rq.i].seg == sp.seg && off >= rq.runs[rq.i].start {
				fr = rq.runs[rq.i]
			}
			if fr == nil || h.flags&flagTransient != 0 {
				rq.pl.met(sp.seg, off)
				continue
			}
			if fr.count == 0 {
				continue // converted in bulk, or every member taken
			}
			m := member{h: h, data: data, off: off, size: int64(len(rec)), delivered: h.flags&flagDelivered != 0}
			if _, ok := slices.BinarySearch(r.acked, h.recno); ok {
				r.s.freshDead(rq, fr, &m)
				rq.pl.met(sp.seg, off)
			} else {
				if _, ok := slices.BinarySearch(r.deliv, h.recno); ok {
					m.delivered = true
				}
				tail, err := r.emitFresh(rq, fr, &rq.pl, &m)
				if err != nil {
					r.buf = sc.buf
					return err
				}
				rq.bulk = rq.bulk || tail && r.tail != nil
			}
			if fr.count > 0 {
				if _, err := r.tryBulk(rq, fr); err != nil {
					r.buf = sc.buf
					return err
				}
			}
			if fr.count == 0 {
				active--
			}
		}
		r.buf = sc.buf
	}
	return nil
}

// tryBulk turns what is left of a bulk queue's fresh run into a recovered
// tail run without reading it, if no recno the ack log acked lies in the
// run's range (see Recover), and reports it to the tail callback.
func (r *recoverer) tryBulk(rq *recoverQueue, fr *run) (bool, error) {
	if !rq.bulk {
		return false, nil
	}
	s := r.s
	s.mu.Lock()
	q := rq.q
	if q.gone || fr.count == 0 || rq.dirty == fr && fr.loRecno <= rq.dirtyTo {
		s.mu.Unlock()
		return false, nil
	}
	// An acked recno in range: read on, and try again past the last one
	// if the run's recnos ascend (fr.loRecno then follows the reading).
	i, _ := slices.BinarySearch(r.acked, fr.loRecno)
	j, _ := slices.BinarySearch(r.acked, fr.hiRecno+1)
	if i < j {
		rq.dirty, rq.dirtyTo = fr, r.acked[j-1]
		if !fr.recnoAsc {
			rq.dirtyTo = math.MaxUint64
		}
		s.mu.Unlock()
		return false, nil
	}
	// The tail must end below the run (it does unless fn appended tail
	// records of its own meanwhile; reading then sorts them out).
	if n := len(q.tail); len(q.pend) > 0 || n > 0 && (q.tail[n-1].kind != runRecovered || q.tail[n-1].lastID >= fr.minID) {
		rq.dirty, rq.dirtyTo = fr, math.MaxUint64
		s.mu.Unlock()
		return false, nil
	}
	t := new(run)
	*t = *fr
	t.kind, t.firstID, t.skip = runRecovered, fr.minID, nil
	i, _ = slices.BinarySearch(r.deliv, fr.loRecno)
	j, _ = slices.BinarySearch(r.deliv, fr.hiRecno+1)
	t.deliv = slices.Clone(r.deliv[i:j]) // a superset of the members' marks: lookups are by recno
	if len(t.deliv) == 0 {
		t.deliv = nil
	}
	q.tail = append(q.tail, t)
	fr.seg.tailLive += fr.count
	s.inTail += fr.count
	s.fresh -= fr.count
	fr.count, fr.bytes, fr.recBytes = 0, 0, 0
	if k := slices.Index(q.fresh, fr); k >= 0 {
		q.fresh = slices.Delete(q.fresh, k, k+1)
	}
	rq.pl = placer{pend: rq.pl.pend[:0]} // t is not open for extension by records read later
	tr := TailRun{VHost: rq.key.vhost, Queue: rq.key.queue, Count: t.count, Bytes: t.bytes, LastID: t.lastID}
	s.mu.Unlock()
	return true, r.tail(tr)
}

// emitFresh hands a fresh record to fn and files it where fn says: as a
// window slot, or in the queue's tail, extending its last run if that run
// holds the record's predecessors from the same input (pl): the queue's
// other records met since are added to the run's skip list. It returns
// whether the record went to the tail.
func (r *recoverer) emitFresh(rq *recoverQueue, fr *run, pl *placer, m *member) (bool, error) {
	s := r.s
	tail, err := r.fn(MessageRecord{VHost: rq.key.vhost, Queue: rq.key.queue, ID: m.h.id, Data: m.data}, m.delivered)
	if err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	q := rq.q
	if q.gone {
		return false, nil // deleted meanwhile: its runs went with it
	}
	s.freshTakenLocked(q, fr, m)
	id := m.h.id
	seg := fr.seg
	if pl.seg != seg {
		pl.seg, pl.open, pl.pend = seg, nil, pl.pend[:0]
	}
	// Recovered records go before tail records appended since Open (the
	// broker does not do that, but it must not break the ID order).
	pos := len(q.tail)
	for pos > 0 && q.tail[pos-1].kind == runTail && q.tail[pos-1].minID > id {
		pos--
	}
	if tail && pos > 0 && q.tail[pos-1].lastID >= id {
		err = fmt.Errorf("store: recovering %s/%s#%d into the tail, below its tail ID %d: %w", rq.key.vhost, rq.key.queue, id, q.tail[pos-1].lastID, ErrInvalid)
		tail = false
	}
	if tail && pos == len(q.tail) && len(q.pend) > 0 && q.pend[0].id <= id {
		err = fmt.Errorf("store: recovering %s/%s#%d into the tail, above tail ID %d appended since Open: %w", rq.key.vhost, rq.key.queue, id, q.pend[0].id, ErrInvalid)
		tail = false
	}
	if !tail {
		fl := slotWritten
		if m.delivered {
			fl |= flagDelivered
		}
		q.slots[id] = slot{recno: m.h.recno, seg: seg.num, off: uint32(m.off), size: uint32(m.size), flags: fl}
		pl.met(seg, m.off)
		return false, err
	}
	seg.tailLive++
	s.inTail++
	var t *run
	if pos > 0 && pl.open == q.tail[pos-1] && m.off >= pl.open.end {
		t = pl.open
		t.skip = append(t.skip, pl.pend...)
		if m.h.recno <= t.hiRecno {
			t.recnoAsc = false
		}
	} else {
		t = &run{seg: seg, start: m.off, firstID: id, minID: id, kind: runRecovered, loRecno: m.h.recno, hiRecno: m.h.recno, recnoAsc: true}
		q.tail = slices.Insert(q.tail, pos, t)
	}
	pl.open, pl.pend = t, pl.pend[:0]
	t.end, t.lastID = m.off+m.size, id
	t.loRecno, t.hiRecno = min(t.loRecno, m.h.recno), max(t.hiRecno, m.h.recno)
	t.count++
	t.bytes += s.opts.Weigh(m.data)
	t.recBytes += m.size
	if m.delivered && m.h.flags&flagDelivered == 0 {
		if i, ok := slices.BinarySearch(t.deliv, m.h.recno); !ok {
			t.deliv = slices.Insert(t.deliv, i, m.h.recno)
		}
	}
	return true, nil
}

// freshTakenLocked takes a record from the front of its fresh run. The
// rest of the run has higher IDs and, if its recnos ascend, higher recnos.
func (s *File) freshTakenLocked(q *qindex, fr *run, m *member) {
	fr.count--
	fr.start = m.off + m.size
	fr.minID = m.h.id + 1
	if fr.recnoAsc {
		fr.loRecno = m.h.recno + 1
	}
	fr.bytes -= s.opts.Weigh(m.data)
	fr.recBytes -= m.size
	s.fresh--
	if fr.count == 0 {
		if i := slices.Index(q.fresh, fr); i >= 0 {
			q.fresh = slices.Delete(q.fresh, i, i+1)
		}
	}
}

// freshDead drops a fresh record the ack log had acked: it was counted
// as live until now, and its segment must keep its ack.
func (s *File) freshDead(rq *recoverQueue, fr *run, m *member) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := rq.q
	if q.gone {
		return
	}
	s.freshTakenLocked(q, fr, m)
	s.live--
	fr.seg.live--
	fr.seg.liveBytes -= m.size
	fr.seg.dead = append(fr.seg.dead, m.h.recno)
	if q.empty() {
		s.dropIndexLocked(rq.key, q)
	}
}

// lostFresh gives up the rest of a fresh run Recover could not read: as a
// scan at Open cuts a segment at a corrupt record. They stay on disk (and
// come back to be tried again after a restart, if their segment stays).
func (s *File) lostFresh(rq *recoverQueue, fr *run) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := rq.q
	if q.gone || fr.count == 0 {
		return
	}
	s.fresh -= fr.count
	s.live -= fr.count
	fr.seg.live -= fr.count
	fr.seg.liveBytes -= fr.recBytes
	fr.count, fr.recBytes, fr.bytes = 0, 0, 0
	if i := slices.Index(q.fresh, fr); i >= 0 {
		q.fresh = slices.Delete(q.fresh, i, i+1)
	}
	if q.empty() {
		s.dropIndexLocked(rq.key, q)
	}
}

// loserLocked drops a fresh record that another one with its ID outranks:
// an older record of an ID appended again is acknowledged; the original of
// a compaction copy (same recno) stays on disk until its segment goes, and
// its segment remembers the move for the ack log rewrite.
func (s *File) loserLocked(rq *recoverQueue, fr *run, m *member, sameRecno bool) {
	s.freshTakenLocked(rq.q, fr, m)
	seg := fr.seg
	s.live--
	seg.live--
	seg.liveBytes -= m.size
	if sameRecno {
		seg.movedOut = append(seg.movedOut, movedRef{rq.key, m.h.id, m.h.recno})
		return
	}
	seg.dead = append(seg.dead, m.h.recno)
	s.pendAcks = append(s.pendAcks, m.h.recno)
}

// merge hands out one queue's records from all its sources, lowest ID first.
func (r *recoverer) merge(rq *recoverQueue) error {
	srcs := rq.srcs
	slices.SortStableFunc(srcs, func(a, b *source) int { return compareU64(a.first, b.first) })
	var h srcHeap
	next := 0
	var group []*source
	for {
		for next < len(srcs) && (len(h) == 0 || srcs[next].first <= h[0].cur.h.id) {
			src := srcs[next]
			next++
			ok, err := r.open(rq, src)
			if err != nil {
				return err
			}
			if ok {
				heap.Push(&h, src)
			}
		}
		if len(h) == 0 {
			return nil
		}
		group = append(group[:0], heap.Pop(&h).(*source))
		for len(h) > 0 && h[0].cur.h.id == group[0].cur.h.id {
			group = append(group, heap.Pop(&h).(*source))
		}
		win := group[0]
		for _, g := range group[1:] {
			if g.cur.h.recno > win.cur.h.recno || g.cur.h.recno == win.cur.h.recno && g.curSeg > win.curSeg {
				win = g
			}
		}
		if err := r.emit(rq, win); err != nil {
			return err
		}
		winRecno := win.cur.h.recno
		for _, g := range group {
			if g != win && g.fresh != nil {
				r.s.mu.Lock()
				if !rq.q.gone {
					r.s.loserLocked(rq, g.fresh, &g.cur, g.cur.h.recno == winRecno)
				}
				r.s.mu.Unlock()
				g.pl.met(g.fresh.seg, g.cur.off)
			}
			ok, err := r.advance(g)
			if err != nil {
				return err
			}
			if ok {
				heap.Push(&h, g)
			}
		}
	}
}

// open starts reading a source and moves to its first record.
func (r *recoverer) open(rq *recoverQueue, src *source) (bool, error) {
	switch {
	case src.fresh != nil:
		r.s.mu.Lock()
		c := *src.fresh
		r.s.mu.Unlock()
		src.rr = newRunReader(&c, rq.key, c.count, r.acked, r.deliv, r.reuse(), mergeReadMax)
		src.rr.r = src.fresh // read by the reader only; changed by this goroutine
	case src.tail:
		c := src.rr.r
		src.rr = newRunReader(c, rq.key, c.count, nil, nil, r.reuse(), mergeReadMax)
	}
	if src.rr != nil && src.rr.sc.indexed {
		r.s.indexedRuns.Add(1)
	}
	return r.advance(src)
}

// advance moves a source to its next record.
func (r *recoverer) advance(src *source) (bool, error) {
	if src.rr == nil {
		if len(src.slots) == 0 {
			return false, nil
		}
		for len(src.slots) > 0 {
			ref := src.slots[0]
			src.slots = src.slots[1:]
			data, err := r.readSlot(ref.sl, &src.one)
			if err != nil {
				if uerr := r.s.usable(); uerr != nil {
					return false, uerr
				}
				r.s.log.Error("store: skipping unreadable message", "id", ref.id, "err", err)
				continue
			}
			src.cur = member{h: msgHeader{recno: ref.sl.recno, id: ref.id}, data: data, delivered: ref.sl.flags&flagDelivered != 0}
			src.curSeg = ref.sl.seg
			return true, nil
		}
		return false, nil
	}
	ok, err := src.rr.next()
	for ok && err == nil && src.tail && src.rr.cur.h.flags&flagTransient != 0 {
		ok, err = src.rr.next() // tail records may be transient: not recovered
	}
	if src.fresh != nil {
		for i := range src.rr.dead {
			r.s.freshDead(src.rq, src.fresh, &src.rr.dead[i])
		}
	}
	if err != nil {
		if uerr := r.s.usable(); uerr != nil {
			return false, uerr
		}
		r.s.log.Error("store: run unreadable during recovery, its records from here on are not recovered", "segment", src.rr.r.seg.num, "err", err)
		if src.fresh != nil {
			r.s.lostFresh(src.rq, src.fresh)
		}
		r.release(src)
		return false, nil
	}
	if !ok {
		r.release(src)
	} else {
		for _, off := range src.rr.skipped {
			src.pl.met(src.rr.r.seg, int64(off))
		}
		src.cur = src.rr.cur
		src.curSeg = src.rr.r.seg.num
	}
	return ok, nil
}

// emit hands out a merge's winner: a fresh record is filed where fn says;
// one the store already placed (window, tail) stays where it is.
func (r *recoverer) emit(rq *recoverQueue, src *source) error {
	if src.fresh != nil {
		_, err := r.emitFresh(rq, src.fresh, &src.pl, &src.cur)
		return err
	}
	m := &src.cur
	_, err := r.fn(MessageRecord{VHost: rq.key.vhost, Queue: rq.key.queue, ID: m.h.id, Tail: src.tail, Data: m.data}, m.delivered)
	return err
}

// readSlot reads one window record on its own.
func (r *recoverer) readSlot(sl slot, one *[]byte) ([]byte, error) {
	r.s.mu.Lock()
	seg := r.s.segs[sl.seg]
	r.s.mu.Unlock()
	if seg == nil {
		return nil, errCorrupt
	}
	*one = slices.Grow((*one)[:0], int(sl.size))[:sl.size]
	if err := readFull(seg.f, *one, int64(sl.off)); err != nil {
		return nil, err
	}
	return checkMessage(*one, sl.recno)
}

// srcHeap orders a merge's sources by their current ID.
type srcHeap []*source

func (h srcHeap) Len() int           { return len(h) }
func (h srcHeap) Less(i, j int) bool { return h[i].cur.h.id < h[j].cur.h.id }
func (h srcHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *srcHeap) Push(x any)        { *h = append(*h, x.(*source)) }
func (h *srcHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// appendQueueKey appends a queue's map key: vhost length, vhost, queue. Maps
// keyed by it are looked up from record bytes without allocating.
func appendQueueKey[T string | []byte](b []byte, vhost, queue T) []byte {
	return append(append(append(b, byte(len(vhost))), vhost...), queue...)
}
