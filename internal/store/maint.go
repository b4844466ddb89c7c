package store

import (
	"io"
	"os"
	"path/filepath"
	"slices"
)

// compactJob copies the live records of one mostly dead segment forward, a
// chunk per step, so that appends never wait behind a whole segment's copy.
type compactJob struct {
	src    *segment
	pos    int64 // next record to look at
	failed bool  // the segment could not be read: keep it, do not retry
	// writeFailed: a copy could not be written (disk full); keep the
	// segment and retry after the next successful write.
	writeFailed bool
}

// maintain does one piece of housekeeping between batches and reports whether
// more is waiting (a compaction in progress).
func (s *File) maintain() bool {
	s.mu.Lock()
	stop := s.closing || s.err != nil || s.recovering > 0 || s.fresh > 0
	s.mu.Unlock()
	if stop {
		return false
	}
	s.deleteDead()
	if s.w.reserveUsed {
		s.growReserve() // space may be back: deletions, or someone else freed it
	}
	if s.compactStep() {
		return true
	}
	s.rewriteAckLog()
	return false
}

// deleteDead removes sealed segments without live records.
func (s *File) deleteDead() {
	var dead []*segment
	s.mu.Lock()
	for _, seg := range s.segs {
		if seg != s.head && seg.live == 0 && (s.w.job == nil || s.w.job.src != seg) {
			dead = append(dead, seg)
		}
	}
	s.mu.Unlock()
	if len(dead) > 0 {
		s.removeSegments(dead)
	}
}

// removeSegments deletes segment files. The head is synced first: records
// compaction copied out of them must be durable before the originals go.
func (s *File) removeSegments(segs []*segment) {
	if s.opts.Sync != SyncNever {
		if err := s.syncDirty(); err != nil {
			s.fail(err)
			return
		}
	}
	for _, seg := range segs {
		s.mu.Lock()
		delete(s.segs, seg.num)
		s.mu.Unlock()
		seg.f.Close()                 // a reader still using it gets os.ErrClosed and looks again
		os.Remove(s.sumPath(seg.num)) // first: a summary never outlives its segment
		seg.dropIndex()
		if err := s.fs.Remove(seg.path); err != nil && !os.IsNotExist(err) {
			// Still on disk, but its acks would leave the ack log at the next
			// rewrite: only reopening can sort that out safely.
			s.fail(err)
			return
		}
		s.w.dirDirty = true
		s.deleted.Add(1)
	}
}

// compactStep starts or continues a compaction; true if it has more to do.
func (s *File) compactStep() bool {
	job := s.w.job
	if job == nil {
		if s.w.compactHold {
			return false
		}
		if job = s.pickCompaction(); job == nil {
			return false
		}
		s.w.job = job
		s.log.Debug("store: compacting segment", "segment", job.src.num)
	}
	if len(s.w.moves) > 0 {
		return true // the round writes the last step's copies first
	}
	if job.failed || job.writeFailed || job.pos >= job.src.size {
		s.finishCompaction(job)
		return true // another segment may be due
	}
	sc := newScanner(job.src.f, job.pos, job.src.size, make([]byte, 0, s.opts.compactChunk))
	type found struct {
		key  qkey // copied: h's names alias the scanner's buffer
		h    msgHeader
		off  int64
		data []byte
	}
	var recs []found
	for sc.pos-job.pos < int64(s.opts.compactChunk) {
		rec, off, err := sc.next()
		if err == io.EOF && sc.pos == job.src.size {
			break
		}
		var h msgHeader
		var data []byte
		if err == nil {
			h, data, err = decodeMessage(rec[recHeader+1:])
		}
		if err != nil {
			s.log.Error("store: segment unreadable, not compacting it", "segment", job.src.num, "offset", off, "err", err)
			job.src.noCompact = true
			job.failed = true
			return true
		}
		recs = append(recs, found{qkey{string(h.vhost), string(h.queue)}, h, off, slices.Clone(data)})
	}
	job.pos = sc.pos
	s.mu.Lock()
	for _, r := range recs {
		k := r.key
		q := s.queues[k]
		if q == nil {
			continue
		}
		if sl, ok := q.slots[r.h.id]; ok && sl.recno == r.h.recno && sl.seg == job.src.num && sl.off == uint32(r.off) {
			s.w.moves = append(s.w.moves, item{key: k, id: r.h.id, recno: r.h.recno, data: r.data, src: job.src, srcOff: uint32(r.off)})
		}
	}
	s.mu.Unlock()
	return true
}

// pickCompaction chooses the sealed segment with the smallest live share, if
// one has less than half of its bytes live.
func (s *File) pickCompaction() *compactJob {
	s.mu.Lock()
	defer s.mu.Unlock()
	var best *segment
	bestShare := 0.5
	for _, seg := range s.segs {
		data := seg.size - segHeaderSize
		// Tail records are not moved (they would need their runs
		// rebuilt): a segment holding some waits until they are read or
		// dropped.
		if seg == s.head || seg.noCompact || seg.live == 0 || seg.tailLive > 0 || data <= 0 {
			continue
		}
		if share := float64(seg.liveBytes) / float64(data); share < bestShare {
			best, bestShare = seg, share
		}
	}
	if best == nil {
		return nil
	}
	return &compactJob{src: best, pos: segHeaderSize}
}

// finishCompaction deletes the compacted segment once all its live records
// have copies (removeSegments syncs them first).
func (s *File) finishCompaction(job *compactJob) {
	s.w.job = nil
	s.mu.Lock()
	live := job.src.live
	s.mu.Unlock()
	if job.writeFailed {
		// The disk is full: unindexLocked set compactHold when the copies
		// failed, and a write that succeeded since has cleared it again.
		return
	}
	if job.failed || live > 0 {
		if !job.failed {
			s.log.Warn("store: compaction left live records behind", "segment", job.src.num, "live", live)
		}
		job.src.noCompact = true
		return
	}
	s.removeSegments([]*segment{job.src})
	s.compactions.Add(1)
}

// rewriteAckLog replaces the ack log once it has doubled since the last
// rewrite: a checkpoint, the acks of dead records still on disk and the
// delivery marks of live records are all a recovery needs.
func (s *File) rewriteAckLog() {
	w := &s.w
	if w.job != nil || w.ackSize < max(s.opts.ackRewriteMin, 2*w.ackBase) {
		return
	}
	if w.dirDirty {
		// Removed segments must stay removed before their acks are dropped.
		if err := s.fs.SyncDir(s.dir); err != nil {
			s.fail(err)
			return
		}
		w.dirDirty = false
	}
	b := appendLogHeader(nil, ackMagic)
	acked, deliv, next := s.ackSnapshot()
	var start int
	b, start = beginRecord(b, recCheckpoint)
	b = append(b, 0, 0, 0, 0, 0, 0, 0, 0)
	putUint64(b[len(b)-8:], next)
	endRecord(b, start)
	b = appendRecnoRecords(b, recAcked, acked)
	b = appendRecnoRecords(b, recDelivered, deliv)
	f, err := s.replaceFile("acks.log", b)
	if err != nil {
		if isFatal(err) {
			s.fail(err)
		} else {
			s.log.Warn("store: ack log rewrite failed, will retry", "err", err)
		}
		w.ackBase = w.ackSize // back off until it has doubled again
		return
	}
	w.ackF.Close()
	w.ackF, w.ackSize, w.ackBase, w.ackDirty = f, int64(len(b)), int64(len(b)), false
	s.ackBytes.Store(w.ackSize)
}

// ackSnapshot collects what a rewritten ack log must hold.
func (s *File) ackSnapshot() (acked, deliv []uint64, next uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, seg := range s.segs {
		seg.dead = sortedSet(seg.dead)
		acked = append(acked, seg.dead...)
		kept := seg.movedOut[:0]
		for _, m := range seg.movedOut {
			if s.queues[m.key].holds(m.id, m.recno) {
				kept = append(kept, m)
				continue
			}
			acked = append(acked, m.recno) // the copy died: so must this original
			seg.dead = append(seg.dead, m.recno)
		}
		seg.movedOut = kept
	}
	for _, q := range s.queues {
		for _, sl := range q.slots {
			if sl.flags&(slotWritten|flagTransient|flagDelivered) == slotWritten|flagDelivered {
				deliv = append(deliv, sl.recno)
			}
		}
		for _, r := range q.tail {
			deliv = append(deliv, r.deliv...)
		}
		// Fresh runs' marks are the ack log's (openDeliv): maintenance
		// waits until Recover has handed them out.
	}
	return sortedSet(acked), sortedSet(deliv), s.nextRecno
}

func (q *qindex) slotOf(id uint64) (slot, bool) {
	if q == nil {
		return slot{}, false
	}
	sl, ok := q.slots[id]
	return sl, ok
}

// replaceFile atomically replaces dir/name with content b: write a temporary
// file, sync it, rename it over, sync the directory. It returns the new file,
// open for appending. A failure before the rename leaves the old file intact
// (not sticky unless cleanup failed); one after it is fatal.
func (s *File) replaceFile(name string, b []byte) (file, error) {
	path := filepath.Join(s.dir, name)
	tmp := path + ".tmp"
	f, err := s.fs.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	err = writeFull(f, b, 0)
	if err == nil && s.opts.Sync != SyncNever {
		if err = f.Sync(); err != nil {
			err = fatalError{err}
		}
	}
	if err == nil {
		err = s.fs.Rename(tmp, path)
	}
	if err != nil {
		f.Close()
		if rerr := s.fs.Remove(tmp); rerr != nil && !os.IsNotExist(rerr) {
			return nil, fatalError{rerr}
		}
		return nil, err
	}
	if err := s.fs.SyncDir(s.dir); err != nil {
		f.Close()
		return nil, fatalError{err}
	}
	return f, nil
}

func putUint64(b []byte, v uint64) {
	for i := range 8 {
		b[i] = byte(v >> (8 * i))
	}
}
