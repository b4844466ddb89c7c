package streamlog

import (
	"bufio"
	"errors"
	"hash/maphash"
	"os"
	"time"
)

// Log compaction (Options.Compact, Kafka's cleanup.policy=compact).
//
// Sealed segments are compacted in a goroutine of their own, one pass at a
// time, when the bytes sealed since the last pass ("dirty") are at least
// those compacted before ("clean"): Kafka's min.cleanable.dirty.ratio 0.5.
// A pass maps each key of the dirty segments to its latest offset, then
// rewrites every sealed segment keeping a record unless a later one has its
// key; a tombstone (null value) that is its key's latest goes too once its
// batch's maxTimestamp is DeleteRetention old. Offsets are kept (batches
// then have gaps; a read of a removed offset starts at the next batch) and
// so are batches' timestamps and producer fields. A batch with records
// removed is rewritten uncompressed; transactional and control batches,
// and batches whose codec is unknown (see SetDecompressor), are kept whole,
// and no tombstone after such a batch is dropped (it might hide an older
// value in it). Records without a key are kept.
//
// A segment is rewritten to <base>.seg.compact.tmp and .idx.compact.tmp,
// synced, then its index is removed, the segment renamed over the old one
// and the new index renamed into place: a crash in between leaves a
// segment without an index, which Open rebuilds. The end of the last pass
// is kept in compacted.chk. Retention waits while a pass runs.

const (
	// DefaultDeleteRetention is how long tombstones outlive compaction
	// (Kafka's delete.retention.ms).
	DefaultDeleteRetention = 24 * time.Hour
	checkpointName         = "compacted.chk"
	compactSuffix          = ".compact.tmp"
)

var chkMagic = [4]byte{'W', 'S', 'C', 'K'}

// SetDecompressor lets compaction read compressed batches of the codecs
// the standard library lacks (snappy, lz4, zstd); gzip is built in. fn gets
// the codec number and the records' bytes and returns them decompressed.
func (l *Log) SetDecompressor(fn func(codec int, src []byte) ([]byte, error)) {
	l.mu.Lock()
	l.decompress = fn
	l.mu.Unlock()
}

// keyHash names a key in the compaction map by 128 bits of two seeded
// hashes: the map costs 24 bytes a key whatever the key's size.
type keyHash [2]uint64

type keyHasher struct{ s1, s2 maphash.Seed }

func (k keyHasher) sum(b []byte) keyHash {
	return keyHash{maphash.Bytes(k.s1, b), maphash.Bytes(k.s2, b)}
}

// maybeCompact starts a compaction pass if one is due and none runs.
func (l *Log) maybeCompact(o Options) {
	if !o.Compact {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.compactDone != nil || l.closed {
		return
	}
	var dirty, clean int64
	for _, si := range l.view.Load().sealed {
		if si.seg.base >= l.cleanedTo {
			dirty += si.size - fileHeaderSize
		} else {
			clean += si.size - fileHeaderSize
		}
	}
	if dirty <= 0 || dirty < clean {
		return
	}
	done := make(chan struct{})
	l.compactDone = done
	go func() {
		err := l.compact(o)
		if err != nil && !errors.Is(err, ErrClosed) {
			l.log.Error("streamlog: compaction failed", "err", err)
		}
		l.mu.Lock()
		l.compactDone = nil
		l.mu.Unlock()
		close(done)
		l.kick() // retention may have waited for the pass
	}()
}

// waitCompaction waits for a running pass.
func (l *Log) waitCompaction() {
	l.mu.Lock()
	d := l.compactDone
	l.mu.Unlock()
	if d != nil {
		<-d
	}
}

// compact runs one pass over the sealed segments.
func (l *Log) compact(o Options) error {
	l.compactMu.Lock()
	defer l.compactMu.Unlock()
	l.mu.Lock()
	sealed, cleanedTo, decompress := l.view.Load().sealed, l.cleanedTo, l.decompress
	l.mu.Unlock()
	if len(sealed) == 0 {
		return nil
	}
	h := keyHasher{maphash.MakeSeed(), maphash.MakeSeed()}
	latest := map[keyHash]int64{}
	for i := range sealed {
		si := &sealed[i]
		if si.seg.base < cleanedTo {
			continue
		}
		err := eachBatch(si, func(b []byte, bh BatchHeader) error {
			if bh.Transactional() || bh.Control() {
				return nil
			}
			recs, ok := batchRecords(b, bh, decompress)
			if !ok {
				return nil
			}
			for _, r := range recs {
				if !r.nullKey {
					latest[h.sum(r.key)] = bh.BaseOffset + r.offsetDelta
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	cutoff := l.now().Add(-o.deleteRetention()).UnixMilli()
	// Once a batch whose keys are unknown (kept whole) has been passed,
	// no later tombstone may go: it could be all that hides an older
	// value of its key in that batch.
	opaqueSeen := false
	for i := range sealed {
		if err := l.usable(); err != nil {
			return err
		}
		keep := func(bh BatchHeader, r record) bool {
			if r.nullKey {
				return true
			}
			off := bh.BaseOffset + r.offsetDelta
			if last, ok := latest[h.sum(r.key)]; ok && last > off {
				return false
			}
			return !r.tombstone || bh.MaxTimestamp >= cutoff || opaqueSeen
		}
		if err := l.compactSegment(&sealed[i], keep, decompress, &opaqueSeen); err != nil {
			return err
		}
	}
	end := sealed[len(sealed)-1].next
	if err := writeFileAtomic(l.dir+"/"+checkpointName, appendFileHeader(nil, chkMagic, end)); err != nil {
		return err
	}
	l.mu.Lock()
	l.cleanedTo = end
	l.mu.Unlock()
	return nil
}

// eachBatch calls fn with every batch of a pinned sealed segment.
func eachBatch(si *segInfo, fn func(b []byte, h BatchHeader) error) error {
	if !si.seg.acquire() {
		return ErrClosed
	}
	defer si.seg.release()
	f, _, err := si.seg.files()
	if err != nil {
		return err
	}
	sc := window{r: f, size: si.size}
	for pos := int64(fileHeaderSize); si.size-pos >= BatchHeaderSize; {
		hb, err := sc.at(pos, BatchHeaderSize)
		if err != nil {
			return err
		}
		h, err := ParseBatchHeader(hb)
		if err != nil || int64(h.Size()) > si.size-pos {
			return ErrCorrupt
		}
		b, err := sc.at(pos, h.Size())
		if err != nil {
			return err
		}
		if err := fn(b, h); err != nil {
			return err
		}
		pos += int64(h.Size())
	}
	return nil
}

// compactSegment rewrites one sealed segment keeping the records keep
// accepts, and swaps it into the view; nothing happens if all are kept.
func (l *Log) compactSegment(si *segInfo, keep func(BatchHeader, record) bool, decompress func(int, []byte) ([]byte, error), opaqueSeen *bool) error {
	base := si.seg.base
	tmpSeg, tmpIdx := segName(l.dir, base, segSuffix+compactSuffix), segName(l.dir, base, idxSuffix+compactSuffix)
	f, err := os.OpenFile(tmpSeg, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	fail := func(err error) error {
		f.Close()
		os.Remove(tmpSeg)
		return err
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	bw.Write(appendFileHeader(nil, segMagic, base))
	pos := int64(fileHeaderSize)
	x := indexer{maxTs: -1}
	changed := false
	var kept []record
	var out []byte
	err = eachBatch(si, func(b []byte, h BatchHeader) error {
		out = out[:0]
		recs, ok := []record(nil), false
		if !h.Transactional() && !h.Control() {
			recs, ok = batchRecords(b, h, decompress)
		}
		defer func() {
			if !ok && !h.Control() {
				*opaqueSeen = true
			}
		}()
		kept = kept[:0]
		for _, r := range recs {
			if keep(h, r) {
				kept = append(kept, r)
			}
		}
		switch {
		case !ok || len(kept) == len(recs):
			out = append(out, b...)
		case len(kept) == 0:
			changed = true
			return nil
		default:
			changed = true
			out = rebuildBatch(out, b, h, kept)
		}
		x.add(uint32(h.BaseOffset-base), pos, h.MaxTimestamp)
		pos += int64(len(out))
		_, err := bw.Write(out)
		return err
	})
	if err == nil && !changed {
		return fail(nil)
	}
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = fdatasync(f)
	}
	if err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		return fail(err)
	}
	x.seal()
	if err := writeIndexFile(tmpIdx, base, x.entries); err != nil {
		os.Remove(tmpSeg)
		return err
	}
	// Readers of the old segment keep its files: open them now, before
	// the names point at the new ones.
	if !si.seg.acquire() {
		os.Remove(tmpSeg)
		os.Remove(tmpIdx)
		return ErrClosed
	}
	defer si.seg.release()
	if _, _, err := si.seg.files(); err != nil {
		return err
	}
	for _, step := range []func() error{
		func() error { return os.Remove(si.seg.idxPath) },
		func() error { return os.Rename(tmpSeg, si.seg.path) },
		func() error { return os.Rename(tmpIdx, si.seg.idxPath) },
		func() error { return syncDir(l.dir) },
	} {
		if err := step(); err != nil {
			l.fail(err)
			return err
		}
	}
	si.seg.keep.Store(true)
	ni := segInfo{seg: newSegment(l.dir, base), size: pos, next: si.next, maxTs: x.maxTs, nEntries: len(x.entries)}
	if !x.any {
		ni.maxTs = si.maxTs
	}
	l.log.Info("streamlog: compacted segment", "segment", base, "bytes", si.size, "now", pos)
	l.mu.Lock()
	v := *l.view.Load()
	v.sealed = append([]segInfo(nil), v.sealed...)
	swapped := false
	for i := range v.sealed {
		if v.sealed[i].seg == si.seg {
			v.sealed[i], swapped = ni, true
		}
	}
	if swapped {
		l.view.Store(&v)
	}
	l.mu.Unlock()
	if swapped {
		si.seg.release() // the view's reference
	} else {
		ni.seg.release()
	}
	return nil
}

func (o Options) deleteRetention() time.Duration {
	if o.DeleteRetention <= 0 {
		return DefaultDeleteRetention
	}
	return o.DeleteRetention
}

// readCheckpoint returns where the last compaction pass ended, 0 if none.
func readCheckpoint(dir string) int64 {
	b, err := os.ReadFile(dir + "/" + checkpointName)
	if err != nil || len(b) < fileHeaderSize {
		return 0
	}
	end := int64(0)
	for i := 0; i < 8; i++ {
		end |= int64(b[8+i]) << (8 * i)
	}
	if parseFileHeader(b, chkMagic, end) != nil {
		return 0
	}
	return end
}
