package streamlog

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/warren-mq/warren/internal/recordbatch"
)

// recover opens the directory's segments (see Open) and returns the view.
func (l *Log) recover() (*view, error) {
	bases, err := listSegments(l.dir)
	if err != nil {
		return nil, err
	}
	if len(bases) == 0 {
		seg, err := createSegment(l.dir, 0)
		if err != nil {
			return nil, err
		}
		l.w = writer{seg: seg, size: fileHeaderSize, maxTs: -1, idx: indexer{maxTs: -1}, idxSize: fileHeaderSize, prod: newProducers()}
		return l.newView(nil), nil
	}
	var sealed []segInfo
	var aborted []AbortedTxn
	fail := func(err error) (*view, error) {
		for _, s := range sealed {
			s.seg.release()
		}
		return nil, err
	}
	for i, base := range bases[:len(bases)-1] {
		si, err := l.loadSealed(base, bases[i+1])
		if err != nil {
			return fail(err)
		}
		sealed = append(sealed, si)
		ab, _, err := readAborted(segName(l.dir, base, txnSuffix), si.next)
		if err != nil {
			return fail(err)
		}
		aborted = append(aborted, ab...)
	}
	if err := l.recoverActive(bases[len(bases)-1]); err != nil {
		return fail(err)
	}
	l.w.prod.aborted = append(aborted, l.w.prod.aborted...)
	return l.newView(sealed), nil
}

// listSegments returns the base offsets of dir's segments, sorted, and
// removes leftovers of an interrupted rewrite and the index, transaction
// and snapshot files of segments retention removed before a crash (those
// below the first segment).
func listSegments(dir string) ([]int64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var bases []int64
	type side struct {
		base int64
		name string
	}
	var sides []side
	for _, e := range ents {
		name := e.Name()
		if strings.HasSuffix(name, ".tmp") {
			if err := os.Remove(dir + "/" + name); err != nil {
				return nil, err
			}
			continue
		}
		num, suffix, _ := strings.Cut(name, ".")
		base, err := strconv.ParseInt(num, 10, 64)
		if len(num) != 20 || err != nil || base < 0 {
			continue
		}
		switch "." + suffix {
		case segSuffix:
			bases = append(bases, base)
		case idxSuffix, txnSuffix, snapSuffix:
			sides = append(sides, side{base, name})
		}
	}
	slices.Sort(bases)
	for _, s := range sides {
		// The active segment's snapshot may be ahead of it (a roll that
		// crashed before creating the segment): only older ones go.
		if len(bases) > 0 && s.base < bases[0] {
			if err := os.Remove(dir + "/" + s.name); err != nil {
				return nil, err
			}
		}
	}
	return bases, nil
}

// loadSealed describes a sealed segment from its index file (its last entry
// holds the segment's largest timestamp) without reading its batches;
// only a missing or damaged index makes it scan the segment.
func (l *Log) loadSealed(base, next int64) (segInfo, error) {
	seg := newSegment(l.dir, base)
	fi, err := os.Stat(seg.path)
	if err != nil {
		return segInfo{}, err
	}
	si := segInfo{seg: seg, size: fi.Size(), next: next, maxTs: -1}
	if err := checkHeaderFile(seg.path, segMagic, base); err != nil {
		return segInfo{}, err
	}
	if n, maxTs, err := readSealedIndex(seg.idxPath, base, si.size); err == nil {
		si.nEntries, si.maxTs = n, maxTs
		return si, nil
	} else {
		l.log.Warn("streamlog: rebuilding segment index", "segment", base, "err", err)
	}
	f, err := os.Open(seg.path)
	if err != nil {
		return segInfo{}, err
	}
	defer f.Close()
	var x indexer
	x.maxTs = -1
	end, _, err := scanSegment(f, si.size, base, false, func(h recordbatch.BatchHeader, pos int64) {
		x.add(uint32(h.BaseOffset-base), pos, h.MaxTimestamp)
	})
	if err != nil {
		return segInfo{}, err
	}
	if end != si.size {
		l.log.Error("streamlog: sealed segment has an invalid batch; serving what precedes it", "segment", base, "offset", end, "size", si.size)
		si.size = end
	}
	x.seal()
	if err := writeIndexFile(seg.idxPath, base, x.entries); err != nil {
		return segInfo{}, err
	}
	si.nEntries, si.maxTs = len(x.entries), x.maxTs
	return si, nil
}

func checkHeaderFile(path string, magic [4]byte, base int64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var h [fileHeaderSize]byte
	if _, err := io.ReadFull(f, h[:]); err != nil {
		return fmt.Errorf("streamlog: %s: %w", path, err)
	}
	if err := parseFileHeader(h[:], magic, base); err != nil {
		return fmt.Errorf("%w (%s)", err, path)
	}
	return nil
}

// readSealedIndex checks a sealed segment's index file cheaply (header,
// size, last entry) and returns its entry count and the segment's largest
// timestamp.
func readSealedIndex(path string, base, segSize int64) (int, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, 0, err
	}
	var h [fileHeaderSize]byte
	if _, err := io.ReadFull(f, h[:]); err != nil {
		return 0, 0, err
	}
	if err := parseFileHeader(h[:], idxMagic, base); err != nil {
		return 0, 0, err
	}
	body := fi.Size() - fileHeaderSize
	if body%indexEntrySize != 0 {
		return 0, 0, errors.New("index size is not a whole number of entries")
	}
	n := int(body / indexEntrySize)
	if n == 0 {
		if segSize > fileHeaderSize {
			return 0, 0, errors.New("index of a non-empty segment has no entries")
		}
		return 0, -1, nil
	}
	var b [indexEntrySize]byte
	if _, err := f.ReadAt(b[:], fi.Size()-indexEntrySize); err != nil {
		return 0, 0, err
	}
	e := decodeIndexEntry(b[:])
	if int64(e.pos) < fileHeaderSize || int64(e.pos)+recordbatch.HeaderSize > segSize {
		return 0, 0, errors.New("index's last entry lies outside the segment")
	}
	return n, e.maxTs, nil
}

// writeIndexFile writes a whole index file (temporary file, sync, rename).
func writeIndexFile(path string, base int64, entries []indexEntry) error {
	b := appendFileHeader(nil, idxMagic, base)
	for _, e := range entries {
		b = appendIndexEntry(b, e)
	}
	return writeFileAtomic(path, b)
}

// recoverActive opens the last segment for writing: its batches are checked
// (contiguous offsets from its base), a torn or corrupt tail is cut off and
// its index is rebuilt.
func (l *Log) recoverActive(base int64) error {
	seg := newSegment(l.dir, base)
	f, err := os.OpenFile(seg.path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	fail := func(err error) error { f.Close(); return err }
	fi, err := f.Stat()
	if err != nil {
		return fail(err)
	}
	size := fi.Size()
	var h [fileHeaderSize]byte
	_, rerr := f.ReadAt(h[:], 0)
	if rerr != nil || parseFileHeader(h[:], segMagic, base) != nil {
		if size > fileHeaderSize {
			return fail(fmt.Errorf("streamlog: %s: bad segment header", seg.path))
		}
		// Torn at creation: nothing was written to it yet.
		if err := f.Truncate(0); err != nil {
			return fail(err)
		}
		if _, err := f.WriteAt(appendFileHeader(nil, segMagic, base), 0); err != nil {
			return fail(err)
		}
		if err := fdatasync(f); err != nil {
			return fail(err)
		}
		size = fileHeaderSize
	}
	prod, ok, err := readSnapshot(segName(l.dir, base, snapSuffix), base)
	if err != nil {
		prod = newProducers()
		l.log.Warn("streamlog: producer snapshot unreadable, rebuilding from the last segment only", "segment", base, "err", err)
	} else if !ok && base > 0 {
		l.log.Info("streamlog: no producer snapshot, rebuilding from the last segment only", "segment", base)
	}
	x := indexer{maxTs: -1}
	next := base
	var batch []byte
	end, _, err := scanSegment(f, size, base, true, func(h recordbatch.BatchHeader, pos int64) {
		x.add(uint32(h.BaseOffset-base), pos, h.MaxTimestamp)
		next = h.LastOffset() + 1
		if h.ProducerID >= 0 {
			if h.Control() {
				batch = slices.Grow(batch[:0], h.Size())[:h.Size()]
				if _, err := f.ReadAt(batch, pos); err != nil {
					batch = batch[:0]
				}
			}
			prod.record(h, batch) // aborts come from the .txn files
		}
	})
	if err != nil {
		return fail(err)
	}
	txnPath := segName(l.dir, base, txnSuffix)
	ab, cut, err := readAborted(txnPath, next)
	if err != nil {
		return fail(err)
	}
	if cut {
		var b []byte
		for _, a := range ab {
			b = appendAbortedEntry(b, a)
		}
		if err := writeFileAtomic(txnPath, b); err != nil {
			return fail(err)
		}
	}
	prod.aborted = ab
	if end < size {
		l.log.Warn("streamlog: cutting off a torn or corrupt tail", "segment", base, "offset", end, "bytes", size-end)
		if err := f.Truncate(end); err != nil {
			return fail(err)
		}
		if err := fdatasync(f); err != nil {
			return fail(err)
		}
	}
	idxF, err := os.OpenFile(seg.idxPath, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fail(err)
	}
	b := appendFileHeader(nil, idxMagic, base)
	for _, e := range x.entries {
		b = appendIndexEntry(b, e)
	}
	if _, err := idxF.WriteAt(b, 0); err != nil {
		idxF.Close()
		return fail(err)
	}
	if err := idxF.Truncate(int64(len(b))); err != nil {
		idxF.Close()
		return fail(err)
	}
	seg.f, seg.idxF = f, idxF
	l.w = writer{seg: seg, size: end, next: next, maxTs: x.maxTs, idx: x, idxSize: int64(len(b)), prod: prod}
	return nil
}

// scanSegment calls fn for each valid batch of a segment from the end of
// its header up to size, and returns where the valid batches end. A batch is
// valid if it lies wholly within size, its header, magic and CRC check, and
// its offsets follow the previous batch's: contiguously if contiguous (the
// active segment), else at least increasing (compacted segments have gaps).
// The error is only for a failed read.
func scanSegment(r io.ReaderAt, size, base int64, contiguous bool, fn func(h recordbatch.BatchHeader, pos int64)) (end, next int64, err error) {
	sc := window{r: r, size: size}
	pos, next := int64(fileHeaderSize), base
	for size-pos >= recordbatch.HeaderSize {
		hb, err := sc.at(pos, recordbatch.HeaderSize)
		if err != nil {
			return pos, next, err
		}
		h, herr := peekHeader(hb)
		if herr != nil || int64(h.Size()) > size-pos {
			break
		}
		b, err := sc.at(pos, h.Size())
		if err != nil {
			return pos, next, err
		}
		if _, err := checkBatch(b, math.MaxInt); err != nil {
			break
		}
		if h.BaseOffset < next || contiguous && h.BaseOffset != next || h.LastOffset()-base >= math.MaxUint32 {
			break
		}
		fn(h, pos)
		next = h.LastOffset() + 1
		pos += int64(h.Size())
	}
	return pos, next, nil
}

// window reads a file sequentially through a buffer.
type window struct {
	r     io.ReaderAt
	size  int64
	buf   []byte
	bufAt int64
}

// at returns n bytes at pos; n never exceeds size-pos.
func (w *window) at(pos int64, n int) ([]byte, error) {
	if pos >= w.bufAt && pos+int64(n) <= w.bufAt+int64(len(w.buf)) {
		off := int(pos - w.bufAt)
		return w.buf[off : off+n], nil
	}
	want := max(n, 1<<20)
	want = int(min(int64(want), w.size-pos))
	if cap(w.buf) < want {
		w.buf = make([]byte, want)
	}
	w.buf = w.buf[:want]
	m, err := w.r.ReadAt(w.buf, pos)
	w.buf, w.bufAt = w.buf[:m], pos
	if m < n {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return w.buf[:n], nil
}
