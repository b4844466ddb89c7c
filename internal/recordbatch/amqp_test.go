package recordbatch

import (
	"reflect"
	"testing"
	"time"

	"github.com/warren-mq/warren/internal/amqp091"
)

func richMessage() AMQPMessage {
	return AMQPMessage{
		Exchange:   "orders",
		RoutingKey: "customer-42",
		Body:       []byte("new-order"),
		ArrivalMs:  1_700_000_000_123,
		Properties: amqp091.Properties{
			ContentType: "application/json", ContentEncoding: "utf-8", DeliveryMode: 2, Priority: 5,
			CorrelationID: "c1", ReplyTo: "amq.rabbitmq.reply-to", Expiration: "60000", MessageID: "m1",
			Type: "new-order", UserID: "guest", AppID: "shop", ClusterID: "cl",
			Headers: amqp091.Table{
				"str": "text", "bytes": []byte{0xff, 0}, "bool": true, "i8": int8(-8), "u8": uint8(8),
				"i16": int16(-16), "u16": uint16(16), "i32": int32(-32), "u32": uint32(32), "i64": int64(-64),
				"f32": float32(1.5), "f64": 2.25, "dec": amqp091.Decimal{Scale: 2, Value: -1234},
				"ts": time.Unix(1_700_000_000, 0).UTC(), "void": nil,
				"tbl": amqp091.Table{"a": int32(1), "b": []byte("x")}, "arr": []any{"s", int64(2)},
			},
		},
	}
}

// TestRecordbatchAMQPRoundTrip: AMQP -> record -> batch (every codec) -> record -> AMQP keeps everything.
func TestRecordbatchAMQPRoundTrip(t *testing.T) {
	m := richMessage()
	for _, c := range codecs {
		r := FromAMQP(m)
		_, recs, err := Decode(Build([]Record{r}, BuildOptions{Compression: c}), 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		got := ToAMQP(recs[0], 77)
		if got.Properties.Headers[OffsetHeader] != int64(77) {
			t.Errorf("%s: offset header %v", c, got.Properties.Headers[OffsetHeader])
		}
		delete(got.Properties.Headers, OffsetHeader)
		want := m
		want.ArrivalMs, want.RawProperties = 0, nil
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: round trip\n got %+v\nwant %+v", c, got, want)
		}
	}
}

func TestRecordbatchFromAMQP(t *testing.T) {
	r := FromAMQP(richMessage())
	if string(r.Key) != "customer-42" || string(r.Value) != "new-order" || r.TimestampMs != 1_700_000_000_123 {
		t.Errorf("record %q %q %d", r.Key, r.Value, r.TimestampMs)
	}
	want := map[string]string{
		"str": "text", "bytes": "\xff\x00", "bool": "true", "i8": "-8", "u8": "8", "i16": "-16", "u16": "16",
		"i32": "-32", "u32": "32", "i64": "-64", "f32": "1.5", "f64": "2.25", "dec": "-12.34",
		"ts": "2023-11-14T22:13:20Z", "tbl": `{"a":1,"b":"x"}`, "arr": `["s",2]`,
	}
	seen := map[string]bool{}
	for i, h := range r.Headers {
		seen[h.Key] = true
		switch {
		case h.Key == PropertiesHeader:
			if i != len(r.Headers)-1 {
				t.Error("properties header not last")
			}
		case h.Key == "void":
			if h.Value != nil {
				t.Errorf("void header %q", h.Value)
			}
		case string(h.Value) != want[h.Key]:
			t.Errorf("header %s = %q, want %q", h.Key, h.Value, want[h.Key])
		}
		if i > 0 && i < len(r.Headers)-1 && r.Headers[i-1].Key > h.Key {
			t.Error("headers not sorted")
		}
	}
	if len(seen) != len(want)+2 {
		t.Errorf("headers %v", seen)
	}

	m := AMQPMessage{RoutingKey: "rk", Properties: amqp091.Properties{
		Timestamp: time.Unix(1_600_000_000, 0), Headers: amqp091.Table{KeyHeader: int32(5)}}}
	r = FromAMQP(m)
	if string(r.Key) != "5" || r.TimestampMs != 1_600_000_000_000 || r.Value == nil || len(r.Headers) != 1 {
		t.Errorf("x-kafka-key record %q %d %v %v", r.Key, r.TimestampMs, r.Value, r.Headers)
	}
	if got := ToAMQP(r, 0); got.Properties.Headers[KeyHeader] != int32(5) || got.RoutingKey != "rk" {
		t.Errorf("x-kafka-key back %+v", got)
	}
	if r = FromAMQP(AMQPMessage{Exchange: "e"}); r.Key != nil || r.TimestampMs == 0 {
		t.Errorf("empty routing key: key %q ts %d", r.Key, r.TimestampMs)
	}
}

func TestRecordbatchAMQPRawProperties(t *testing.T) {
	m := richMessage()
	m.RawProperties = m.Properties.Append(nil)
	a, b := FromAMQP(m), FromAMQP(richMessage())
	if !reflect.DeepEqual(a, b) {
		t.Error("raw properties stored differently from encoded ones")
	}
	ex, rk, props, ok := ParsePropertiesHeader(a.Headers[len(a.Headers)-1].Value)
	if !ok || string(ex) != "orders" || string(rk) != "customer-42" || string(props) != string(m.RawProperties) {
		t.Errorf("ParsePropertiesHeader %q %q %v", ex, rk, ok)
	}
	for _, bad := range [][]byte{nil, {2}, {1}, {1, 5, 'a'}, {1, 0, 3}} {
		if _, _, _, ok := ParsePropertiesHeader(bad); ok {
			t.Errorf("ParsePropertiesHeader(%v) ok", bad)
		}
	}
}

// TestRecordbatchKafkaToAMQP: a record a Kafka client produced (no reserved header).
func TestRecordbatchKafkaToAMQP(t *testing.T) {
	long := make([]byte, 300)
	for i := range long {
		long[i] = 'k'
	}
	r := Record{TimestampMs: 1_700_000_000_999, Key: []byte("customer-7"), Value: []byte("v"), Headers: []Header{
		{Key: "trace", Value: []byte("abc")}, {Key: "bin", Value: []byte{0xff}}, {Key: "null", Value: nil},
		{Key: "dup", Value: []byte("1")}, {Key: "dup", Value: []byte("2")},
		{Key: PropertiesHeader, Value: []byte("forged")},
	}}
	m := ToAMQP(r, 5)
	want := amqp091.Table{"trace": "abc", "bin": []byte{0xff}, "null": nil, "dup": "2", PropertiesHeader: "forged", OffsetHeader: int64(5)}
	if m.RoutingKey != "customer-7" || m.Exchange != "" || string(m.Body) != "v" || !reflect.DeepEqual(m.Properties.Headers, want) {
		t.Errorf("delivery %+v", m)
	}
	if !m.Properties.Timestamp.Equal(time.UnixMilli(1_700_000_000_999)) {
		t.Errorf("timestamp %v", m.Properties.Timestamp)
	}
	m = ToAMQP(Record{Key: long, TimestampMs: -1}, 0)
	if m.Properties.Headers[KeyHeader] != string(long) || !m.Properties.Timestamp.IsZero() {
		t.Errorf("long key: %v", m.Properties.Headers)
	}
	// And back into a stream: the key survives whole.
	if r := FromAMQP(m); string(r.Key) != string(long) {
		t.Errorf("long key republished as %d bytes", len(r.Key))
	}
}
