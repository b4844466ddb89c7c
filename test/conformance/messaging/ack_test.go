package messaging

import (
	"fmt"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

// drain consumes everything in queue with no-ack on a fresh channel and
// returns the bodies and redelivered flags, expecting exactly n messages.
func drain(t *testing.T, conn *amqp.Connection, queue string, n int) []amqp.Delivery {
	t.Helper()
	waitReady(t, conn, queue, n)
	ch := openChannel(t, conn)
	ds, err := ch.Consume(queue, "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := nextN(t, ds, n)
	if err := ch.Close(); err != nil {
		t.Fatal(err)
	}
	return got
}

// fill publishes n numbered messages and waits until they are all ready.
func fill(t *testing.T, conn *amqp.Connection, ch *amqp.Channel, q string, n int) []string {
	t.Helper()
	want := numbered("m", n)
	publishBodies(t, ch, q, want...)
	waitReady(t, conn, q, n)
	return want
}

func TestBasicAckSingle(t *testing.T) {
	t.Parallel()
	conn, ch := dialChannel(t)
	q := declareQueue(t, ch, nil)
	fill(t, conn, ch, q, 3)
	cch := openChannel(t, conn)
	got := nextN(t, consume(t, cch, q, ""), 3)
	if err := got[1].Ack(false); err != nil {
		t.Fatal(err)
	}
	if err := cch.Close(); err != nil {
		t.Fatal(err)
	}
	d := drain(t, conn, q, 2)
	equalStrings(t, "left after acking m-2", bodies(d), []string{"m-1", "m-3"})
	equalBools(t, "redelivered", redelivered(d), []bool{true, true})
}

func TestBasicAckMultiple(t *testing.T) {
	t.Parallel()
	conn, ch := dialChannel(t)
	q := declareQueue(t, ch, nil)
	fill(t, conn, ch, q, 5)
	cch := openChannel(t, conn)
	got := nextN(t, consume(t, cch, q, ""), 5)
	if err := got[2].Ack(true); err != nil { // tags 1..3
		t.Fatal(err)
	}
	if err := cch.Close(); err != nil {
		t.Fatal(err)
	}
	equalStrings(t, "left after ack multiple of tag 3", bodies(drain(t, conn, q, 2)), []string{"m-4", "m-5"})
}

// TestBasicAckMultipleZero: delivery tag 0 with multiple set means "all
// outstanding" in RabbitMQ.
func TestBasicAckMultipleZero(t *testing.T) {
	t.Parallel()
	conn, ch := dialChannel(t)
	q := declareQueue(t, ch, nil)
	fill(t, conn, ch, q, 3)
	cch := openChannel(t, conn)
	nextN(t, consume(t, cch, q, ""), 3)
	if err := cch.Ack(0, true); err != nil {
		t.Fatal(err)
	}
	if err := cch.Close(); err != nil {
		t.Fatal(err)
	}
	publishBodies(t, ch, q, "sentinel")
	equalStrings(t, "left after ack(0, multiple)", bodies(drain(t, conn, q, 1)), []string{"sentinel"})
}

// TestBasicAckErrors: every way of naming a delivery tag the channel does not
// hold closes the channel with 406 and the tag in the text.
func TestBasicAckErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		do   func(ch *amqp.Channel, got []amqp.Delivery) error
		text string
	}{
		{"ack unknown tag", func(ch *amqp.Channel, _ []amqp.Delivery) error { return ch.Ack(42, false) },
			"PRECONDITION_FAILED - unknown delivery tag 42"},
		{"ack multiple unknown tag", func(ch *amqp.Channel, _ []amqp.Delivery) error { return ch.Ack(42, true) },
			"PRECONDITION_FAILED - unknown delivery tag 42"},
		{"ack tag 0", func(ch *amqp.Channel, _ []amqp.Delivery) error { return ch.Ack(0, false) },
			"PRECONDITION_FAILED - unknown delivery tag 0"},
		{"ack twice", func(ch *amqp.Channel, got []amqp.Delivery) error {
			if err := got[0].Ack(false); err != nil {
				return err
			}
			return got[0].Ack(false)
		}, "PRECONDITION_FAILED - unknown delivery tag 1"},
		{"ack after multiple ack", func(ch *amqp.Channel, got []amqp.Delivery) error {
			if err := got[1].Ack(true); err != nil {
				return err
			}
			return got[0].Ack(false)
		}, "PRECONDITION_FAILED - unknown delivery tag 1"},
		{"nack unknown tag", func(ch *amqp.Channel, _ []amqp.Delivery) error { return ch.Nack(7, false, true) },
			"PRECONDITION_FAILED - unknown delivery tag 7"},
		{"reject unknown tag", func(ch *amqp.Channel, _ []amqp.Delivery) error { return ch.Reject(9, false) },
			"PRECONDITION_FAILED - unknown delivery tag 9"},
		{"reject after ack", func(ch *amqp.Channel, got []amqp.Delivery) error {
			if err := got[1].Ack(false); err != nil {
				return err
			}
			return got[1].Reject(true)
		}, "PRECONDITION_FAILED - unknown delivery tag 2"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			conn, ch := dialChannel(t)
			q := declareQueue(t, ch, nil)
			fill(t, conn, ch, q, 2)
			cch := openChannel(t, conn)
			closes := notifyChannelClose(cch)
			got := nextN(t, consume(t, cch, q, ""), 2)
			if err := c.do(cch, got); err != nil {
				t.Fatal(err)
			}
			expectClosed(t, closes, 406, c.text)
		})
	}
}

// TestBasicAckTagOfOtherChannel: delivery tags are per channel; acking on a
// different channel is an unknown tag there.
func TestBasicAckTagOfOtherChannel(t *testing.T) {
	t.Parallel()
	conn, ch := dialChannel(t)
	q := declareQueue(t, ch, nil)
	fill(t, conn, ch, q, 1)
	d, ok, err := ch.Get(q, false)
	if err != nil || !ok {
		t.Fatalf("get: %v %v", ok, err)
	}
	other := openChannel(t, conn)
	closes := notifyChannelClose(other)
	if err := other.Ack(d.DeliveryTag, false); err != nil {
		t.Fatal(err)
	}
	expectClosed(t, closes, 406, fmt.Sprintf("PRECONDITION_FAILED - unknown delivery tag %d", d.DeliveryTag))
}

// TestBasicAckOnNoAckConsumer: deliveries to a no-ack consumer still carry
// tags, but acking them is an unknown tag.
func TestBasicAckOnNoAckConsumer(t *testing.T) {
	t.Parallel()
	conn, ch := dialChannel(t)
	q := declareQueue(t, ch, nil)
	fill(t, conn, ch, q, 1)
	closes := notifyChannelClose(ch)
	ds, err := ch.Consume(q, "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	d := next(t, ds)
	if d.DeliveryTag != 1 {
		t.Fatalf("no-ack delivery tag %d, want 1", d.DeliveryTag)
	}
	if err := ch.Ack(1, false); err != nil {
		t.Fatal(err)
	}
	expectClosed(t, closes, 406, "PRECONDITION_FAILED - unknown delivery tag 1")
}

func TestBasicNackRequeueMultiple(t *testing.T) {
	t.Parallel()
	conn, ch := dialChannel(t)
	q := declareQueue(t, ch, nil)
	fill(t, conn, ch, q, 4)
	cch := openChannel(t, conn)
	got := nextN(t, consume(t, cch, q, "c"), 4)
	if err := cch.Cancel("c", false); err != nil {
		t.Fatal(err)
	}
	if err := got[2].Nack(true, true); err != nil { // tags 1..3 back
		t.Fatal(err)
	}
	waitReady(t, conn, q, 3)
	if err := got[3].Ack(false); err != nil {
		t.Fatal(err)
	}
	d := drain(t, conn, q, 3)
	equalStrings(t, "requeued by nack", bodies(d), []string{"m-1", "m-2", "m-3"})
	equalBools(t, "redelivered", redelivered(d), []bool{true, true, true})
}

func TestBasicNackDiscard(t *testing.T) {
	t.Parallel()
	conn, ch := dialChannel(t)
	q := declareQueue(t, ch, nil)
	fill(t, conn, ch, q, 3)
	cch := openChannel(t, conn)
	got := nextN(t, consume(t, cch, q, ""), 3)
	if err := got[1].Nack(true, false); err != nil { // tags 1..2 dropped
		t.Fatal(err)
	}
	if err := cch.Close(); err != nil {
		t.Fatal(err)
	}
	equalStrings(t, "left after nack discard", bodies(drain(t, conn, q, 1)), []string{"m-3"})
}

func TestBasicRejectRequeue(t *testing.T) {
	t.Parallel()
	conn, ch := dialChannel(t)
	q := declareQueue(t, ch, nil)
	fill(t, conn, ch, q, 3)
	d, _, err := ch.Get(q, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Reject(true); err != nil {
		t.Fatal(err)
	}
	waitReady(t, conn, q, 3)
	// Requeued to its original place: the head.
	again, ok, err := ch.Get(q, true)
	if err != nil || !ok || string(again.Body) != "m-1" || !again.Redelivered || again.DeliveryTag != 2 {
		t.Fatalf("after reject: %q redelivered %v tag %d; want m-1 redelivered tag 2", again.Body, again.Redelivered, again.DeliveryTag)
	}
	rest, _, err := ch.Get(q, true)
	if err != nil || string(rest.Body) != "m-2" || rest.Redelivered {
		t.Fatalf("next: %q redelivered %v; want m-2 fresh", rest.Body, rest.Redelivered)
	}
}

func TestBasicRejectDiscard(t *testing.T) {
	t.Parallel()
	conn, ch := dialChannel(t)
	q := declareQueue(t, ch, nil)
	fill(t, conn, ch, q, 2)
	d, _, err := ch.Get(q, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Reject(false); err != nil {
		t.Fatal(err)
	}
	equalStrings(t, "left", bodies(drain(t, conn, q, 1)), []string{"m-2"})
}

// TestBasicRequeueOnChannelClose: unacked deliveries go back in their
// original positions, ahead of messages never delivered, flagged redelivered.
func TestBasicRequeueOnChannelClose(t *testing.T) {
	t.Parallel()
	conn, ch := dialChannel(t)
	q := declareQueue(t, ch, nil)
	want := fill(t, conn, ch, q, 6)
	cch := openChannel(t, conn)
	if err := cch.Qos(3, 0, false); err != nil {
		t.Fatal(err)
	}
	nextN(t, consume(t, cch, q, ""), 3)
	waitReady(t, conn, q, 3)
	if err := cch.Close(); err != nil {
		t.Fatal(err)
	}
	d := drain(t, conn, q, 6)
	equalStrings(t, "order after requeue", bodies(d), want)
	equalBools(t, "redelivered", redelivered(d), []bool{true, true, true, false, false, false})
}

// TestBasicRequeueOnConnectionClose: the same when the consuming connection
// closes.
func TestBasicRequeueOnConnectionClose(t *testing.T) {
	t.Parallel()
	conn, ch := dialChannel(t)
	q := declareQueue(t, ch, nil)
	want := fill(t, conn, ch, q, 4)
	cconn := dial(t)
	cch := openChannel(t, cconn)
	if err := cch.Qos(2, 0, false); err != nil {
		t.Fatal(err)
	}
	nextN(t, consume(t, cch, q, ""), 2)
	waitReady(t, conn, q, 2)
	if err := cconn.Close(); err != nil {
		t.Fatal(err)
	}
	d := drain(t, conn, q, 4)
	equalStrings(t, "order after requeue", bodies(d), want)
	equalBools(t, "redelivered", redelivered(d), []bool{true, true, false, false})
}

// TestBasicRequeueSeveralConsumersOriginalOrder: two consumers hold
// interleaved messages; closing them in reverse order still restores the
// exact publish order, because requeued messages return to their original
// positions rather than to the tail.
func TestBasicRequeueSeveralConsumersOriginalOrder(t *testing.T) {
	t.Parallel()
	conn, ch := dialChannel(t)
	q := declareQueue(t, ch, nil)
	chA, chB := openChannel(t, conn), openChannel(t, conn)
	for _, c := range []*amqp.Channel{chA, chB} {
		if err := c.Qos(3, 0, false); err != nil {
			t.Fatal(err)
		}
	}
	dsA, dsB := consume(t, chA, q, "A"), consume(t, chB, q, "B")
	want := numbered("m", 10)
	publishBodies(t, ch, q, want...)
	equalStrings(t, "A", bodies(nextN(t, dsA, 3)), []string{"m-1", "m-3", "m-5"})
	equalStrings(t, "B", bodies(nextN(t, dsB, 3)), []string{"m-2", "m-4", "m-6"})
	waitReady(t, conn, q, 4)
	if err := chB.Close(); err != nil {
		t.Fatal(err)
	}
	// A has no credit left, so B's messages wait in the queue.
	waitReady(t, conn, q, 7)
	if err := chA.Close(); err != nil {
		t.Fatal(err)
	}
	d := drain(t, conn, q, 10)
	equalStrings(t, "order after requeue", bodies(d), want)
	equalBools(t, "redelivered", redelivered(d), append(repeatBool(true, 6), repeatBool(false, 4)...))
}

// TestBasicCancelKeepsUnacked: basic.cancel does NOT requeue what the
// consumer holds; those deliveries stay unacked on the channel, can still be
// acked, and return to the queue only when the channel closes.
func TestBasicCancelKeepsUnacked(t *testing.T) {
	t.Parallel()
	conn, ch := dialChannel(t)
	q := declareQueue(t, ch, nil)
	want := fill(t, conn, ch, q, 4)
	cch := openChannel(t, conn)
	got := nextN(t, consume(t, cch, q, "c"), 4)
	if err := cch.Cancel("c", false); err != nil {
		t.Fatal(err)
	}
	// Still zero ready: cancel requeued nothing.
	if n, c := queueCounts(t, conn, q); n != 0 || c != 0 {
		t.Fatalf("after cancel: %d ready, %d consumers; want 0 and 0", n, c)
	}
	if err := got[1].Ack(false); err != nil {
		t.Fatal(err)
	}
	if err := cch.Close(); err != nil {
		t.Fatal(err)
	}
	d := drain(t, conn, q, 3)
	equalStrings(t, "order after close", bodies(d), []string{want[0], want[2], want[3]})
	equalBools(t, "redelivered", redelivered(d), []bool{true, true, true})
}

// TestBasicRedeliveredToOtherConsumer: a message nacked with requeue goes to
// another consumer with redelivered set and a tag from that consumer's channel.
func TestBasicRedeliveredToOtherConsumer(t *testing.T) {
	t.Parallel()
	conn, ch := dialChannel(t)
	q := declareQueue(t, ch, nil)
	fill(t, conn, ch, q, 2)
	first := openChannel(t, conn)
	if err := first.Qos(1, 0, false); err != nil {
		t.Fatal(err)
	}
	d := next(t, consume(t, first, q, "first"))
	if d.Redelivered {
		t.Fatal("first delivery flagged redelivered")
	}
	if err := first.Cancel("first", false); err != nil {
		t.Fatal(err)
	}
	second := openChannel(t, conn)
	if err := second.Qos(1, 0, false); err != nil {
		t.Fatal(err)
	}
	ds := consume(t, second, q, "second")
	if got := next(t, ds); string(got.Body) != "m-2" || got.Redelivered || got.DeliveryTag != 1 {
		t.Fatalf("second consumer first got %q redelivered %v tag %d", got.Body, got.Redelivered, got.DeliveryTag)
	} else if err := got.Ack(false); err != nil {
		t.Fatal(err)
	}
	if err := d.Nack(false, true); err != nil {
		t.Fatal(err)
	}
	again := next(t, ds)
	if string(again.Body) != "m-1" || !again.Redelivered || again.DeliveryTag != 2 {
		t.Fatalf("redelivery %q redelivered %v tag %d; want m-1 redelivered tag 2", again.Body, again.Redelivered, again.DeliveryTag)
	}
}

// TestBasicRecoverRequeue: basic.recover(requeue=true) puts every unacked
// delivery of the channel back, in order, flagged redelivered.
func TestBasicRecoverRequeue(t *testing.T) {
	t.Parallel()
	conn, ch := dialChannel(t)
	q := declareQueue(t, ch, nil)
	want := fill(t, conn, ch, q, 3)
	cch := openChannel(t, conn)
	ds := consume(t, cch, q, "")
	first := nextN(t, ds, 3)
	equalBools(t, "first redelivered", redelivered(first), []bool{false, false, false})
	//lint:ignore SA1019 basic.recover is what this test checks: RabbitMQ still implements it
	if err := cch.Recover(true); err != nil {
		t.Fatal(err)
	}
	again := nextN(t, ds, 3)
	equalStrings(t, "after recover", bodies(again), want)
	equalBools(t, "redelivered", redelivered(again), []bool{true, true, true})
	for i, d := range again {
		if d.DeliveryTag != uint64(4+i) {
			t.Errorf("redelivery %d tag %d, want %d", i, d.DeliveryTag, 4+i)
		}
	}
}

// TestBasicRecoverNoRequeueNotImplemented: RabbitMQ does not implement
// basic.recover with requeue=false; 540 is a hard error, so the connection
// goes.
func TestBasicRecoverNoRequeueNotImplemented(t *testing.T) {
	t.Parallel()
	conn, ch := dialChannel(t)
	closes := notifyConnClose(conn)
	//lint:ignore SA1019 basic.recover is what this test checks
	err := ch.Recover(false)
	expectError(t, err, 540, "NOT_IMPLEMENTED - requeue=false")
	expectClosed(t, closes, 540, "NOT_IMPLEMENTED - requeue=false")
}
