package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// Disk space: a full disk must not turn acknowledged messages into
// duplicates. The store keeps a reserve file of zeros; when an ack log write
// meets a full disk the reserve is released (truncated), so that the acks
// fit, and new messages are refused until it can be filled again (segments
// deleted as their messages are acked give the space back). See doc.go.

// reserveName is the reserve file in the store's directory.
const reserveName = "reserve"

// defaultReserve holds about a million acks (a run of acked record numbers
// costs a byte or two each).
const defaultReserve = 4 << 20

// warnEvery is how often the syncer may repeat one warning: a full disk
// fails every round, hundreds per second.
const warnEvery = 10 * time.Second

// errReserve is the error appends get while the reserve is short: the
// disk is full and the space left is kept for acks.
var errReserve = fmt.Errorf("store: disk full, the space left is kept for acks: %w", syscall.ENOSPC)

// zeros fills the reserve.
var zeros = make([]byte, 256<<10)

// throttle lets a repeated warning through once per warnEvery and counts
// what it held back. The syncer's own: no lock.
type throttle struct {
	last time.Time
	held int
}

// warn logs msg unless it was logged less than warnEvery ago.
func (s *File) warn(t *throttle, msg string, attrs ...any) {
	now := time.Now()
	if !t.last.IsZero() && now.Sub(t.last) < warnEvery {
		t.held++
		return
	}
	if t.held > 0 {
		attrs = append(attrs, "repeated", t.held, "since", t.last.Format(time.RFC3339))
	}
	t.last, t.held = now, 0
	s.log.Warn(msg, attrs...)
}

// writeWatch is what WatchWrites registered.
type writeWatch struct {
	every int64
	fn    func()
}

// WatchWrites makes the syncer call fn after every `every` bytes it writes
// and whenever a write meets a full disk, so that a caller watching free
// space (the broker's disk alarm) looks again when it matters rather than on
// a clock: a fast writer can fill a small disk between two clock ticks. fn
// runs on the syncer's goroutine, between writes: it must be quick and must
// not call the store.
func (s *File) WatchWrites(every int64, fn func()) {
	s.watch.Store(&writeWatch{every: max(every, 1), fn: fn})
}

// wrote counts n bytes written; full says a write met a full disk.
func (s *File) wrote(n int64, full bool) {
	ww := s.watch.Load()
	if ww == nil {
		return
	}
	s.w.written += n
	if full || s.w.written >= ww.every {
		s.w.written = 0
		ww.fn()
	}
}

// openReserve opens the reserve and fills it up, if the disk has room; a
// store that cannot have one goes on without it.
func (s *File) openReserve() {
	if s.opts.reserveSize < 0 {
		return
	}
	f, err := s.fs.OpenFile(filepath.Join(s.dir, reserveName), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		s.log.Warn("store: cannot open the space reserve, going on without one", "err", err)
		return
	}
	size, err := f.Size()
	if err != nil {
		f.Close()
		s.log.Warn("store: cannot open the space reserve, going on without one", "err", err)
		return
	}
	s.w.reserveF, s.w.reserveSize = f, size
	if !s.growReserve() {
		s.w.reserveUsed = true // filled once there is clearly room (see growReserve)
		s.log.Warn("store: disk too full for the space reserve: new messages are refused until there is room for it", "reserve", s.w.reserveSize, "want", s.opts.reserveSize)
	}
}

// growReserve fills the reserve up to its size; false if the disk has no
// room for it. The reserve is never synced: after a crash Open fills it again.
func (s *File) growReserve() bool {
	w := &s.w
	if w.reserveF == nil || w.reserveSize >= s.opts.reserveSize {
		return true
	}
	if w.reserveUsed {
		// Released for acks: take the space back only once there is clearly
		// room, not a few bytes at a time from the acks that need them.
		if free, err := s.fs.Free(s.dir); err != nil || free < uint64(2*(s.opts.reserveSize-w.reserveSize)) {
			return false
		}
	}
	for w.reserveSize < s.opts.reserveSize {
		n := min(int64(len(zeros)), s.opts.reserveSize-w.reserveSize)
		m, err := w.reserveF.WriteAt(zeros[:n], w.reserveSize)
		w.reserveSize += int64(m)
		if err == nil && int64(m) < n {
			err = syscall.ENOSPC
		}
		if err != nil && !noSpace(err) {
			// Not a full disk: do without a reserve rather than refuse
			// every message because of it.
			s.log.Warn("store: cannot fill the space reserve, going on without one", "err", err)
			w.reserveF.Close()
			w.reserveF = nil
			return true
		}
		if err != nil {
			return false
		}
	}
	if w.reserveUsed {
		w.reserveUsed = false
		s.log.Info("store: disk space is back, the space reserve is full again and new messages are taken")
	}
	return true
}

// releaseReserve frees the reserve so that acks can be written to a full
// disk; false if there was nothing to free.
func (s *File) releaseReserve() bool {
	w := &s.w
	if w.reserveF == nil || w.reserveSize == 0 {
		return false
	}
	if err := w.reserveF.Truncate(0); err != nil {
		s.warn(&w.reserveLog, "store: cannot release the space reserve", "err", err)
		return false
	}
	w.reserveSize, w.reserveUsed = 0, true
	s.log.Warn("store: disk full: released the space reserve so that acks can be written; new messages are refused until space returns", "reserve", s.opts.reserveSize)
	return true
}

// writeAckLog appends b to the ack log. On a full disk it releases the
// reserve and tries once more; a write that still fails is cut back off.
func (s *File) writeAckLog(b []byte) error {
	w := &s.w
	err := writeFull(w.ackF, b, w.ackSize)
	if err != nil && noSpace(err) {
		if terr := w.ackF.Truncate(w.ackSize); terr != nil {
			return fatalError{terr}
		}
		if s.releaseReserve() {
			err = writeFull(w.ackF, b, w.ackSize)
		}
	}
	if err != nil {
		if terr := w.ackF.Truncate(w.ackSize); terr != nil {
			return errors.Join(err, fatalError{terr})
		}
		s.wrote(0, noSpace(err))
		return err
	}
	w.ackSize += int64(len(b))
	w.ackDirty = true
	s.ackBytes.Store(w.ackSize)
	s.wrote(int64(len(b)), false)
	return nil
}
