package store

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/warren-mq/warren/internal/testfs"
)

// faultFS is the real file system with a switchable disk: a byte budget after
// which writes fail with ENOSPC (writing what fits first, as a full disk
// does), and errors forced on writes, syncs or file creation.
type faultFS struct {
	osFS
	mu         sync.Mutex
	budget     int64 // bytes that may still be written; negative: unlimited
	writeErr   error
	syncErr    error
	createErr  error
	writes     int
	failWrites int // with writeErr: fail only this many more writes (0: all)
	// gate, if set, holds every write until it is closed.
	gate chan struct{}
}

func newFaultFS() *faultFS { return &faultFS{budget: -1} }

func (fs *faultFS) set(f func(fs *faultFS)) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	f(fs)
}

func (fs *faultFS) OpenFile(name string, flag int, perm os.FileMode) (file, error) {
	fs.mu.Lock()
	err := fs.createErr
	fs.mu.Unlock()
	if err != nil && flag&os.O_CREATE != 0 {
		if _, serr := os.Stat(name); os.IsNotExist(serr) {
			return nil, &os.PathError{Op: "open", Path: name, Err: err}
		}
	}
	f, err := fs.osFS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &faultFile{file: f, fs: fs}, nil
}

type faultFile struct {
	file
	fs *faultFS
}

func (f *faultFile) WriteAt(p []byte, off int64) (int, error) {
	fs := f.fs
	fs.mu.Lock()
	if g := fs.gate; g != nil {
		fs.mu.Unlock()
		<-g
		fs.mu.Lock()
	}
	fs.writes++
	if fs.writeErr != nil {
		err := fs.writeErr
		if fs.failWrites > 0 {
			if fs.failWrites--; fs.failWrites == 0 {
				fs.writeErr = nil
			}
		}
		fs.mu.Unlock()
		return 0, err
	}
	if fs.budget >= 0 && int64(len(p)) > fs.budget {
		n := fs.budget
		fs.budget = 0
		fs.mu.Unlock()
		m, _ := f.file.WriteAt(p[:n], off)
		return m, syscall.ENOSPC
	}
	if fs.budget >= 0 {
		fs.budget -= int64(len(p))
	}
	fs.mu.Unlock()
	return f.file.WriteAt(p, off)
}

// Free is the budget, when there is one.
func (fs *faultFS) Free(dir string) (uint64, error) {
	fs.mu.Lock()
	budget := fs.budget
	fs.mu.Unlock()
	if budget >= 0 {
		return uint64(budget), nil
	}
	return fs.osFS.Free(dir)
}

// Truncate gives what it cuts off back to the budget, as a real disk frees
// the blocks.
func (f *faultFile) Truncate(size int64) error {
	old, err := f.file.Size()
	if err != nil {
		return err
	}
	if err := f.file.Truncate(size); err != nil {
		return err
	}
	f.fs.mu.Lock()
	if f.fs.budget >= 0 && size < old {
		f.fs.budget += old - size
	}
	f.fs.mu.Unlock()
	return nil
}

func (f *faultFile) Sync() error {
	f.fs.mu.Lock()
	err := f.fs.syncErr
	f.fs.mu.Unlock()
	if err != nil {
		return err
	}
	return f.file.Sync()
}

// logBuffer collects a store's logs so a test can look for cut tails.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuffer) logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

// reopenClean reopens dir on the real file system and checks that recovery
// found nothing to cut: failed writes were rolled back, not left as garbage.
func reopenClean(t *testing.T, dir string, opts Options) *File {
	t.Helper()
	var logs logBuffer
	opts.fs, opts.Logger = nil, logs.logger()
	s := openTest(t, dir, opts)
	if strings.Contains(logs.String(), "cutting off") {
		t.Fatalf("recovery had to cut a tail:\n%s", logs.String())
	}
	return s
}

func TestStoreFaultNoSpace(t *testing.T) {
	dir := t.TempDir()
	fs := newFaultFS()
	opts := Options{SegmentSize: 1 << 20, fs: fs}
	s := openTest(t, dir, opts)
	for id := range uint64(10) {
		mustAppend(t, s, msg("/", "q", id))
	}
	seg := filepath.Join(dir, "00000001.seg")
	fi, _ := os.Stat(seg)
	fs.set(func(fs *faultFS) { fs.budget = 100 })
	big := bytes.Repeat([]byte{'b'}, 500)
	err := appendWait(t, s, MessageRecord{VHost: "/", Queue: "q", ID: 10, Data: big}, MessageRecord{VHost: "/", Queue: "q", ID: 11, Data: big})
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("append on a full disk: %v, want ENOSPC", err)
	}
	if fi2, _ := os.Stat(seg); fi2.Size() != fi.Size() {
		t.Fatalf("segment is %d bytes after a failed append, was %d", fi2.Size(), fi.Size())
	}
	// Still usable: reads, acks, stats; the failed messages are not there.
	if _, err := s.ReadMessage("/", "q", 10); !errors.Is(err, ErrNotFound) {
		t.Fatalf("read failed append: %v", err)
	}
	if m, err := s.ReadMessage("/", "q", 3); err != nil || !bytes.Equal(m.Data, msg("/", "q", 3).Data) {
		t.Fatalf("read after ENOSPC: %v", err)
	}
	if err := s.Ack("/", "q", []uint64{0}); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.LiveMessages != 9 {
		t.Fatalf("live %d, want 9", st.LiveMessages)
	}
	// Space comes back: the next append works, the pending ack is written.
	fs.set(func(fs *faultFS) { fs.budget = -1 })
	mustAppend(t, s, msg("/", "q", 12))
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	want := []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 12}
	if got := ids(recoverAll(t, s), "/", "q"); !slices.Equal(got, want) {
		t.Fatalf("recovered %v, want %v", got, want)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("close after a passing ENOSPC: %v", err)
	}
	s = reopenClean(t, dir, opts)
	rs := recoverAll(t, s)
	if got := ids(rs, "/", "q"); !slices.Equal(got, want) {
		t.Fatalf("after reopen %v, want %v", got, want)
	}
	checkRecovered(t, rs)
}

func TestStoreFaultNoSpaceNewSegment(t *testing.T) {
	dir := t.TempDir()
	fs := newFaultFS()
	opts := Options{SegmentSize: 4096, fs: fs}
	s := openTest(t, dir, opts)
	id := uint64(0)
	for s.Stats().DiskBytes < 3500 {
		mustAppend(t, s, msg("/", "q", id))
		id++
	}
	fs.set(func(fs *faultFS) { fs.createErr = syscall.ENOSPC })
	var batch []MessageRecord
	for i := range uint64(20) {
		batch = append(batch, msg("/", "q", id+i))
	}
	if err := appendWait(t, s, batch...); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("append needing a new segment on a full disk: %v", err)
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "*.seg")); len(files) != 1 {
		t.Fatalf("segments after a failed rollover: %v", files)
	}
	fs.set(func(fs *faultFS) { fs.createErr = nil })
	mustAppend(t, s, batch...)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = reopenClean(t, dir, opts)
	if got := ids(recoverAll(t, s), "/", "q"); len(got) != int(id)+20 {
		t.Fatalf("recovered %d messages, want %d", len(got), id+20)
	}
}

// Without a space reserve, acks that meet a full disk wait in memory and are
// written once space returns; the store stays usable.
func TestStoreFaultAckNoSpace(t *testing.T) {
	dir := t.TempDir()
	fs := newFaultFS()
	opts := Options{fs: fs, reserveSize: -1}
	s := openTest(t, dir, opts)
	for id := range uint64(10) {
		mustAppend(t, s, msg("/", "q", id))
	}
	fs.set(func(fs *faultFS) { fs.budget = 5 })
	if err := s.Ack("/", "q", []uint64{0, 1, 2, 3, 4}); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("sync with acks on a full disk: %v", err)
	}
	if err := s.MarkDelivered("/", "q", []uint64{5}); err != nil {
		t.Fatalf("store failed after ENOSPC on the ack log: %v", err)
	}
	fs.set(func(fs *faultFS) { fs.budget = -1 })
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = reopenClean(t, dir, opts)
	rs := recoverAll(t, s)
	if got := ids(rs, "/", "q"); !slices.Equal(got, []uint64{5, 6, 7, 8, 9}) || !rs[0].delivered {
		t.Fatalf("after reopen: %v (first delivered %v)", got, rs[0].delivered)
	}
}

func TestStoreFaultMetaNoSpace(t *testing.T) {
	dir := t.TempDir()
	fs := newFaultFS()
	opts := Options{fs: fs}
	s := openTest(t, dir, opts)
	recs := sampleMeta()
	mustCommit(t, s, recs[0])
	fs.set(func(fs *faultFS) { fs.budget = 3 })
	if err := commitMeta(s, recs[1]); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("meta commit on a full disk: %v", err)
	}
	fs.set(func(fs *faultFS) { fs.budget = -1 })
	mustCommit(t, s, recs[2])
	want := [][]byte{recs[0], recs[2]}
	if got := metaData(t, s); !equalRecs(got, want) {
		t.Fatalf("meta log %q", got)
	}
	s.Close()
	s = reopenClean(t, dir, opts)
	if got := metaData(t, s); !equalRecs(got, want) {
		t.Fatalf("meta log after reopen %q", got)
	}
}

// checkSticky asserts that every call now fails with err.
func checkSticky(t *testing.T, s *File, want error) {
	t.Helper()
	if err := appendWait(t, s, msg("/", "q", 99)); !errors.Is(err, want) {
		t.Errorf("append: %v", err)
	}
	calls := map[string]error{
		"ack":       s.Ack("/", "q", []uint64{1}),
		"delivered": s.MarkDelivered("/", "q", []uint64{1}),
		"delete":    s.DeleteQueue("/", "x"),
		"sync":      s.Sync(),
		"meta":      commitMeta(s, []byte("v")),
		"recover":   s.Recover(func(MessageRecord, bool) (bool, error) { return false, nil }, nil),
	}
	_, calls["read"] = s.ReadMessage("/", "q", 1)
	_, calls["metalog"] = s.MetaLog()
	for name, err := range calls {
		if !errors.Is(err, want) {
			t.Errorf("%s: %v, want %v", name, err, want)
		}
	}
	if err := s.Close(); !errors.Is(err, want) {
		t.Errorf("close: %v", err)
	}
}

func TestStoreFaultWriteErrorSticks(t *testing.T) {
	dir := t.TempDir()
	fs := newFaultFS()
	opts := Options{fs: fs}
	s := openTest(t, dir, opts)
	for id := range uint64(5) {
		mustAppend(t, s, msg("/", "q", id))
	}
	fs.set(func(fs *faultFS) { fs.writeErr, fs.failWrites = syscall.EIO, 1 })
	if err := appendWait(t, s, msg("/", "q", 5)); !errors.Is(err, syscall.EIO) {
		t.Fatalf("append on a failing disk: %v", err)
	}
	// The disk works again, but the store does not trust itself until reopened.
	checkSticky(t, s, syscall.EIO)
	s = reopenClean(t, dir, opts)
	if got := ids(recoverAll(t, s), "/", "q"); !slices.Equal(got, []uint64{0, 1, 2, 3, 4}) {
		t.Fatalf("after reopen: %v", got)
	}
}

func TestStoreFaultSyncErrorSticks(t *testing.T) {
	dir := t.TempDir()
	fs := newFaultFS()
	opts := Options{fs: fs}
	s := openTest(t, dir, opts)
	for id := range uint64(5) {
		mustAppend(t, s, msg("/", "q", id))
	}
	fs.set(func(fs *faultFS) { fs.syncErr = syscall.EIO })
	if err := appendWait(t, s, msg("/", "q", 5)); !errors.Is(err, syscall.EIO) {
		t.Fatalf("append with failing fsync: %v", err)
	}
	fs.set(func(fs *faultFS) { fs.syncErr = nil })
	checkSticky(t, s, syscall.EIO)
	s = openTest(t, dir, Options{})
	// #5 was written but its sync failed: it may or may not be there.
	if got := ids(recoverAll(t, s), "/", "q"); len(got) < 5 || !slices.Equal(got[:5], []uint64{0, 1, 2, 3, 4}) {
		t.Fatalf("after reopen: %v", got)
	}
}

// Rollback itself failing (the truncate after a full disk) must stick too.
func TestStoreFaultRollbackFailureSticks(t *testing.T) {
	dir := t.TempDir()
	fs := newFaultFS()
	s := openTest(t, dir, Options{fs: fs})
	mustAppend(t, s, msg("/", "q", 0))
	s.mu.Lock()
	s.head.f = &truncateFails{s.head.f.(*faultFile)}
	s.mu.Unlock()
	fs.set(func(fs *faultFS) { fs.budget = 10 })
	if err := appendWait(t, s, msg("/", "q", 1)); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("append: %v", err)
	}
	fs.set(func(fs *faultFS) { fs.budget = -1 })
	checkSticky(t, s, syscall.ENOSPC)
}

type truncateFails struct{ *faultFile }

func (truncateFails) Truncate(int64) error { return syscall.EIO }

// Compaction on a full disk gives up without failing the store, keeps the
// segment and its records, and tries again once writes succeed.
func TestStoreFaultCompactionNoSpace(t *testing.T) {
	dir := t.TempDir()
	fs := newFaultFS()
	opts := Options{SegmentSize: 4096, fs: fs, reserveSize: -1} // so the acks cannot be written either
	s := openTest(t, dir, opts)
	var acked []uint64
	for id := range uint64(300) {
		mustAppend(t, s, msg("/", "q", id))
		if id%10 != 0 {
			acked = append(acked, id)
		}
	}
	fs.set(func(fs *faultFS) { fs.budget = 0 })
	s.Ack("/", "q", acked)
	if err := s.settle(); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("settle with unwritable acks: %v", err)
	}
	// The acks wait; compaction runs, fails to write its copies, gives up.
	mustFail := appendWait(t, s, msg("/", "q", 999))
	if !errors.Is(mustFail, syscall.ENOSPC) {
		t.Fatalf("append on a full disk: %v", mustFail)
	}
	if st := s.Stats(); st.Compactions != 0 || st.LiveMessages != 30 {
		t.Fatalf("compacted on a full disk? %+v", st)
	}
	for id := uint64(0); id < 300; id += 10 {
		if _, err := s.ReadMessage("/", "q", id); err != nil {
			t.Fatalf("read #%d after failed compaction: %v", id, err)
		}
	}
	fs.set(func(fs *faultFS) { fs.budget = -1 })
	mustAppend(t, s, msg("/", "q", 1000))
	if err := s.settle(); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Compactions == 0 {
		t.Fatalf("no compaction once space came back: %+v", st)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = reopenClean(t, dir, opts)
	rs := recoverAll(t, s)
	if got := ids(rs, "/", "q"); len(got) != 31 || got[30] != 1000 {
		t.Fatalf("after reopen: %v", got)
	}
	checkRecovered(t, rs)
}

// The space reserve makes room for acks on a full disk: they are written,
// new messages are refused until space returns, and then the reserve is
// filled again.
func TestStoreFaultAckReserve(t *testing.T) {
	dir := t.TempDir()
	fs := newFaultFS()
	opts := Options{fs: fs, reserveSize: 64 << 10}
	s := openTest(t, dir, opts)
	reserve := filepath.Join(dir, reserveName)
	if fi, err := os.Stat(reserve); err != nil || fi.Size() != 64<<10 {
		t.Fatalf("reserve after open: %v, %v", fi, err)
	}
	var watched atomic.Int64
	s.WatchWrites(1<<30, func() { watched.Add(1) })
	for id := range uint64(10) {
		mustAppend(t, s, msg("/", "q", id))
	}
	fs.set(func(fs *faultFS) { fs.budget = 0 })
	if err := s.MarkDelivered("/", "q", []uint64{0, 1, 2, 3, 4, 5}); err != nil {
		t.Fatal(err)
	}
	if err := s.Ack("/", "q", []uint64{0, 1, 2, 3, 4}); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(); err != nil {
		t.Fatalf("sync with acks on a full disk, with a reserve: %v", err)
	}
	if fi, _ := os.Stat(reserve); fi.Size() != 0 {
		t.Fatalf("reserve is %d bytes after acks met a full disk, want released", fi.Size())
	}
	// The freed space is for acks: a message is refused (the publisher is
	// nacked), even though it would fit.
	if err := appendWait(t, s, msg("/", "q", 10)); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("append while the reserve is released: %v, want ENOSPC", err)
	}
	if watched.Load() == 0 {
		t.Fatal("WatchWrites' fn not called when a write met a full disk")
	}
	fs.set(func(fs *faultFS) { fs.budget = -1 })
	mustAppend(t, s, msg("/", "q", 11))
	if fi, _ := os.Stat(reserve); fi.Size() != 64<<10 {
		t.Fatalf("reserve is %d bytes once space came back", fi.Size())
	}
	// A crash now (no Close): the acks are on disk.
	s2 := crashCopy(t, dir, opts)
	rs := recoverAll(t, s2)
	if got := ids(rs, "/", "q"); !slices.Equal(got, []uint64{5, 6, 7, 8, 9, 11}) || !rs[0].delivered {
		t.Fatalf("after a crash: %v (first delivered %v)", got, rs[0].delivered)
	}
}

// Delivery marks are written before acks: when a full disk keeps the acks
// out, the messages that come back after a crash come back marked delivered
// (so redelivered=true), not as silent duplicates.
func TestStoreFaultMarksBeforeAcks(t *testing.T) {
	dir := t.TempDir()
	fs := newFaultFS()
	opts := Options{fs: fs, reserveSize: -1}
	s := openTest(t, dir, opts)
	for id := range uint64(10) {
		mustAppend(t, s, msg("/", "q", id))
	}
	var recnos []uint64
	s.mu.Lock()
	for id := range uint64(5) {
		recnos = append(recnos, s.queues[qkey{"/", "q"}].slots[id].recno)
	}
	s.mu.Unlock()
	// Room for the marks and not one byte more.
	fs.set(func(fs *faultFS) { fs.budget = int64(len(appendRecnoRecords(nil, recDelivered, recnos))) })
	s.mu.Lock() // both in one round
	for _, id := range []uint64{0, 1, 2, 3, 4} {
		sl := s.queues[qkey{"/", "q"}].slots[id]
		sl.flags |= flagDelivered
		s.queues[qkey{"/", "q"}].slots[id] = sl
	}
	s.pendDeliv = append(s.pendDeliv, recnos...)
	s.mu.Unlock()
	if err := s.Ack("/", "q", []uint64{0, 1, 2, 3, 4}); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("sync: %v, want ENOSPC for the acks", err)
	}
	s2 := crashCopy(t, dir, opts)
	rs := recoverAll(t, s2)
	if got := ids(rs, "/", "q"); !slices.Equal(got, []uint64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}) {
		t.Fatalf("after a crash: %v", got)
	}
	for _, r := range rs[:5] {
		if !r.delivered {
			t.Fatalf("#%d came back after its ack was lost without its delivery mark", r.rec.ID)
		}
	}
}

// crashCopy opens a copy of dir as it is now, as after a kill -9 of the
// process that has it open (what it wrote is in the page cache, and so seen).
func crashCopy(t *testing.T, dir string, opts Options) *File {
	t.Helper()
	cp := filepath.Join(t.TempDir(), "copy")
	if err := testfs.CopyLive(cp, dir); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(cp, "LOCK"))
	opts.fs = nil
	return openTest(t, cp, opts)
}

func TestStoreFreeDisk(t *testing.T) {
	s := openTest(t, t.TempDir(), Options{})
	free, err := s.FreeDisk()
	if err != nil || free == 0 {
		t.Fatalf("free disk %d, %v", free, err)
	}
}
