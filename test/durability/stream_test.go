package durability

import (
	"fmt"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// readStream reads n records of stream q from the first offset and returns
// their bodies.
func readStream(t *testing.T, ch *amqp.Channel, q string, n int) []string {
	t.Helper()
	must(t, ch.Qos(n+1, 0, false))
	ds, err := ch.Consume(q, "", false, false, false, false, amqp.Table{"x-stream-offset": "first"})
	must(t, err)
	var out []string
	for range n {
		select {
		case d := <-ds:
			if d.Headers["x-stream-offset"] != int64(len(out)) {
				t.Fatalf("offset %v, want %d", d.Headers["x-stream-offset"], len(out))
			}
			out = append(out, string(d.Body))
			must(t, d.Ack(false))
		case <-time.After(10 * time.Second):
			t.Fatalf("%d records read, want %d", len(out), n)
		}
	}
	return out
}

// A declared stream and its confirmed records survive restarts, with the
// stream's arguments; later records follow on at the next offsets.
func TestStreamSurvivesRestart(t *testing.T) {
	n := newNode(t)
	ch := n.channel()
	args := amqp.Table{"x-queue-type": "stream", "x-max-age": "7D"}
	_, err := ch.QueueDeclare("events", true, false, false, false, args)
	must(t, err)
	var want []string
	for i := range 50 {
		want = append(want, fmt.Sprint("e", i))
	}
	publishConfirmed(t, ch, "", "events", 1, want[:30]...) // transient messages: a stream keeps them all the same
	n.restart()
	ch = n.channel()
	// Equivalent redeclare: the arguments came back.
	_, err = ch.QueueDeclare("events", true, false, false, false, args)
	must(t, err)
	publishConfirmed(t, ch, "", "events", 2, want[30:]...)
	n.restart()
	if got := fmt.Sprint(readStream(t, n.channel(), "events", 50)); got != fmt.Sprint(want) {
		t.Fatalf("after restarts\n%s\nwant\n%s", got, want)
	}
	// Deleted, it stays deleted.
	_, err = n.channel().QueueDelete("events", false, false, false)
	must(t, err)
	n.restart()
	_, err = n.channel().QueueDeclarePassive("events", true, false, false, false, nil)
	if !notFound(err) {
		t.Fatalf("deleted stream after restart: %v", err)
	}
}
