package streamlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/warren-mq/warren/internal/recordbatch"
)

// File headers (see the package doc): magic | version u16 | reserved u16 |
// base offset u64 | crc32c u32 of the 16 bytes before it, little endian.
const (
	fileHeaderSize = 20
	formatVersion  = 1
	indexEntrySize = 16
	// indexInterval is how many segment bytes may pass between two index
	// entries: a lookup reads at most about this much beyond its target.
	indexInterval = 4096
	segSuffix     = ".seg"
	idxSuffix     = ".idx"
)

var (
	segMagic = [4]byte{'W', 'S', 'L', 'G'}
	idxMagic = [4]byte{'W', 'S', 'I', 'X'}
	// castagnoli is CRC-32C, for the log's own file headers and records
	// (batches' CRCs are recordbatch's).
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
)

// indexEntry locates one batch: its base offset relative to the segment's,
// its file position, and the largest batch maxTimestamp in the segment up
// to and including it (a running maximum, so entries sort by it too).
type indexEntry struct {
	rel   uint32
	pos   uint32
	maxTs int64
}

func appendIndexEntry(b []byte, e indexEntry) []byte {
	b = binary.LittleEndian.AppendUint32(b, e.rel)
	b = binary.LittleEndian.AppendUint32(b, e.pos)
	return binary.LittleEndian.AppendUint64(b, uint64(e.maxTs))
}

func decodeIndexEntry(b []byte) indexEntry {
	return indexEntry{
		rel:   binary.LittleEndian.Uint32(b),
		pos:   binary.LittleEndian.Uint32(b[4:]),
		maxTs: int64(binary.LittleEndian.Uint64(b[8:])),
	}
}

func appendFileHeader(b []byte, magic [4]byte, base int64) []byte {
	start := len(b)
	b = append(b, magic[:]...)
	b = binary.LittleEndian.AppendUint16(b, formatVersion)
	b = binary.LittleEndian.AppendUint16(b, 0)
	b = binary.LittleEndian.AppendUint64(b, uint64(base))
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b[start:], castagnoli))
}

func parseFileHeader(h []byte, magic [4]byte, base int64) error {
	if len(h) < fileHeaderSize || [4]byte(h[:4]) != magic {
		return fmt.Errorf("streamlog: not a %s file", magic[:])
	}
	if crc32.Checksum(h[:16], castagnoli) != binary.LittleEndian.Uint32(h[16:]) {
		return fmt.Errorf("streamlog: %s header checksum mismatch", magic[:])
	}
	if v := binary.LittleEndian.Uint16(h[4:]); v != formatVersion {
		return fmt.Errorf("streamlog: %s format version %d, want %d", magic[:], v, formatVersion)
	}
	if got := int64(binary.LittleEndian.Uint64(h[8:])); got != base {
		return fmt.Errorf("streamlog: %s header names base offset %d, file name %d", magic[:], got, base)
	}
	return nil
}

func segName(dir string, base int64, suffix string) string {
	return filepath.Join(dir, fmt.Sprintf("%020d%s", base, suffix))
}

// segment is one segment file and its index file. Its identity and files
// are fixed; what a reader may use of it (size, entries) comes from a
// segInfo in the published view. A segment is reference counted: the view
// holds one reference while the segment is part of the log, each open Chunk
// holds one; the files are closed (and removed, if the segment was dropped)
// when the last goes.
type segment struct {
	dir     string
	base    int64
	path    string
	idxPath string
	refs    atomic.Int64

	mu   sync.Mutex // guards opening the files
	f    *os.File   // the segment; read-write for the active one
	idxF *os.File

	// remove is set before the view's reference is dropped when the
	// segment leaves the log (retention, Delete); keep is set when a
	// compacted copy took its file name, so the path is not the old
	// segment's any more.
	remove atomic.Bool
	keep   atomic.Bool
}

func newSegment(dir string, base int64) *segment {
	s := &segment{dir: dir, base: base, path: segName(dir, base, segSuffix), idxPath: segName(dir, base, idxSuffix)}
	s.refs.Store(1)
	return s
}

// acquire takes a reference unless the segment is already gone.
func (s *segment) acquire() bool {
	for {
		n := s.refs.Load()
		if n <= 0 {
			return false
		}
		if s.refs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// release drops a reference; the last one closes the files and removes
// them if the segment left the log.
func (s *segment) release() {
	if s.refs.Add(-1) != 0 {
		return
	}
	s.mu.Lock()
	if s.f != nil {
		s.f.Close()
	}
	if s.idxF != nil {
		s.idxF.Close()
	}
	s.f, s.idxF = nil, nil
	s.mu.Unlock()
	if s.remove.Load() && !s.keep.Load() {
		os.Remove(s.path)
		os.Remove(s.idxPath)
		os.Remove(segName(s.dir, s.base, txnSuffix))
		os.Remove(segName(s.dir, s.base, snapSuffix))
	}
}

// files returns the open segment and index files, opening them read-only
// the first time. The caller holds a reference.
func (s *segment) files() (*os.File, *os.File, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		f, err := os.Open(s.path)
		if err != nil {
			return nil, nil, err
		}
		s.f = f
	}
	if s.idxF == nil {
		f, err := os.Open(s.idxPath)
		if err != nil {
			return nil, nil, err
		}
		s.idxF = f
	}
	return s.f, s.idxF, nil
}

// segInfo is what readers know of a segment: immutable once published.
// Sealed segments have their index on disk (entries nil, nEntries from the
// file size); the active one has it in memory too.
type segInfo struct {
	seg      *segment
	size     int64 // bytes of valid batches, header included
	next     int64 // offset after the segment's last batch
	maxTs    int64 // largest batch maxTimestamp; -1 if none
	entries  []indexEntry
	nEntries int
}

func (si *segInfo) empty() bool { return si.size <= fileHeaderSize }

// entry returns index entry i, from memory or the index file.
func (si *segInfo) entry(i int, idxF *os.File) (indexEntry, error) {
	if si.entries != nil {
		return si.entries[i], nil
	}
	var b [indexEntrySize]byte
	if _, err := idxF.ReadAt(b[:], fileHeaderSize+int64(i)*indexEntrySize); err != nil {
		return indexEntry{}, err
	}
	return decodeIndexEntry(b[:]), nil
}

// search returns the largest i with pred(entry i) false for all j <= i,
// assuming pred is monotonic: the last entry before pred turns true; -1 if
// pred holds for entry 0.
func (si *segInfo) search(idxF *os.File, pred func(indexEntry) bool) (int, error) {
	var ioErr error
	i := sort.Search(si.nEntries, func(i int) bool {
		if ioErr != nil {
			return true
		}
		e, err := si.entry(i, idxF)
		if err != nil {
			ioErr = err
			return true
		}
		return pred(e)
	})
	return i - 1, ioErr
}

// readHeaderAt reads the batch header at pos of f.
func readHeaderAt(f io.ReaderAt, pos int64, buf *[recordbatch.HeaderSize]byte) (recordbatch.BatchHeader, error) {
	if _, err := f.ReadAt(buf[:], pos); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return recordbatch.BatchHeader{}, err
	}
	return peekHeader(buf[:])
}
