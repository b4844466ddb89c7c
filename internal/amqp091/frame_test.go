package amqp091

import (
	"bytes"
	"errors"
	"io"
	"testing"
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
	if err := ReadProtocolHeader(bytes.NewReader([]byte("AMQP\x01\x01\x00\x09"))); err != ErrBadProtocolHeader {
		t.Fatal(err)
	}
	r := NewFrameReader(bytes.NewReader(AppendHeartbeat(append([]byte(nil), ProtocolHeader...))), 0)
	if err := r.ReadProtocolHeader(); err != nil {
		t.Fatal(err)
	}
	if f, err := r.ReadFrame(); err != nil || f.Type != FrameHeartbeat {
		t.Fatal(f, err)
	}
}
