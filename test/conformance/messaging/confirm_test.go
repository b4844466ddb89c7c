package messaging

import (
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

// confirmChannel opens a channel in confirm mode with a confirmation and a
// return listener, both buffered so the client never blocks on them.
func confirmChannel(t *testing.T, conn *amqp.Connection) (*amqp.Channel, chan amqp.Confirmation, chan amqp.Return) {
	t.Helper()
	ch := openChannel(t, conn)
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, 1000))
	returns := ch.NotifyReturn(make(chan amqp.Return, 100))
	if err := ch.Confirm(false); err != nil {
		t.Fatalf("confirm.select: %v", err)
	}
	return ch, confirms, returns
}

// TestConfirmAcksInOrder: every publish is acked, tags count from 1 in
// publish order (amqp091-go expands multiple acks into single ones, in
// order, so this also checks that multiple acks cover exactly what was sent).
func TestConfirmAcksInOrder(t *testing.T) {
	t.Parallel()
	conn := dial(t)
	ch, confirms, _ := confirmChannel(t, conn)
	q := declareQueue(t, ch, nil)
	const n = 500
	publishBodies(t, ch, q, numbered("m", n)...)
	for i := range n {
		c := nextConfirm(t, confirms)
		if c.DeliveryTag != uint64(i+1) || !c.Ack {
			t.Fatalf("confirm %d: tag %d ack %v, want tag %d ack", i, c.DeliveryTag, c.Ack, i+1)
		}
	}
	waitReady(t, conn, q, n)
}

// TestConfirmSelectIdempotent: confirm.select on a channel already in
// confirm mode is allowed and does not restart the tag sequence.
func TestConfirmSelectIdempotent(t *testing.T) {
	t.Parallel()
	conn := dial(t)
	ch, confirms, _ := confirmChannel(t, conn)
	q := declareQueue(t, ch, nil)
	publishBodies(t, ch, q, "a")
	if c := nextConfirm(t, confirms); c.DeliveryTag != 1 || !c.Ack {
		t.Fatalf("first confirm %+v", c)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatalf("second confirm.select: %v", err)
	}
	publishBodies(t, ch, q, "b")
	if c := nextConfirm(t, confirms); c.DeliveryTag != 2 || !c.Ack {
		t.Fatalf("confirm after second select %+v, want tag 2", c)
	}
}

// TestConfirmUnroutableAcked: a message routed nowhere is still confirmed.
func TestConfirmUnroutableAcked(t *testing.T) {
	t.Parallel()
	conn := dial(t)
	ch, confirms, returns := confirmChannel(t, conn)
	publish(t, ch, "amq.direct", uniqueName(t, "key"), amqp.Publishing{Body: []byte("x")})
	if c := nextConfirm(t, confirms); c.DeliveryTag != 1 || !c.Ack {
		t.Fatalf("confirm %+v, want ack of tag 1", c)
	}
	expectNoReturn(t, returns)
}

// TestConfirmMandatoryReturnBeforeAck: for an unroutable mandatory message
// the broker sends basic.return first and the ack after it. amqp091-go hands
// both over from its single reader goroutine in arrival order, so once the
// ack is seen the return must already be waiting.
func TestConfirmMandatoryReturnBeforeAck(t *testing.T) {
	t.Parallel()
	conn := dial(t)
	ch, confirms, returns := confirmChannel(t, conn)
	key := uniqueName(t, "key")
	for i := range 3 {
		if err := ch.Publish("amq.direct", key, true, false, amqp.Publishing{Body: []byte{byte('a' + i)}}); err != nil {
			t.Fatal(err)
		}
		c := nextConfirm(t, confirms)
		if c.DeliveryTag != uint64(i+1) || !c.Ack {
			t.Fatalf("confirm %+v, want ack of tag %d", c, i+1)
		}
		select {
		case r := <-returns:
			if r.ReplyCode != 312 || r.ReplyText != "NO_ROUTE" || string(r.Body) != string(rune('a'+i)) {
				t.Fatalf("return %d %q %q", r.ReplyCode, r.ReplyText, r.Body)
			}
		default:
			t.Fatalf("ack of tag %d arrived before its basic.return", i+1)
		}
	}
}

// TestConfirmNackRejectPublish: a queue with x-overflow=reject-publish that
// is full makes the broker nack the publish; the message is not enqueued.
func TestConfirmNackRejectPublish(t *testing.T) {
	t.Parallel()
	conn := dial(t)
	ch, confirms, _ := confirmChannel(t, conn)
	q := declareQueue(t, ch, amqp.Table{"x-max-length": int32(1), "x-overflow": "reject-publish"})
	publishBodies(t, ch, q, "kept", "rejected", "rejected too")
	want := []bool{true, false, false}
	for i, ack := range want {
		c := nextConfirm(t, confirms)
		if c.DeliveryTag != uint64(i+1) || c.Ack != ack {
			t.Fatalf("confirm %d: tag %d ack %v, want tag %d ack %v", i, c.DeliveryTag, c.Ack, i+1, ack)
		}
	}
	equalStrings(t, "queue", bodies(drain(t, conn, q, 1)), []string{"kept"})
	// Room again: the next publish is acked.
	publishBodies(t, ch, q, "after drain")
	if c := nextConfirm(t, confirms); c.DeliveryTag != 4 || !c.Ack {
		t.Fatalf("confirm after drain %+v, want ack of tag 4", c)
	}
}

// TestConfirmNackOnlyForFullQueue: routed to two queues, one of which rejects:
// the publisher gets a nack even though the other queue took the message.
func TestConfirmNackOnlyForFullQueue(t *testing.T) {
	t.Parallel()
	conn := dial(t)
	ch, confirms, _ := confirmChannel(t, conn)
	ex := uniqueName(t, "fan")
	if err := ch.ExchangeDeclare(ex, "fanout", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	cleanupExchange(t, ex)
	full := declareQueue(t, ch, amqp.Table{"x-max-length": int32(0), "x-overflow": "reject-publish"})
	open := declareQueue(t, ch, nil)
	for _, q := range []string{full, open} {
		if err := ch.QueueBind(q, "", ex, false, nil); err != nil {
			t.Fatal(err)
		}
	}
	publish(t, ch, ex, "", amqp.Publishing{Body: []byte("x")})
	if c := nextConfirm(t, confirms); c.DeliveryTag != 1 || c.Ack {
		t.Fatalf("confirm %+v, want nack of tag 1", c)
	}
	waitReady(t, conn, open, 1)
}

// TestConfirmTxOnConfirmChannel: a channel in confirm mode cannot become
// transactional.
func TestConfirmTxOnConfirmChannel(t *testing.T) {
	t.Parallel()
	conn := dial(t)
	ch, _, _ := confirmChannel(t, conn)
	err := ch.Tx()
	expectError(t, err, 406, "PRECONDITION_FAILED - cannot switch from confirm to tx mode")
}

// TestConfirmOnTxChannel: and a transactional channel cannot enter confirm
// mode.
func TestConfirmOnTxChannel(t *testing.T) {
	t.Parallel()
	_, ch := dialChannel(t)
	if err := ch.Tx(); err != nil {
		t.Fatal(err)
	}
	err := ch.Confirm(false)
	expectError(t, err, 406, "PRECONDITION_FAILED - cannot switch from tx to confirm mode")
}

// TestConfirmPublishMissingExchange: publishing to a missing exchange closes
// the channel with 404 rather than nacking.
func TestConfirmPublishMissingExchange(t *testing.T) {
	t.Parallel()
	conn := dial(t)
	ch, confirms, _ := confirmChannel(t, conn)
	closes := notifyChannelClose(ch)
	name := uniqueName(t, "nox")
	publish(t, ch, name, "", amqp.Publishing{Body: []byte("x")})
	expectClosed(t, closes, 404, "NOT_FOUND - no exchange '"+name+"' in vhost '/'")
	// amqp091-go closes the confirm listener on channel close; what matters
	// is that no ack or nack was delivered for tag 1 before that.
	for c := range confirms {
		t.Fatalf("got confirm %+v for a publish that closed the channel", c)
	}
}

// TestConfirmPersistentDurable: persistent messages to a durable queue are
// confirmed too (after being written); the queue holds them.
func TestConfirmPersistentDurable(t *testing.T) {
	t.Parallel()
	conn := dial(t)
	ch, confirms, _ := confirmChannel(t, conn)
	q := uniqueName(t, "durable")
	if _, err := ch.QueueDeclare(q, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	cleanupQueue(t, q)
	for i := range 20 {
		publish(t, ch, "", q, amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte{byte(i)}})
	}
	for i := range 20 {
		if c := nextConfirm(t, confirms); c.DeliveryTag != uint64(i+1) || !c.Ack {
			t.Fatalf("confirm %+v, want ack of tag %d", c, i+1)
		}
	}
	waitReady(t, conn, q, 20)
}
