package amqpserver

import (
	"testing"

	"github.com/warren-mq/warren/internal/amqp091"
)

func TestOutboxCountFrames(t *testing.T) {
	var b []byte
	b = amqp091.AppendMethodFrame(b, 1, &amqp091.BasicDeliver{ConsumerTag: "c", DeliveryTag: 1, Exchange: "x", RoutingKey: "k"})
	b = amqp091.AppendHeaderFrame(b, 1, 60, 300000, []byte{0, 0})
	b = amqp091.AppendBodyFrames(b, 1, make([]byte, 300000), 131072) // three body frames
	b = amqp091.AppendHeartbeat(b)
	if n := countFrames(b); n != 6 {
		t.Fatalf("counted %d frames, want 6", n)
	}
	if n := countFrames(b[:len(b)-3]); n != 5 {
		t.Fatalf("counted %d whole frames of a cut buffer, want 5", n)
	}
}
