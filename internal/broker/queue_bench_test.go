package broker

import (
	"testing"
)

// benchSink is a consumer that takes every delivery and keeps it for acking.
type benchSink struct {
	got []Entry
}

func (s *benchSink) Deliver(c *Consumer, q Source, e *Entry) bool {
	s.got = append(s.got, *e)
	return true
}

func (s *benchSink) Cancelled(*Consumer) {}

func benchSetup(b *testing.B) (*VHost, *Exchange, *Queue) {
	b.Helper()
	br, err := New(Config{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { br.Close() })
	v, _ := br.VHost("/")
	q, _, _, err := v.DeclareQueue(QueueDecl{Name: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	ex, _ := v.Exchange("")
	return v, ex, q
}

// BenchmarkQueuePublishDeliverAck is the broker's transient hot path without
// sockets: route through the default exchange, enqueue, deliver to a
// consumer with credit, ack in batches of 100.
func BenchmarkQueuePublishDeliverAck(b *testing.B) {
	v, ex, q := benchSetup(b)
	sink := &benchSink{}
	c := &Consumer{Tag: "c", Sink: sink}
	if err := q.Consume(c); err != nil {
		b.Fatal(err)
	}
	props := []byte{0, 0} // no properties
	body := make([]byte, 16)
	var r Router
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m, err := NewMessage("", "bench", props, body)
		if err != nil {
			b.Fatal(err)
		}
		v.Publish(&r, ex, m, nil)
		if len(sink.got) == 100 {
			q.Ack(sink.got)
			sink.got = sink.got[:0]
		}
	}
}

// BenchmarkQueueEnqueueThenDequeue fills a queue with no consumer, then
// drains it with basic.get in no-ack mode.
func BenchmarkQueueEnqueueThenDequeue(b *testing.B) {
	v, ex, q := benchSetup(b)
	props := []byte{0, 0}
	body := make([]byte, 16)
	var r Router
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m, err := NewMessage("", "bench", props, body)
		if err != nil {
			b.Fatal(err)
		}
		v.Publish(&r, ex, m, nil)
	}
	for i := 0; i < b.N; i++ {
		if _, _, _, ok, _ := q.Get(true); !ok {
			b.Fatalf("queue empty after %d gets", i)
		}
	}
}
