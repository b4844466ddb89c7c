package store

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"slices"
)

// usableLocked returns the error every call returns now, if any.
func (s *File) usableLocked() error {
	if s.closing {
		return ErrClosed
	}
	return s.err
}

func (s *File) usable() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.usableLocked()
}

// fail records a sticky error; the first one wins.
func (s *File) fail(err error) {
	s.mu.Lock()
	s.failLocked(err)
	s.mu.Unlock()
}

func (s *File) failLocked(err error) {
	if s.err == nil {
		s.err = fmt.Errorf("store: failed, reopen to recover: %w", err)
		s.log.Error("store: I/O error, store failed until reopened", "err", err)
	}
}

// kick wakes the syncer. The channel holds one signal, so any number of kicks
// before the syncer looks collapse into one batch.
func (s *File) kick() {
	select {
	case s.kickc <- struct{}{}:
	default:
	}
}

// AppendMessages implements Store.
func (s *File) AppendMessages(recs []MessageRecord, done func(error)) {
	if len(recs) == 0 {
		done(nil)
		return
	}
	if err := validRecords(recs); err != nil {
		done(err)
		return
	}
	s.mu.Lock()
	if err := s.usableLocked(); err != nil {
		s.mu.Unlock()
		done(err)
		return
	}
	var q *qindex
	var k qkey
	ordered := true
	if len(recs) == 1 {
		// The common case (the broker appends a record per call): one
		// lookup of the queue for the check and the append.
		r := &recs[0]
		k = qkey{r.VHost, r.Queue}
		q = s.queueIndex(k)
		lo, hi, ok := q.tailBounds()
		ordered = !ok || r.Tail && r.ID > hi || !r.Tail && r.ID < lo
	} else {
		ordered = tailOrdered(recs, s.tailBounds)
	}
	if !ordered {
		s.mu.Unlock()
		done(ErrInvalid)
		return
	}
	base := s.nextRecno
	s.nextRecno += uint64(len(recs))
	for i := range recs {
		r := &recs[i]
		if q == nil || r.VHost != k.vhost || r.Queue != k.queue {
			k = qkey{r.VHost, r.Queue}
			q = s.queueIndex(k)
		}
		if old, ok := q.slots[r.ID]; ok {
			delete(q.slots, r.ID)
			s.dropLocked(old)
		} else {
			s.live++
		}
		if r.Tail {
			q.pend = append(q.pend, pendTail{r.ID, base + uint64(i)})
			s.inTail++
			continue
		}
		sl := slot{recno: base + uint64(i)}
		if r.Transient {
			sl.flags = flagTransient
		}
		q.slots[r.ID] = sl
	}
	s.pend = append(s.pend, appendBatch{recs: recs, base: base, done: done})
	s.pendRecs += len(recs)
	s.mu.Unlock()
	s.kick()
}

// dropLocked accounts for a slot leaving the index. A record not written yet
// needs nothing: the syncer skips it, or logs its ack if it wrote it already.
func (s *File) dropLocked(sl slot) {
	if sl.flags&slotWritten == 0 {
		return
	}
	seg := s.segs[sl.seg]
	seg.live--
	seg.liveBytes -= int64(sl.size)
	if sl.flags&flagTransient == 0 {
		seg.dead = append(seg.dead, sl.recno)
		s.pendAcks = append(s.pendAcks, sl.recno)
	}
}

// ReadMessage implements Store.
func (s *File) ReadMessage(vhost, queue string, id uint64) (MessageRecord, error) {
	for attempt := 0; ; attempt++ {
		s.mu.Lock()
		if err := s.usableLocked(); err != nil {
			s.mu.Unlock()
			return MessageRecord{}, err
		}
		sl, ok := slot{}, false
		if q := s.queues[qkey{vhost, queue}]; q != nil {
			sl, ok = q.slots[id]
		}
		if !ok || sl.flags&slotWritten == 0 {
			s.mu.Unlock()
			return MessageRecord{}, ErrNotFound
		}
		f := s.segs[sl.seg].f
		s.mu.Unlock()
		buf := make([]byte, sl.size)
		err := readFull(f, buf, int64(sl.off))
		if errors.Is(err, os.ErrClosed) && attempt < 3 {
			continue // compaction moved it, or Close: look again
		}
		if err != nil {
			return MessageRecord{}, fmt.Errorf("store: read %s/%s#%d: %w", vhost, queue, id, err)
		}
		data, err := checkMessage(buf, sl.recno)
		if err != nil {
			return MessageRecord{}, fmt.Errorf("store: read %s/%s#%d: %w", vhost, queue, id, err)
		}
		return MessageRecord{VHost: vhost, Queue: queue, ID: id, Transient: sl.flags&flagTransient != 0, Data: data}, nil
	}
}

// checkMessage verifies a message record read back and returns its data.
func checkMessage(rec []byte, recno uint64) ([]byte, error) {
	typ, p, err := checkRecord(rec)
	if err != nil || typ != recMessage {
		return nil, errCorrupt
	}
	h, data, err := decodeMessage(p)
	if err != nil || h.recno != recno {
		return nil, errCorrupt
	}
	return data, nil
}

// Ack implements Store.
func (s *File) Ack(vhost, queue string, ids []uint64) error {
	s.mu.Lock()
	if err := s.usableLocked(); err != nil {
		s.mu.Unlock()
		return err
	}
	k := qkey{vhost, queue}
	q := s.queues[k]
	if q == nil {
		s.mu.Unlock()
		return nil
	}
	for _, id := range ids {
		if sl, ok := q.slots[id]; ok {
			delete(q.slots, id)
			s.live--
			s.dropLocked(sl)
		}
	}
	if q.empty() {
		s.dropIndexLocked(k, q)
		s.meta.queueDrops.Store(true)
	}
	s.mu.Unlock()
	s.kick()
	return nil
}

// MarkDelivered implements Store.
func (s *File) MarkDelivered(vhost, queue string, ids []uint64) error {
	s.mu.Lock()
	if err := s.usableLocked(); err != nil {
		s.mu.Unlock()
		return err
	}
	q := s.queues[qkey{vhost, queue}]
	marked := false
	for _, id := range ids {
		sl, ok := q.slotOf(id)
		if !ok || sl.flags&flagDelivered != 0 {
			continue
		}
		sl.flags |= flagDelivered
		q.slots[id] = sl
		// A record not written yet will carry the flag (or the syncer logs
		// the mark when it finds it set too late); transient ones never
		// need it.
		if sl.flags&(slotWritten|flagTransient) == slotWritten {
			s.pendDeliv = append(s.pendDeliv, sl.recno)
			marked = true
		}
	}
	s.mu.Unlock()
	if marked {
		s.kick()
	}
	return nil
}

// DeleteQueue implements Store.
func (s *File) DeleteQueue(vhost, queue string) error {
	s.mu.Lock()
	if err := s.usableLocked(); err != nil {
		s.mu.Unlock()
		return err
	}
	k := qkey{vhost, queue}
	q := s.queues[k]
	if q == nil {
		s.mu.Unlock()
		return nil
	}
	for _, sl := range q.slots {
		s.live--
		s.dropLocked(sl)
	}
	s.dropIndexLocked(k, q)
	s.live -= len(q.pend)
	s.inTail -= len(q.pend)
	runs := append(slices.Clone(q.tail), q.fresh...)
	acked, deliv := s.openAcked, s.openDeliv
	s.mu.Unlock()
	err := s.dropRuns(k, runs, acked, deliv)
	s.meta.queueDrops.Store(true)
	s.kick()
	return err
}

// dropRuns acknowledges the members of a deleted queue's runs: their
// recnos are read from the segments (without s.mu), the ack log needs them.
// Acked fresh records among them only go to their segment's dead list.
func (s *File) dropRuns(k qkey, runs []*run, acked, deliv []uint64) error {
	var buf []byte
	var recnos, dead []uint64
	var firstErr error
	for _, r := range runs {
		rr := newRunReader(r, k, r.count, acked, deliv, buf, runReadMax)
		recnos, dead = recnos[:0], dead[:0]
		for {
			ok, err := rr.next()
			for _, d := range rr.dead {
				dead = append(dead, d.h.recno)
			}
			if err != nil {
				// Its records stay on disk, live: after a restart the broker
				// finds them without a queue and deletes them again.
				firstErr = cmp.Or(firstErr, s.readFailed(err))
				break
			}
			if !ok {
				break
			}
			if rr.cur.h.flags&flagTransient == 0 {
				recnos = append(recnos, rr.cur.h.recno)
			}
		}
		buf = rr.sc.buf
		s.mu.Lock()
		s.live -= r.count
		r.seg.live -= r.count
		r.seg.liveBytes -= r.recBytes
		if r.kind == runFresh {
			s.fresh -= r.count
		} else {
			s.inTail -= r.count
			r.seg.tailLive -= r.count
		}
		r.seg.dead = append(append(r.seg.dead, recnos...), dead...)
		s.pendAcks = append(s.pendAcks, recnos...)
		s.mu.Unlock()
	}
	return firstErr
}

// Sync implements Store.
func (s *File) Sync() error { return s.wait(false) }

// settle waits until everything pending is written and synced and the syncer
// has no maintenance left (deletions, compaction, ack log rewrite). For tests.
func (s *File) settle() error { return s.wait(true) }

func (s *File) wait(settle bool) error {
	ch := make(chan error, 1)
	s.mu.Lock()
	if err := s.usableLocked(); err != nil {
		s.mu.Unlock()
		return err
	}
	s.waiters = append(s.waiters, waiter{ch: ch, settle: settle})
	s.mu.Unlock()
	s.kick()
	return <-ch
}

// Stats implements Store.
func (s *File) Stats() Stats {
	s.mu.Lock()
	st := Stats{Segments: len(s.segs), LiveMessages: s.live, Pending: s.pendRecs, TailMessages: s.inTail}
	for _, seg := range s.segs {
		st.DiskBytes += seg.size
		st.LiveBytes += seg.liveBytes
	}
	s.mu.Unlock()
	st.AckLogBytes = s.ackBytes.Load()
	st.DiskBytes += st.AckLogBytes + s.meta.bytes.Load()
	st.Syncs = s.syncs.Load()
	st.SyncedAppends = s.syncedAppends.Load()
	st.Compactions = s.compactions.Load()
	st.Deleted = s.deleted.Load()
	st.MetaCommits, st.MetaSyncs = s.meta.commits.Load(), s.meta.writes.Load()
	return st
}

// FreeDisk implements Store with statfs(2) on the store's directory.
func (s *File) FreeDisk() (uint64, error) { return s.fs.Free(s.dir) }

// Close implements Store: it waits for the syncer to write (and, unless
// SyncNever, sync) everything pending, then closes the files. It returns the
// sticky error if the store had failed.
func (s *File) Close() error {
	s.mu.Lock()
	if s.closeCalled {
		s.mu.Unlock()
		return nil
	}
	s.closeCalled = true
	s.mu.Unlock()
	s.closeMeta() // first: a metadata write may wait for the syncer
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	s.kick()
	<-s.stopped
	s.stopIndexer()
	s.meta.fileMu.Lock()
	defer s.meta.fileMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closeFiles()
	return s.err
}
