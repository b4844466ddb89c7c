package amqp091

import (
	"bytes"
	"encoding/binary"
	"io"
	"strconv"
)

// ProtocolHeader is what an AMQP 0-9-1 client sends first and what the server
// answers with when it does not like the client's header.
var ProtocolHeader = []byte("AMQP\x00\x00\x09\x01")

// frameOverhead is the frame header (type, channel, size) plus the end octet;
// frame_max counts it, the payload limit is frame_max minus it.
const frameOverhead = 8

// initialReadBuffer is what a connection starts with: an idle connection
// costs little. A reader whose reads fill its buffer is busy and switches to
// busyReadBuffer, big enough for many small frames per read system call.
const (
	initialReadBuffer = 4 << 10
	busyReadBuffer    = 64 << 10
)

// Frame is one AMQP frame; Payload aliases the reader's buffer and is valid until the next ReadFrame.
type Frame struct {
	Type    uint8
	Channel uint16
	Payload []byte
}

// FrameReader reads frames from a connection through one buffer, so each read
// system call can bring in many frames and ReadFrame allocates nothing once the
// buffer has grown to the largest frame seen. It is not safe for concurrent
// use: one goroutine per connection reads.
type FrameReader struct {
	r          io.Reader
	buf        []byte
	start, end int // buf[start:end] is read but not yet returned
	max        uint32
	busy       bool // a read filled the buffer: use busyReadBuffer
}

// NewFrameReader returns a FrameReader on r. maxFrameSize counts the whole frame
// incl. 8 bytes header+end, as AMQP frame_max does; 0 means no limit. Before
// connection.tune-ok a server should pass FrameMinSize.
func NewFrameReader(r io.Reader, maxFrameSize uint32) *FrameReader {
	return &FrameReader{r: r, max: maxFrameSize}
}

// SetMaxFrameSize changes the limit, e.g. to the frame_max agreed in tune-ok.
func (r *FrameReader) SetMaxFrameSize(n uint32) { r.max = n }

// Buffered returns the number of bytes already read but not yet returned, so
// the server can tell whether another frame may be waiting before it flushes.
func (r *FrameReader) Buffered() int { return r.end - r.start }

// ReadProtocolHeader reads the 8-byte protocol header through the reader's
// buffer; see the function ReadProtocolHeader.
func (r *FrameReader) ReadProtocolHeader() error {
	if err := r.fill(len(ProtocolHeader)); err != nil {
		return err
	}
	h := r.buf[r.start : r.start+len(ProtocolHeader)]
	r.start += len(ProtocolHeader)
	return checkProtocolHeader(h)
}

// legacyProtocolHeader is the 0-9 header some old clients send; RabbitMQ
// answers it with 0-9-1, which is wire-compatible.
var legacyProtocolHeader = []byte("AMQP\x01\x01\x00\x09")

func checkProtocolHeader(h []byte) error {
	if !bytes.Equal(h, ProtocolHeader) && !bytes.Equal(h, legacyProtocolHeader) {
		return ErrBadProtocolHeader
	}
	return nil
}

// ReadProtocolHeader reads the 8-byte "AMQP\x00\x00\x09\x01"; returns
// ErrBadProtocolHeader for anything else (RabbitMQ then replies with its own
// header and closes). I/O errors are returned as they are.
func ReadProtocolHeader(r io.Reader) error {
	var h [8]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return err
	}
	return checkProtocolHeader(h[:])
}

// ReadFrame returns the next frame. Errors, checked in RabbitMQ's order and
// worded as RabbitMQ words them, are *Error 501 FRAME_ERROR for a frame larger
// than the limit (before its payload is read), a missing frame-end octet, an
// unknown frame type and a heartbeat with a payload. I/O errors are returned as
// they are, io.ErrUnexpectedEOF if the stream ends inside a frame. After an
// error the reader's position is undefined; the connection must be closed.
func (r *FrameReader) ReadFrame() (Frame, error) {
	if err := r.fill(7); err != nil {
		return Frame{}, err
	}
	h := r.buf[r.start:]
	typ := h[0]
	channel := binary.BigEndian.Uint16(h[1:])
	size := binary.BigEndian.Uint32(h[3:])
	// Like RabbitMQ, allow 8 octets of slack (its FRAME_SIZE_FUDGE): a payload of
	// up to frame_max is accepted, though the error names frame_max-8 as the limit.
	if r.max != 0 && uint64(size) > uint64(r.max) {
		limit := uint64(0)
		if r.max > frameOverhead {
			limit = uint64(r.max) - frameOverhead
		}
		return Frame{}, frameError(typ, nil,
			"{frame_too_large,"+strconv.FormatUint(uint64(size), 10)+","+strconv.FormatUint(limit, 10)+"}")
	}
	total := 7 + int(size) + 1
	if uint64(size)+8 > uint64(maxInt) {
		return Frame{}, frameError(typ, nil, "{frame_too_large,"+strconv.FormatUint(uint64(size), 10)+"}")
	}
	if err := r.fill(total); err != nil {
		return Frame{}, err
	}
	frame := r.buf[r.start : r.start+total]
	r.start += total
	payload := frame[7 : 7+size : 7+size]
	if end := frame[total-1]; end != FrameEnd {
		return Frame{}, frameError(typ, payload, "{invalid_frame_end_marker,"+strconv.Itoa(int(end))+"}")
	}
	switch typ {
	case FrameMethod, FrameHeader, FrameBody:
	case FrameHeartbeat:
		if size != 0 {
			return Frame{}, frameError(typ, payload, "unknown_frame")
		}
	default:
		return Frame{}, frameError(typ, payload, "unknown_frame")
	}
	return Frame{Type: typ, Channel: channel, Payload: payload}, nil
}

const maxInt = int(^uint(0) >> 1)

// fill makes at least n bytes available in buf[start:end]. The buffer grows at
// most to double its size per read, so a peer claiming a huge frame has to send
// the bytes before memory is committed to them.
func (r *FrameReader) fill(n int) error {
	for r.end-r.start < n {
		if len(r.buf)-r.start < n && r.start > 0 {
			// Move the partial frame to the front; earlier payloads are
			// no longer valid, as documented on Frame.
			r.end = copy(r.buf, r.buf[r.start:r.end])
			r.start = 0
		}
		if r.end == len(r.buf) {
			// Full, and (after the compaction above) start is 0 and
			// fewer than n bytes are buffered, so the buffer must grow.
			nb := make([]byte, max(min(n, 2*len(r.buf)), initialReadBuffer, len(r.buf)))
			r.end = copy(nb, r.buf[r.start:r.end])
			r.start = 0
			r.buf = nb
		}
		if r.busy && len(r.buf) < busyReadBuffer {
			nb := make([]byte, busyReadBuffer)
			r.end = copy(nb, r.buf[r.start:r.end])
			r.start = 0
			r.buf = nb
		}
		m, err := r.r.Read(r.buf[r.end:])
		if m > len(r.buf)-r.end {
			return io.ErrShortBuffer
		}
		if m == len(r.buf)-r.end {
			r.busy = true
		}
		r.end += m
		if err != nil {
			if r.end-r.start >= n {
				return nil
			}
			if err == io.EOF && r.end-r.start > 0 {
				return io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// AppendFrame appends one frame of any type around payload.
func AppendFrame(b []byte, frameType uint8, channel uint16, payload []byte) []byte {
	b = append(b, frameType, byte(channel>>8), byte(channel))
	b = binary.BigEndian.AppendUint32(b, uint32(len(payload)))
	b = append(b, payload...)
	return append(b, FrameEnd)
}

// AppendMethodFrame appends m as a complete method frame on channel.
func AppendMethodFrame(b []byte, channel uint16, m Method) []byte {
	start := len(b)
	b = append(b, FrameMethod, byte(channel>>8), byte(channel), 0, 0, 0, 0)
	b = m.Append(b)
	binary.BigEndian.PutUint32(b[start+3:], uint32(len(b)-start-7))
	return append(b, FrameEnd)
}

// AppendHeaderFrame appends a content header frame; props is the encoded flags
// and property list, from Properties.Append or passed through raw from the
// publisher. The weight is always 0, as the specification requires.
func AppendHeaderFrame(b []byte, channel uint16, classID uint16, bodySize uint64, props []byte) []byte {
	b = append(b, FrameHeader, byte(channel>>8), byte(channel))
	b = binary.BigEndian.AppendUint32(b, uint32(12+len(props)))
	b = append(b, byte(classID>>8), byte(classID), 0, 0)
	b = binary.BigEndian.AppendUint64(b, bodySize)
	b = append(b, props...)
	return append(b, FrameEnd)
}

// AppendBodyFrames appends body as body frames of at most frameMax bytes each
// (payload frameMax-8), as the peer's frame_max requires; frameMax 0 means no
// limit. An empty body produces no frame, which is how AMQP sends it.
func AppendBodyFrames(b []byte, channel uint16, body []byte, frameMax uint32) []byte {
	chunk := len(body)
	if frameMax != 0 {
		if frameMax > frameOverhead {
			chunk = min(chunk, int(frameMax-frameOverhead))
		} else {
			chunk = min(chunk, 1)
		}
	}
	for len(body) > 0 {
		n := min(chunk, len(body))
		b = AppendFrame(b, FrameBody, channel, body[:n])
		body = body[n:]
	}
	return b
}

// AppendHeartbeat appends a heartbeat frame (channel 0, empty payload).
func AppendHeartbeat(b []byte) []byte {
	return append(b, FrameHeartbeat, 0, 0, 0, 0, 0, 0, FrameEnd)
}
