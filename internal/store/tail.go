package store

import (
	"errors"
	"slices"
)

// tailLast returns the highest tail ID of a queue, if it has a tail. Called
// with s.mu held.
func (s *File) tailLast(k qkey) (uint64, bool) {
	q := s.queues[k]
	if q == nil || len(q.tail) == 0 {
		return 0, false
	}
	return q.tail[len(q.tail)-1], true
}

// unlinkTailLocked removes id from a queue's tail (its append failed).
func (s *File) unlinkTailLocked(q *qindex, id uint64) {
	if i := slices.Index(q.tail, id); i >= 0 {
		q.tail = slices.Delete(q.tail, i, i+1)
		s.inTail--
	}
}

// ReadTail implements Store.
func (s *File) ReadTail(vhost, queue string, max int, maxBytes int64) ([]TailRecord, error) {
	s.mu.Lock()
	if err := s.usableLocked(); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	k := qkey{vhost, queue}
	q := s.queues[k]
	if q == nil || max <= 0 {
		s.mu.Unlock()
		return nil, nil
	}
	type taken struct {
		id    uint64
		flags byte
	}
	var got []taken
	var bytes int64
	overhead := int64(msgRecordSize(vhost, queue, 0))
	n := 0
	for ; n < len(q.tail) && len(got) < max; n++ {
		sl := q.slots[q.tail[n]]
		if sl.flags&slotWritten == 0 {
			break
		}
		size := int64(sl.size) - overhead
		if len(got) > 0 && bytes+size > maxBytes {
			break
		}
		bytes += size
		got = append(got, taken{q.tail[n], sl.flags})
		sl.flags &^= slotTail
		q.slots[q.tail[n]] = sl
	}
	q.tail = q.tail[n:]
	s.inTail -= n
	s.mu.Unlock()
	out := make([]TailRecord, 0, len(got))
	for _, g := range got {
		m, err := s.ReadMessage(vhost, queue, g.id)
		if errors.Is(err, ErrNotFound) {
			continue // the queue was deleted meanwhile
		}
		if err != nil {
			return out, err
		}
		out = append(out, TailRecord{ID: g.id, Transient: m.Transient, Delivered: g.flags&flagDelivered != 0, Data: m.Data})
	}
	return out, nil
}

// DropTail implements Store.
func (s *File) DropTail(vhost, queue string, n int) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usableLocked(); err != nil {
		return 0, err
	}
	k := qkey{vhost, queue}
	q := s.queues[k]
	if q == nil || n <= 0 {
		return 0, nil
	}
	i := 0
	for ; i < len(q.tail) && i < n; i++ {
		sl := q.slots[q.tail[i]]
		if sl.flags&slotWritten == 0 {
			break
		}
		delete(q.slots, q.tail[i])
		s.live--
		s.dropLocked(sl)
	}
	q.tail = q.tail[i:]
	s.inTail -= i
	if q.empty() {
		delete(s.queues, k)
		s.meta.queueDrops.Store(true)
	}
	if i > 0 {
		s.kick()
	}
	return i, nil
}
