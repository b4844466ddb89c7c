package entities

import (
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warren-mq/warren/internal/testbroker"
)

// Quorum and stream queues are what RabbitMQ 3.10 does with x-queue-type; these tests
// record it so Warren's choice (support or refuse) is visible against the reference.

func quorumArgs() amqp.Table { return amqp.Table{"x-queue-type": "quorum"} }

func TestQueueTypeQuorum(t *testing.T) {
	t.Parallel()
	onlyRabbitMQ(t)
	f := setup(t)
	conn, ch := f.connChannel()
	q := f.queueName("qq")
	qi, err := ch.QueueDeclare(q, true, false, false, false, quorumArgs())
	if err != nil {
		t.Fatalf("declare quorum queue: %v", err)
	}
	if qi.Name != q || qi.Messages != 0 || qi.Consumers != 0 {
		t.Fatalf("declare-ok %q %d %d", qi.Name, qi.Messages, qi.Consumers)
	}
	publishBody(t, ch, "", q, "m")
	wantDrain(t, ch, q, "m")
	if _, err := ch.QueueDeclare(q, true, false, false, false, quorumArgs()); err != nil {
		t.Fatalf("equivalent redeclare: %v", err)
	}
	_, err = ch.QueueDeclare(q, true, false, false, false, amqp.Table{"x-queue-type": "classic"})
	wantChannelError(t, conn, ch, err, amqp.PreconditionFailed,
		"PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue '"+q+"' in vhost '/': received 'classic' but current is 'quorum'")
}

// Unlike a classic queue declared with an explicit type, a quorum queue cannot be
// redeclared without naming its type.
func TestQueueTypeQuorumRedeclareWithoutType(t *testing.T) {
	t.Parallel()
	onlyRabbitMQ(t)
	f := setup(t)
	conn, ch := f.connChannel()
	q := f.queueName("qq")
	if _, err := ch.QueueDeclare(q, true, false, false, false, quorumArgs()); err != nil {
		t.Fatalf("declare quorum queue: %v", err)
	}
	_, err := ch.QueueDeclare(q, true, false, false, false, nil)
	wantChannelError(t, conn, ch, err, amqp.PreconditionFailed,
		"PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue '"+q+"' in vhost '/': received none but current is the value 'quorum' of type 'longstr'")
}

func TestQueueTypeQuorumRefusesProperties(t *testing.T) {
	t.Parallel()
	onlyRabbitMQ(t)
	for _, tc := range []struct {
		name                           string
		durable, autoDelete, exclusive bool
		property                       string
	}{
		{"NonDurable", false, false, false, "non-durable"},
		{"Exclusive", true, false, true, "exclusive-owner"},
		{"AutoDelete", true, true, false, "auto-delete"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t)
			conn, ch := f.connChannel()
			q := f.queueName("qq")
			_, err := ch.QueueDeclare(q, tc.durable, tc.autoDelete, tc.exclusive, false, quorumArgs())
			wantChannelError(t, conn, ch, err, amqp.PreconditionFailed,
				"PRECONDITION_FAILED - invalid property '"+tc.property+"' for queue '"+q+"' in vhost '/'")
		})
	}
}

func TestQueueTypeUnknown(t *testing.T) {
	t.Parallel()
	f := setup(t)
	conn, ch := f.connChannel()
	q := f.queueName("q")
	_, err := ch.QueueDeclare(q, true, false, false, false, amqp.Table{"x-queue-type": "foo"})
	wantChannelError(t, conn, ch, err, amqp.PreconditionFailed,
		`PRECONDITION_FAILED - invalid arg 'x-queue-type' for queue '`+q+`' in vhost '/': "unsupported queue type 'foo'"`)
}

func streamQueue(t *testing.T, f *fixture, ch *amqp.Channel) string {
	t.Helper()
	q := f.queueName("stream")
	if _, err := ch.QueueDeclare(q, true, false, false, false, amqp.Table{"x-queue-type": "stream"}); err != nil {
		t.Fatalf("declare stream: %v", err)
	}
	return q
}

// A stream is read by consumers with a prefetch, from an offset; messages stay after
// they are read.
func TestQueueTypeStreamConsume(t *testing.T) {
	t.Parallel()
	onlyRabbitMQ(t)
	f := setup(t)
	ch := f.channel()
	q := streamQueue(t, f, ch)
	for _, b := range []string{"1", "2", "3"} {
		publishBody(t, ch, "", q, b)
	}
	for _, tag := range []string{"first-reader", "second-reader"} {
		cch := f.channel()
		if err := cch.Qos(10, 0, false); err != nil {
			t.Fatalf("qos: %v", err)
		}
		ds := consume(t, cch, q, tag, false, amqp.Table{"x-stream-offset": "first"})
		got := make([]string, 0, 3)
		for range 3 {
			d := recv(t, ds)
			got = append(got, string(d.Body))
			if err := d.Ack(false); err != nil {
				t.Fatalf("ack: %v", err)
			}
		}
		if !equalStrings(got, []string{"1", "2", "3"}) {
			t.Fatalf("%s read %q, want 1 2 3", tag, got)
		}
	}
}

func TestQueueTypeStreamConsumeNeedsPrefetch(t *testing.T) {
	t.Parallel()
	onlyRabbitMQ(t)
	f := setup(t)
	conn, ch := f.connChannel()
	q := streamQueue(t, f, ch)
	_, err := ch.Consume(q, "", false, false, false, false, nil)
	wantChannelError(t, conn, ch, err, amqp.PreconditionFailed,
		"PRECONDITION_FAILED - consumer prefetch count is not set for 'queue '"+q+"' in vhost '/''")
}

// basic.get on a stream is a connection error, not a channel error.
func TestQueueTypeStreamGetRefused(t *testing.T) {
	t.Parallel()
	onlyRabbitMQ(t)
	f := setup(t)
	ch := f.channel()
	q := streamQueue(t, f, ch)
	conn, gch := f.connChannel()
	_, _, err := gch.Get(q, false)
	wantConnectionError(t, conn, err, amqp.NotImplemented,
		"NOT_IMPLEMENTED - basic.get not supported by stream queues queue '"+q+"' in vhost '/'")
}

// Streams need manual acknowledgement; asking for auto-ack closes the connection.
func TestQueueTypeStreamAutoAckRefused(t *testing.T) {
	t.Parallel()
	onlyRabbitMQ(t)
	f := setup(t)
	conn, ch := f.connChannel()
	q := streamQueue(t, f, ch)
	if err := ch.Qos(10, 0, false); err != nil {
		t.Fatalf("qos: %v", err)
	}
	_, err := ch.Consume(q, "", true, false, false, false, nil)
	wantConnectionError(t, conn, err, amqp.NotImplemented,
		"NOT_IMPLEMENTED - automatic acknowledgement not supported by stream queues queue '"+q+"' in vhost '/'")
}

// onlyRabbitMQ skips tests of queue types Warren does not have yet;
// TestQueueTypeRefusedByWarren checks how Warren answers instead.
func onlyRabbitMQ(t *testing.T) {
	t.Helper()
	if !testbroker.External() {
		t.Skip("quorum and stream queues are not implemented in Warren yet")
	}
}

// TestQueueTypeRefusedByWarren: until they exist, Warren refuses quorum
// queues with a channel error that says so, and the connection lives on.
// (Streams exist: test/conformance/streams.)
func TestQueueTypeRefusedByWarren(t *testing.T) {
	t.Parallel()
	if testbroker.External() {
		t.Skip("Warren's own answer")
	}
	for _, typ := range []string{"quorum"} {
		f := setup(t)
		conn, ch := f.connChannel()
		q := f.queueName(typ)
		_, err := ch.QueueDeclare(q, true, false, false, false, amqp.Table{"x-queue-type": typ})
		wantChannelError(t, conn, ch, err, amqp.PreconditionFailed,
			"PRECONDITION_FAILED - invalid arg 'x-queue-type' for queue '"+q+"' in vhost '/': \"queue type '"+typ+"' is not supported by Warren yet; declare a classic queue\"")
	}
}
