package amqp091

import (
	"bytes"
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
