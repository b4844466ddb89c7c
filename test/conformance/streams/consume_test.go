package streams

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// publish publishes bodies to the stream q through the default exchange
// with confirms, and returns once the broker confirmed them all.
func publish(t *testing.T, ch *amqp.Channel, exchange, key string, headers amqp.Table, bodies ...string) {
	t.Helper()
	if err := ch.Confirm(false); err != nil {
		t.Fatalf("confirm.select: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	var dcs []*amqp.DeferredConfirmation
	for _, b := range bodies {
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, exchange, key, false, false, amqp.Publishing{Body: []byte(b), Headers: headers})
		if err != nil {
			t.Fatalf("publish: %v", err)
		}
		dcs = append(dcs, dc)
	}
	for _, dc := range dcs {
		ok, err := dc.WaitContext(ctx)
		if err != nil || !ok {
			t.Fatalf("confirm: %v %v", ok, err)
		}
	}
}

// consume starts a consumer with a prefetch on its own channel.
func (f *fixture) consume(q string, prefetch int, args amqp.Table) (*amqp.Channel, <-chan amqp.Delivery) {
	f.t.Helper()
	ch := f.channel()
	if err := ch.Qos(prefetch, 0, false); err != nil {
		f.t.Fatalf("qos: %v", err)
	}
	ds, err := ch.Consume(q, "", false, false, false, false, args)
	if err != nil {
		f.t.Fatalf("consume: %v", err)
	}
	return ch, ds
}

func recv(t *testing.T, ds <-chan amqp.Delivery) amqp.Delivery {
	t.Helper()
	select {
	case d, ok := <-ds:
		if !ok {
			t.Fatal("consumer closed")
		}
		return d
	case <-time.After(waitTimeout):
		t.Fatal("no delivery")
	}
	return amqp.Delivery{}
}

// recvN receives n deliveries, acking each, and returns "body@offset" for each.
func recvN(t *testing.T, ds <-chan amqp.Delivery, n int) []string {
	t.Helper()
	var got []string
	for range n {
		d := recv(t, ds)
		off, ok := d.Headers["x-stream-offset"].(int64)
		if !ok {
			t.Fatalf("x-stream-offset header %T %v", d.Headers["x-stream-offset"], d.Headers)
		}
		got = append(got, fmt.Sprintf("%s@%d", d.Body, off))
		if err := d.Ack(false); err != nil {
			t.Fatalf("ack: %v", err)
		}
	}
	return got
}

func wantStrings(t *testing.T, got []string, want ...string) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// Two consumers read the whole stream from the first offset, each at its own
// pace; acks return credit (a prefetch of 1 would stall otherwise) and
// delete nothing.
func TestStreamConsumeFirst(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ch := f.channel()
	q := f.declareStream(ch, "s")
	publish(t, ch, "", q, nil, "a", "b", "c")
	for range 2 {
		_, ds := f.consume(q, 1, amqp.Table{"x-stream-offset": "first"})
		wantStrings(t, recvN(t, ds, 3), "a@0", "b@1", "c@2")
	}
	// Later records reach consumers already waiting at the end.
	_, ds := f.consume(q, 10, amqp.Table{"x-stream-offset": "first"})
	wantStrings(t, recvN(t, ds, 3), "a@0", "b@1", "c@2")
	publish(t, ch, "", q, nil, "d")
	wantStrings(t, recvN(t, ds, 1), "d@3")
}

// next (the default) delivers only what is published after the consumer
// started; an integer offset starts there; a timestamp or an interval starts
// at the first record from then on (here: every record, all newer).
func TestStreamConsumeOffsets(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ch := f.channel()
	q := f.declareStream(ch, "s")
	publish(t, ch, "", q, nil, "a", "b", "c")
	_, dsNext := f.consume(q, 10, amqp.Table{"x-stream-offset": "next"})
	_, dsDefault := f.consume(q, 10, nil)
	_, dsTwo := f.consume(q, 10, amqp.Table{"x-stream-offset": int64(2)})
	_, dsOne := f.consume(q, 10, amqp.Table{"x-stream-offset": int32(1)})
	_, dsTime := f.consume(q, 10, amqp.Table{"x-stream-offset": time.Now().Add(-time.Hour)})
	_, dsInterval := f.consume(q, 10, amqp.Table{"x-stream-offset": "1h"})
	wantStrings(t, recvN(t, dsTwo, 1), "c@2")
	wantStrings(t, recvN(t, dsOne, 2), "b@1", "c@2")
	wantStrings(t, recvN(t, dsTime, 3), "a@0", "b@1", "c@2")
	wantStrings(t, recvN(t, dsInterval, 3), "a@0", "b@1", "c@2")
	publish(t, ch, "", q, nil, "d")
	wantStrings(t, recvN(t, dsNext, 1), "d@3")
	wantStrings(t, recvN(t, dsDefault, 1), "d@3")
	wantStrings(t, recvN(t, dsTwo, 1), "d@3")
}

// last starts at the last chunk: the last batch written, here the last
// confirmed publish of a burst that was confirmed before the next began.
func TestStreamConsumeLast(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ch := f.channel()
	q := f.declareStream(ch, "s")
	publish(t, ch, "", q, nil, "a")
	publish(t, ch, "", q, nil, "b")
	_, ds := f.consume(q, 10, amqp.Table{"x-stream-offset": "last"})
	wantStrings(t, recvN(t, ds, 1), "b@1")
}

// Many deliveries with a small prefetch: credit comes back with each ack.
func TestStreamConsumeCredit(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ch := f.channel()
	q := f.declareStream(ch, "s")
	var bodies, want []string
	for i := range 200 {
		bodies = append(bodies, strconv.Itoa(i))
		want = append(want, fmt.Sprintf("%d@%d", i, i))
	}
	publish(t, ch, "", q, nil, bodies...)
	_, ds := f.consume(q, 3, amqp.Table{"x-stream-offset": "first"})
	wantStrings(t, recvN(t, ds, 200), want...)
}

func TestStreamConsumeNeedsPrefetch(t *testing.T) {
	t.Parallel()
	f := setup(t)
	q := f.declareStream(f.channel(), "s")
	conn, ch := f.connChannel()
	_, err := ch.Consume(q, "", false, false, false, false, nil)
	wantChannelError(t, conn, ch, err, amqp.PreconditionFailed,
		"PRECONDITION_FAILED - consumer prefetch count is not set for 'queue '"+q+"' in vhost '/''")
	// A channel-wide (global) prefetch is not a consumer prefetch.
	conn, ch = f.connChannel()
	if err := ch.Qos(10, 0, true); err != nil {
		t.Fatal(err)
	}
	_, err = ch.Consume(q, "", false, false, false, false, nil)
	wantChannelError(t, conn, ch, err, amqp.PreconditionFailed,
		"PRECONDITION_FAILED - consumer prefetch count is not set for 'queue '"+q+"' in vhost '/''")
}

func TestStreamConsumeAutoAckRefused(t *testing.T) {
	t.Parallel()
	f := setup(t)
	q := f.declareStream(f.channel(), "s")
	conn, ch := f.connChannel()
	if err := ch.Qos(10, 0, false); err != nil {
		t.Fatal(err)
	}
	_, err := ch.Consume(q, "", true, false, false, false, nil)
	wantConnectionError(t, conn, err, amqp.NotImplemented,
		"NOT_IMPLEMENTED - automatic acknowledgement not supported by stream queues queue '"+q+"' in vhost '/'")
}

// A message routed through an exchange to a stream keeps its exchange,
// routing key and properties.
func TestStreamConsumeKeepsProperties(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ch := f.channel()
	q := f.declareStream(ch, "s")
	x := f.exchangeName("x")
	if err := ch.ExchangeDeclare(x, "direct", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(q, "k", x, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, x, "k", false, false, amqp.Publishing{
		Body: []byte("hi"), ContentType: "text/plain", CorrelationId: "c1", Priority: 3, DeliveryMode: 2,
		Headers: amqp.Table{"h": int32(7), "s": "v"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := dc.WaitContext(ctx); !ok || err != nil {
		t.Fatalf("confirm %v %v", ok, err)
	}
	_, ds := f.consume(q, 10, amqp.Table{"x-stream-offset": "first"})
	d := recv(t, ds)
	if d.Exchange != x || d.RoutingKey != "k" || string(d.Body) != "hi" || d.ContentType != "text/plain" || d.CorrelationId != "c1" || d.Priority != 3 || d.DeliveryMode != 2 {
		t.Fatalf("delivery %+v", d)
	}
	if d.Headers["h"] != int32(7) || d.Headers["s"] != "v" || d.Headers["x-stream-offset"] != int64(0) {
		t.Fatalf("headers %v", d.Headers)
	}
}
