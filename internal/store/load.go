package store

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync/atomic"
	"time"
)

// recovery is the state of Open while it reads the logs. Segments are
// scanned in parallel, each into runs of its own per queue: stretches of a
// queue's persistent records with increasing IDs, nothing per record. Those
// are joined in segment order into each queue's fresh runs, which Recover
// hands out: it tells the live records from the acked ones (the ack log's
// recnos, kept sorted until then) and resolves duplicates.
type recovery struct {
	acked, delivered []uint64              // recnos from the ack log
	queues           map[string]*loadQueue // by appendQueueKey
	messages         int
	bytes            int64
}

type loadQueue struct {
	key  qkey
	runs []*run
}

// segLoad is what scanning one segment (or reading its summary) found.
type segLoad struct {
	sumHead          // recno: the next recno as far as this segment knows
	seg     *segment // nil if the file was removed (torn header)
	queues  map[string]*loadQueue
	order   []*loadQueue // queues in first-seen order, for a deterministic join
	key     []byte
	last    *loadQueue
	err     error
}

// queue returns the collector for a record's queue without allocating when
// the queue is already known.
func (l *segLoad) queue(vhost, queue []byte) *loadQueue {
	if q := l.last; q != nil && string(queue) == q.key.queue && string(vhost) == q.key.vhost {
		return q
	}
	l.key = appendQueueKey(l.key[:0], vhost, queue)
	q := l.queues[string(l.key)]
	if q == nil {
		q = &loadQueue{key: qkey{string(vhost), string(queue)}}
		l.queues[string(l.key)] = q
		l.order = append(l.order, q)
	}
	l.last = q
	return q
}

func (s *File) recoverMessages() error {
	start := time.Now()
	rc := recovery{queues: map[string]*loadQueue{}}
	if err := s.loadAckLog(&rc); err != nil {
		return err
	}
	nums, err := s.segmentNumbers()
	if err != nil {
		return err
	}
	loads := s.scanSegments(nums, &rc, start)
	var firstErr error
	var headSum *segSum
	for i, l := range loads {
		if l.err != nil {
			firstErr = cmp.Or(firstErr, l.err)
		}
		if l.seg == nil {
			continue
		}
		if i == len(loads)-1 && l.seg.size < s.opts.SegmentSize {
			headSum = resumeSum(l) // before the join below shares its runs
		}
		s.segs[l.seg.num] = l.seg // closed by closeFiles if Open fails
		s.nextSeg = max(s.nextSeg, nums[i]+1)
		s.nextRecno = max(s.nextRecno, l.recno)
		rc.messages += l.messages
		rc.bytes += l.bytes
		for _, lq := range l.order {
			k := string(appendQueueKey(nil, lq.key.vhost, lq.key.queue))
			if q := rc.queues[k]; q != nil {
				q.runs = append(q.runs, lq.runs...)
			} else {
				rc.queues[k] = lq
			}
		}
	}
	if firstErr != nil {
		return firstErr
	}
	s.buildIndex(&rc)
	if len(nums) > 0 {
		if last := s.segs[nums[len(nums)-1]]; last != nil && last.size < s.opts.SegmentSize {
			s.head = last
			// Written again from now on: its summary (if it was sealed
			// short, a record too large for it came next) would go stale.
			// The syncer goes on with what Open found, and summarises it
			// when it seals it.
			if err := os.Remove(s.sumPath(last.num)); err != nil && !os.IsNotExist(err) {
				return err
			}
			last.sum = headSum
		}
	}
	if s.head == nil {
		seg, err := s.createSegment(s.nextSeg, s.nextRecno)
		if err != nil {
			return err
		}
		s.nextSeg++
		s.segs[seg.num] = seg
		s.head = seg
	}
	s.w.headSize = s.head.size
	s.log.Info("store: recovered", "messages", s.live, "queues", len(s.queues), "segments", len(s.segs),
		"records", rc.messages, "bytes", rc.bytes, "duration", time.Since(start).Round(time.Millisecond))
	return nil
}

// resumeSum returns the summary of a segment that becomes the head again,
// built from what Open found in it: the syncer adds to it what it writes.
func resumeSum(l *segLoad) *segSum {
	ss := &segSum{sumHead: l.sumHead, queues: map[qkey]*loadQueue{}}
	for _, lq := range l.order {
		c := &loadQueue{key: lq.key}
		for _, r := range lq.runs {
			cr := *r
			c.runs = append(c.runs, &cr)
		}
		ss.queues[lq.key] = c
		ss.order = append(ss.order, c)
	}
	return ss
}

// loadAckLog reads acks.log into rc, cutting off an invalid tail.
func (s *File) loadAckLog(rc *recovery) error {
	f, size, err := s.openLog("acks.log", ackMagic)
	if err != nil {
		return err
	}
	s.w.ackF = f
	sc := newScanner(f, logHeaderSize, size, nil)
	for {
		rec, off, err := sc.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if err := s.applyAckRecord(rec[recHeader], rec[recHeader+1:], rc); err != nil {
			sc.pos = off
			break
		}
	}
	if err := s.cutTail(f, "acks.log", sc.pos, size); err != nil {
		return err
	}
	s.w.ackSize, s.w.ackBase = sc.pos, sc.pos
	s.ackBytes.Store(sc.pos)
	return nil
}

func (s *File) applyAckRecord(typ byte, p []byte, rc *recovery) error {
	bump := func(r uint64) { s.nextRecno = max(s.nextRecno, r+1) }
	switch typ {
	case recCheckpoint:
		if len(p) != 8 {
			return errCorrupt
		}
		s.nextRecno = max(s.nextRecno, binary.LittleEndian.Uint64(p))
		return nil
	case recAcked:
		return decodeRecnos(p, func(r uint64) { rc.acked = append(rc.acked, r); bump(r) })
	case recDelivered:
		return decodeRecnos(p, func(r uint64) { rc.delivered = append(rc.delivered, r); bump(r) })
	}
	return errCorrupt
}

// scanSegments scans the segment files on all CPUs, logging progress for
// long recoveries, and returns what each held, in file order.
func (s *File) scanSegments(nums []uint32, rc *recovery, start time.Time) []*segLoad {
	loads := make([]*segLoad, len(nums))
	var next, done atomic.Int64
	finished := make(chan struct{}, len(nums))
	workers := min(runtime.GOMAXPROCS(0), len(nums), 8)
	for range workers {
		go func() {
			buf := make([]byte, 0, 4<<20)
			for i := next.Add(1) - 1; i < int64(len(nums)); i = next.Add(1) - 1 {
				loads[i], buf = s.scanSegment(nums[i], i == int64(len(nums))-1, rc, buf)
				done.Add(1)
				finished <- struct{}{}
			}
		}()
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for range nums {
		select {
		case <-finished:
		case <-tick.C:
			s.log.Info("store: recovering messages", "segments", done.Load(), "of", len(nums), "elapsed", time.Since(start).Round(time.Millisecond))
			<-finished
		}
	}
	return loads
}

// scanSegment scans one segment file, cutting off an invalid tail, and
// collects its live records. It only reads rc. A segment that stays sealed
// (all but a last one that becomes the head again) gets the summary it
// lacked, so that it is scanned once: after an upgrade (older summaries
// count as missing) or a crash before the syncer wrote it.
func (s *File) scanSegment(num uint32, last bool, rc *recovery, buf []byte) (*segLoad, []byte) {
	l := &segLoad{queues: map[string]*loadQueue{}}
	path := s.segPath(num)
	f, err := s.fs.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		l.err = err
		return l, buf
	}
	size, err := f.Size()
	if err != nil {
		f.Close()
		l.err = err
		return l, buf
	}
	if size < segHeaderSize {
		// Its creation was cut short; no record was ever confirmed in it.
		s.log.Warn("store: removing segment with a torn header", "file", path, "bytes", size)
		f.Close()
		l.err = s.fs.Remove(path)
		return l, buf
	}
	h := make([]byte, segHeaderSize)
	n := uint32(0)
	if _, err = f.ReadAt(h, 0); err == nil {
		n, l.recno, err = parseSegHeader(h)
	}
	if err == nil && n != num {
		err = fmt.Errorf("store: header says segment %d", n)
	}
	if err != nil {
		f.Close()
		l.err = fmt.Errorf("store: %s: %w", path, err)
		return l, buf
	}
	seg := &segment{num: num, path: path, f: f}
	l.seg = seg
	if s.loadSummary(seg, size, l) {
		seg.size = size
		return l, buf
	}
	s.scanned.Add(1)
	seg.startIndex() // not shared yet: no lock
	sc := newScanner(f, segHeaderSize, size, buf)
	for {
		rec, off, err := sc.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			l.err = fmt.Errorf("store: %s: %w", path, err)
			return l, sc.buf
		}
		hd, data, err := decodeMessage(rec[recHeader+1:])
		if err != nil || rec[recHeader] != recMessage {
			sc.pos = off
			break
		}
		l.note(off, rec, hd.recno)
		if x := &seg.idx; x.last != nil && string(hd.queue) == x.lastKey.queue && string(hd.vhost) == x.lastKey.vhost {
			x.last = append(x.last, uint32(off))
		} else {
			x.add(qkey{string(hd.vhost), string(hd.queue)}, uint32(off))
		}
		if hd.flags&flagTransient != 0 {
			continue
		}
		q := l.queue(hd.vhost, hd.queue)
		q.runs = addToRuns(q.runs, seg, off, int64(len(rec)), hd.id, hd.recno, s.opts.Weigh(data))
	}
	seg.size = sc.pos
	l.err = s.cutTail(f, path, sc.pos, size)
	if l.err == nil && l.messages > 0 && (!last || seg.size >= s.opts.SegmentSize) {
		s.writeSummary(num, encodeSummary(num, seg.size, &l.sumHead, l.order))
	}
	return l, sc.buf
}

// buildIndex gives each queue its fresh runs, in segment order, and
// counts them as live. Acked records among them and duplicates (an ID
// appended again, a record and its compaction copy) are still counted:
// Recover, which meets them, resolves them, and maintenance waits for it.
func (s *File) buildIndex(rc *recovery) {
	s.openAcked, s.openDeliv = sortedSet(rc.acked), sortedSet(rc.delivered)
	for _, lq := range rc.queues {
		q := &qindex{slots: map[uint64]slot{}, fresh: lq.runs}
		for _, r := range lq.runs {
			r.seg.live += r.count
			r.seg.liveBytes += r.recBytes
			s.live += r.count
			s.fresh += r.count
		}
		if len(q.fresh) > 0 {
			s.queues[lq.key] = q
		}
	}
	s.openRecno = s.nextRecno
}
