package amqp091

import (
	"testing"
	"time"
)

// loopReader serves the same bytes forever, so BenchmarkCodecReadFrame measures
// the reader and not the source.
type loopReader struct {
	data []byte
	off  int
}

func (l *loopReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], l.data[l.off:])
		n += c
		l.off = (l.off + c) % len(l.data)
	}
	return n, nil
}

// publishFrames is one small published message as a client sends it.
func publishFrames() []byte {
	var b []byte
	b = AppendMethodFrame(b, 1, &BasicPublish{Exchange: "amq.topic", RoutingKey: "orders.created.eu"})
	props := (&Properties{ContentType: "application/json", DeliveryMode: 2, Headers: Table{"trace": "abc"}}).Append(nil)
	b = AppendHeaderFrame(b, 1, ClassBasic, 100, props)
	return AppendBodyFrames(b, 1, make([]byte, 100), 131072)
}

func BenchmarkCodecReadFrame(b *testing.B) {
	data := publishFrames()
	r := NewFrameReader(&loopReader{data: data}, 131072)
	b.SetBytes(int64(len(data)) / 3)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.ReadFrame(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCodecAppendBasicDeliver(b *testing.B) {
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	tag := uint64(0)
	for b.Loop() {
		tag++
		buf = AppendBasicDeliver(buf[:0], 1, "amq.ctag-xyz0123456789", tag, false, "amq.topic", "orders.created.eu")
	}
}

// BenchmarkCodecDecodeBasicPublish allocates the exchange and routing key
// strings: 2 allocs/op here, 0 for empty strings.
func BenchmarkCodecDecodeBasicPublish(b *testing.B) {
	payload := (&BasicPublish{Exchange: "amq.topic", RoutingKey: "orders.created.eu"}).Append(nil)
	var m BasicPublish
	b.ReportAllocs()
	for b.Loop() {
		if err := DecodeBasicPublish(payload[4:], &m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCodecDecodeBasicAck(b *testing.B) {
	payload := (&BasicAck{DeliveryTag: 12345, Multiple: true}).Append(nil)
	var m BasicAck
	b.ReportAllocs()
	for b.Loop() {
		if err := DecodeBasicAck(payload[4:], &m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCodecSummarizeProperties(b *testing.B) {
	props := (&Properties{
		ContentType: "application/json", Headers: Table{"trace": "abc", "retries": int32(3), "x-death": []any{Table{"count": int64(1)}}},
		DeliveryMode: 2, CorrelationID: "c-1", ReplyTo: "replies", Expiration: "60000", MessageID: "m-1",
		Timestamp: time.Unix(1700000000, 0), UserID: "guest", AppID: "svc",
	}).Append(nil)
	var s PropertySummary
	b.ReportAllocs()
	for b.Loop() {
		if err := SummarizeProperties(props, &s); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCodecTableRoundTrip(b *testing.B) {
	t := Table{"x-queue-type": "quorum", "x-max-length": int64(10000), "x-dead-letter-exchange": "dlx", "x-message-ttl": int32(60000)}
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendTable(buf[:0], t)
		if _, _, err := DecodeTable(buf); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCodecAppendMethodFrame(b *testing.B) {
	buf := make([]byte, 0, 256)
	m := &BasicAck{DeliveryTag: 1}
	b.ReportAllocs()
	for b.Loop() {
		m.DeliveryTag++
		buf = AppendMethodFrame(buf[:0], 1, m)
	}
}
