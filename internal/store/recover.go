package store

import (
	"fmt"
	"io"
	"slices"
)

// recoverQueue is one queue's part of a Recover: its messages as of the
// snapshot, sorted by ID, and how far they have been handed out.
type recoverQueue struct {
	key      qkey
	items    []recoverItem
	next     int          // items[:next] were handed out
	deferred map[int]bool // items met on disk before their turn
}

type recoverItem struct {
	id uint64
	sl slot
}

// Recover implements Store. Calls for different queues interleave: it reads
// the segments once, in order, in large chunks, and hands each message out
// when its queue's turn has come. Messages met before their turn (the queue
// was not written in ID order, or compaction moved older ones forward) are
// read again individually later. It works on a snapshot taken after a Sync;
// compaction and segment deletion wait until it returns, so that nothing in
// the snapshot moves.
func (s *File) Recover(fn func(rec MessageRecord, delivered bool) (tail bool, err error)) error {
	if err := s.Sync(); err != nil {
		return err
	}
	s.mu.Lock()
	if err := s.usableLocked(); err != nil {
		s.mu.Unlock()
		return err
	}
	s.recovering++
	queues := make(map[string]*recoverQueue, len(s.queues))
	for k, q := range s.queues {
		rq := &recoverQueue{key: k}
		for id, sl := range q.slots {
			if sl.flags&(slotWritten|flagTransient) == slotWritten {
				rq.items = append(rq.items, recoverItem{id, sl})
			}
		}
		if len(rq.items) > 0 {
			queues[string(appendQueueKey(nil, k.vhost, k.queue))] = rq
		}
	}
	type segView struct {
		seg  *segment
		size int64
	}
	var segs []segView
	for _, seg := range s.segs {
		segs = append(segs, segView{seg, seg.size})
	}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.recovering--
		s.mu.Unlock()
		s.kick() // maintenance may have waited
	}()
	for _, rq := range queues {
		sortByID(rq.items)
	}
	slices.SortFunc(segs, func(a, b segView) int { return compareU64(uint64(a.seg.num), uint64(b.seg.num)) })
	r := recoverer{s: s, fn: fn, queues: queues}
	for _, sv := range segs {
		if err := r.segment(sv.seg, sv.size); err != nil {
			return err
		}
	}
	// Everything in the snapshot was met on disk; this only matters if a
	// segment could not be read to its end.
	for _, rq := range queues {
		for rq.next < len(rq.items) {
			if err := r.emitAgain(rq, rq.next); err != nil {
				return err
			}
			rq.next++
		}
	}
	return nil
}

type recoverer struct {
	s      *File
	fn     func(MessageRecord, bool) (bool, error)
	queues map[string]*recoverQueue // by appendQueueKey
	key    []byte
	buf    []byte
	one    []byte
}

// segment scans one segment up to size and hands out what is due.
func (r *recoverer) segment(seg *segment, size int64) error {
	sc := newScanner(seg.f, segHeaderSize, size, r.buf)
	defer func() { r.buf = sc.buf }()
	var rq *recoverQueue
	for {
		rec, off, err := sc.next()
		if err == io.EOF {
			if sc.pos < size {
				r.s.log.Error("store: segment unreadable during recovery", "segment", seg.num, "offset", sc.pos)
			}
			return nil
		}
		if err != nil {
			r.s.log.Error("store: segment unreadable during recovery", "segment", seg.num, "err", err)
			return nil
		}
		h, data, err := decodeMessage(rec[recHeader+1:])
		if err != nil || h.flags&flagTransient != 0 {
			continue
		}
		if rq == nil || string(h.queue) != rq.key.queue || string(h.vhost) != rq.key.vhost {
			r.key = appendQueueKey(r.key[:0], h.vhost, h.queue)
			if rq = r.queues[string(r.key)]; rq == nil {
				continue
			}
		}
		i := rq.rank(h.id)
		if i < 0 || rq.items[i].sl.seg != seg.num || int64(rq.items[i].sl.off) != off {
			continue // dead, or not the copy the index uses
		}
		switch {
		case i == rq.next:
			if err := r.emit(rq, i, data); err != nil {
				return err
			}
			rq.next++
			for rq.next < len(rq.items) && rq.deferred[rq.next] {
				delete(rq.deferred, rq.next)
				if err := r.emitAgain(rq, rq.next); err != nil {
					return err
				}
				rq.next++
			}
		case i > rq.next:
			if rq.deferred == nil {
				rq.deferred = map[int]bool{}
			}
			rq.deferred[i] = true
		}
	}
}

// rank returns the index of id in the queue's items, -1 if absent. Queues
// are mostly written in ID order, so the next due item is tried first.
func (rq *recoverQueue) rank(id uint64) int {
	if rq.next < len(rq.items) && rq.items[rq.next].id == id {
		return rq.next
	}
	i, ok := slices.BinarySearchFunc(rq.items, id, func(it recoverItem, id uint64) int { return compareU64(it.id, id) })
	if !ok {
		return -1
	}
	return i
}

func (r *recoverer) emit(rq *recoverQueue, i int, data []byte) error {
	it := &rq.items[i]
	inTail := it.sl.flags&slotTail != 0
	tail, err := r.fn(MessageRecord{VHost: rq.key.vhost, Queue: rq.key.queue, ID: it.id, Tail: inTail, Data: data}, it.sl.flags&flagDelivered != 0)
	if err != nil || it.sl.flags&slotFresh == 0 {
		return err
	}
	return r.s.placeRecovered(rq.key, it.id, it.sl.recno, tail)
}

// placeRecovered files a record found at Open where the first Recover's fn
// put it: in the queue's tail or in its window.
func (s *File) placeRecovered(k qkey, id, recno uint64, tail bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queues[k]
	sl, ok := q.slotOf(id)
	if !ok || sl.recno != recno || sl.flags&slotFresh == 0 {
		return nil // acked or replaced meanwhile, or placed already
	}
	sl.flags &^= slotFresh
	if tail {
		if last, ok := s.tailLast(k); ok && id <= last {
			return fmt.Errorf("store: recovering %s/%s#%d into the tail, below its tail ID %d: %w", k.vhost, k.queue, id, last, ErrInvalid)
		}
		sl.flags |= slotTail
		q.tail = append(q.tail, id)
		s.inTail++
	}
	q.slots[id] = sl
	return nil
}

// emitAgain reads one record on its own and hands it out.
func (r *recoverer) emitAgain(rq *recoverQueue, i int) error {
	sl := rq.items[i].sl
	r.s.mu.Lock()
	seg := r.s.segs[sl.seg]
	r.s.mu.Unlock()
	r.one = slices.Grow(r.one[:0], int(sl.size))[:sl.size]
	var data []byte
	err := errCorrupt
	if seg != nil {
		if err = readFull(seg.f, r.one, int64(sl.off)); err == nil {
			data, err = checkMessage(r.one, sl.recno)
		}
	}
	if err != nil {
		if uerr := r.s.usable(); uerr != nil {
			return uerr
		}
		r.s.log.Error("store: skipping unreadable message", "vhost", rq.key.vhost, "queue", rq.key.queue, "id", rq.items[i].id, "err", err)
		return nil
	}
	return r.emit(rq, i, data)
}

// appendQueueKey appends a queue's map key: vhost length, vhost, queue. Maps
// keyed by it are looked up from record bytes without allocating.
func appendQueueKey[T string | []byte](b []byte, vhost, queue T) []byte {
	return append(append(append(b, byte(len(vhost))), vhost...), queue...)
}
