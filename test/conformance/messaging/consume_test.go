package messaging

import (
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// TestBasicConsumeRoundRobin: messages published while two consumers are
// attached alternate between them, starting with the first one registered.
func TestBasicConsumeRoundRobin(t *testing.T) {
	t.Parallel()
	conn, ch := dialChannel(t)
	q := declareQueue(t, ch, nil)
	ch1, ch2 := openChannel(t, conn), openChannel(t, conn)
	ds1 := consume(t, ch1, q, "c1")
	ds2 := consume(t, ch2, q, "c2")
	publishBodies(t, ch, q, numbered("m", 6)...)
	equalStrings(t, "first consumer", bodies(nextN(t, ds1, 3)), []string{"m-1", "m-3", "m-5"})
	equalStrings(t, "second consumer", bodies(nextN(t, ds2, 3)), []string{"m-2", "m-4", "m-6"})
}

// TestBasicConsumeRoundRobinSameChannel: the same with both consumers on one
// channel; delivery tags are per channel and count up across consumers.
func TestBasicConsumeRoundRobinSameChannel(t *testing.T) {
	t.Parallel()
	conn, ch := dialChannel(t)
	q := declareQueue(t, ch, nil)
	cch := openChannel(t, conn)
	ds1 := consume(t, cch, q, "c1")
	ds2 := consume(t, cch, q, "c2")
	publishBodies(t, ch, q, numbered("m", 4)...)
	got1, got2 := nextN(t, ds1, 2), nextN(t, ds2, 2)
	equalStrings(t, "c1", bodies(got1), []string{"m-1", "m-3"})
	equalStrings(t, "c2", bodies(got2), []string{"m-2", "m-4"})
	for i, d := range append(got1, got2...) {
		want := []uint64{1, 3, 2, 4}[i]
		if d.DeliveryTag != want {
			t.Errorf("%s: delivery tag %d, want %d", d.Body, d.DeliveryTag, want)
		}
	}
}

func TestBasicConsumeExclusiveRefusesSecond(t *testing.T) {
	t.Parallel()
	conn, ch := dialChannel(t)
	q := declareQueue(t, ch, nil)
	if _, err := ch.Consume(q, "", false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	other := openChannel(t, conn)
	_, err := other.Consume(q, "", false, false, false, false, nil)
	expectError(t, err, 403, "ACCESS_REFUSED - queue '"+q+"' in vhost '/' in exclusive use")
	// The first channel is unaffected.
	if _, _, err := ch.Get(q, false); err != nil {
		t.Fatalf("first channel after refused consume: %v", err)
	}
}

// TestBasicConsumeExclusiveWhileOthersConsume: asking for exclusivity on a
// queue that already has a consumer is refused with the same text.
func TestBasicConsumeExclusiveWhileOthersConsume(t *testing.T) {
	t.Parallel()
	conn, ch := dialChannel(t)
	q := declareQueue(t, ch, nil)
	consume(t, ch, q, "")
	other := openChannel(t, conn)
	_, err := other.Consume(q, "", false, true, false, false, nil)
	expectError(t, err, 403, "ACCESS_REFUSED - queue '"+q+"' in vhost '/' in exclusive use")
}

// TestBasicConsumeExclusiveSameChannel: exclusivity is per consumer, not per
// channel; a second consumer on the same channel is refused too.
func TestBasicConsumeExclusiveSameChannel(t *testing.T) {
	t.Parallel()
	_, ch := dialChannel(t)
	q := declareQueue(t, ch, nil)
	if _, err := ch.Consume(q, "one", false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	_, err := ch.Consume(q, "two", false, false, false, false, nil)
	expectError(t, err, 403, "ACCESS_REFUSED - queue '"+q+"' in vhost '/' in exclusive use")
}

// TestBasicConsumeDuplicateTag: 530 NOT_ALLOWED is a hard error, so the
// whole connection is closed, not just the channel.
func TestBasicConsumeDuplicateTag(t *testing.T) {
	t.Parallel()
	conn, ch := dialChannel(t)
	q := declareQueue(t, ch, nil)
	closes := notifyConnClose(conn)
	consume(t, ch, q, "dup")
	_, err := ch.Consume(q, "dup", false, false, false, false, nil)
	expectError(t, err, 530, "NOT_ALLOWED - attempt to reuse consumer tag 'dup'")
	expectClosed(t, closes, 530, "NOT_ALLOWED - attempt to reuse consumer tag 'dup'")
}

// TestBasicConsumeSameTagOtherChannel: tags are scoped to a channel.
func TestBasicConsumeSameTagOtherChannel(t *testing.T) {
	t.Parallel()
	conn, ch := dialChannel(t)
	q := declareQueue(t, ch, nil)
	consume(t, ch, q, "same")
	consume(t, openChannel(t, conn), q, "same")
	if _, n := queueCounts(t, conn, q); n != 2 {
		t.Fatalf("consumers %d, want 2", n)
	}
}

func TestBasicConsumeMissingQueue(t *testing.T) {
	t.Parallel()
	_, ch := dialChannel(t)
	name := uniqueName(t, "noq")
	_, err := ch.Consume(name, "", false, false, false, false, nil)
	expectError(t, err, 404, "NOT_FOUND - no queue '"+name+"' in vhost '/'")
}

// TestBasicCancelByServerOnQueueDelete: with consumer_cancel_notify the
// broker sends basic.cancel when the consumed queue is deleted.
func TestBasicCancelByServerOnQueueDelete(t *testing.T) {
	t.Parallel()
	conn, ch := dialChannel(t)
	q := declareQueue(t, ch, nil)
	cancels := ch.NotifyCancel(make(chan string, 1))
	ds := consume(t, ch, q, "watched")
	admin := openChannel(t, conn)
	if _, err := admin.QueueDelete(q, false, false, false); err != nil {
		t.Fatal(err)
	}
	select {
	case tag := <-cancels:
		if tag != "watched" {
			t.Fatalf("cancelled tag %q, want \"watched\"", tag)
		}
	case <-time.After(waitTimeout):
		t.Fatal("no basic.cancel from the server")
	}
	select {
	case _, ok := <-ds:
		if ok {
			t.Fatal("delivery after cancel")
		}
	case <-time.After(waitTimeout):
		t.Fatal("delivery channel not closed after cancel")
	}
	// The channel stays open.
	if _, err := ch.QueueDeclare("", false, true, true, false, nil); err != nil {
		t.Fatalf("channel after server cancel: %v", err)
	}
}

// TestBasicCancelStopsDeliveries: after basic.cancel-ok nothing more is
// delivered to that consumer and the queue keeps new messages.
func TestBasicCancelStopsDeliveries(t *testing.T) {
	t.Parallel()
	conn, ch := dialChannel(t)
	q := declareQueue(t, ch, nil)
	ds := consume(t, ch, q, "c")
	publishBodies(t, ch, q, "before")
	next(t, ds).Ack(false)
	if err := ch.Cancel("c", false); err != nil {
		t.Fatal(err)
	}
	publishBodies(t, ch, q, "after")
	waitReady(t, conn, q, 1)
	if _, n := queueCounts(t, conn, q); n != 0 {
		t.Fatalf("consumers after cancel: %d", n)
	}
}

// TestBasicCancelUnknownTag: cancelling a tag that does not exist is not an
// error in RabbitMQ; cancel-ok comes back.
func TestBasicCancelUnknownTag(t *testing.T) {
	t.Parallel()
	_, ch := dialChannel(t)
	if err := ch.Cancel("never-existed", false); err != nil {
		t.Fatalf("cancel unknown tag: %v", err)
	}
	if _, err := ch.QueueDeclare("", false, true, true, false, nil); err != nil {
		t.Fatalf("channel after cancel: %v", err)
	}
}

func TestBasicGetEmptyAndMessageCount(t *testing.T) {
	t.Parallel()
	conn, ch := dialChannel(t)
	q := declareQueue(t, ch, nil)
	if _, ok, err := ch.Get(q, false); err != nil || ok {
		t.Fatalf("get on empty queue: ok %v err %v, want get-empty", ok, err)
	}
	publishBodies(t, ch, q, "a", "b", "c")
	waitReady(t, conn, q, 3)
	for i, want := range []struct {
		body  string
		count uint32
	}{{"a", 2}, {"b", 1}, {"c", 0}} {
		d, ok, err := ch.Get(q, false)
		if err != nil || !ok {
			t.Fatalf("get %d: ok %v err %v", i, ok, err)
		}
		if string(d.Body) != want.body || d.MessageCount != want.count || d.DeliveryTag != uint64(i+1) || d.Redelivered {
			t.Fatalf("get %d: body %q count %d tag %d redelivered %v; want %q %d %d false",
				i, d.Body, d.MessageCount, d.DeliveryTag, d.Redelivered, want.body, want.count, i+1)
		}
	}
	if _, ok, err := ch.Get(q, false); err != nil || ok {
		t.Fatalf("get after draining: ok %v err %v, want get-empty", ok, err)
	}
	// The three unacked gets come back on channel close, in order, redelivered.
	if err := ch.Close(); err != nil {
		t.Fatal(err)
	}
	waitReady(t, conn, q, 3)
	ch2 := openChannel(t, conn)
	for _, want := range []string{"a", "b", "c"} {
		d, ok, err := ch2.Get(q, true)
		if err != nil || !ok || string(d.Body) != want || !d.Redelivered {
			t.Fatalf("get after requeue: %q redelivered %v ok %v err %v; want %q redelivered", d.Body, d.Redelivered, ok, err, want)
		}
	}
}

func TestBasicGetMissingQueue(t *testing.T) {
	t.Parallel()
	_, ch := dialChannel(t)
	name := uniqueName(t, "noq")
	_, _, err := ch.Get(name, false)
	expectError(t, err, 404, "NOT_FOUND - no queue '"+name+"' in vhost '/'")
}

// TestBasicGetWhileConsumerAttached: basic.get still works on a queue with a
// consumer; it takes what the consumer has not been sent.
func TestBasicGetWhileConsumerAttached(t *testing.T) {
	t.Parallel()
	conn, ch := dialChannel(t)
	q := declareQueue(t, ch, nil)
	cch := openChannel(t, conn)
	if err := cch.Qos(1, 0, false); err != nil {
		t.Fatal(err)
	}
	ds := consume(t, cch, q, "")
	publishBodies(t, ch, q, "one", "two")
	if d := next(t, ds); string(d.Body) != "one" {
		t.Fatalf("consumer got %q, want \"one\"", d.Body)
	}
	waitReady(t, conn, q, 1)
	d, ok, err := ch.Get(q, true)
	if err != nil || !ok || string(d.Body) != "two" || d.MessageCount != 0 {
		t.Fatalf("get: %q count %d ok %v err %v", d.Body, d.MessageCount, ok, err)
	}
}

// TestBasicConsumeNoAckRemovesMessages: with no-ack the broker forgets the
// message as soon as it is sent; closing the channel requeues nothing.
func TestBasicConsumeNoAckRemovesMessages(t *testing.T) {
	t.Parallel()
	conn, ch := dialChannel(t)
	q := declareQueue(t, ch, nil)
	publishBodies(t, ch, q, "a", "b")
	cch := openChannel(t, conn)
	ds, err := cch.Consume(q, "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	nextN(t, ds, 2)
	if err := cch.Close(); err != nil {
		t.Fatal(err)
	}
	publishBodies(t, ch, q, "sentinel")
	waitReady(t, conn, q, 1)
	d, _, err := ch.Get(q, true)
	if err != nil || string(d.Body) != "sentinel" {
		t.Fatalf("get: %q err %v, want the sentinel only", d.Body, err)
	}
}

// TestBasicConsumePriorityArgument: x-priority consumers get messages first
// (consumer_priorities capability), while they have credit.
func TestBasicConsumePriorityArgument(t *testing.T) {
	t.Parallel()
	conn, ch := dialChannel(t)
	q := declareQueue(t, ch, nil)
	low, high := openChannel(t, conn), openChannel(t, conn)
	dsLow := consume(t, low, q, "low")
	dsHigh, err := high.Consume(q, "high", false, false, false, false, amqp.Table{"x-priority": int32(10)})
	if err != nil {
		t.Fatal(err)
	}
	publishBodies(t, ch, q, "a", "b", "c")
	equalStrings(t, "high priority consumer", bodies(nextN(t, dsHigh, 3)), []string{"a", "b", "c"})
	// The low one gets only what is published after high stops taking.
	if err := high.Cancel("high", false); err != nil {
		t.Fatal(err)
	}
	publishBodies(t, ch, q, "d")
	if d := next(t, dsLow); string(d.Body) != "d" {
		t.Fatalf("low priority consumer got %q, want \"d\"", d.Body)
	}
}
