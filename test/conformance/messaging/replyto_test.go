package messaging

import (
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

// replyTo is the pseudo-queue of RabbitMQ's direct reply-to.
const replyTo = "amq.rabbitmq.reply-to"

// requestSeenByServer publishes a request with reply_to set to the pseudo
// queue on req and returns it as a server fetching from queue sees it.
func requestSeenByServer(t *testing.T, conn *amqp.Connection, req *amqp.Channel, queue string) amqp.Delivery {
	t.Helper()
	publish(t, req, "", queue, amqp.Publishing{ReplyTo: replyTo, CorrelationId: "corr-7", Body: []byte("ping")})
	waitReady(t, conn, queue, 1)
	srv := openChannel(t, conn)
	d, ok, err := srv.Get(queue, true)
	if err != nil || !ok {
		t.Fatalf("server get: ok %v err %v", ok, err)
	}
	return d
}

// TestDirectReplyToRoundTrip: the broker rewrites reply_to to a routable
// "amq.rabbitmq.reply-to.<opaque>" name; a reply published to that name
// through the default exchange reaches the requester's no-ack consumer,
// with the requester's consumer tag and its own delivery tag.
func TestDirectReplyToRoundTrip(t *testing.T) {
	t.Parallel()
	conn, ch := dialChannel(t)
	q := declareQueue(t, ch, nil)
	req := openChannel(t, dial(t))
	replies, err := req.Consume(replyTo, "requester", true, false, false, false, nil)
	if err != nil {
		t.Fatalf("consume %s: %v", replyTo, err)
	}
	d := requestSeenByServer(t, conn, req, q)
	if !strings.HasPrefix(d.ReplyTo, replyTo+".") || len(d.ReplyTo) <= len(replyTo)+1 {
		t.Fatalf("server saw reply_to %q, want %q followed by an opaque suffix", d.ReplyTo, replyTo+".")
	}
	if d.CorrelationId != "corr-7" || string(d.Body) != "ping" {
		t.Fatalf("request altered: %+v", d)
	}
	srv := openChannel(t, conn)
	publish(t, srv, "", d.ReplyTo, amqp.Publishing{CorrelationId: d.CorrelationId, Body: []byte("pong")})
	r := next(t, replies)
	if string(r.Body) != "pong" || r.CorrelationId != "corr-7" || r.Exchange != "" || r.RoutingKey != d.ReplyTo ||
		r.ConsumerTag != "requester" || r.DeliveryTag != 1 || r.Redelivered {
		t.Fatalf("reply: body %q corr %q exchange %q key %q ctag %q tag %d redelivered %v",
			r.Body, r.CorrelationId, r.Exchange, r.RoutingKey, r.ConsumerTag, r.DeliveryTag, r.Redelivered)
	}
}

// TestDirectReplyToPassiveDeclare: the rewritten name passively declares as
// an empty queue with one consumer while the requester is there; an invented
// suffix is 404.
func TestDirectReplyToPassiveDeclare(t *testing.T) {
	t.Parallel()
	conn, ch := dialChannel(t)
	q := declareQueue(t, ch, nil)
	req := openChannel(t, conn)
	if _, err := req.Consume(replyTo, "", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	d := requestSeenByServer(t, conn, req, q)
	got, err := openChannel(t, conn).QueueDeclarePassive(d.ReplyTo, false, false, false, false, nil)
	if err != nil || got.Name != d.ReplyTo || got.Messages != 0 || got.Consumers != 1 {
		t.Fatalf("passive declare of %q: %+v %v; want 0 messages 1 consumer", d.ReplyTo, got, err)
	}
	_, err = openChannel(t, conn).QueueDeclarePassive(replyTo+".bogus", false, false, false, false, nil)
	expectError(t, err, 404, "NOT_FOUND - no queue 'amq.rabbitmq.reply-to.bogus' in vhost '/'")
}

// TestDirectReplyToBogusNameReturned: a reply to a name that is no live
// requester is unroutable: returned as NO_ROUTE when mandatory.
func TestDirectReplyToBogusNameReturned(t *testing.T) {
	t.Parallel()
	_, ch := dialChannel(t)
	returns := ch.NotifyReturn(make(chan amqp.Return, 1))
	if err := ch.Publish("", replyTo+".bogus", true, false, amqp.Publishing{Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	r := nextReturn(t, returns)
	if r.ReplyCode != 312 || r.ReplyText != "NO_ROUTE" || r.RoutingKey != replyTo+".bogus" {
		t.Fatalf("return %d %q %q", r.ReplyCode, r.ReplyText, r.RoutingKey)
	}
}

// TestDirectReplyToWithoutConsumer: publishing with reply_to set to the
// pseudo queue on a channel that does not consume from it closes the channel.
func TestDirectReplyToWithoutConsumer(t *testing.T) {
	t.Parallel()
	_, ch := dialChannel(t)
	q := declareQueue(t, ch, nil)
	closes := notifyChannelClose(ch)
	publish(t, ch, "", q, amqp.Publishing{ReplyTo: replyTo, Body: []byte("ping")})
	expectClosed(t, closes, 406, "PRECONDITION_FAILED - fast reply consumer does not exist")
}

// TestDirectReplyToAfterCancel: once the reply consumer is cancelled the
// channel may no longer ask for replies.
func TestDirectReplyToAfterCancel(t *testing.T) {
	t.Parallel()
	_, ch := dialChannel(t)
	q := declareQueue(t, ch, nil)
	if _, err := ch.Consume(replyTo, "r", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.Cancel("r", false); err != nil {
		t.Fatal(err)
	}
	closes := notifyChannelClose(ch)
	publish(t, ch, "", q, amqp.Publishing{ReplyTo: replyTo, Body: []byte("ping")})
	expectClosed(t, closes, 406, "PRECONDITION_FAILED - fast reply consumer does not exist")
}

// TestDirectReplyToOtherChannel: the reply consumer belongs to its channel;
// a request from another channel of the same connection is refused.
func TestDirectReplyToOtherChannel(t *testing.T) {
	t.Parallel()
	conn, ch := dialChannel(t)
	q := declareQueue(t, ch, nil)
	if _, err := ch.Consume(replyTo, "", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	other := openChannel(t, conn)
	closes := notifyChannelClose(other)
	publish(t, other, "", q, amqp.Publishing{ReplyTo: replyTo, Body: []byte("ping")})
	expectClosed(t, closes, 406, "PRECONDITION_FAILED - fast reply consumer does not exist")
}

// TestDirectReplyToSuffixedReplyToUntouched: a reply_to that merely starts
// with the pseudo-queue name is passed through unchanged and unchecked.
func TestDirectReplyToSuffixedReplyToUntouched(t *testing.T) {
	t.Parallel()
	conn, ch := dialChannel(t)
	q := declareQueue(t, ch, nil)
	publish(t, ch, "", q, amqp.Publishing{ReplyTo: replyTo + ".foo", Body: []byte("ping")})
	waitReady(t, conn, q, 1)
	d, _, err := ch.Get(q, true)
	if err != nil || d.ReplyTo != replyTo+".foo" {
		t.Fatalf("reply_to %q err %v, want it unchanged", d.ReplyTo, err)
	}
}

// TestDirectReplyToConsumeWithAck: the reply consumer must be no-ack.
func TestDirectReplyToConsumeWithAck(t *testing.T) {
	t.Parallel()
	_, ch := dialChannel(t)
	_, err := ch.Consume(replyTo, "", false, false, false, false, nil)
	expectError(t, err, 406, "PRECONDITION_FAILED - reply consumer cannot acknowledge")
}

// TestDirectReplyToSecondConsumer: one reply consumer per channel.
func TestDirectReplyToSecondConsumer(t *testing.T) {
	t.Parallel()
	_, ch := dialChannel(t)
	if _, err := ch.Consume(replyTo, "one", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	_, err := ch.Consume(replyTo, "two", true, false, false, false, nil)
	expectError(t, err, 406, "PRECONDITION_FAILED - reply consumer already set")
}

// TestDirectReplyToGet: the pseudo queue is not a queue for basic.get.
func TestDirectReplyToGet(t *testing.T) {
	t.Parallel()
	_, ch := dialChannel(t)
	_, _, err := ch.Get(replyTo, true)
	expectError(t, err, 404, "NOT_FOUND - no queue 'amq.rabbitmq.reply-to' in vhost '/'")
}
