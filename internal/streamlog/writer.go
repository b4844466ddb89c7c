package streamlog

import (
	"errors"
	"math"
	"os"
	"runtime"
	"slices"
	"time"

	"github.com/warren-mq/warren/internal/recordbatch"
)

// appendReq is one Append waiting for the writer.
type appendReq struct {
	data    []byte
	hdrs    []recordbatch.BatchHeader
	written func(AppendResult) // nil unless AppendWritten
	done    func(AppendResult, error)
	err     error // set by validation; the writer only reports it, in order
	res     AppendResult
}

// writer is the state of the writer goroutine (and of Open before it
// starts). One goroutine per open log: it also runs retention, and an idle
// goroutine costs a few KiB of stack, less than the log's open files.
type writer struct {
	seg     *segment // active segment, files open read-write
	size    int64
	next    int64
	maxTs   int64
	idx     indexer
	idxSize int64 // bytes of the active index file written
	buf     []byte
	ibuf    []byte
	prod    producers
	txnF    *os.File // the active segment's transaction index, once it has an entry
	txnSize int64
	// rolled is set by a roll and retentionDue by the timer or
	// SetOptions: retention runs once the writer is idle.
	rolled, retentionDue bool
}

// indexer decides which batches get an index entry: the first of a segment
// and then one at least every indexInterval bytes. seal adds the last batch,
// so a sealed segment's last entry holds its maximum timestamp.
type indexer struct {
	entries []indexEntry
	maxTs   int64
	last    indexEntry // the last batch seen
	any     bool
}

func (x *indexer) add(rel uint32, pos int64, maxTs int64) bool {
	x.maxTs = max(x.maxTs, maxTs)
	x.last = indexEntry{rel: rel, pos: uint32(pos), maxTs: x.maxTs}
	x.any = true
	if n := len(x.entries); n == 0 || pos-int64(x.entries[n-1].pos) >= indexInterval {
		x.entries = append(x.entries, x.last)
		return true
	}
	return false
}

func (x *indexer) seal() bool {
	if !x.any {
		return false
	}
	if n := len(x.entries); n == 0 || x.entries[n-1].pos != x.last.pos {
		x.entries = append(x.entries, x.last)
		return true
	}
	return false
}

// Append appends one or more concatenated v2 batches (Kafka's wire format).
// The batches are checked here, in the caller's goroutine (length, magic,
// CRC32C, size); the log then sets their baseOffset and
// partitionLeaderEpoch, writes them and calls done after the fdatasync that
// covers them, in append order, from the writer goroutine: done must not
// block for long, wait for another Append's done, or call Close or Delete
// (which wait for the writer).
// batches must not be changed until done runs. An idempotent or
// transactional batch must be alone in its Append.
func (l *Log) Append(batches []byte, done func(AppendResult, error)) {
	l.AppendWritten(batches, nil, done)
}

// AppendWritten is Append that also calls written, if not nil, once the
// batches are written to the segment file (the kernel's page cache) and
// before the fdatasync that makes them durable: Kafka's acks=1, which a
// crash of the machine (not of the process) can lose. written gets the
// offsets done will get (a duplicate's are its original's); it runs from the
// writer goroutine, in append order, under done's rules. It is called only
// for an append that was accepted and whose whole round was written: an
// append refused by its checks or its producer's sequence, or whose round
// failed to write, gets only done, with the error. If the sync fails after
// written, done still gets the error. Readers see the records only after
// the sync, as for Append; done always follows written.
func (l *Log) AppendWritten(batches []byte, written func(AppendResult), done func(AppendResult, error)) {
	if done == nil {
		done = func(AppendResult, error) {}
	}
	r := &appendReq{data: batches, written: written, done: done}
	r.hdrs, r.err = l.checkBatches(batches)
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		done(AppendResult{}, ErrClosed)
		return
	}
	l.pend = append(l.pend, r)
	l.mu.Unlock()
	l.kick()
}

func (l *Log) checkBatches(b []byte) ([]recordbatch.BatchHeader, error) {
	max := l.options().MaxBatchBytes
	var hdrs []recordbatch.BatchHeader
	for len(b) > 0 {
		h, err := batchHeader(b, max)
		if err != nil {
			return nil, err
		}
		if h.NumRecords < 1 || h.LastOffsetDelta != h.NumRecords-1 || h.Control() && h.ProducerID < 0 {
			return nil, ErrCorrupt
		}
		if err := checkRecords(b[:h.Size()], h); err != nil {
			return nil, err
		}
		hdrs = append(hdrs, h)
		b = b[h.Size():]
	}
	if len(hdrs) == 0 {
		return nil, ErrCorrupt
	}
	if len(hdrs) > 1 {
		for _, h := range hdrs {
			if h.Idempotent() || h.Transactional() {
				return nil, ErrCorrupt
			}
		}
	}
	return hdrs, nil
}

// run is the writer: it takes every pending append at once, writes them in
// one write and runs their written callbacks; a sync beside it (sync.go)
// covers each round and then runs the done callbacks, in order. When idle
// it applies retention.
func (l *Log) run() {
	defer close(l.stopped)
	defer func() {
		if l.w.txnF != nil {
			l.w.txnF.Close()
		}
	}()
	tick := time.NewTicker(retentionCheckInterval)
	defer tick.Stop()
	for {
		if j := l.sp.job; j != nil {
			select {
			case <-j.done:
				l.syncEnded()
			default:
			}
		}
		l.mu.Lock()
		reqs := l.takeLocked()
		closed := l.closed
		if l.optsChanged {
			l.optsChanged, l.w.retentionDue = false, true
		}
		l.mu.Unlock()
		if len(reqs) > 0 {
			l.round(reqs)
			// Let the producers just answered append again before the
			// next round is taken, so one sync covers them all.
			runtime.Gosched()
			continue
		}
		if closed {
			l.drainSyncs()
			return
		}
		if l.w.rolled {
			l.w.rolled, l.w.retentionDue = false, true
		}
		if l.w.retentionDue {
			// Retention may roll and drop segments: it runs with no
			// sync beside it.
			l.w.retentionDue = false
			l.drainSyncs()
			l.maintain()
		}
		var synced <-chan struct{}
		if l.sp.job != nil {
			synced = l.sp.job.done
		}
		select {
		case <-l.kickc:
		case <-synced:
			l.syncEnded()
		case <-tick.C:
			l.w.retentionDue = true
		case ch := <-l.maintc:
			l.drainSyncs()
			l.maintain()
			close(ch)
		}
	}
}

// Rounds take at most roundBytes of appends (more if one is larger), so
// that the first producers hear back before a flood is all written; and
// the writer writes every writeChunk bytes, so its buffer stays small.
const (
	roundBytes = 8 << 20
	writeChunk = 1 << 20
)

// takeLocked takes the next round's appends from the queue.
func (l *Log) takeLocked() []*appendReq {
	n, size := 0, 0
	for n < len(l.pend) && (n == 0 || size+len(l.pend[n].data) <= roundBytes) {
		size += len(l.pend[n].data)
		n++
	}
	reqs := l.pend[:n:n]
	l.pend = l.pend[n:]
	if len(l.pend) == 0 {
		l.pend = nil
	} else {
		l.kick()
	}
	return reqs
}

// round writes one group of appends and queues them for their sync.
func (l *Log) round(reqs []*appendReq) {
	err := l.usable()
	if errors.Is(err, ErrClosed) {
		err = nil // Close drains what was appended before it
	}
	if err == nil {
		err = l.writeRound(reqs)
		if err != nil {
			l.fail(err)
		}
	}
	durable := false // an append waits for its sync (not only for written)
	for _, r := range reqs {
		if r.err == nil {
			r.err = err
		}
		durable = durable || r.err == nil && r.written == nil
		// Written or refused: the writer is done with the bytes, so a
		// flood of acks=1 appends waiting for a slow sync holds no data.
		r.data, r.hdrs = nil, nil
	}
	l.sp.waiting = append(l.sp.waiting, reqs...)
	if durable {
		l.drainSyncs()
	} else {
		l.startSync()
	}
}

// writeRound encodes the valid appends into the active segment (rolling to
// new segments as they fill) and runs the written callbacks once all of it
// is written; the sync and the new view come from startSync. Any error is
// sticky: what was written may be partial and the log must be reopened,
// which recovers from what is on disk.
func (l *Log) writeRound(reqs []*appendReq) error {
	w := &l.w
	o := l.options()
	buf := w.buf[:0]
	start := w.size // position of buf[0] in the active segment
	ibufStart := len(w.idx.entries)
	for _, r := range reqs {
		if r.err != nil {
			continue
		}
		if dup, ok, err := w.prod.check(r.hdrs); err != nil || ok {
			r.err, r.res = err, dup
			continue
		}
		r.res = AppendResult{BaseOffset: w.next}
		b := r.data
		for _, h := range r.hdrs {
			n := int64(h.Size())
			pos := start + int64(len(buf))
			if pos > fileHeaderSize && (pos+n > o.SegmentBytes || w.next+int64(h.LastOffsetDelta)-w.seg.base >= math.MaxUint32) {
				if err := l.writeActive(buf, start, ibufStart); err != nil {
					return err
				}
				if err := l.roll(); err != nil {
					return err
				}
				buf, start, ibufStart = buf[:0], w.size, 0
				pos = start
			}
			buf = append(buf, b[:n]...)
			setBatchOffsets(buf[len(buf)-int(n):], w.next, 0)
			h.BaseOffset = w.next
			w.idx.add(uint32(w.next-w.seg.base), pos, h.MaxTimestamp)
			w.maxTs = max(w.maxTs, h.MaxTimestamp)
			w.next = h.LastOffset() + 1
			if a, ok := w.prod.record(h, b[:n]); ok {
				if err := l.writeAborted(a); err != nil {
					return err
				}
				w.prod.aborted = append(w.prod.aborted, a)
			}
			b = b[n:]
			if len(buf) >= writeChunk {
				if err := l.writeActive(buf, start, ibufStart); err != nil {
					return err
				}
				buf, start, ibufStart = buf[:0], w.size, len(w.idx.entries)
			}
		}
		r.res.LastOffset = w.next - 1
	}
	if err := l.writeActive(buf, start, ibufStart); err != nil {
		return err
	}
	if cap(buf) <= 4<<20 {
		w.buf = buf[:0]
	} else {
		w.buf = nil
	}
	// Every batch of the round is in the page cache: acks=1 producers
	// hear now, before the sync (which still follows, so readers keep
	// seeing only durable records).
	for _, r := range reqs {
		if r.err == nil && r.written != nil {
			r.written(r.res)
		}
	}
	return nil
}

// newView is the view of sealed and the writer's active segment.
func (l *Log) newView(sealed []segInfo) *view {
	w := &l.w
	ab := w.prod.aborted
	v := &view{sealed: sealed, active: l.activeInfo(), aborted: ab[:len(ab):len(ab)]}
	// An open transaction whose start retention removed holds the stable
	// offset at the log start, as Kafka's does.
	v.lso = max(w.prod.lso(w.next), v.start())
	return v
}

// writeActive writes buf at start of the active segment and the index
// entries from entry ibufStart on to its index file (not synced: the active
// index is rebuilt at Open).
func (l *Log) writeActive(buf []byte, start int64, ibufStart int) error {
	w := &l.w
	if len(buf) > 0 {
		l.sp.dirty = true
		if _, err := w.seg.f.WriteAt(buf, start); err != nil {
			return err
		}
		w.size = start + int64(len(buf))
	}
	return l.writeIndex(ibufStart)
}

func (l *Log) writeIndex(from int) error {
	w := &l.w
	if from >= len(w.idx.entries) {
		return nil
	}
	ib := w.ibuf[:0]
	for _, e := range w.idx.entries[from:] {
		ib = appendIndexEntry(ib, e)
	}
	w.ibuf = ib
	at := fileHeaderSize + int64(from)*indexEntrySize
	if _, err := w.seg.idxF.WriteAt(ib, at); err != nil {
		return err
	}
	w.idxSize = at + int64(len(ib))
	return nil
}

// activeInfo describes the active segment for readers. The entries slice
// is shared: the writer only appends to it.
func (l *Log) activeInfo() segInfo {
	w := &l.w
	e := w.idx.entries[:len(w.idx.entries):len(w.idx.entries)]
	if e == nil {
		e = []indexEntry{}
	}
	return segInfo{seg: w.seg, size: w.size, next: w.next, maxTs: w.maxTs, entries: e, nEntries: len(e)}
}

// roll seals the active segment (its last batch indexed, both files
// synced) and starts a new one at the next offset. It first waits for the
// sync in flight, so that no sync outlives its segment's time as the active
// one (and none publishes a view older than the roll's).
func (l *Log) roll() error {
	l.awaitSync()
	w := &l.w
	n := len(w.idx.entries)
	if w.idx.seal() {
		if err := l.writeIndex(n); err != nil {
			return err
		}
	}
	if err := fdatasync(w.seg.f); err != nil {
		return err
	}
	if err := fdatasync(w.seg.idxF); err != nil {
		return err
	}
	l.sp.dirty = false // all written so far is durable; the appends waiting hear at the next startSync
	sealed := l.activeInfo()
	sealed.entries = nil // readers use the index file from now on
	if w.txnF != nil {
		if err := w.txnF.Close(); err != nil {
			return err
		}
	}
	// The producer state as of the new segment's base: Open replays
	// only the active segment on it.
	if err := l.writeSnapshot(w.next, l.view.Load().start()); err != nil {
		return err
	}
	seg, err := createSegment(l.dir, w.next)
	if err != nil {
		return err
	}
	os.Remove(segName(l.dir, w.seg.base, snapSuffix))
	*w = writer{seg: seg, size: fileHeaderSize, next: w.next, maxTs: -1, idx: indexer{maxTs: -1}, idxSize: fileHeaderSize, buf: w.buf, ibuf: w.ibuf,
		prod: w.prod, rolled: true, retentionDue: w.retentionDue}
	l.mu.Lock()
	l.publishLocked(l.newView(append(slices.Clip(l.view.Load().sealed), sealed)))
	l.mu.Unlock()
	return nil
}

// createSegment creates the files of a new segment with their headers,
// synced, and syncs the directory.
func createSegment(dir string, base int64) (*segment, error) {
	seg := newSegment(dir, base)
	f, err := os.OpenFile(seg.path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	idxF, err := os.OpenFile(seg.idxPath, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		f.Close()
		return nil, err
	}
	seg.f, seg.idxF = f, idxF
	for _, p := range []struct {
		f     *os.File
		magic [4]byte
	}{{f, segMagic}, {idxF, idxMagic}} {
		if _, err := p.f.WriteAt(appendFileHeader(nil, p.magic, base), 0); err != nil {
			return nil, errors.Join(err, f.Close(), idxF.Close())
		}
		if err := fdatasync(p.f); err != nil {
			return nil, errors.Join(err, f.Close(), idxF.Close())
		}
	}
	return seg, syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	return errors.Join(err, d.Close())
}
