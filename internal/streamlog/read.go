package streamlog

import (
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"runtime"
	"sort"
	"sync/atomic"

	"github.com/warren-mq/warren/internal/recordbatch"
)

// Chunk is a run of whole batches of one segment, as Read returns it. It
// keeps its segment's file readable even if retention or compaction drops
// the segment meanwhile; Close releases it. A Chunk is used by one
// goroutine at a time.
type Chunk interface {
	// Len is the chunk's size in bytes.
	Len() int
	// WriteTo copies the chunk to w; to a *net.TCPConn it uses sendfile.
	WriteTo(w io.Writer) (int64, error)
	// Bytes reads the chunk into memory.
	Bytes() ([]byte, error)
	Close() error
}

// errChunkClosed is returned by a Chunk used after Close.
var errChunkClosed = errors.New("streamlog: chunk closed")

type emptyChunk struct{}

func (emptyChunk) Len() int                         { return 0 }
func (emptyChunk) WriteTo(io.Writer) (int64, error) { return 0, nil }
func (emptyChunk) Bytes() ([]byte, error)           { return nil, nil }
func (emptyChunk) Close() error                     { return nil }

// fileChunk is bytes [pos, pos+n) of a segment file.
type fileChunk struct {
	seg    *segment
	f      *os.File
	pos, n int64
	closed atomic.Bool
}

func (c *fileChunk) Len() int { return int(c.n) }

func (c *fileChunk) WriteTo(w io.Writer) (int64, error) {
	if c.closed.Load() {
		return 0, errChunkClosed
	}
	if tc, ok := w.(*net.TCPConn); ok && runtime.GOOS == "linux" {
		// sendfile sends from the file's current position, which all
		// readers of the segment share: a descriptor of our own, opened on
		// the same file (even if it was renamed over or removed since),
		// has a position of its own.
		if f, err := os.Open(fmt.Sprintf("/proc/self/fd/%d", c.f.Fd())); err == nil {
			defer f.Close()
			if _, err := f.Seek(c.pos, io.SeekStart); err == nil {
				return tc.ReadFrom(&io.LimitedReader{R: f, N: c.n})
			}
		}
	}
	return io.Copy(w, io.NewSectionReader(c.f, c.pos, c.n))
}

func (c *fileChunk) Bytes() ([]byte, error) {
	if c.closed.Load() {
		return nil, errChunkClosed
	}
	b := make([]byte, c.n)
	if _, err := c.f.ReadAt(b, c.pos); err != nil {
		return nil, err
	}
	return b, nil
}

func (c *fileChunk) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.seg.release()
	}
	return nil
}

// Read returns whole batches starting with the one that holds offset (or,
// in a compacted log, the first one after it), as many as fit in maxBytes
// but at least one, all from one segment. offset == NextOffset() gives an
// empty chunk; outside [StartOffset(), NextOffset()] it is
// ErrOffsetOutOfRange.
func (l *Log) Read(offset int64, maxBytes int) (Chunk, error) {
	return l.ReadBelow(offset, maxBytes, math.MaxInt64)
}

// ReadBelow is Read limited to batches whose base offset is below end: a
// read_committed fetch passes LastStableOffset() and still gets a Chunk
// (sendfile) rather than bytes to cut. The chunk is empty if the first
// batch starts at or after end.
func (l *Log) ReadBelow(offset int64, maxBytes int, end int64) (Chunk, error) {
	for {
		v := l.view.Load()
		if offset < v.start() || offset > v.active.next {
			if err := l.usable(); err != nil {
				return nil, err
			}
			return nil, ErrOffsetOutOfRange
		}
		if offset == v.active.next || offset >= end {
			return emptyChunk{}, nil
		}
		c, retry, err := l.readView(v, offset, maxBytes, end)
		if !retry {
			return c, err
		}
		if err := l.usable(); errors.Is(err, ErrClosed) {
			return nil, err
		}
	}
}

// readView reads from the view's segments; retry means a segment left the
// log before it could be pinned, and the caller should look again.
func (l *Log) readView(v *view, offset int64, maxBytes int, end int64) (Chunk, bool, error) {
	var c Chunk
	var err error
	retry := false
	// The first segment that ends after offset holds it (or, compacted,
	// the next batch after it).
	from := sort.Search(len(v.sealed), func(i int) bool { return v.sealed[i].next > offset })
	v.eachFrom(from, func(si *segInfo) bool {
		if si.next <= offset || si.empty() {
			return true
		}
		if !si.seg.acquire() {
			retry = true
			return false
		}
		var ok bool
		c, ok, err = readSegment(si, offset, maxBytes, end)
		if _, empty := c.(emptyChunk); !ok || err != nil || empty {
			si.seg.release()
		}
		return !ok && err == nil
	})
	if c == nil && err == nil && !retry {
		return emptyChunk{}, false, nil
	}
	return c, retry, err
}

// readSegment reads from one pinned segment; false if no batch in it ends
// at or after offset.
func readSegment(si *segInfo, offset int64, maxBytes int, endOffset int64) (Chunk, bool, error) {
	f, idxF, err := si.seg.files()
	if err != nil {
		return nil, false, err
	}
	target := offset - si.seg.base
	i, err := si.search(idxF, func(e indexEntry) bool { return int64(e.rel) > target })
	if err != nil {
		return nil, false, err
	}
	pos := int64(fileHeaderSize)
	if i >= 0 {
		e, err := si.entry(i, idxF)
		if err != nil {
			return nil, false, err
		}
		pos = int64(e.pos)
	}
	var hb [recordbatch.HeaderSize]byte
	for {
		if pos >= si.size {
			return nil, false, nil
		}
		h, err := readHeaderAt(f, pos, &hb)
		if err != nil {
			return nil, false, err
		}
		if h.LastOffset() >= offset {
			break
		}
		pos += int64(h.Size())
	}
	end, err := chunkEnd(si, f, idxF, pos, maxBytes, endOffset)
	if err != nil {
		return nil, false, err
	}
	if end == pos {
		return emptyChunk{}, true, nil
	}
	return &fileChunk{seg: si.seg, f: f, pos: pos, n: end - pos}, true, nil
}

// chunkEnd finds where whole batches from start end: at most maxBytes of
// them but at least one, none with a base offset at or past endOffset. The
// index jumps close to the limit, then batch headers are read one by one
// (at most about indexInterval bytes' worth).
func chunkEnd(si *segInfo, f, idxF *os.File, start int64, maxBytes int, endOffset int64) (int64, error) {
	limit := start + int64(max(maxBytes, 0))
	if si.size <= limit && si.next <= endOffset {
		return si.size, nil
	}
	p := start
	j, err := si.search(idxF, func(e indexEntry) bool { return int64(e.pos) > limit || si.seg.base+int64(e.rel) >= endOffset })
	if err != nil {
		return 0, err
	}
	if j >= 0 {
		e, err := si.entry(j, idxF)
		if err != nil {
			return 0, err
		}
		p = max(p, int64(e.pos))
	}
	var hb [recordbatch.HeaderSize]byte
	for p < si.size {
		h, err := readHeaderAt(f, p, &hb)
		if err != nil {
			return 0, err
		}
		if h.BaseOffset >= endOffset || p+int64(h.Size()) > limit && p > start {
			break
		}
		p += int64(h.Size())
	}
	return p, nil
}

// OffsetForTime returns the base offset of the first batch whose
// maxTimestamp is at least tsMillis, NextOffset() if there is none.
func (l *Log) OffsetForTime(tsMillis int64) int64 {
	for {
		v := l.view.Load()
		off, retry := offsetForTime(v, tsMillis)
		if !retry {
			return off
		}
		if l.usable() != nil {
			return v.active.next
		}
	}
}

func offsetForTime(v *view, ts int64) (int64, bool) {
	res, retry := v.active.next, false
	v.each(func(si *segInfo) bool {
		if si.maxTs < ts || si.empty() {
			return true
		}
		if !si.seg.acquire() {
			retry = true
			return false
		}
		defer si.seg.release()
		off, ok := segmentOffsetForTime(si, ts)
		if ok {
			res = off
		}
		return !ok
	})
	return res, retry
}

func segmentOffsetForTime(si *segInfo, ts int64) (int64, bool) {
	f, idxF, err := si.seg.files()
	if err != nil {
		return 0, false
	}
	i, err := si.search(idxF, func(e indexEntry) bool { return e.maxTs >= ts })
	if err != nil {
		return 0, false
	}
	pos := int64(fileHeaderSize)
	if i >= 0 {
		e, err := si.entry(i, idxF)
		if err != nil {
			return 0, false
		}
		pos = int64(e.pos)
	}
	var hb [recordbatch.HeaderSize]byte
	for pos < si.size {
		h, err := readHeaderAt(f, pos, &hb)
		if err != nil {
			return 0, false
		}
		if h.MaxTimestamp >= ts {
			return h.BaseOffset, true
		}
		pos += int64(h.Size())
	}
	return 0, false
}
