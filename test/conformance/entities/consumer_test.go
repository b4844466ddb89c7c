package entities

import (
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Priority queues deliver higher priorities first, FIFO within one priority; priorities
// above x-max-priority count as the maximum, but the message keeps its own value.
func TestQueueArgMaxPriorityOrder(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ch, confirms, _ := confirmChannel(t, f)
	q := f.queue(ch, "q", amqp.Table{"x-max-priority": int32(5)})
	var pubs []amqp.Publishing
	for _, p := range []struct {
		body string
		prio uint8
	}{{"p1", 1}, {"p5", 5}, {"p3", 3}, {"p9", 9}, {"p0", 0}, {"p3-second", 3}} {
		pubs = append(pubs, amqp.Publishing{Body: []byte(p.body), Priority: p.prio})
	}
	pubs = append(pubs, amqp.Publishing{Body: []byte("unset")})
	acks := publishConfirmed(t, ch, confirms, "", q, pubs...)
	for i, a := range acks {
		if !a {
			t.Fatalf("message %d nacked", i)
		}
	}
	got := getN(t, ch, q, len(pubs))
	if b := bodies(got); !equalStrings(b, []string{"p5", "p9", "p3", "p3-second", "p1", "p0", "unset"}) {
		t.Fatalf("delivery order %q", b)
	}
	if got[1].Priority != 9 {
		t.Fatalf("message published with priority 9 delivered with %d", got[1].Priority)
	}
}

// Without x-max-priority the priority property is carried but ignored: FIFO.
func TestQueueArgNoMaxPriorityIsFIFO(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ch := f.channel()
	q := f.queue(ch, "q", nil)
	publish(t, ch, "", q, amqp.Publishing{Body: []byte("low"), Priority: 1})
	publish(t, ch, "", q, amqp.Publishing{Body: []byte("high"), Priority: 9})
	wantDrain(t, ch, q, "low", "high")
}

// A priority queue hands a consumer's spare credit to the highest-priority message
// waiting at that moment.
func TestQueueArgMaxPriorityToConsumer(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ch, confirms, _ := confirmChannel(t, f)
	q := f.queue(ch, "q", amqp.Table{"x-max-priority": int32(10)})
	cch := f.channel()
	if err := cch.Qos(1, 0, false); err != nil {
		t.Fatalf("qos: %v", err)
	}
	ds := consume(t, cch, q, "c", false, nil)
	publishConfirmed(t, ch, confirms, "", q, amqp.Publishing{Body: []byte("first"), Priority: 1})
	first := recv(t, ds)
	// The consumer is now out of credit; these queue up and are reordered.
	publishConfirmed(t, ch, confirms, "", q,
		amqp.Publishing{Body: []byte("low"), Priority: 1},
		amqp.Publishing{Body: []byte("high"), Priority: 8},
		amqp.Publishing{Body: []byte("mid"), Priority: 4})
	got := []string{string(first.Body)}
	d := first
	for range 3 {
		if err := d.Ack(false); err != nil {
			t.Fatalf("ack: %v", err)
		}
		d = recv(t, ds)
		got = append(got, string(d.Body))
	}
	if !equalStrings(got, []string{"first", "high", "mid", "low"}) {
		t.Fatalf("consumer got %q, want first high mid low", got)
	}
}

func sacArgs() amqp.Table { return amqp.Table{"x-single-active-consumer": true} }

// With x-single-active-consumer only the first consumer receives; when it cancels,
// the next in line takes over.
func TestQueueArgSingleActiveConsumer(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ch, confirms, _ := confirmChannel(t, f)
	q := f.queue(ch, "q", sacArgs())
	ch1, ch2 := f.channel(), f.channel()
	ds1 := consume(t, ch1, q, "first", true, nil)
	ds2 := consume(t, ch2, q, "second", true, nil)
	qi, err := ch.QueueDeclarePassive(q, false, false, false, false, nil)
	if err != nil {
		t.Fatalf("passive declare: %v", err)
	}
	if qi.Consumers != 2 {
		t.Fatalf("declare-ok counts %d consumers, want 2 (waiting ones count)", qi.Consumers)
	}
	publishConfirmed(t, ch, confirms, "", q, msgs("1", "2", "3")...)
	// All three went to the first consumer, so the second got none.
	if got := recvN(t, ds1, 3); !equalStrings(got, []string{"1", "2", "3"}) {
		t.Fatalf("active consumer got %q", got)
	}
	if err := ch1.Cancel("first", false); err != nil {
		t.Fatalf("cancel: %v", err)
	}
	publishConfirmed(t, ch, confirms, "", q, msgs("4", "5")...)
	if got := recvN(t, ds2, 2); !equalStrings(got, []string{"4", "5"}) {
		t.Fatalf("second consumer got %q after the first cancelled", got)
	}
}

// When the active consumer's channel closes, its unacknowledged messages go to the
// next consumer, marked redelivered, before anything newer.
func TestQueueArgSingleActiveConsumerFailover(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ch, confirms, _ := confirmChannel(t, f)
	q := f.queue(ch, "q", sacArgs())
	ch1, ch2 := f.channel(), f.channel()
	ds1 := consume(t, ch1, q, "first", false, nil)
	ds2 := consume(t, ch2, q, "second", false, nil)
	publishConfirmed(t, ch, confirms, "", q, msgs("1", "2")...)
	if got := recvN(t, ds1, 2); !equalStrings(got, []string{"1", "2"}) {
		t.Fatalf("active consumer got %q", got)
	}
	if err := ch1.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	publishConfirmed(t, ch, confirms, "", q, msgs("3")...)
	var got []string
	for range 3 {
		d := recv(t, ds2)
		got = append(got, string(d.Body))
		if want := string(d.Body) != "3"; d.Redelivered != want {
			t.Fatalf("message %q redelivered=%v, want %v", d.Body, d.Redelivered, want)
		}
	}
	if !equalStrings(got, []string{"1", "2", "3"}) {
		t.Fatalf("second consumer got %q, want 1 2 3", got)
	}
}

// Consumers with a higher x-priority get messages while they have prefetch credit;
// lower ones get the rest, whatever order they subscribed in.
func TestQueueArgConsumerPriority(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ch, confirms, _ := confirmChannel(t, f)
	q := f.queue(ch, "q", nil)
	lowCh, highCh := f.channel(), f.channel()
	if err := highCh.Qos(2, 0, false); err != nil {
		t.Fatalf("qos: %v", err)
	}
	if err := lowCh.Qos(10, 0, false); err != nil {
		t.Fatalf("qos: %v", err)
	}
	low := consume(t, lowCh, q, "low", false, nil)
	high := consume(t, highCh, q, "high", false, amqp.Table{"x-priority": int32(10)})
	publishConfirmed(t, ch, confirms, "", q, msgs("1", "2", "3", "4", "5")...)
	highGot := make([]amqp.Delivery, 2)
	for i := range highGot {
		highGot[i] = recv(t, high)
	}
	if b := bodies(highGot); !equalStrings(b, []string{"1", "2"}) {
		t.Fatalf("high-priority consumer got %q, want 1 2", b)
	}
	if got := recvN(t, low, 3); !equalStrings(got, []string{"3", "4", "5"}) {
		t.Fatalf("low-priority consumer got %q, want 3 4 5", got)
	}
	// With credit again the high-priority consumer is first in line once more.
	if err := highGot[1].Ack(true); err != nil {
		t.Fatalf("ack: %v", err)
	}
	// basic.ack has no reply; a synchronous method on the same channel after it makes
	// sure the queue has the credit back before the next publish arrives there.
	if _, err := highCh.QueueDeclarePassive(q, false, false, false, false, nil); err != nil {
		t.Fatalf("passive declare: %v", err)
	}
	publishConfirmed(t, ch, confirms, "", q, msgs("6")...)
	if d := recv(t, high); string(d.Body) != "6" {
		t.Fatalf("high-priority consumer got %q, want 6", d.Body)
	}
}

// Consumers of equal priority share messages round-robin.
func TestQueueArgConsumersRoundRobin(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ch, confirms, _ := confirmChannel(t, f)
	q := f.queue(ch, "q", nil)
	ch1, ch2 := f.channel(), f.channel()
	ds1 := consume(t, ch1, q, "a", true, nil)
	ds2 := consume(t, ch2, q, "b", true, nil)
	publishConfirmed(t, ch, confirms, "", q, msgs("1", "2", "3", "4")...)
	if got := recvN(t, ds1, 2); !equalStrings(got, []string{"1", "3"}) {
		t.Fatalf("first consumer got %q, want 1 3", got)
	}
	if got := recvN(t, ds2, 2); !equalStrings(got, []string{"2", "4"}) {
		t.Fatalf("second consumer got %q, want 2 4", got)
	}
}
