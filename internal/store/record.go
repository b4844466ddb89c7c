package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// Record framing: length u32 | crc u32 | type u8 | payload (see doc.go).
const (
	recHeader     = 8       // length and crc; the type byte counts in length
	maxRecordLen  = 1 << 30 // largest length field accepted
	segHeaderSize = 28
	logHeaderSize = 8
	formatVersion = 1
)

// Record types. Part of the on-disk format: never renumber.
const (
	recMessage    byte = 1
	recCheckpoint byte = 2
	recAcked      byte = 3
	recDelivered  byte = 4
	recMeta       byte = 5 // format 1 metadata command, read only
	recCommand    byte = 6 // the broker's encoded command, opaque to the store
)

// Message record flags.
const (
	flagTransient byte = 1 << 0
	flagDelivered byte = 1 << 1
	flagMoved     byte = 1 << 2
	flagsKnown         = flagTransient | flagDelivered | flagMoved
)

var (
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
	// errCorrupt marks an invalid record: recovery cuts the file there.
	errCorrupt = errors.New("store: corrupt record")
	segMagic   = [4]byte{'W', 'S', 'E', 'G'}
	ackMagic   = [4]byte{'W', 'A', 'C', 'K'}
	metaMagic  = [4]byte{'W', 'M', 'E', 'T'}
)

// beginRecord reserves a record header and the type byte; the caller appends
// the payload and calls endRecord with the returned start.
func beginRecord(b []byte, typ byte) ([]byte, int) {
	start := len(b)
	return append(b, 0, 0, 0, 0, 0, 0, 0, 0, typ), start
}

// endRecord fills in the length and crc of the record begun at start.
func endRecord(b []byte, start int) {
	binary.LittleEndian.PutUint32(b[start:], uint32(len(b)-start-recHeader))
	crc := crc32.Update(crc32.Checksum(b[start:start+4], castagnoli), castagnoli, b[start+recHeader:])
	binary.LittleEndian.PutUint32(b[start+4:], crc)
}

// checkRecord verifies a whole record (header included) and returns its type
// and payload.
func checkRecord(r []byte) (typ byte, payload []byte, err error) {
	if len(r) < recHeader+1 || int(binary.LittleEndian.Uint32(r)) != len(r)-recHeader {
		return 0, nil, errCorrupt
	}
	crc := crc32.Update(crc32.Checksum(r[:4], castagnoli), castagnoli, r[recHeader:])
	if crc != binary.LittleEndian.Uint32(r[4:]) {
		return 0, nil, errCorrupt
	}
	return r[recHeader], r[recHeader+1:], nil
}

// msgHeader is a decoded message record without its data.
type msgHeader struct {
	recno uint64
	id    uint64
	flags byte
	vhost []byte
	queue []byte
}

// msgRecordSize is the size of a message record on disk.
func msgRecordSize(vhost, queue string, data int) int {
	return recHeader + 1 + 8 + 8 + 1 + 1 + len(vhost) + 1 + len(queue) + data
}

// appendMessageRecord appends a whole message record.
func appendMessageRecord(b []byte, recno, id uint64, flags byte, vhost, queue string, data []byte) []byte {
	b, start := beginRecord(b, recMessage)
	b = binary.LittleEndian.AppendUint64(b, recno)
	b = binary.LittleEndian.AppendUint64(b, id)
	b = append(b, flags, byte(len(vhost)))
	b = append(b, vhost...)
	b = append(b, byte(len(queue)))
	b = append(b, queue...)
	b = append(b, data...)
	endRecord(b, start)
	return b
}

// decodeMessage decodes a message record payload; data aliases p.
func decodeMessage(p []byte) (h msgHeader, data []byte, err error) {
	if len(p) < 19 {
		return h, nil, errCorrupt
	}
	h.recno = binary.LittleEndian.Uint64(p)
	h.id = binary.LittleEndian.Uint64(p[8:])
	h.flags = p[16]
	if h.flags&^flagsKnown != 0 {
		return h, nil, errCorrupt
	}
	p = p[17:]
	n := int(p[0])
	if len(p) < 1+n+1 {
		return h, nil, errCorrupt
	}
	h.vhost, p = p[1:1+n], p[1+n:]
	n = int(p[0])
	if len(p) < 1+n {
		return h, nil, errCorrupt
	}
	h.queue, data = p[1:1+n], p[1+n:]
	return h, data, nil
}

// appendRecnoRecords appends acked or delivered records listing recnos, which
// must be sorted and distinct, at most 64 Ki per record to keep records small.
func appendRecnoRecords(b []byte, typ byte, recnos []uint64) []byte {
	for len(recnos) > 0 {
		n := min(len(recnos), 1<<16)
		var start int
		b, start = beginRecord(b, typ)
		b = binary.AppendUvarint(b, uint64(n))
		prev := uint64(0)
		for i, r := range recnos[:n] {
			if i == 0 {
				b = binary.AppendUvarint(b, r)
			} else {
				b = binary.AppendUvarint(b, r-prev)
			}
			prev = r
		}
		endRecord(b, start)
		recnos = recnos[n:]
	}
	return b
}

// decodeRecnos calls fn for each recno of an acked or delivered payload. It
// checks the whole payload before calling fn, so a corrupt record has no effect.
func decodeRecnos(p []byte, fn func(uint64)) error {
	for pass := 0; pass < 2; pass++ {
		q := p
		n, k := binary.Uvarint(q)
		if k <= 0 || n == 0 || n > uint64(len(q)) {
			return errCorrupt
		}
		q = q[k:]
		var prev uint64
		for i := uint64(0); i < n; i++ {
			v, k := binary.Uvarint(q)
			if k <= 0 || (i > 0 && (v == 0 || prev+v < prev)) {
				return errCorrupt
			}
			q = q[k:]
			if i > 0 {
				v += prev
			}
			prev = v
			if pass == 1 {
				fn(v)
			}
		}
		if len(q) != 0 {
			return errCorrupt
		}
	}
	return nil
}

// appendSegHeader appends a segment file header.
func appendSegHeader(b []byte, num uint32, baseRecno uint64) []byte {
	start := len(b)
	b = append(b, segMagic[:]...)
	b = binary.LittleEndian.AppendUint16(b, formatVersion)
	b = binary.LittleEndian.AppendUint16(b, 0)
	b = binary.LittleEndian.AppendUint32(b, num)
	b = binary.LittleEndian.AppendUint32(b, 0)
	b = binary.LittleEndian.AppendUint64(b, baseRecno)
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b[start:], castagnoli))
}

// parseSegHeader checks a segment header and returns its number and base recno.
func parseSegHeader(h []byte) (num uint32, base uint64, err error) {
	if len(h) < segHeaderSize || [4]byte(h[:4]) != segMagic {
		return 0, 0, errors.New("store: not a segment file")
	}
	if crc32.Checksum(h[:segHeaderSize-4], castagnoli) != binary.LittleEndian.Uint32(h[segHeaderSize-4:]) {
		return 0, 0, errors.New("store: segment header checksum mismatch")
	}
	if v := binary.LittleEndian.Uint16(h[4:]); v != formatVersion {
		return 0, 0, fmt.Errorf("store: segment format version %d, want %d", v, formatVersion)
	}
	return binary.LittleEndian.Uint32(h[8:]), binary.LittleEndian.Uint64(h[16:]), nil
}

// appendLogHeader appends the header of the ack or metadata log.
func appendLogHeader(b []byte, magic [4]byte) []byte {
	b = append(b, magic[:]...)
	return binary.LittleEndian.AppendUint32(b, formatVersion)
}

func parseLogHeader(h []byte, magic [4]byte) error {
	if len(h) < logHeaderSize || [4]byte(h[:4]) != magic {
		return fmt.Errorf("store: not a %s file", magic[:])
	}
	if v := binary.LittleEndian.Uint32(h[4:]); v != formatVersion {
		return fmt.Errorf("store: %s format version %d, want %d", magic[:], v, formatVersion)
	}
	return nil
}

// scanner reads the records of a file in order through a buffer.
type scanner struct {
	r     io.ReaderAt
	size  int64 // file size: records must end within it
	buf   []byte
	bufAt int64 // file offset of buf[0]
	pos   int64 // offset of the next record
	// indexed: next reads only the records at offs (a segment index),
	// seeking to each; past the last one it is at the end.
	indexed bool
	offs    []uint32
}

// newScanner scans r's records from off up to size.
func newScanner(r io.ReaderAt, off, size int64, buf []byte) *scanner {
	if cap(buf) == 0 {
		buf = make([]byte, 0, 4<<20)
	}
	return &scanner{r: r, size: size, buf: buf[:0], bufAt: off, pos: off}
}

// next returns the next valid record whole (header included) and its file
// offset. The slice is valid until the next call. At the end of the valid
// records it returns io.EOF, with s.pos the offset where they end, or another
// error for a failed read.
func (s *scanner) next() (rec []byte, off int64, err error) {
	if s.indexed {
		if len(s.offs) == 0 {
			s.pos = s.size
			return nil, s.pos, io.EOF
		}
		s.seek(int64(s.offs[0]))
		s.offs = s.offs[1:]
	}
	if s.size-s.pos < recHeader+1 {
		return nil, s.pos, io.EOF
	}
	h, err := s.window(recHeader)
	if err != nil {
		return nil, s.pos, err
	}
	n := int64(binary.LittleEndian.Uint32(h))
	if n < 1 || n > maxRecordLen || n > s.size-s.pos-recHeader {
		return nil, s.pos, io.EOF
	}
	rec, err = s.window(int(recHeader + n))
	if err != nil {
		return nil, s.pos, err
	}
	if _, _, err := checkRecord(rec); err != nil {
		return nil, s.pos, io.EOF
	}
	off = s.pos
	s.pos += recHeader + n
	return rec, off, nil
}

// seek moves to off, keeping the buffer if it holds off.
func (s *scanner) seek(off int64) {
	if off < s.bufAt || off > s.bufAt+int64(len(s.buf)) {
		s.buf, s.bufAt = s.buf[:0], off
	}
	s.pos = off
}

// window returns n bytes at s.pos, reading more of the file when needed. n
// never exceeds what is left of the file, so the buffer grows at most to the
// file's size.
func (s *scanner) window(n int) ([]byte, error) {
	from := int(s.pos - s.bufAt)
	if from+n <= len(s.buf) {
		return s.buf[from : from+n], nil
	}
	rest := copy(s.buf[:cap(s.buf)], s.buf[from:])
	s.buf, s.bufAt = s.buf[:rest], s.pos
	if n > cap(s.buf) {
		nb := make([]byte, rest, n)
		copy(nb, s.buf)
		s.buf = nb
	}
	want := min(int64(cap(s.buf)), s.size-s.bufAt)
	m, err := s.r.ReadAt(s.buf[rest:want], s.bufAt+int64(rest))
	s.buf = s.buf[:rest+m]
	if len(s.buf) < n {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return s.buf[:n], nil
}
