package streamlog

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warren-mq/warren/internal/recordbatch"
)

// Errors the log returns. Front ends map them to protocol codes.
var (
	// ErrCorrupt: a batch with a bad length, magic or CRC (Kafka CORRUPT_MESSAGE).
	ErrCorrupt = errors.New("streamlog: corrupt record batch")
	// ErrBatchTooLarge: a batch beyond Options.MaxBatchBytes (Kafka MESSAGE_TOO_LARGE).
	ErrBatchTooLarge = errors.New("streamlog: record batch too large")
	// ErrOffsetOutOfRange: a read outside [StartOffset, NextOffset] (Kafka OFFSET_OUT_OF_RANGE).
	ErrOffsetOutOfRange = errors.New("streamlog: offset out of range")
	// ErrOutOfOrderSequence: an idempotent batch whose sequence leaves a gap.
	ErrOutOfOrderSequence = errors.New("streamlog: out of order sequence number")
	// ErrInvalidProducerEpoch: an idempotent batch from an older producer epoch.
	ErrInvalidProducerEpoch = errors.New("streamlog: invalid producer epoch")
	// ErrClosed: the log was closed (or deleted).
	ErrClosed = errors.New("streamlog: log closed")
)

// Options configure a log. Zero values pick the defaults.
type Options struct {
	SegmentBytes  int64         // x-stream-max-segment-size-bytes / segment.bytes; default 500_000_000
	MaxAge        time.Duration // x-max-age / retention.ms; 0 = keep forever
	MaxBytes      int64         // x-max-length-bytes / retention.bytes; 0 = unlimited
	Compact       bool          // cleanup.policy=compact
	MaxBatchBytes int           // largest batch accepted (message.max.bytes); default 1 MiB + 12, as Kafka's
	// DeleteRetention is how long compaction keeps tombstones
	// (delete.retention.ms); default DefaultDeleteRetention.
	DeleteRetention time.Duration
}

// Defaults and bounds of Options.
const (
	DefaultSegmentBytes  = 500_000_000
	DefaultMaxBatchBytes = 1<<20 + 12
	// MaxSegmentBytes bounds SegmentBytes: index positions are 32 bits
	// and a segment may exceed SegmentBytes by one batch.
	MaxSegmentBytes = 1 << 31
	minSegmentBytes = 4096
	maxBatchLimit   = 1 << 30
)

func (o Options) normalized() Options {
	if o.SegmentBytes <= 0 {
		o.SegmentBytes = DefaultSegmentBytes
	}
	o.SegmentBytes = min(max(o.SegmentBytes, minSegmentBytes), MaxSegmentBytes)
	if o.MaxBatchBytes <= 0 {
		o.MaxBatchBytes = DefaultMaxBatchBytes
	}
	o.MaxBatchBytes = min(max(o.MaxBatchBytes, recordbatch.HeaderSize), maxBatchLimit)
	return o
}

// AppendResult says where an append landed.
type AppendResult struct {
	BaseOffset, LastOffset int64
	// Duplicate is set when the batch repeated one of the producer's last
	// five and was not written again: the offsets are the original's.
	Duplicate bool
}

// AbortedTxn is one aborted transaction of a producer, for read_committed
// fetches: records of ProducerID from FirstOffset to LastOffset (the abort
// marker) are to be skipped.
type AbortedTxn struct {
	ProducerID  int64
	FirstOffset int64
	LastOffset  int64
}

// Log is the log of one stream partition, in its own directory. All methods
// are safe for concurrent use.
type Log struct {
	dir string
	log *slog.Logger
	now func() time.Time

	view  atomic.Pointer[view]
	syncs atomic.Int64 // group commits, for benchmarks
	lock  *os.File

	mu     sync.Mutex
	opts   Options
	pend   []*appendReq
	err    error // sticky: the first write or sync error
	closed bool
	waitc  chan struct{} // closed when the view's next offset advances; nil if nobody waits
	// stableWaits are WaitStable's channels, by offset; few (one per
	// read_committed fetch position), so a slice.
	stableWaits []stableWait
	stopped     chan struct{}
	kickc       chan struct{}
	maintc      chan chan struct{} // runMaintenance's requests
	// optsChanged tells the writer to apply retention at its next pause.
	optsChanged bool
	cleanedTo   int64         // end of the last compaction pass
	compactDone chan struct{} // non-nil while a compaction pass runs
	// compactMu is held by a compaction pass; retention skips its turn
	// rather than delete a segment being rewritten.
	compactMu sync.Mutex

	// syncFile is fdatasync for the group commit's syncs; tests make it
	// fail.
	syncFile func(*os.File) error

	w  writer   // the writer goroutine's own state
	sp syncPipe // the writer goroutine's too: the sync in flight and the appends waiting for the next
}

// view is what readers see: published atomically after each write, so that
// reads never take a lock the writer holds for I/O.
type view struct {
	sealed  []segInfo // oldest first; shared between views
	active  segInfo
	lso     int64
	aborted []AbortedTxn // shared, append-only; sorted by LastOffset
}

func (v *view) start() int64 {
	if len(v.sealed) > 0 {
		return v.sealed[0].seg.base
	}
	return v.active.seg.base
}

// each calls fn for every segment, oldest first, until it returns false.
func (v *view) each(fn func(si *segInfo) bool) { v.eachFrom(0, fn) }

// eachFrom is each from the i-th sealed segment on.
func (v *view) eachFrom(i int, fn func(si *segInfo) bool) {
	for ; i < len(v.sealed); i++ {
		if !fn(&v.sealed[i]) {
			return
		}
	}
	fn(&v.active)
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// Open opens (creating if needed) the log in dir. It recovers the last
// segment: its batches are checked, a torn or corrupt tail is cut off and its
// index is rebuilt. Older segments are trusted (they were synced when they
// were sealed): only their index files are looked at, and rebuilt if missing.
func Open(dir string, o Options, log *slog.Logger) (*Log, error) {
	return open(dir, o, log, time.Now)
}

func open(dir string, o Options, log *slog.Logger, now func() time.Time) (*Log, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("stream_dir", dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	l := &Log{dir: dir, log: log, now: now, opts: o.normalized(), stopped: make(chan struct{}), kickc: make(chan struct{}, 1), maintc: make(chan chan struct{}),
		syncFile: fdatasync}
	lock, err := lockDir(dir + "/LOCK")
	if err != nil {
		return nil, err
	}
	l.lock = lock
	l.cleanedTo = readCheckpoint(dir)
	v, err := l.recover()
	if err != nil {
		lock.Close()
		return nil, err
	}
	l.view.Store(v)
	go l.run()
	return l, nil
}

// StartOffset is the log start offset: the first offset retention kept.
func (l *Log) StartOffset() int64 { return l.view.Load().start() }

// NextOffset is the log end offset (the high watermark): one past the last
// record whose append is durable. Records become readable and this moves only
// after their fdatasync, just before their done callbacks run (an
// AppendWritten's written callback runs earlier, before the sync).
func (l *Log) NextOffset() int64 { return l.view.Load().active.next }

// Wait returns a channel closed once NextOffset() > offset or the log closes.
func (l *Log) Wait(offset int64) <-chan struct{} {
	if l.NextOffset() > offset {
		return closedChan
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || l.view.Load().active.next > offset {
		return closedChan
	}
	if l.waitc == nil {
		l.waitc = make(chan struct{})
	}
	return l.waitc
}

// WaitStable returns a channel closed once LastStableOffset() > offset or
// the log closes: a read_committed fetch waits on it while an open
// transaction holds the records back.
func (l *Log) WaitStable(offset int64) <-chan struct{} {
	if l.LastStableOffset() > offset {
		return closedChan
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || l.view.Load().lso > offset {
		return closedChan
	}
	for i := range l.stableWaits {
		if l.stableWaits[i].offset == offset {
			return l.stableWaits[i].ch
		}
	}
	ch := make(chan struct{})
	l.stableWaits = append(l.stableWaits, stableWait{offset, ch})
	return ch
}

// stableWait is one offset WaitStable callers wait to become stable.
type stableWait struct {
	offset int64
	ch     chan struct{}
}

// publishLocked makes v the readers' view and wakes waiters.
func (l *Log) publishLocked(v *view) {
	l.view.Store(v)
	if l.waitc != nil {
		close(l.waitc)
		l.waitc = nil
	}
	if len(l.stableWaits) > 0 {
		kept := l.stableWaits[:0]
		for _, w := range l.stableWaits {
			if v.lso > w.offset {
				close(w.ch)
			} else {
				kept = append(kept, w)
			}
		}
		clear(l.stableWaits[len(kept):])
		l.stableWaits = kept
	}
}

// SetOptions changes the options; retention and segment size apply from the
// next append or retention check.
func (l *Log) SetOptions(o Options) {
	l.mu.Lock()
	l.opts = o.normalized()
	l.optsChanged = true
	l.mu.Unlock()
	l.kick()
}

func (l *Log) options() Options {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.opts
}

// Close writes what is pending, stops the writer and releases the files.
// Chunks still open stay readable until they are closed.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		<-l.stopped
		return nil
	}
	l.closed = true
	if l.waitc != nil {
		close(l.waitc)
		l.waitc = nil
	}
	for _, w := range l.stableWaits {
		close(w.ch)
	}
	l.stableWaits = nil
	l.mu.Unlock()
	l.kick()
	<-l.stopped
	l.waitCompaction()
	v := l.view.Load()
	v.each(func(si *segInfo) bool { si.seg.release(); return true })
	l.lock.Close()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil && !errors.Is(l.err, ErrClosed) {
		return l.err
	}
	return nil
}

// Delete closes the log and removes its directory.
func (l *Log) Delete() error {
	err := l.Close()
	if rerr := os.RemoveAll(l.dir); rerr != nil {
		return errors.Join(err, rerr)
	}
	return err
}

func (l *Log) kick() {
	select {
	case l.kickc <- struct{}{}:
	default:
	}
}

// fail records a sticky error; the first wins.
func (l *Log) fail(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err == nil {
		l.err = err
		l.log.Error("streamlog: write failed, the log must be reopened", "err", err)
	}
}

func (l *Log) usable() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	return l.err
}

func (l *Log) String() string { return fmt.Sprintf("streamlog(%s)", l.dir) }
