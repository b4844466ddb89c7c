package store

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"hash/fnv"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
)

// Segment indexes (see doc.go): where each queue's records lie in a segment,
// for the queues that have few of its records. A run (tail.go) is read by
// scanning its span and skipping other queues' records; when thousands of
// queues share a segment (a fanout, publishers spread over queues) a run of
// one of them spans the whole file and holds a ten-thousandth of it, and
// scanning it to take a window's worth reads the segment ten thousand times
// over. With the index a reader reads only the queue's records.
//
// The index is only ever an acceleration: a reader without one scans, so a
// missing, stale or invalid index costs time, never a record. While a segment
// is the head (and until its index file is written) its index is in memory,
// 4 bytes per record, filled as records are written (File.noteOffsets) or
// found by Open's scan; once sealed, the indexer goroutine writes it to
// NNNNNNNN.idx and drops it from memory. Readers then load the file's
// directory once (24 bytes per queue listed) and read the one section they
// need. A sealed segment whose offsets are not in memory (one that Open read
// from its summary) is scanned by the indexer in the background.

const idxVersion = 1

var idxMagic = [4]byte{'W', 'I', 'D', 'X'}

const (
	idxHeaderSize = 4 + 1 + 4 + 8 + 4 // magic, version, segment, segment size, entries
	idxEntrySize  = 8 + 8 + 4 + 4     // hash, section offset, section length, offsets
)

// idxMinGap is the average distance between a run's records above which a
// reader uses the index: below it, scanning reads at most this much per
// record in large sequential reads, about as cheap as one small read each.
const idxMinGap = 16 << 10

// idxReadSize is the read size of an indexed reader: one record, or a few
// close together.
const idxReadSize = 4 << 10

// segIndex is a segment's index: in memory (offs) or in its file (dir).
// Guarded by mu; the slices in offs are only appended to, so a reader may
// keep a prefix it took under mu.
type segIndex struct {
	mu sync.Mutex
	// offs holds, per queue, the offsets of all its records in the
	// segment in file order; complete says it has every record (false for a
	// segment Open took from its summary, until the indexer scanned it).
	offs     map[qkey][]uint32
	complete bool
	lastKey  qkey // noteOffsets' cache
	last     []uint32
	state    idxState
	f        *os.File // the index file, once loaded
	dir      []idxEntry
	removed  bool // the segment is gone: write no index file for it
	queued   bool // with the indexer
}

type idxState uint8

const (
	idxNone    idxState = iota // no file (offs may be there)
	idxWritten                 // the file is there, not loaded yet
	idxLoaded                  // f and dir are loaded
	idxBad                     // the file is missing or invalid: scan
)

type idxEntry struct {
	hash     uint64
	off      int64
	size, nr uint32
}

func keyHash(k qkey) uint64 {
	h := fnv.New64a()
	var l [2]byte
	l[0], l[1] = byte(len(k.vhost)), byte(len(k.vhost)>>8)
	h.Write(l[:])
	h.Write([]byte(k.vhost))
	h.Write([]byte(k.queue))
	return h.Sum64()
}

// indexPath is the segment's index file: NNNNNNNN.idx beside NNNNNNNN.seg.
func (seg *segment) indexPath() string { return strings.TrimSuffix(seg.path, ".seg") + ".idx" }

// noteOffsets adds records the syncer wrote to their segments' in-memory
// indexes, in file order. Called with s.mu held, after a successful round.
func noteOffsets(items []item) {
	var cur *segIndex
	for i := range items {
		it := &items[i]
		x := &it.seg.idx
		if x != cur {
			if cur != nil {
				cur.mu.Unlock()
			}
			cur = x
			cur.mu.Lock()
		}
		if cur.offs == nil {
			continue // Open read it from its summary and it is not indexed
		}
		cur.add(it.key, uint32(it.off))
	}
	if cur != nil {
		cur.mu.Unlock()
	}
}

// add notes one record of k at off. Called with x.mu held (or before the
// segment is shared: Open's scan).
func (x *segIndex) add(k qkey, off uint32) {
	if x.last != nil && k == x.lastKey {
		x.last = append(x.last, off)
		return
	}
	x.flushLast()
	x.lastKey, x.last = k, append(x.offs[k], off)
}

// flushLast puts add's cached slice (the newest of its queue) back into
// offs. Called with x.mu held.
func (x *segIndex) flushLast() {
	if x.last != nil {
		x.offs[x.lastKey] = x.last
	}
}

// startIndex gives a segment an empty in-memory index (a new head, or one
// Open is about to scan).
func (seg *segment) startIndex() {
	seg.idx.offs = map[qkey][]uint32{}
	seg.idx.complete = true
}

// keyOffsets returns the offsets of k's records in [start, end) if the
// segment has an index: in memory, or in its file (whose directory it
// loads the first time).
func (seg *segment) keyOffsets(k qkey, start, end int64) ([]uint32, bool) {
	x := &seg.idx
	x.mu.Lock()
	var offs []uint32
	switch {
	case x.offs != nil && x.complete:
		if k == x.lastKey && x.last != nil {
			offs = x.last
		} else {
			offs = x.offs[k]
		}
		x.mu.Unlock()
	case x.state == idxWritten || x.state == idxLoaded:
		f, e, err := x.entryLocked(seg, k)
		x.mu.Unlock()
		if err != nil {
			return nil, false
		}
		if e == nil {
			return nil, true // the queue has no record here
		}
		if offs, err = readSection(f, e, k); err != nil {
			x.mu.Lock()
			x.state = idxBad
			x.mu.Unlock()
			return nil, false
		}
	default:
		x.mu.Unlock()
		return nil, false
	}
	lo, _ := slices.BinarySearch(offs, uint32(start))
	hi, _ := slices.BinarySearch(offs[lo:], uint32(end))
	return offs[lo : lo+hi : lo+hi], true
}

// entryLocked loads the index file's directory if needed and returns k's
// entry; nil if k is not listed (it has no record in the segment).
func (x *segIndex) entryLocked(seg *segment, k qkey) (*os.File, *idxEntry, error) {
	if x.state == idxWritten {
		if err := x.loadLocked(seg); err != nil {
			x.state = idxBad
			return nil, nil, err
		}
	}
	h := keyHash(k)
	i, _ := slices.BinarySearchFunc(x.dir, h, func(e idxEntry, h uint64) int { return compareU64(e.hash, h) })
	for ; i < len(x.dir) && x.dir[i].hash == h; i++ {
		if x.dir[i].nr > 0 {
			// readSection checks the names; a hash shared by two queues
			// fails there and the reader scans.
			return x.f, &x.dir[i], nil
		}
	}
	return x.f, nil, nil
}

var errIndex = errors.New("store: invalid segment index")

func (x *segIndex) loadLocked(seg *segment) error {
	f, err := os.Open(seg.indexPath())
	if err != nil {
		return err
	}
	var h [idxHeaderSize]byte
	if _, err := f.ReadAt(h[:], 0); err != nil {
		f.Close()
		return err
	}
	n := binary.LittleEndian.Uint32(h[17:])
	if [4]byte(h[:4]) != idxMagic || h[4] != idxVersion || binary.LittleEndian.Uint32(h[5:]) != seg.num ||
		int64(binary.LittleEndian.Uint64(h[9:])) != seg.size || int64(n) > seg.size/recHeader {
		f.Close()
		return errIndex
	}
	b := make([]byte, idxHeaderSize+int(n)*idxEntrySize+4)
	if _, err := f.ReadAt(b, 0); err != nil {
		f.Close()
		return err
	}
	body := b[:len(b)-4]
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(b[len(b)-4:]) {
		f.Close()
		return errIndex
	}
	dir := make([]idxEntry, n)
	for i := range dir {
		p := body[idxHeaderSize+i*idxEntrySize:]
		dir[i] = idxEntry{hash: binary.LittleEndian.Uint64(p), off: int64(binary.LittleEndian.Uint64(p[8:])),
			size: binary.LittleEndian.Uint32(p[16:]), nr: binary.LittleEndian.Uint32(p[20:])}
	}
	x.f, x.dir, x.state = f, dir, idxLoaded
	return nil
}

// readSection reads k's offsets from the index file; an error if the
// section is invalid or names another queue.
func readSection(f *os.File, e *idxEntry, k qkey) ([]uint32, error) {
	b := make([]byte, e.size)
	if _, err := f.ReadAt(b, e.off); err != nil {
		return nil, err
	}
	if len(b) < 4+4*int(e.nr) || crc32.Checksum(b[:len(b)-4], castagnoli) != binary.LittleEndian.Uint32(b[len(b)-4:]) {
		return nil, errIndex
	}
	p := b[:len(b)-4]
	name := func() string {
		n, w := binary.Uvarint(p)
		if w <= 0 || n > uint64(len(p)-w) {
			p = nil
			return "\xff" // never a name: no match
		}
		v := string(p[w : w+int(n)])
		p = p[w+int(n):]
		return v
	}
	if vh, q := name(), name(); vh != k.vhost || q != k.queue || len(p) != 4*int(e.nr) {
		return nil, errIndex
	}
	offs := make([]uint32, e.nr)
	for i := range offs {
		offs[i] = binary.LittleEndian.Uint32(p[4*i:])
	}
	return offs, nil
}

// encodeIndex builds an index file from a segment's offsets.
func encodeIndex(num uint32, size int64, offs map[qkey][]uint32) []byte {
	type sec struct {
		e idxEntry
		k qkey
	}
	secs := make([]sec, 0, len(offs))
	for k, o := range offs {
		if len(o) > 0 {
			secs = append(secs, sec{idxEntry{hash: keyHash(k), nr: uint32(len(o))}, k})
		}
	}
	slices.SortFunc(secs, func(a, b sec) int { return compareU64(a.e.hash, b.e.hash) })
	dirEnd := int64(idxHeaderSize + len(secs)*idxEntrySize + 4)
	var body []byte
	for i := range secs {
		start := len(body)
		k := secs[i].k
		body = binary.AppendUvarint(body, uint64(len(k.vhost)))
		body = append(body, k.vhost...)
		body = binary.AppendUvarint(body, uint64(len(k.queue)))
		body = append(body, k.queue...)
		for _, o := range offs[k] {
			body = binary.LittleEndian.AppendUint32(body, o)
		}
		body = binary.LittleEndian.AppendUint32(body, crc32.Checksum(body[start:], castagnoli))
		secs[i].e.off, secs[i].e.size = dirEnd+int64(start), uint32(len(body)-start)
	}
	b := make([]byte, 0, int(dirEnd)+len(body))
	b = append(b, idxMagic[:]...)
	b = append(b, idxVersion)
	b = binary.LittleEndian.AppendUint32(b, num)
	b = binary.LittleEndian.AppendUint64(b, uint64(size))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(secs)))
	for _, sc := range secs {
		b = binary.LittleEndian.AppendUint64(b, sc.e.hash)
		b = binary.LittleEndian.AppendUint64(b, uint64(sc.e.off))
		b = binary.LittleEndian.AppendUint32(b, sc.e.size)
		b = binary.LittleEndian.AppendUint32(b, sc.e.nr)
	}
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	return append(b, body...)
}

// The indexer: one goroutine that writes the index files of sealed segments
// (scanning those whose offsets are not in memory), off the syncer.
type indexer struct {
	mu      sync.Mutex
	pending []*segment
	working bool       // a batch is being indexed
	idle    *sync.Cond // on mu: broadcast when nothing is pending or working
	signal  chan struct{}
	stop    chan struct{}
	done    chan struct{}
}

func newIndexer() *indexer {
	ix := &indexer{signal: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	ix.idle = sync.NewCond(&ix.mu)
	return ix
}

// indexWait waits until the indexer has nothing to do (tests).
func (s *File) indexWait() {
	s.ix.mu.Lock()
	for len(s.ix.pending) > 0 || s.ix.working {
		s.ix.idle.Wait()
	}
	s.ix.mu.Unlock()
}

// indexLater hands sealed segments to the indexer.
func (s *File) indexLater(segs ...*segment) {
	s.ix.mu.Lock()
	for _, seg := range segs {
		seg.idx.mu.Lock()
		if !seg.idx.queued && seg.idx.state == idxNone && !seg.idx.removed {
			seg.idx.queued = true
			s.ix.pending = append(s.ix.pending, seg)
		}
		seg.idx.mu.Unlock()
	}
	s.ix.mu.Unlock()
	select {
	case s.ix.signal <- struct{}{}:
	default:
	}
}

// stopIndexer ends the indexer after it has written the indexes it has the
// offsets for (cheap); scans not started yet are left to the next Open.
func (s *File) stopIndexer() {
	close(s.ix.stop)
	<-s.ix.done
}

func (s *File) runIndexer() {
	defer close(s.ix.done)
	var buf []byte
	for {
		s.ix.mu.Lock()
		batch := s.ix.pending
		s.ix.pending = nil
		s.ix.working = len(batch) > 0
		if !s.ix.working {
			s.ix.idle.Broadcast()
		}
		s.ix.mu.Unlock()
		stopping := false
		for _, seg := range batch {
			select {
			case <-s.ix.stop:
				stopping = true
			default:
			}
			buf = s.indexSegment(seg, stopping, buf)
		}
		if len(batch) > 0 {
			continue
		}
		select {
		case <-s.ix.signal:
		case <-s.ix.stop:
			s.ix.mu.Lock()
			left := len(s.ix.pending)
			s.ix.mu.Unlock()
			if left == 0 {
				return
			}
		}
	}
}

// indexSegment writes seg's index file and lets go of its offsets in memory.
// A segment without offsets in memory is scanned first, unless stopping.
func (s *File) indexSegment(seg *segment, stopping bool, buf []byte) []byte {
	x := &seg.idx
	x.mu.Lock()
	x.queued = false
	offs, complete, size := x.offs, x.complete, seg.size
	if offs != nil {
		x.flushLast()
	}
	x.mu.Unlock()
	if offs == nil || !complete {
		if stopping {
			return buf
		}
		offs, buf = scanOffsets(seg, size, buf)
		if offs == nil {
			return buf
		}
	}
	b := encodeIndex(seg.num, size, offs)
	tmp := seg.indexPath() + ".tmp"
	// Not synced: after a crash a torn file fails its checksums and the
	// segment is read by scanning, which the next Open indexes again.
	err := os.WriteFile(tmp, b, 0o644)
	x.mu.Lock()
	defer x.mu.Unlock()
	if err == nil && !x.removed {
		err = os.Rename(tmp, seg.indexPath())
	} else if err == nil {
		err = os.ErrNotExist
	}
	if err != nil {
		os.Remove(tmp)
		s.log.Debug("store: segment index not written", "segment", seg.num, "err", err)
		return buf
	}
	x.offs, x.last, x.lastKey, x.state = nil, nil, qkey{}, idxWritten
	return buf
}

// scanOffsets reads a sealed segment's records for their queues and
// offsets; nil if it cannot be read (removed meanwhile, or broken: readers
// scan it and find out).
func scanOffsets(seg *segment, size int64, buf []byte) (map[qkey][]uint32, []byte) {
	if cap(buf) == 0 {
		buf = make([]byte, 0, 1<<20)
	}
	x := segIndex{}
	x.offs = map[qkey][]uint32{}
	sc := newScanner(seg.f, segHeaderSize, size, buf)
	for {
		rec, off, err := sc.next()
		if err == io.EOF && sc.pos == size {
			break
		}
		if err != nil {
			return nil, sc.buf
		}
		h, _, err := decodeMessage(rec[recHeader+1:])
		if err != nil || rec[recHeader] != recMessage {
			return nil, sc.buf
		}
		if x.last != nil && string(h.queue) == x.lastKey.queue && string(h.vhost) == x.lastKey.vhost {
			x.last = append(x.last, uint32(off))
		} else {
			x.add(qkey{string(h.vhost), string(h.queue)}, uint32(off))
		}
	}
	x.flushLast()
	return x.offs, sc.buf
}

// dropIndex removes a deleted segment's index file and closes it.
func (seg *segment) dropIndex() {
	x := &seg.idx
	x.mu.Lock()
	defer x.mu.Unlock()
	x.removed = true
	if x.f != nil {
		x.f.Close()
		x.f = nil
	}
	x.offs, x.last, x.dir = nil, nil, nil
	x.state = idxBad
	os.Remove(seg.indexPath())
}

// closeIndex closes a segment's index file (Close).
func (seg *segment) closeIndex() {
	x := &seg.idx
	x.mu.Lock()
	if x.f != nil {
		x.f.Close()
		x.f = nil
	}
	x.state = idxBad
	x.mu.Unlock()
}

// openIndexes decides at Open, for every sealed segment, where its index
// comes from: its file, the offsets Open's scan collected (written by the
// indexer), or a scan by the indexer. The head keeps its offsets in memory.
func (s *File) openIndexes() {
	var todo []*segment
	for _, seg := range s.segs {
		if seg == s.head {
			continue
		}
		if seg.idx.offs == nil {
			if _, err := os.Stat(seg.indexPath()); err == nil {
				seg.idx.state = idxWritten
				continue
			}
		}
		todo = append(todo, seg)
	}
	slices.SortFunc(todo, func(a, b *segment) int { return int(a.num) - int(b.num) })
	if len(todo) > 0 {
		s.indexLater(todo...)
	}
}
