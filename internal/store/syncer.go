package store

import (
	"errors"
	"runtime"
	"slices"
	"time"
)

// syncerState belongs to the syncer goroutine (and to Open before it starts).
type syncerState struct {
	buf, abuf []byte // encoding buffers, reused
	headSize  int64  // bytes written to the head segment
	headDirty bool   // head written since its last fdatasync
	unsynced  uint64
	ackF      file
	ackSize   int64
	ackBase   int64 // ack log size after the last rewrite
	ackDirty  bool
	dirDirty  bool // segment files removed since the directory was synced
	// compactHold stops compaction after copies failed to be written, until
	// a write succeeds again.
	compactHold bool
	moves       []item // compaction copies for the next round
	// retryAcks and retryDeliv could not be written (disk full); the next
	// round writes them first.
	retryAcks, retryDeliv []uint64
	job                   *compactJob
	settlers              []waiter
	sealed                []*segment // sealed this round: their summaries are written after it
	sealedIdx             []*segment // sealed this round: indexed after it (index.go)

	reserveF    file  // see space.go
	reserveSize int64 // bytes in the reserve now
	reserveUsed bool  // released since it was last full
	written     int64 // bytes written since WatchWrites' fn last ran

	rollbackLog, ackFailLog, reserveLog throttle
}

// writeChunk is how many bytes the syncer encodes before it writes them.
const writeChunk = 1 << 20

// item is one record the syncer writes: an append, or a compaction copy.
type item struct {
	key    qkey
	id     uint64
	recno  uint64
	flags  byte
	data   []byte
	src    *segment // the segment a compaction copy comes from; nil for appends
	tail   bool     // an append to its queue's tail
	srcOff uint32
	seg    *segment // where it was written
	off    uint32
	size   uint32
}

// run is the syncer: the single goroutine that writes. It follows the batching
// primitive of ARCHITECTURE.md: producers append under s.mu and kick; it takes
// everything pending at once, writes it, syncs once, then runs the callbacks.
// Between batches it deletes dead segments, compacts and rewrites the ack log.
func (s *File) run() {
	defer close(s.stopped)
	var tick <-chan time.Time
	if s.opts.Sync == SyncInterval {
		t := time.NewTicker(s.opts.Interval)
		defer t.Stop()
		tick = t.C
	}
	for {
		if s.round() {
			continue
		}
		if s.maintain() {
			continue
		}
		if s.finish() {
			return
		}
		s.answerSettlers()
		select {
		case <-s.kickc:
		case <-tick:
			if err := s.syncDirty(); err != nil {
				s.fail(err)
			}
		}
	}
}

// round writes one batch of everything pending; false if there was nothing.
func (s *File) round() bool {
	s.mu.Lock()
	if len(s.pend) == 0 && len(s.pendAcks) == 0 && len(s.pendDeliv) == 0 && len(s.waiters) == 0 && len(s.w.moves) == 0 {
		s.mu.Unlock()
		return false
	}
	batches, acks, deliv, waiters, moves := s.pend, s.pendAcks, s.pendDeliv, s.waiters, s.w.moves
	s.pend, s.pendAcks, s.pendDeliv, s.waiters, s.w.moves = nil, nil, nil, nil, nil
	acks, deliv = append(s.w.retryAcks, acks...), append(s.w.retryDeliv, deliv...)
	s.w.retryAcks, s.w.retryDeliv = nil, nil
	s.pendRecs = 0
	err := s.err
	var items []item
	if err == nil {
		items = s.planLocked(batches, moves)
	}
	s.mu.Unlock()

	appendErr, syncErr := err, err
	if err == nil {
		appendErr, syncErr = s.writeRound(items, acks, deliv, len(waiters) > 0)
	}
	for _, b := range batches {
		b.done(appendErr)
	}
	if len(batches) > 0 {
		// Let the publishers just confirmed run and append again before the
		// next batch is taken: otherwise they miss it, and publishers split
		// into two groups that alternate, each sync covering only half.
		runtime.Gosched()
	}
	for _, w := range waiters {
		if w.settle && syncErr == nil {
			s.w.settlers = append(s.w.settlers, w)
		} else {
			w.ch <- syncErr
		}
	}
	return true
}

// planLocked picks what to write: appends still live (an append acked before
// the syncer got to it is never written) and compaction copies whose record
// has not moved or died since.
func (s *File) planLocked(batches []appendBatch, moves []item) []item {
	var items []item
	var q *qindex
	var k qkey
	for _, b := range batches {
		for i := range b.recs {
			r := &b.recs[i]
			if q == nil || r.VHost != k.vhost || r.Queue != k.queue {
				k = qkey{r.VHost, r.Queue}
				q = s.queues[k]
			}
			recno := b.base + uint64(i)
			if q == nil {
				continue
			}
			if r.Tail {
				if q.pendIndex(recno) >= 0 {
					var fl byte
					if r.Transient {
						fl = flagTransient
					}
					items = append(items, item{key: k, id: r.ID, recno: recno, flags: fl, data: r.Data, tail: true})
				}
				continue
			}
			if sl, ok := q.slots[r.ID]; ok && sl.recno == recno {
				items = append(items, item{key: k, id: r.ID, recno: recno, flags: sl.flags & (flagTransient | flagDelivered), data: r.Data})
			}
		}
	}
	for _, m := range moves {
		if q := s.queues[m.key]; q != nil {
			if sl, ok := q.slots[m.id]; ok && sl.recno == m.recno && sl.seg == m.src.num && sl.off == m.srcOff {
				m.flags = sl.flags&(flagTransient|flagDelivered) | flagMoved
				items = append(items, m)
			}
		}
	}
	return items
}

// writeRound writes items and acks, syncs if needed and updates the index.
// It returns the error for the round's appends and the one for its Sync
// callers, which also covers the acks.
func (s *File) writeRound(items []item, acks, deliv []uint64, force bool) (appendErr, syncErr error) {
	werr := s.writeItems(items)
	var aerr error
	if !sticky(werr) {
		aerr = s.writeAcks(acks, deliv)
	}
	var serr error
	if werr == nil && !sticky(aerr) && (force || s.opts.Sync == SyncAlways && persistentAppend(items)) {
		serr = s.syncDirty()
	}
	if len(s.w.sealedIdx) > 0 {
		// After the round's offsets are noted (below, before any reader can
		// see its records in a run): the indexer writes them out.
		defer func() { s.indexLater(s.w.sealedIdx...); s.w.sealedIdx = s.w.sealedIdx[:0] }()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if werr == nil {
		noteOffsets(items)
		s.indexWrittenLocked(items)
	} else {
		s.unindexLocked(items)
	}
	if err := errors.Join(werr, aerr, serr); sticky(err) {
		s.failLocked(err)
		return s.err, s.err
	}
	return werr, errors.Join(werr, aerr)
}

func persistentAppend(items []item) bool {
	for i := range items {
		if items[i].src == nil && items[i].flags&flagTransient == 0 {
			return true
		}
	}
	return false
}

// writeItems encodes items into the head segment, writing every writeChunk
// bytes and starting new segments as they fill. On error it cuts everything
// it wrote back off; the error is fatal (see sticky) if that failed too.
func (s *File) writeItems(items []item) error {
	if len(items) == 0 {
		return nil
	}
	if !s.growReserve() {
		s.wrote(0, true)
		return errReserve
	}
	w := &s.w
	startHead, startSize := s.head, w.headSize
	var created []*segment
	head, at := startHead, startSize
	buf := w.buf[:0]
	var err error
	for i := range items {
		it := &items[i]
		n := int64(msgRecordSize(it.key.vhost, it.key.queue, len(it.data)))
		if end := at + int64(len(buf)); end+n > s.opts.SegmentSize && end > segHeaderSize {
			if err = s.seal(head, buf, at); err != nil {
				break
			}
			w.sealedIdx = append(w.sealedIdx, head)
			if head.sum != nil {
				head.sum.size = end
				w.sealed = append(w.sealed, head)
			}
			var seg *segment
			if seg, err = s.createSegment(s.nextSegNum(), s.currentRecno()); err != nil {
				break
			}
			created = append(created, seg)
			s.mu.Lock()
			s.segs[seg.num], s.head = seg, seg
			s.mu.Unlock()
			head, at, buf = seg, segHeaderSize, buf[:0]
		}
		it.seg, it.off, it.size = head, uint32(at+int64(len(buf))), uint32(n)
		buf = appendMessageRecord(buf, it.recno, it.id, it.flags, it.key.vhost, it.key.queue, it.data)
		if head.sum != nil {
			head.sum.add(head, it, buf[len(buf)-int(n):], s.opts.Weigh(it.data))
		}
		if len(buf) >= writeChunk {
			// Large batches go out in chunks: the buffer stays small and
			// warm in cache, and the kernel starts writeback earlier.
			if err = writeFull(head.f, buf, at); err != nil {
				break
			}
			at, buf = at+int64(len(buf)), buf[:0]
		}
	}
	if err == nil {
		err = writeFull(head.f, buf, at)
	}
	if cap(buf) <= 4*writeChunk {
		w.buf = buf[:0]
	} else {
		w.buf = nil
	}
	if err != nil {
		// The summaries being built no longer match what stays on disk.
		startHead.sum = nil
		for _, seg := range w.sealed {
			seg.sum = nil
		}
		w.sealed = w.sealed[:0]
		w.sealedIdx = w.sealedIdx[:0]
		return s.rollback(startHead, startSize, created, err)
	}
	s.writeSummaries()
	s.wrote(at+int64(len(buf))-startSize, false)
	w.headSize = at + int64(len(buf))
	w.headDirty = true
	w.compactHold = false
	for i := range items {
		if items[i].src == nil {
			w.unsynced++
		}
	}
	return nil
}

// seal writes the last records of a full head segment and, unless SyncNever,
// syncs it: sealed segments are never written again.
func (s *File) seal(head *segment, buf []byte, at int64) error {
	if err := writeFull(head.f, buf, at); err != nil {
		return err
	}
	if s.opts.Sync == SyncNever {
		return nil
	}
	if err := head.f.Sync(); err != nil {
		return fatalError{err}
	}
	s.syncs.Add(1)
	return nil
}

func (s *File) nextSegNum() uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.nextSeg
	s.nextSeg++
	return n
}

func (s *File) currentRecno() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nextRecno
}

// rollback undoes a failed writeItems: segments it created are removed and the
// head is cut back to where the round started.
func (s *File) rollback(head *segment, size int64, created []*segment, err error) error {
	s.warn(&s.w.rollbackLog, "store: write failed, rolling back", "err", err)
	defer s.wrote(0, noSpace(err))
	s.mu.Lock()
	for _, seg := range created {
		delete(s.segs, seg.num)
	}
	s.head = head
	s.mu.Unlock()
	for _, seg := range created {
		seg.f.Close()
		if rerr := s.fs.Remove(seg.path); rerr != nil {
			return errors.Join(err, fatalError{rerr})
		}
	}
	if terr := head.f.Truncate(size); terr != nil {
		return errors.Join(err, fatalError{terr})
	}
	s.w.headSize = size
	return err
}

// writeAcks appends delivered and acked records to the ack log (no sync).
// Delivery marks go first, in a write of their own: should the acks then not
// fit, their messages come back after a crash at least marked redelivered.
// What a full disk kept out is retried with the next round that has other
// work (retryAcks, retryDeliv), rather than spinning on it.
func (s *File) writeAcks(acks, deliv []uint64) error {
	if len(acks) == 0 && len(deliv) == 0 {
		return nil
	}
	if err := s.writeRecnos(recDelivered, deliv); err != nil {
		s.w.retryAcks, s.w.retryDeliv = acks, deliv
		return err
	}
	if err := s.writeRecnos(recAcked, acks); err != nil {
		s.w.retryAcks = acks
		return err
	}
	return nil
}

func (s *File) writeRecnos(typ byte, recnos []uint64) error {
	if len(recnos) == 0 {
		return nil
	}
	w := &s.w
	b := appendRecnoRecords(w.abuf[:0], typ, sortedSet(slices.Clone(recnos)))
	if cap(b) <= 4<<20 {
		w.abuf = b[:0]
	}
	err := s.writeAckLog(b)
	if err != nil && !sticky(err) {
		what := "acks"
		if typ == recDelivered {
			what = "delivery marks"
		}
		s.warn(&w.ackFailLog, "store: disk full, "+what+" not written: kept in memory and retried; after a crash these messages would come back", "records", len(recnos), "err", err)
	}
	return err
}

// sortedSet sorts and removes duplicates in place.
func sortedSet(v []uint64) []uint64 {
	slices.Sort(v)
	return slices.Compact(v)
}

// syncDirty fdatasyncs the head segment and then the ack log, if written
// since their last sync. Any failure is fatal: after a failed fsync the kernel
// may have dropped the dirty pages, so nothing written since can be trusted.
func (s *File) syncDirty() error {
	w := &s.w
	if w.headDirty {
		s.mu.Lock()
		f := s.head.f
		s.mu.Unlock()
		if err := f.Sync(); err != nil {
			return fatalError{err}
		}
		w.headDirty = false
		s.syncs.Add(1)
		s.syncedAppends.Add(w.unsynced)
		w.unsynced = 0
	}
	if w.ackDirty {
		if err := w.ackF.Sync(); err != nil {
			return fatalError{err}
		}
		w.ackDirty = false
	}
	return nil
}

// indexWrittenLocked records where items were written. An item whose message
// was acked (or appended again) while it was being written is dead on arrival:
// its ack is logged now, because Ack could not know where it would land.
func (s *File) indexWrittenLocked(items []item) {
	for i := range items {
		it := &items[i]
		it.seg.size = max(it.seg.size, int64(it.off)+int64(it.size))
		persistent := it.flags&flagTransient == 0
		q := s.queues[it.key]
		if it.tail {
			if i := q.pendIndex(it.recno); i >= 0 {
				q.unpend(i)
				s.tailWrittenLocked(q, it)
			} else if persistent {
				it.seg.dead = append(it.seg.dead, it.recno)
				s.pendAcks = append(s.pendAcks, it.recno)
			}
			continue
		}
		sl, ok := slot{}, false
		if q != nil {
			sl, ok = q.slots[it.id]
			ok = ok && sl.recno == it.recno
		}
		if it.src != nil {
			if ok && sl.seg == it.src.num && sl.off == it.srcOff {
				it.src.live--
				it.src.liveBytes -= int64(sl.size)
				if persistent {
					it.src.movedOut = append(it.src.movedOut, movedRef{it.key, it.id, it.recno})
				}
				sl.seg, sl.off, sl.size = it.seg.num, it.off, it.size
				q.slots[it.id] = sl
				it.seg.live++
				it.seg.liveBytes += int64(it.size)
			} else if !ok && persistent {
				it.seg.dead = append(it.seg.dead, it.recno) // its ack is logged already
			}
			continue
		}
		switch {
		case ok:
			sl.seg, sl.off, sl.size = it.seg.num, it.off, it.size
			sl.flags |= slotWritten
			q.slots[it.id] = sl
			it.seg.live++
			it.seg.liveBytes += int64(it.size)
			if persistent && sl.flags&flagDelivered != 0 && it.flags&flagDelivered == 0 {
				s.pendDeliv = append(s.pendDeliv, it.recno)
			}
		case persistent:
			it.seg.dead = append(it.seg.dead, it.recno)
			s.pendAcks = append(s.pendAcks, it.recno)
		}
	}
}

// unindexLocked forgets appends whose write failed: the store does not have them.
func (s *File) unindexLocked(items []item) {
	for i := range items {
		it := &items[i]
		if it.src != nil {
			continue
		}
		q := s.queues[it.key]
		if q == nil {
			continue
		}
		if it.tail {
			if i := q.pendIndex(it.recno); i >= 0 {
				q.unpend(i)
				s.live--
				s.inTail--
			}
		} else if sl, ok := q.slots[it.id]; ok && sl.recno == it.recno && sl.flags&slotWritten == 0 {
			delete(q.slots, it.id)
			s.live--
		}
		if q.empty() {
			s.dropIndexLocked(it.key, q)
		}
	}
	if s.w.job != nil {
		s.w.job.writeFailed = true
		// Hold compaction from this failure on, not from when the job
		// notices it: a write that succeeds in between (space came back)
		// must be able to lift the hold, or compaction waits for yet
		// another write that may never come.
		s.w.compactHold = true
	}
}

// finish reports whether the store is closing with nothing left to write; if
// so it makes everything durable (unless SyncNever) and the syncer exits.
func (s *File) finish() bool {
	s.mu.Lock()
	closing := s.closing && len(s.pend) == 0 && len(s.pendAcks) == 0 && len(s.pendDeliv) == 0 && len(s.waiters) == 0
	failed := s.err != nil
	s.mu.Unlock()
	if !closing {
		return false
	}
	if len(s.w.retryAcks)+len(s.w.retryDeliv) > 0 && !failed {
		if err := s.writeAcks(s.w.retryAcks, s.w.retryDeliv); err != nil {
			s.log.Warn("store: acks lost at close, their messages come back after a restart", "acks", len(s.w.retryAcks), "err", err)
		}
	}
	if s.opts.Sync != SyncNever && !failed {
		err := s.syncDirty()
		if err == nil && s.w.dirDirty {
			err = s.fs.SyncDir(s.dir)
		}
		if err != nil {
			s.fail(err)
		}
	}
	for _, w := range s.w.settlers {
		w.ch <- ErrClosed
	}
	return true
}

func (s *File) answerSettlers() {
	if len(s.w.settlers) == 0 {
		return
	}
	err := s.usable()
	for _, w := range s.w.settlers {
		w.ch <- err
	}
	s.w.settlers = nil
}
