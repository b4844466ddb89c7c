package messaging

import (
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

// TestBasicPublishInvalidExpiration: expiration must be a non-negative
// integer string; RabbitMQ closes the channel with 406 and its parser's
// reason in Erlang syntax. An empty expiration means none.
func TestBasicPublishInvalidExpiration(t *testing.T) {
	t.Parallel()
	for exp, text := range map[string]string{
		"abc": "PRECONDITION_FAILED - invalid expiration 'abc': no_integer",
		"-1":  "PRECONDITION_FAILED - invalid expiration '-1': {value_negative,-1}",
		"1.5": `PRECONDITION_FAILED - invalid expiration '1.5': {leftover_string,".5"}`,
	} {
		t.Run(exp, func(t *testing.T) {
			t.Parallel()
			_, ch := dialChannel(t)
			q := declareQueue(t, ch, nil)
			closes := notifyChannelClose(ch)
			publish(t, ch, "", q, amqp.Publishing{Expiration: exp, Body: []byte("x")})
			expectClosed(t, closes, 406, text)
		})
	}
	t.Run("empty", func(t *testing.T) {
		t.Parallel()
		conn, ch := dialChannel(t)
		q := declareQueue(t, ch, nil)
		publish(t, ch, "", q, amqp.Publishing{Expiration: "", Body: []byte("x")})
		waitReady(t, conn, q, 1)
	})
}

// TestBasicPublishInvalidDeliveryMode: only 1 and 2 (and absent) are known.
func TestBasicPublishInvalidDeliveryMode(t *testing.T) {
	t.Parallel()
	_, ch := dialChannel(t)
	q := declareQueue(t, ch, nil)
	closes := notifyChannelClose(ch)
	publish(t, ch, "", q, amqp.Publishing{DeliveryMode: 7, Body: []byte("x")})
	expectClosed(t, closes, 406, "PRECONDITION_FAILED - invalid message: {delivery_mode_unknown,7}")
}

// TestBasicPublishHighPriorityAccepted: priority is an octet; values above 9
// are not checked on publish.
func TestBasicPublishHighPriorityAccepted(t *testing.T) {
	t.Parallel()
	conn, ch := dialChannel(t)
	q := declareQueue(t, ch, nil)
	publish(t, ch, "", q, amqp.Publishing{Priority: 200, Body: []byte("x")})
	waitReady(t, conn, q, 1)
	d, _, err := ch.Get(q, true)
	if err != nil || d.Priority != 200 {
		t.Fatalf("priority %d err %v, want 200", d.Priority, err)
	}
}

// TestBasicPublishInternalExchange: internal exchanges only take messages
// from exchange-to-exchange bindings.
func TestBasicPublishInternalExchange(t *testing.T) {
	t.Parallel()
	_, ch := dialChannel(t)
	ex := uniqueName(t, "internal")
	if err := ch.ExchangeDeclare(ex, "fanout", false, false, true, false, nil); err != nil {
		t.Fatal(err)
	}
	cleanupExchange(t, ex)
	closes := notifyChannelClose(ch)
	publish(t, ch, ex, "", amqp.Publishing{Body: []byte("x")})
	expectClosed(t, closes, 403, "ACCESS_REFUSED - cannot publish to internal exchange '"+ex+"' in vhost '/'")
}

// TestBasicExclusiveQueueOfOtherConnection: another connection may publish
// to an exclusive queue but not consume from or get from it (405).
func TestBasicExclusiveQueueOfOtherConnection(t *testing.T) {
	t.Parallel()
	owner, ch := dialChannel(t)
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	text := "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '" + q.Name +
		"' in vhost '/'. It could be originally declared on another connection or the exclusive property value does not match that of the original declaration."
	other := dial(t)
	_, err = openChannel(t, other).Consume(q.Name, "", false, false, false, false, nil)
	expectError(t, err, 405, text)
	_, _, err = openChannel(t, other).Get(q.Name, false)
	expectError(t, err, 405, text)
	publish(t, openChannel(t, other), "", q.Name, amqp.Publishing{Body: []byte("from other")})
	waitReady(t, owner, q.Name, 1)
}
