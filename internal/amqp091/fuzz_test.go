package amqp091

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

// FuzzFrameReader feeds arbitrary bytes to a FrameReader.
// Invariants: it never panics; every frame it accepts re-encodes with
// AppendFrame to exactly the bytes it consumed; Buffered never exceeds what is
// left of the input; a frame larger than the limit is never returned; errors are
// either I/O errors or *Error 501. maxFrame 0 means no limit, and an odd limit
// reads one byte per Read call to exercise reassembly.
func FuzzFrameReader(f *testing.F) {
	f.Add(publishFrames(), uint32(131072))
	f.Add(AppendHeartbeat(nil), uint32(0))
	f.Add([]byte{1, 0, 1, 0, 0, 0, 4, 0, 90, 0, 10, 0}, uint32(4096))
	f.Add([]byte{3, 0, 1, 0, 3, 0x0d, 0x40}, uint32(4097))
	f.Fuzz(func(t *testing.T, data []byte, maxFrame uint32) {
		var src io.Reader = bytes.NewReader(data)
		if maxFrame%2 == 1 {
			src = iotest.OneByteReader(src)
		}
		r := NewFrameReader(src, maxFrame)
		off := 0
		for {
			fr, err := r.ReadFrame()
			if err != nil {
				var e *Error
				if errors.As(err, &e) && e.Code != FrameError {
					t.Fatalf("error code %d", e.Code)
				}
				if e == nil && err != io.EOF && err != io.ErrUnexpectedEOF {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			enc := AppendFrame(nil, fr.Type, fr.Channel, fr.Payload)
			if !bytes.Equal(enc, data[off:off+len(enc)]) {
				t.Fatalf("frame at %d re-encodes differently", off)
			}
			if maxFrame != 0 && uint64(len(enc)) > uint64(maxFrame) {
				t.Fatalf("frame of %d bytes over limit %d", len(enc), maxFrame)
			}
			off += len(enc)
			if r.Buffered() > len(data)-off {
				t.Fatalf("Buffered %d > %d left", r.Buffered(), len(data)-off)
			}
		}
	})
}

// FuzzDecodeTable decodes arbitrary bytes as a field table.
// Invariants: never panics; ValidateTable accepts exactly what DecodeTable
// accepts and reports the same length; an accepted table re-encodes to bytes
// that decode again, and those re-encode to the same bytes (encoding is stable
// even for NaN floats and duplicate keys, which compare badly as values).
func FuzzDecodeTable(f *testing.F) {
	f.Add(AppendTable(nil, Table{"a": int32(1), "b": []any{"x", Table{"c": nil}}, "d": Decimal{2, 5}}))
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{0, 0, 0, 3, 1, 'a', 'Z'})
	f.Fuzz(func(t *testing.T, data []byte) {
		tbl, n, err := DecodeTable(data)
		vn, verr := ValidateTable(data)
		if (err == nil) != (verr == nil) || n != vn {
			t.Fatalf("DecodeTable (%d, %v) and ValidateTable (%d, %v) disagree", n, err, vn, verr)
		}
		if err != nil {
			return
		}
		if n > len(data) {
			t.Fatalf("consumed %d of %d bytes", n, len(data))
		}
		e1 := AppendTable(nil, tbl)
		t2, n2, err := DecodeTable(e1)
		if err != nil || n2 != len(e1) {
			t.Fatalf("re-encoded table does not decode: %v", err)
		}
		if e2 := AppendTable(nil, t2); !bytes.Equal(e1, e2) {
			t.Fatalf("encoding not stable:\n%x\n%x", e1, e2)
		}
	})
}

// FuzzDecodeMethod decodes arbitrary method frame payloads.
// Invariants: never panics; every error is an *Error with a hard reply code;
// an accepted method re-encodes to bytes that decode to a method that
// re-encodes identically; the re-encoding is the input itself unless the input
// holds a table (whose key order Warren normalises), unused bits or duplicate
// keys — so at least the lengths match when the method has no table.
func FuzzDecodeMethod(f *testing.F) {
	for _, g := range goldenMethods {
		f.Add(g.want.Append(nil))
	}
	f.Add([]byte{0, 60, 3, 231})
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := DecodeMethod(data)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || !e.Hard() {
				t.Fatalf("error %v is not a hard *Error", err)
			}
			return
		}
		e1 := m.Append(nil)
		m2, err := DecodeMethod(e1)
		if err != nil {
			t.Fatalf("re-encoded %s does not decode: %v", m.Name(), err)
		}
		if e2 := m2.Append(nil); !bytes.Equal(e1, e2) {
			t.Fatalf("%s encoding not stable", m.Name())
		}
		if c, id, _ := MethodIDs(data); c != m.ClassID() || id != m.MethodID() {
			t.Fatalf("ids %d.%d decoded as %s", c, id, m.Name())
		}
	})
}

// FuzzProperties decodes arbitrary content-header property lists.
// Invariants: never panics; SummarizeProperties accepts exactly what
// DecodeProperties accepts and agrees on the fields it reports; accepted
// properties re-encode to bytes that decode and re-encode identically.
func FuzzProperties(f *testing.F) {
	gp, _ := hexBytes(goldenProps)
	f.Add(gp)
	f.Add([]byte{0, 0})
	f.Add([]byte{0x10, 0, 2})
	f.Add([]byte{0x00, 0x01, 0x00, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		var p Properties
		err := DecodeProperties(data, &p)
		var s PropertySummary
		serr := SummarizeProperties(data, &s)
		if (err == nil) != (serr == nil) {
			t.Fatalf("DecodeProperties %v, SummarizeProperties %v", err, serr)
		}
		if err != nil {
			return
		}
		if s.DeliveryMode != p.DeliveryMode || s.Priority != p.Priority || string(s.Expiration) != p.Expiration ||
			string(s.ReplyTo) != p.ReplyTo || string(s.UserID) != p.UserID || (s.Headers != nil) != (p.Headers != nil) {
			t.Fatalf("summary %+v disagrees with %+v", s, p)
		}
		e1 := p.Append(nil)
		var p2 Properties
		if err := DecodeProperties(e1, &p2); err != nil {
			t.Fatalf("re-encoded properties do not decode: %v", err)
		}
		if e2 := p2.Append(nil); !bytes.Equal(e1, e2) {
			t.Fatalf("encoding not stable")
		}
	})
}
