package store

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// File is a Store kept in a directory: messages in segment files, acks and
// delivery marks in an ack log, metadata in a command log. doc.go describes
// the format. One goroutine (the syncer) does all writing; callers only queue
// work under a mutex, so no call waits for a disk write except Sync, which
// promises durability on return; metadata commits have a writer of their own.
type File struct {
	dir  string
	opts Options
	fs   fsys
	log  *slog.Logger
	lock *os.File

	kickc   chan struct{} // the batching signal: 1-buffered, see kick
	stopped chan struct{} // closed when the syncer has exited
	ix      *indexer      // writes segment indexes (index.go)
	// indexedRuns counts run reads that went by a segment index (tests).
	indexedRuns atomic.Int64

	meta metaFile

	mu          sync.Mutex
	err         error // sticky: the first I/O error that left the store in doubt
	closing     bool
	closeCalled bool
	queues      map[qkey]*qindex
	segs        map[uint32]*segment
	head        *segment // the segment being written; changed by the syncer only
	nextSeg     uint32
	nextRecno   uint64
	pend        []appendBatch // appends waiting for the syncer
	pendRecs    int
	pendAcks    []uint64 // recnos to write to the ack log
	pendDeliv   []uint64 // recnos to mark delivered in the ack log
	waiters     []waiter
	live        int // records held: slots, tail records, fresh records
	inTail      int // records in queues' tails (runs and pending appends)
	// fresh counts records found at Open that no Recover has handed out
	// yet: until it is 0, maintenance waits (segment live counts may still
	// include duplicates that only Recover resolves).
	fresh int
	// openRecno is the next recno at Open: records below it were written by
	// an earlier life of the store.
	openRecno uint64
	// openAcked and openDeliv are the ack log's acked and delivered recnos at
	// Open, sorted: how Recover tells fresh records apart. Kept while there
	// are fresh records; read without s.mu (never changed).
	openAcked, openDeliv []uint64
	// recovering counts Recover calls in progress: compaction and segment
	// deletion wait, so that nothing a Recover snapshot points to moves.
	recovering int

	syncs, syncedAppends, compactions, deleted atomic.Uint64
	scanned                                    atomic.Int64 // segments Open scanned (no valid summary)
	ackBytes                                   atomic.Int64
	watch                                      atomic.Pointer[writeWatch]

	w syncerState // the syncer goroutine's own

	// recoverMu keeps two Recovers from taking the same fresh runs.
	recoverMu sync.Mutex
}

// qindex indexes a queue's records: its window by ID, its tail and the
// records recovered at Open but not yet handed out as runs.
type qindex struct {
	slots map[uint64]slot
	tail  []*run     // written tail records, lowest IDs first
	pend  []pendTail // tail records appended but not written yet, after tail's
	fresh []*run     // found at Open, not yet handed out by Recover; file order
	// readMu lets one ReadTail or DropTail at a time work on the tail, without
	// holding s.mu during their I/O. Taken before s.mu.
	readMu sync.Mutex
	// gone: no longer in s.queues (deleted, or emptied). Those holding the
	// index across unlocked I/O look here before they change it.
	gone bool
}

// dropIndexLocked forgets a queue's index (deleted, or empty).
func (s *File) dropIndexLocked(k qkey, q *qindex) {
	delete(s.queues, k)
	q.gone = true
}

// pendTail is a tail record waiting for the syncer.
type pendTail struct{ id, recno uint64 }

// empty reports whether the queue holds nothing, so its index can go.
func (q *qindex) empty() bool {
	return len(q.slots) == 0 && len(q.tail) == 0 && len(q.pend) == 0 && len(q.fresh) == 0
}

// slot is where one live message is. 24 bytes: a million messages cost about
// 40 MB of index.
type slot struct {
	recno uint64
	seg   uint32 // segment number, once written
	off   uint32 // record offset in the segment
	size  uint32 // record size
	flags byte   // flagTransient, flagDelivered, slotWritten
}

// Slot flags beside the record's own (flagTransient, flagDelivered).
const (
	// slotWritten marks a slot whose record is in a segment (seg, off, size valid).
	slotWritten byte = 1 << 7
)

// segment is one segment file.
type segment struct {
	num       uint32
	path      string
	f         file
	size      int64 // bytes of valid records, header included
	live      int   // live records here: slots, tail and fresh records
	liveBytes int64
	tailLive  int // tail records here: compaction leaves the segment alone
	// dead holds the recnos of acked persistent records still in this file:
	// the ack log must keep their acks while the file exists.
	dead []uint64
	// movedOut lists records compaction copied to another segment while their
	// old copy stays here: if the copy dies, its ack must outlive this file.
	movedOut  []movedRef
	noCompact bool     // compaction failed on it once; do not retry forever
	sum       *segSum  // the syncer's: its summary, while it is written (nil: none will be)
	idx       segIndex // where its queues' records are (index.go)
}

type movedRef struct {
	key       qkey
	id, recno uint64
}

type appendBatch struct {
	recs []MessageRecord
	base uint64 // recno of recs[0]; the others follow
	done func(error)
}

// waiter is a Sync (or, in tests, settle) call waiting for the syncer.
type waiter struct {
	ch     chan error
	settle bool // also wait until maintenance (deletion, compaction) is done
}

// Open opens or creates the store in dir, recovering what is there: torn or
// corrupt tails are cut off, acknowledged messages dropped, the index rebuilt.
func Open(dir string, opts Options) (*File, error) {
	if opts.SegmentSize == 0 {
		opts.SegmentSize = 64 << 20
	}
	if opts.SegmentSize < 4096 || opts.SegmentSize > 1<<30 {
		return nil, fmt.Errorf("store: segment size %d out of range [4 KiB, 1 GiB]", opts.SegmentSize)
	}
	if opts.Interval <= 0 {
		opts.Interval = 100 * time.Millisecond
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.fs == nil {
		opts.fs = osFS{}
	}
	if opts.ackRewriteMin == 0 {
		opts.ackRewriteMin = 4 << 20
	}
	if opts.compactChunk == 0 {
		opts.compactChunk = 1 << 20
	}
	if opts.Weigh == nil {
		opts.Weigh = func(data []byte) int64 { return int64(len(data)) }
	}
	if opts.reserveSize == 0 {
		opts.reserveSize = defaultReserve
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	lock, err := lockDir(filepath.Join(dir, "LOCK"))
	if err != nil {
		return nil, err
	}
	s := &File{
		dir: dir, opts: opts, fs: opts.fs, log: opts.Logger.With("store", dir), lock: lock,
		kickc: make(chan struct{}, 1), stopped: make(chan struct{}), ix: newIndexer(),
		queues: map[qkey]*qindex{}, segs: map[uint32]*segment{}, nextSeg: 1,
	}
	if err := s.open(); err != nil {
		s.closeFiles()
		return nil, err
	}
	go s.run()
	go s.metaLoop()
	go s.runIndexer()
	s.kick()
	return s, nil
}

func (s *File) open() error {
	if err := s.removeTemps(); err != nil {
		return err
	}
	if err := s.openMeta(); err != nil {
		return err
	}
	if err := s.recoverMessages(); err != nil {
		return err
	}
	s.openIndexes()
	s.openReserve()
	return nil
}

// removeTemps deletes rewrites that a crash interrupted before their rename.
func (s *File) removeTemps() error {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return err
	}
	names := map[string]bool{}
	for _, e := range ents {
		names[e.Name()] = true
	}
	for _, e := range ents {
		name := e.Name()
		// A summary or index whose segment is gone (removal was cut short) goes too:
		// segment numbers are never reused, but it is clutter.
		stray := false
		for _, ext := range []string{".sum", ".idx"} {
			stray = stray || strings.HasSuffix(name, ext) && !names[strings.TrimSuffix(name, ext)+".seg"]
		}
		if strings.HasSuffix(name, ".tmp") || stray {
			if err := s.fs.Remove(filepath.Join(s.dir, name)); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *File) segPath(num uint32) string {
	return filepath.Join(s.dir, fmt.Sprintf("%08d.seg", num))
}

// segmentNumbers lists the segment files in order.
func (s *File) segmentNumbers() ([]uint32, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, err
	}
	var nums []uint32
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".seg")
		if !ok || len(name) != 8 {
			continue
		}
		n, err := strconv.ParseUint(name, 10, 32)
		if err != nil || n == 0 {
			continue
		}
		nums = append(nums, uint32(n))
	}
	slices.Sort(nums)
	return nums, nil
}

// openLog opens (creating if needed) a log file with a header and returns it
// with its size.
func (s *File) openLog(name string, magic [4]byte) (file, int64, error) {
	path := filepath.Join(s.dir, name)
	f, err := s.fs.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, 0, err
	}
	size, err := f.Size()
	if err == nil && size < logHeaderSize {
		// New, or its creation was cut short: nothing was ever recorded in it.
		err = s.writeNewFile(f, appendLogHeader(nil, magic))
		size = logHeaderSize
	}
	if err == nil {
		h := make([]byte, logHeaderSize)
		if _, err = f.ReadAt(h, 0); err == nil {
			err = parseLogHeader(h, magic)
		}
	}
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("store: %s: %w", path, err)
	}
	return f, size, nil
}

// writeNewFile writes the whole content of a file being created and makes it
// and its directory entry durable.
func (s *File) writeNewFile(f file, b []byte) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	if err := writeFull(f, b, 0); err != nil {
		return err
	}
	if s.opts.Sync == SyncNever {
		return nil
	}
	if err := f.Sync(); err != nil {
		return err
	}
	return s.fs.SyncDir(s.dir)
}

// cutTail truncates a file whose valid records end at good.
func (s *File) cutTail(f file, name string, good, size int64) error {
	if good >= size {
		return nil
	}
	s.log.Warn("store: cutting off invalid tail", "file", name, "offset", good, "bytes", size-good)
	if err := f.Truncate(good); err != nil {
		return err
	}
	return f.Sync()
}

// queueIndex returns a queue's index, creating it. Called with s.mu held (or
// before the store is shared).
func (s *File) queueIndex(k qkey) *qindex {
	q := s.queues[k]
	if q == nil {
		q = &qindex{slots: map[uint64]slot{}}
		s.queues[k] = q
	}
	return q
}

// createSegment creates a segment file with its header, durable unless SyncNever.
func (s *File) createSegment(num uint32, base uint64) (*segment, error) {
	path := s.segPath(num)
	f, err := s.fs.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, err
	}
	if err := s.writeNewFile(f, appendSegHeader(nil, num, base)); err != nil {
		f.Close()
		if rerr := s.fs.Remove(path); rerr != nil {
			return nil, errors.Join(err, fatalError{rerr})
		}
		return nil, err
	}
	seg := &segment{num: num, path: path, f: f, size: segHeaderSize, sum: newSegSum(base)}
	seg.startIndex()
	return seg, nil
}

// fatalError wraps an error that must stick even if it looks like a full disk
// (e.g. a failed cleanup after one).
type fatalError struct{ error }

func (e fatalError) Unwrap() error { return e.error }

// isFatal reports whether err is marked as leaving the store in doubt.
func isFatal(err error) bool {
	var fe fatalError
	return errors.As(err, &fe)
}

// sticky reports whether err leaves the store in doubt. A full disk does not:
// whatever it cut short has been rolled back.
func sticky(err error) bool {
	return err != nil && (isFatal(err) || !noSpace(err))
}

func writeFull(f file, b []byte, off int64) error {
	n, err := f.WriteAt(b, off)
	if err == nil && n < len(b) {
		err = io.ErrShortWrite
	}
	return err
}

func readFull(f file, b []byte, off int64) error {
	n, err := f.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// closeFiles releases every file; used by Close and by a failed Open.
func (s *File) closeFiles() {
	for _, seg := range s.segs {
		seg.f.Close()
		seg.closeIndex()
	}
	if s.w.ackF != nil {
		s.w.ackF.Close()
	}
	if s.w.reserveF != nil {
		s.w.reserveF.Close()
	}
	if s.meta.f != nil {
		s.meta.f.Close()
	}
	s.lock.Close()
}
