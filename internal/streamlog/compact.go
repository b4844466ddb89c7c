package streamlog

import (
	"bufio"
	"errors"
	"hash/maphash"
	"os"
	"sort"
	"time"

	"github.com/warren-mq/warren/internal/recordbatch"
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
// so are batches' timestamps and producer fields. Records are read with
// internal/recordbatch's Iterator, so every codec Kafka defines is
// compacted (at most 64 MiB of records a compressed batch); a batch
// with records removed is rewritten with the kept records byte for byte,
// in its own codec, as Kafka's cleaner does. Batches whose records do not
// decode are kept whole, and no tombstone after such a batch is dropped (it
// might hide an older value in it). Records without a key are kept.
//
// Transactions, as Kafka's cleaner treats them. A pass works below the
// last stable offset as it starts: batches at or past it are kept whole
// (as undecodable ones are) and their segments stay dirty for the next
// pass. Below it a transactional batch has ended: if the aborted index
// (.txn) says its transaction aborted, it goes whole and its keys count for
// nothing; if it committed, its records are compacted like any others. A
// commit marker goes once no record of its transaction is left before it
// and it is DeleteRetention old. Abort markers are kept for ever: the .txn
// entries, which read_committed consumers get with every fetch, name them,
// and a consumer that is told of an aborted transaction but never meets its
// marker would take the producer's later transactions for aborted too;
// dropping them would need the .txn files rewritten with the segments.
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
	v, cleanedTo := l.view.Load(), l.cleanedTo
	l.mu.Unlock()
	sealed := v.sealed
	if len(sealed) == 0 {
		return nil
	}
	p := newPass(v, l.now().Add(-o.deleteRetention()).UnixMilli())
	for i := range sealed {
		si := &sealed[i]
		if si.seg.base < cleanedTo {
			continue
		}
		if err := eachBatch(si, p.collect); err != nil {
			return err
		}
	}
	for i := range sealed {
		if err := l.usable(); err != nil {
			return err
		}
		if err := l.compactSegment(&sealed[i], p); err != nil {
			return err
		}
	}
	// Segments at or past the stable offset stay dirty: the next pass maps
	// the keys of their transactions once those have ended.
	end := sealed[len(sealed)-1].next
	for i := range sealed {
		if sealed[i].next > p.lso {
			end = sealed[i].seg.base
			break
		}
	}
	if err := writeFileAtomic(l.dir+"/"+checkpointName, appendFileHeader(nil, chkMagic, end)); err != nil {
		return err
	}
	l.mu.Lock()
	l.cleanedTo = end
	l.mu.Unlock()
	return nil
}

// pass is what one compaction pass knows: the log's stable offset and
// aborted transactions as it started, each key's latest offset (collect),
// and, as the rewrite walks the segments in order, whether an opaque batch
// has been passed and which producers' open transactions still have records.
type pass struct {
	lso     int64                  // batches at or past it are kept whole, their keys unknown
	aborted map[int64][]AbortedTxn // by producer id, in offset order
	cutoff  int64                  // tombstones and commit markers older than this may go
	h       keyHasher
	latest  map[keyHash]int64
	// opaque: a batch whose keys are unknown (kept whole) has been passed,
	// so no later tombstone may go: it could be all that hides an older
	// value of its key in that batch.
	opaque  bool
	txnLeft map[int64]bool // producer id -> its transaction has records kept
	it      recordbatch.Iterator
	rec     recordbatch.Record
	keys    []keyAt
	out     []byte
	scratch []byte
}

type keyAt struct {
	k   keyHash
	off int64
}

func newPass(v *view, cutoff int64) *pass {
	p := &pass{lso: v.lso, aborted: map[int64][]AbortedTxn{}, cutoff: cutoff,
		h: keyHasher{maphash.MakeSeed(), maphash.MakeSeed()}, latest: map[keyHash]int64{}, txnLeft: map[int64]bool{}}
	for _, a := range v.aborted {
		p.aborted[a.ProducerID] = append(p.aborted[a.ProducerID], a)
	}
	return p
}

// stable reports whether the batch lies below the stable offset, so that
// its transaction, if any, has ended and the pass knows how.
func (p *pass) stable(h recordbatch.BatchHeader) bool { return h.LastOffset() < p.lso }

// abortedTxn reports whether the transactional batch h belongs to an
// aborted transaction: its producer's, begun at or before it and ended by
// an abort marker after it.
func (p *pass) abortedTxn(h recordbatch.BatchHeader) bool {
	ab := p.aborted[h.ProducerID]
	i := sort.Search(len(ab), func(i int) bool { return ab[i].LastOffset > h.BaseOffset })
	return i < len(ab) && ab[i].FirstOffset <= h.BaseOffset
}

// values reports whether the batch holds records that count as values:
// stable, not a marker, not aborted.
func (p *pass) values(h recordbatch.BatchHeader) bool {
	return p.stable(h) && !h.Control() && !(h.Transactional() && p.abortedTxn(h))
}

// collect maps the keys of batch b to their latest offsets; a batch that
// does not decode wholly is kept whole by the rewrite, so its keys hide
// nothing.
func (p *pass) collect(b []byte, h recordbatch.BatchHeader) error {
	if !p.values(h) || walk(&p.it, b) != nil {
		return nil
	}
	p.keys = p.keys[:0]
	for p.it.NextNoHeaders(&p.rec) {
		if p.rec.Key != nil {
			p.keys = append(p.keys, keyAt{p.h.sum(p.rec.Key), h.BaseOffset + int64(p.rec.OffsetDelta)})
		}
	}
	if p.it.Err() == nil {
		for _, k := range p.keys {
			p.latest[k.k] = k.off
		}
	}
	return nil
}

// keep says whether record r of batch h stays: unless a later record has
// its key, or it is a tombstone DeleteRetention old with no opaque batch
// before it. Records without a key stay.
func (p *pass) keep(h recordbatch.BatchHeader, r *recordbatch.Record) bool {
	if r.Key == nil {
		return true
	}
	off := h.BaseOffset + int64(r.OffsetDelta)
	if last, ok := p.latest[p.h.sum(r.Key)]; ok && last > off {
		return false
	}
	return r.Value != nil || h.MaxTimestamp >= p.cutoff || p.opaque
}

// rewrite returns what is left of batch b (header h), in p.out, and how.
// Batches past the stable offset are kept whole (and count as opaque);
// records of aborted transactions go; a commit marker goes once no record
// of its transaction is left and it is DeleteRetention old; abort markers
// stay (the aborted-transaction index, which read_committed consumers get,
// names them and is not rewritten); other batches keep what keep accepts.
func (p *pass) rewrite(b []byte, h recordbatch.BatchHeader) keptAs {
	var what keptAs
	switch {
	case !p.stable(h):
		p.out, what = append(p.out[:0], b...), opaque
	case h.Control():
		commit, err := controlCommit(b)
		if err == nil && commit && !p.txnLeft[h.ProducerID] && h.MaxTimestamp < p.cutoff {
			what = dropped
		} else {
			p.out, what = append(p.out[:0], b...), keptWhole
		}
		delete(p.txnLeft, h.ProducerID)
		return what
	case h.Transactional() && p.abortedTxn(h):
		return dropped
	default:
		p.out, what = retain(p.out[:0], b, &p.it, p.keep, &p.scratch)
	}
	if what == opaque {
		p.opaque = true
	}
	if h.Transactional() && what != dropped {
		p.txnLeft[h.ProducerID] = true
	}
	return what
}

// maxDecompressed bounds what compaction decompresses of one batch (the
// Iterator's limit); a batch whose records are larger is kept whole.
const maxDecompressed = 64 << 20

// walk starts it on batch b for compaction: an uncompressed batch is read
// in place whatever its size, a compressed one decompressed to at most
// maxDecompressed bytes (or its own size).
func walk(it *recordbatch.Iterator, b []byte) error {
	return it.Reset(b, max(maxDecompressed, len(b)))
}

// keptAs is what retain did with a batch.
type keptAs int

const (
	keptWhole keptAs = iota // every record kept: the batch as it was
	rewritten               // some records kept: a new batch
	dropped                 // no record kept: nothing
	opaque                  // records that do not decode: the batch as it was
)

// retain appends to dst what is left of batch b once keep has judged each of
// its records: b itself if keep takes them all, nothing if none, else a batch
// of the kept records byte for byte (offsets, timestamps and producer fields
// as they were), compressed with b's codec as Kafka's cleaner does. scratch
// is reused for the kept records.
func retain(dst, b []byte, it *recordbatch.Iterator, keep func(recordbatch.BatchHeader, *recordbatch.Record) bool, scratch *[]byte) ([]byte, keptAs) {
	if walk(it, b) != nil {
		return append(dst, b...), opaque
	}
	h := it.Header()
	kept := (*scratch)[:0]
	var n, total int32
	var r recordbatch.Record
	for ; it.NextNoHeaders(&r); total++ {
		if keep(h, &r) {
			kept = append(kept, it.Raw()...)
			n++
		}
	}
	*scratch = kept
	switch {
	case it.Err() != nil:
		return append(dst, b...), opaque
	case n == total:
		return append(dst, b...), keptWhole
	case n == 0:
		return dst, dropped
	}
	return recordbatch.AppendRetained(dst, h, kept, n, h.Compression()), rewritten
}

// eachBatch calls fn with every batch of a pinned sealed segment.
func eachBatch(si *segInfo, fn func(b []byte, h recordbatch.BatchHeader) error) error {
	if !si.seg.acquire() {
		return ErrClosed
	}
	defer si.seg.release()
	f, _, err := si.seg.files()
	if err != nil {
		return err
	}
	sc := window{r: f, size: si.size}
	for pos := int64(fileHeaderSize); si.size-pos >= recordbatch.HeaderSize; {
		hb, err := sc.at(pos, recordbatch.HeaderSize)
		if err != nil {
			return err
		}
		h, err := peekHeader(hb)
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
func (l *Log) compactSegment(si *segInfo, p *pass) error {
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
	err = eachBatch(si, func(b []byte, h recordbatch.BatchHeader) error {
		switch p.rewrite(b, h) {
		case dropped:
			changed = true
			return nil
		case rewritten:
			changed = true
		}
		x.add(uint32(h.BaseOffset-base), pos, h.MaxTimestamp)
		pos += int64(len(p.out))
		_, err := bw.Write(p.out)
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
