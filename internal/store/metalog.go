package store

import (
	"io"
	"slices"
	"sync"
	"sync/atomic"
)

// metaFile is the metadata command log. Metadata changes are rare and must be
// durable before the broker answers, so appends write and sync inline under
// their own mutex instead of going through the syncer.
type metaFile struct {
	mu    sync.Mutex
	f     file
	size  int64
	cmds  []MetaCommand // what the file holds, in order
	state metaState
	bytes atomic.Int64 // size, for Stats without the mutex
}

// openMeta reads meta.log, cutting off an invalid tail, and compacts it if due.
func (s *File) openMeta() error {
	m := &s.meta
	f, size, err := s.openLog("meta.log", metaMagic)
	if err != nil {
		return err
	}
	m.f = f
	sc := newScanner(f, logHeaderSize, size, nil)
	for {
		rec, off, err := sc.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		var c MetaCommand
		if rec[recHeader] == recMeta {
			c, err = decodeMetaPayload(rec[recHeader+1:])
		} else {
			err = errCorrupt
		}
		if err != nil {
			sc.pos = off
			break
		}
		m.cmds = append(m.cmds, c)
		m.state.apply(c)
	}
	if err := s.cutTail(f, "meta.log", sc.pos, size); err != nil {
		return err
	}
	m.size = sc.pos
	m.bytes.Store(m.size)
	if m.state.compactDue(len(m.cmds)) {
		return s.compactMetaLocked()
	}
	return nil
}

// AppendMeta implements Store: the command is written and fdatasynced (unless
// SyncNever) before it returns. A full disk fails this call only.
func (s *File) AppendMeta(cmd MetaCommand) error {
	m := &s.meta
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := s.usable(); err != nil {
		return err
	}
	b, start := beginRecord(nil, recMeta)
	b = appendMetaPayload(b, cmd)
	endRecord(b, start)
	if len(b)-recHeader > maxRecordLen {
		return ErrInvalid
	}
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
	m.bytes.Store(m.size)
	m.cmds = append(m.cmds, cloneMeta(cmd))
	m.state.apply(cmd)
	if m.state.compactDue(len(m.cmds)) {
		if err := s.compactMetaLocked(); err != nil {
			// The command itself is durable in the old log.
			s.log.Warn("store: metadata log compaction failed", "err", err)
		}
	}
	return nil
}

// compactMetaLocked rewrites the metadata log to one command per live object.
func (s *File) compactMetaLocked() error {
	m := &s.meta
	cmds := m.state.commands()
	b := appendLogHeader(nil, metaMagic)
	for _, c := range cmds {
		var start int
		b, start = beginRecord(b, recMeta)
		b = appendMetaPayload(b, c)
		endRecord(b, start)
	}
	f, err := s.replaceFile("meta.log", b)
	if err != nil {
		if isFatal(err) {
			s.fail(err)
		}
		return err
	}
	m.f.Close()
	m.f, m.size, m.cmds = f, int64(len(b)), cmds
	m.bytes.Store(m.size)
	s.log.Debug("store: metadata log compacted", "commands", len(cmds), "bytes", len(b))
	return nil
}

// MetaLog implements Store.
func (s *File) MetaLog() ([]MetaCommand, error) {
	m := &s.meta
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := s.usable(); err != nil {
		return nil, err
	}
	return slices.Clone(m.cmds), nil
}
