package amqp091

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestCodecFrameRoundTrip(t *testing.T) {
	var out []byte
	out = AppendMethodFrame(out, 1, &BasicPublish{Exchange: "x", RoutingKey: "rk", Mandatory: true})
	props := (&Properties{ContentType: "text/plain", DeliveryMode: 2}).Append(nil)
	body := bytes.Repeat([]byte("0123456789"), 1000)
	out = AppendHeaderFrame(out, 1, ClassBasic, uint64(len(body)), props)
	out = AppendBodyFrames(out, 1, body, FrameMinSize)
	out = AppendHeartbeat(out)

	r := NewFrameReader(bytes.NewReader(out), FrameMinSize)
	f, err := r.ReadFrame()
	if err != nil || f.Type != FrameMethod || f.Channel != 1 {
		t.Fatalf("method frame: %+v %v", f, err)
	}
	m, err := DecodeMethod(f.Payload)
	if err != nil {
		t.Fatal(err)
	}
	if p := m.(*BasicPublish); p.Exchange != "x" || p.RoutingKey != "rk" || !p.Mandatory || p.Immediate {
		t.Fatalf("publish %+v", p)
	}
	f, err = r.ReadFrame()
	if err != nil || f.Type != FrameHeader {
		t.Fatalf("header frame: %+v %v", f, err)
	}
	class, size, raw, err := ParseContentHeader(f.Payload)
	if err != nil || class != ClassBasic || size != uint64(len(body)) || !bytes.Equal(raw, props) {
		t.Fatalf("header: %d %d %x %v", class, size, raw, err)
	}
	var got []byte
	frames := 0
	for len(got) < len(body) {
		f, err = r.ReadFrame()
		if err != nil || f.Type != FrameBody {
			t.Fatalf("body frame: %+v %v", f, err)
		}
		if len(f.Payload) > FrameMinSize-8 {
			t.Fatalf("body frame of %d bytes exceeds frame_max", len(f.Payload))
		}
		got = append(got, f.Payload...)
		frames++
	}
	if !bytes.Equal(got, body) || frames != 3 {
		t.Fatalf("body differs or %d frames", frames)
	}
	if f, err = r.ReadFrame(); err != nil || f.Type != FrameHeartbeat {
		t.Fatalf("heartbeat: %+v %v", f, err)
	}
	if _, err = r.ReadFrame(); err != io.EOF {
		t.Fatalf("at end: %v", err)
	}
}

func TestCodecFrameErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		max  uint32
		text string
	}{
		{"too large", []byte{3, 0, 1, 0, 3, 0x0d, 0x40}, 131072, "FRAME_ERROR - type 3, all octets = <<>>: {frame_too_large,200000,131064}"},
		{"end marker", []byte{1, 0, 1, 0, 0, 0, 4, 0, 90, 0, 10, 0}, 0, "FRAME_ERROR - type 1, all octets = <<0,90,0,10>>: {invalid_frame_end_marker,0}"},
		{"end marker printable", append([]byte{3, 0, 1, 0, 0, 0, 5}, "hello\x01"...), 0, `FRAME_ERROR - type 3, all octets = <<"hello">>: {invalid_frame_end_marker,1}`},
		{"unknown type", append([]byte{7, 0, 1, 0, 0, 0, 3}, "abc\xce"...), 0, `FRAME_ERROR - type 7, all octets = <<"abc">>: unknown_frame`},
		{"heartbeat payload", append([]byte{8, 0, 0, 0, 0, 0, 2}, "ab\xce"...), 0, `FRAME_ERROR - type 8, all octets = <<"ab">>: unknown_frame`},
	} {
		_, err := NewFrameReader(bytes.NewReader(tc.in), tc.max).ReadFrame()
		var e *Error
		if !errors.As(err, &e) || e.Code != FrameError || e.Text != tc.text || !e.Hard() {
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.text)
		}
	}
	if _, err := NewFrameReader(bytes.NewReader([]byte{1, 0, 0, 0, 0}), 0).ReadFrame(); err != io.ErrUnexpectedEOF {
		t.Errorf("truncated: %v", err)
	}
}

func TestCodecProtocolHeader(t *testing.T) {
	if err := ReadProtocolHeader(bytes.NewReader(ProtocolHeader)); err != nil {
		t.Fatal(err)
	}
	// RabbitMQ accepts the legacy 0-9 header and speaks 0-9-1.
	if err := ReadProtocolHeader(bytes.NewReader([]byte("AMQP\x01\x01\x00\x09"))); err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"AMQP\x00\x00\x09\x00", "AMQP\x01\x01\x00\x08", "HTTP/1.1"} {
		if err := ReadProtocolHeader(bytes.NewReader([]byte(h))); err != ErrBadProtocolHeader {
			t.Fatalf("%q: %v", h, err)
		}
	}
	r := NewFrameReader(bytes.NewReader(AppendHeartbeat(append([]byte(nil), ProtocolHeader...))), 0)
	if err := r.ReadProtocolHeader(); err != nil {
		t.Fatal(err)
	}
	if f, err := r.ReadFrame(); err != nil || f.Type != FrameHeartbeat {
		t.Fatal(f, err)
	}
}

func TestCodecFrameReaderPieces(t *testing.T) {
	// Frames of many sizes, read one byte per Read call and then all at once:
	// the reader must reassemble both the same way and grow past 64 KiB.
	var in []byte
	sizes := []int{0, 1, 7, 8, 4088, 4089, 65535, 65536, 200000, 3}
	for i, n := range sizes {
		in = AppendFrame(in, FrameBody, uint16(i), bytes.Repeat([]byte{byte(i)}, n))
	}
	for _, name := range []string{"one byte", "whole"} {
		var src io.Reader = bytes.NewReader(in)
		if name == "one byte" {
			src = iotest.OneByteReader(src)
		}
		r := NewFrameReader(src, 0)
		for i, n := range sizes {
			f, err := r.ReadFrame()
			if err != nil || f.Type != FrameBody || int(f.Channel) != i || len(f.Payload) != n ||
				!bytes.Equal(f.Payload, bytes.Repeat([]byte{byte(i)}, n)) {
				t.Fatalf("%s: frame %d: %v", name, i, err)
			}
		}
		if _, err := r.ReadFrame(); err != io.EOF {
			t.Fatalf("%s: end: %v", name, err)
		}
	}
}

func TestCodecFrameReaderBuffered(t *testing.T) {
	var in []byte
	in = AppendHeartbeat(in)
	in = AppendHeartbeat(in)
	r := NewFrameReader(bytes.NewReader(in), FrameMinSize)
	if _, err := r.ReadFrame(); err != nil {
		t.Fatal(err)
	}
	if r.Buffered() != 8 {
		t.Fatalf("Buffered = %d, want 8", r.Buffered())
	}
	if _, err := r.ReadFrame(); err != nil || r.Buffered() != 0 {
		t.Fatalf("%v, Buffered = %d", err, r.Buffered())
	}
}

func TestCodecFrameReaderMaxSize(t *testing.T) {
	frame := AppendFrame(nil, FrameBody, 1, make([]byte, FrameMinSize))
	if _, err := NewFrameReader(bytes.NewReader(frame), FrameMinSize).ReadFrame(); err != nil {
		t.Fatalf("payload of frame_max (RabbitMQ's 8-octet slack): %v", err)
	}
	big := AppendFrame(nil, FrameBody, 1, make([]byte, FrameMinSize+1))
	r := NewFrameReader(bytes.NewReader(append(big, big...)), FrameMinSize)
	_, err := r.ReadFrame()
	var e *Error
	if !errors.As(err, &e) || e.Text != "FRAME_ERROR - type 3, all octets = <<>>: {frame_too_large,4097,4088}" {
		t.Fatalf("over frame_max: %v", err)
	}
	r = NewFrameReader(bytes.NewReader(big), FrameMinSize)
	r.SetMaxFrameSize(131072)
	if _, err := r.ReadFrame(); err != nil {
		t.Fatalf("after SetMaxFrameSize: %v", err)
	}
}

func TestCodecFrameReaderIOError(t *testing.T) {
	boom := errors.New("boom")
	r := NewFrameReader(iotest.ErrReader(boom), 0)
	if _, err := r.ReadFrame(); err != boom {
		t.Fatalf("got %v", err)
	}
	// Data and an error from the same Read: the frame first, then the error.
	r = NewFrameReader(iotest.DataErrReader(bytes.NewReader(AppendHeartbeat(nil))), 0)
	if _, err := r.ReadFrame(); err != nil {
		t.Fatalf("frame before EOF: %v", err)
	}
	if _, err := r.ReadFrame(); err != io.EOF {
		t.Fatalf("then: %v", err)
	}
}

func TestCodecFrameBodySplit(t *testing.T) {
	const frameMax = 4096
	for _, n := range []int{0, 1, frameMax - 9, frameMax - 8, frameMax - 7, 3 * (frameMax - 8), 3*(frameMax-8) + 1} {
		body := make([]byte, n)
		for i := range body {
			body[i] = byte(i * 7)
		}
		out := AppendBodyFrames(nil, 5, body, frameMax)
		wantFrames := (n + frameMax - 9) / (frameMax - 8)
		if len(out) != n+8*wantFrames {
			t.Fatalf("body %d: %d bytes out, want %d frames", n, len(out), wantFrames)
		}
		r := NewFrameReader(bytes.NewReader(out), frameMax)
		var got []byte
		for range wantFrames {
			f, err := r.ReadFrame()
			if err != nil || f.Channel != 5 || f.Type != FrameBody {
				t.Fatalf("body %d: %v", n, err)
			}
			got = append(got, f.Payload...)
		}
		if !bytes.Equal(got, body) {
			t.Fatalf("body %d: joined body differs", n)
		}
	}
	if out := AppendBodyFrames(nil, 1, make([]byte, 100000), 0); len(out) != 100008 {
		t.Fatalf("frameMax 0: %d", len(out))
	}
}

func TestCodecFrameAppendBasicDeliver(t *testing.T) {
	want := AppendMethodFrame(nil, 3, &BasicDeliver{ConsumerTag: "ctag", DeliveryTag: 1 << 33, Redelivered: true, Exchange: "ex", RoutingKey: "rk"})
	got := AppendBasicDeliver(nil, 3, "ctag", 1<<33, true, "ex", "rk")
	if !bytes.Equal(got, want) {
		t.Fatalf("got % x\nwant % x", got, want)
	}
	long := strings.Repeat("r", 300)
	want = AppendMethodFrame(nil, 1, &BasicDeliver{RoutingKey: long})
	if got := AppendBasicDeliver(nil, 1, "", 0, false, "", long); !bytes.Equal(got, want) {
		t.Fatal("truncation differs from the generated encoder")
	}
	if err := (&BasicDeliver{RoutingKey: long}).Validate(); !errors.Is(err, ErrShortStrTooLong) {
		t.Fatalf("Validate: %v", err)
	}
	buf := make([]byte, 0, 256)
	if n := testing.AllocsPerRun(100, func() { AppendBasicDeliver(buf[:0], 1, "ctag", 7, false, "ex", "rk") }); n != 0 {
		t.Fatalf("AppendBasicDeliver allocates %v", n)
	}
}
