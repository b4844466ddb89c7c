package amqp091

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"time"
)

func TestCodecPropertiesAllFlags(t *testing.T) {
	p := Properties{
		ContentType: "application/json", ContentEncoding: "gzip", Headers: Table{"h": int32(1)},
		DeliveryMode: 2, Priority: 9, CorrelationID: "corr", ReplyTo: "reply", Expiration: "60000",
		MessageID: "mid", Timestamp: time.Unix(1700000000, 0).UTC(), Type: "t", UserID: "guest",
		AppID: "app", ClusterID: "c",
	}
	b := p.Append(nil)
	if b[0] != 0xff || b[1] != 0xfc {
		t.Fatalf("flags % x", b[:2])
	}
	var got Properties
	if err := DecodeProperties(b, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, p) {
		t.Fatalf("got %#v\nwant %#v", got, p)
	}
	var s PropertySummary
	if err := SummarizeProperties(b, &s); err != nil {
		t.Fatal(err)
	}
	if s.Flags != 0xfffc || s.DeliveryMode != 2 || s.Priority != 9 || string(s.Expiration) != "60000" ||
		string(s.ReplyTo) != "reply" || string(s.UserID) != "guest" || !bytes.Equal(s.Headers, AppendTable(nil, p.Headers)) {
		t.Fatalf("summary %+v", s)
	}
}

func TestCodecPropertiesMalformed(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		// Each of these made RabbitMQ 3.10.8 close the connection with 541.
		{"empty", nil},
		{"one flag byte", []byte{0x80}},
		{"continuation", []byte{0x00, 0x01, 0x00, 0x00}},
		{"continuation with bits", []byte{0x80, 0x01, 0x80, 0x00, 1, 'a'}},
		{"trailing", []byte{0x80, 0x00, 3, 'a', 'b', 'c', 'X'}},
		{"truncated string", []byte{0x80, 0x00, 5, 'a', 'b'}},
		{"bad headers", []byte{0x20, 0x00, 0, 0, 0, 3, 1, 'a', 'Z'}},
		{"headers overrun", []byte{0x20, 0x00, 0, 0, 0, 9}},
		{"missing delivery mode", []byte{0x10, 0x00}},
		{"short timestamp", []byte{0x00, 0x40, 0, 0, 0, 0}},
	} {
		var p Properties
		err := DecodeProperties(tc.in, &p)
		var e *Error
		if !errors.As(err, &e) || e.Code != InternalError || !e.Hard() {
			t.Errorf("%s: DecodeProperties: %v", tc.name, err)
		}
		var s PropertySummary
		if err := SummarizeProperties(tc.in, &s); err == nil {
			t.Errorf("%s: SummarizeProperties accepted % x", tc.name, tc.in)
		}
	}
}

func TestCodecPropertiesEdges(t *testing.T) {
	// Bit 0x0002 is unused; RabbitMQ ignores it (and passes it through raw).
	var p Properties
	if err := DecodeProperties([]byte{0x00, 0x02}, &p); err != nil || !reflect.DeepEqual(p, Properties{}) {
		t.Fatalf("unused bit: %v %+v", err, p)
	}
	// Empty properties are two zero bytes; an empty but present headers table survives.
	if got := (&Properties{}).Append(nil); !bytes.Equal(got, []byte{0, 0}) {
		t.Fatalf("empty: % x", got)
	}
	b := (&Properties{Headers: Table{}}).Append(nil)
	if !bytes.Equal(b, []byte{0x20, 0, 0, 0, 0, 0}) {
		t.Fatalf("empty headers: % x", b)
	}
	if err := DecodeProperties(b, &p); err != nil || p.Headers == nil {
		t.Fatalf("empty headers decode: %v %#v", err, p)
	}
	var s PropertySummary
	if err := SummarizeProperties(b, &s); err != nil || !bytes.Equal(s.Headers, []byte{0, 0, 0, 0}) {
		t.Fatalf("empty headers summary: %v %+v", err, s)
	}
	// The epoch is a timestamp like any other; only the zero time.Time is absent.
	b = (&Properties{Timestamp: time.Unix(0, 0)}).Append(nil)
	if err := DecodeProperties(b, &p); err != nil || p.Timestamp.Unix() != 0 || p.Timestamp.IsZero() {
		t.Fatalf("epoch timestamp: %v %v", err, p.Timestamp)
	}
	// DecodeProperties overwrites every field of a reused struct.
	p = Properties{AppID: "stale", Headers: Table{"x": 1}}
	if err := DecodeProperties([]byte{0x10, 0x00, 2}, &p); err != nil || !reflect.DeepEqual(p, Properties{DeliveryMode: 2}) {
		t.Fatalf("reuse: %v %+v", err, p)
	}
	// Header frame payloads shorter than class, weight and size are a frame error.
	_, _, _, err := ParseContentHeader([]byte{0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	var e *Error
	if !errors.As(err, &e) || e.Text != "FRAME_ERROR - type 2, all octets = <<0,60,0,0,0,0,0,0,0,0,0>>: unknown_frame" {
		t.Fatalf("short header: %v", err)
	}
	if _, _, props, err := ParseContentHeader(make([]byte, 12)); err != nil || len(props) != 0 {
		t.Fatalf("12-byte header: %v", err)
	}
}

func TestCodecPropertiesSummaryNoAlloc(t *testing.T) {
	b := (&Properties{
		ContentType: "text/plain", Headers: Table{"a": "b", "n": int32(1)}, DeliveryMode: 2,
		Expiration: "1000", UserID: "guest", Timestamp: time.Unix(1, 0),
	}).Append(nil)
	var s PropertySummary
	if n := testing.AllocsPerRun(100, func() { SummarizeProperties(b, &s) }); n != 0 {
		t.Errorf("SummarizeProperties allocates %v", n)
	}
}
