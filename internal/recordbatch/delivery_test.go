package recordbatch

import (
	"reflect"
	"testing"
	"time"

	"github.com/warren-mq/warren/internal/amqp091"
)

// TestRecordbatchDeliveryProperties: the fast delivery path means what ToAMQP means.
func TestRecordbatchDeliveryProperties(t *testing.T) {
	republished := richMessage()
	republished.Properties.Headers[OffsetHeader] = int64(3)
	recs := map[string]Record{
		"amqp rich":        FromAMQP(richMessage()),
		"amqp no headers":  FromAMQP(AMQPMessage{Exchange: "x", RoutingKey: "rk", Properties: amqp091.Properties{ContentType: "t", DeliveryMode: 2}}),
		"amqp bare":        FromAMQP(AMQPMessage{}),
		"amqp republished": FromAMQP(republished),
		"kafka": {Key: []byte("customer-1"), Value: []byte("v"), TimestampMs: 1_700_000_000_999, Headers: []Header{
			{Key: "a", Value: []byte("1")}, {Key: "bin", Value: []byte{0xff}}, {Key: "null"}, {Key: "a", Value: []byte("2")},
			{Key: OffsetHeader, Value: []byte("9")}, {Key: PropertiesHeader, Value: []byte{1, 0, 0, 0xff}}}},
		"kafka long key": {Key: make([]byte, 300), TimestampMs: -1, Headers: []Header{{Key: KeyHeader, Value: []byte("x")}}},
		"kafka bare":     {},
	}
	for name, r := range recs {
		want := ToAMQP(r, 12345)
		var wantProps amqp091.Properties
		if err := amqp091.DecodeProperties(want.Properties.Append(nil), &wantProps); err != nil {
			t.Fatal(err)
		}
		props, ex, rk := AppendDeliveryProperties([]byte("prefix"), &r, 12345)
		var got amqp091.Properties
		if err := amqp091.DecodeProperties(props, &got); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(got, wantProps) || string(ex) != want.Exchange || string(rk) != shortstr(want.RoutingKey) {
			t.Errorf("%s:\n got %q %q %+v\nwant %q %q %+v", name, ex, rk, got, want.Exchange, want.RoutingKey, wantProps)
		}
	}
}

func shortstr(s string) string { return s[:min(len(s), 255)] }

func TestRecordbatchDeliveryPropertiesAllocs(t *testing.T) {
	amqpRec := FromAMQP(richMessage())
	kafkaRec := Record{Key: []byte("k"), Headers: []Header{{Key: "a", Value: []byte("1")}}}
	buf := make([]byte, 0, 4096)
	for _, r := range []*Record{&amqpRec, &kafkaRec} {
		if a := testing.AllocsPerRun(50, func() { AppendDeliveryProperties(buf[:0], r, 7) }); a != 0 {
			t.Errorf("%.1f allocations per delivery", a)
		}
	}
}

func TestRecordbatchFromAMQPRaw(t *testing.T) {
	m := richMessage()
	raw := m.Properties.Append(nil)
	r, err := FromAMQPRaw(m.Exchange, m.RoutingKey, raw, m.Body, m.ArrivalMs)
	if err != nil || !reflect.DeepEqual(r, FromAMQP(m)) {
		t.Errorf("FromAMQPRaw differs from FromAMQP: %v", err)
	}
	for _, p := range []amqp091.Properties{{}, {DeliveryMode: 2, ContentType: "t"}, {Headers: amqp091.Table{"a": int8(1), KeyHeader: "k"}},
		{Headers: amqp091.Table{}, Timestamp: time.Unix(5, 0), Priority: 1}} {
		m := AMQPMessage{Exchange: "e", RoutingKey: "rk", Properties: p, RawProperties: p.Append(nil), Body: []byte("b"), ArrivalMs: 9}
		r, err := FromAMQPRaw(m.Exchange, m.RoutingKey, m.RawProperties, m.Body, m.ArrivalMs)
		if want := FromAMQP(m); err != nil || !reflect.DeepEqual(r, want) {
			t.Errorf("FromAMQPRaw(%+v) = %+v, %v; want %+v", p, r, err, want)
		}
	}
	if _, err := FromAMQPRaw("", "", []byte{0x80}, nil, 0); err == nil {
		t.Error("malformed properties accepted")
	}
}
