package store

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
)

// metaFile is the metadata log: the broker's encoded commands, one record
// each. Commits queue under mu and one goroutine (metaLoop) writes whatever is
// pending in one write and one fdatasync, then runs the done callbacks in log
// order, so concurrent declares share syncs and nothing waits for the disk
// while holding a lock the broker's routing takes.
type metaFile struct {
	mu      sync.Mutex // guards pend and closed
	pend    []metaPending
	closed  bool
	kickc   chan struct{}
	stopped chan struct{}

	// fileMu guards f, size and records: held by the writer and by MetaLog.
	fileMu   sync.Mutex
	f        file
	size     int64
	records  int // records in the file
	lastLive int // records the last compaction wrote

	snapshot        atomic.Pointer[func() [][]byte]
	bytes           atomic.Int64 // size, for Stats without a lock
	commits, writes atomic.Uint64
	// queueDrops is set by DeleteQueue: the next metadata write first makes
	// the message store's acks durable, so a queue deleted and then declared
	// again never gets its old messages back after a crash.
	queueDrops atomic.Bool
}

type metaPending struct {
	rec  []byte
	done func(error)
}

// metaCompactMin is the size below which the metadata log is never rewritten.
const metaCompactMin = 256

// openMeta checks meta.log: a torn or corrupt tail (bad length or CRC) is cut
// off; a record whose CRC is valid but that cannot be a metadata record stops
// Open, because cutting it would silently lose every later change.
func (s *File) openMeta() error {
	m := &s.meta
	m.kickc = make(chan struct{}, 1)
	m.stopped = make(chan struct{})
	f, size, err := s.openLog("meta.log", metaMagic)
	if err != nil {
		return err
	}
	m.f = f
	n, end, err := scanMeta(f, size, nil)
	if err != nil {
		return fmt.Errorf("%w (%s)", err, metaAdvice(s.dir))
	}
	if err := s.cutTail(f, "meta.log", end, size); err != nil {
		return err
	}
	m.size, m.records = end, n
	m.bytes.Store(m.size)
	return nil
}

func metaAdvice(dir string) string {
	return "the data directory " + dir + " was written by a newer Warren or is damaged: run the Warren that wrote it, or restore meta.log from a backup; see warren --help"
}

// scanMeta reads the valid records of a metadata log of size bytes, calling fn
// (if not nil) for each, and returns their number and where they end.
func scanMeta(f file, size int64, fn func(MetaRecord)) (n int, end int64, err error) {
	sc := newScanner(f, logHeaderSize, size, make([]byte, 0, 64<<10))
	for {
		rec, off, err := sc.next()
		if err == io.EOF {
			return n, sc.pos, nil
		}
		if err != nil {
			return n, 0, err
		}
		r := MetaRecord{Where: fmt.Sprintf("meta.log at offset %d", off)}
		switch rec[recHeader] {
		case recMeta:
			c, err := decodeMetaPayload(rec[recHeader+1:])
			if err != nil {
				return n, 0, fmt.Errorf("store: %s: format 1 command does not decode", r.Where)
			}
			r.Legacy = &c
		case recCommand:
			if len(rec) == recHeader+1 {
				return n, 0, fmt.Errorf("store: %s: empty command", r.Where)
			}
			r.Data = append([]byte(nil), rec[recHeader+1:]...)
		default:
			return n, 0, fmt.Errorf("store: %s: unknown record type %d", r.Where, rec[recHeader])
		}
		if fn != nil {
			fn(r)
		}
		n++
	}
}

// CommitMeta implements Store.
func (s *File) CommitMeta(rec []byte, done func(error)) {
	if len(rec) == 0 || len(rec) >= maxRecordLen {
		done(ErrInvalid)
		return
	}
	m := &s.meta
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		done(ErrClosed)
		return
	}
	m.pend = append(m.pend, metaPending{rec: rec, done: done})
	m.mu.Unlock()
	select {
	case m.kickc <- struct{}{}:
	default:
	}
}

// SetMetaSnapshot implements Store.
func (s *File) SetMetaSnapshot(fn func() [][]byte) { s.meta.snapshot.Store(&fn) }

// metaLoop is the metadata log's writer goroutine.
func (s *File) metaLoop() {
	m := &s.meta
	defer close(m.stopped)
	for range m.kickc {
		m.mu.Lock()
		batch, closed := m.pend, m.closed
		m.pend = nil
		m.mu.Unlock()
		if len(batch) > 0 {
			s.writeMeta(batch)
		}
		if closed {
			return
		}
	}
}

// writeMeta makes one batch of commits durable and runs their callbacks.
func (s *File) writeMeta(batch []metaPending) {
	m := &s.meta
	err := s.usable()
	if err == nil && m.queueDrops.Swap(false) {
		err = s.Sync()
	}
	if err == nil {
		err = s.appendMeta(batch)
	}
	for _, p := range batch {
		p.done(err)
	}
	if err == nil {
		s.compactMetaIfDue()
	}
}

func (s *File) appendMeta(batch []metaPending) error {
	m := &s.meta
	var b []byte
	for _, p := range batch {
		var start int
		b, start = beginRecord(b, recCommand)
		b = append(b, p.rec...)
		endRecord(b, start)
	}
	m.fileMu.Lock()
	defer m.fileMu.Unlock()
	if err := writeFull(m.f, b, m.size); err != nil {
		if terr := m.f.Truncate(m.size); terr != nil || !noSpace(err) {
			s.fail(err)
		}
		return err
	}
	if s.opts.Sync != SyncNever {
		if err := m.f.Sync(); err != nil {
			s.fail(err)
			return err
		}
	}
	m.size += int64(len(b))
	m.records += len(batch)
	m.commits.Add(uint64(len(batch)))
	m.writes.Add(1)
	m.bytes.Store(m.size)
	return nil
}

// compactMetaIfDue rewrites the log to the broker's snapshot once it holds
// more than twice as many records as the last rewrite did, so rewrites cost
// O(1) per commit. It runs between callbacks, when the broker's state is
// exactly what the log replays to.
func (s *File) compactMetaIfDue() {
	m := &s.meta
	fn := m.snapshot.Load()
	if fn == nil || m.records < metaCompactMin || m.records <= 2*m.lastLive {
		return
	}
	recs := (*fn)()
	b := appendLogHeader(nil, metaMagic)
	for _, r := range recs {
		var start int
		b, start = beginRecord(b, recCommand)
		b = append(b, r...)
		endRecord(b, start)
	}
	m.fileMu.Lock()
	defer m.fileMu.Unlock()
	f, err := s.replaceFile("meta.log", b)
	if err != nil {
		if isFatal(err) {
			s.fail(err)
		}
		// The commands are durable in the old log; try again after more commits.
		m.lastLive = m.records
		s.log.Warn("store: metadata log compaction failed", "err", err)
		return
	}
	m.f.Close()
	m.f, m.size, m.records, m.lastLive = f, int64(len(b)), len(recs), len(recs)
	m.bytes.Store(m.size)
	s.log.Debug("store: metadata log compacted", "records", len(recs), "bytes", len(b))
}

// closeMeta stops the writer after it has handled everything committed.
func (s *File) closeMeta() {
	m := &s.meta
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	m.closed = true
	m.mu.Unlock()
	select {
	case m.kickc <- struct{}{}:
	default:
	}
	<-m.stopped
	m.mu.Lock()
	late := m.pend
	m.pend = nil
	m.mu.Unlock()
	for _, p := range late {
		p.done(ErrClosed)
	}
}

// MetaLog implements Store.
func (s *File) MetaLog() ([]MetaRecord, error) {
	if err := s.usable(); err != nil {
		return nil, err
	}
	m := &s.meta
	m.fileMu.Lock()
	defer m.fileMu.Unlock()
	var out []MetaRecord
	if _, _, err := scanMeta(m.f, m.size, func(r MetaRecord) { out = append(out, r) }); err != nil {
		return nil, err
	}
	return out, nil
}
