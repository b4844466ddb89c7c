package streams

import (
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

func TestStreamDeclare(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ch := f.channel()
	q := f.name("s")
	qi, err := ch.QueueDeclare(q, true, false, false, false, streamArgs("x-max-age", "7D", "x-max-length-bytes", int64(1<<30), "x-stream-max-segment-size-bytes", int32(1<<20)))
	if err != nil {
		t.Fatalf("declare: %v", err)
	}
	if qi.Name != q || qi.Messages != 0 || qi.Consumers != 0 {
		t.Fatalf("declare-ok %+v", qi)
	}
	if _, err := ch.QueueDeclare(q, true, false, false, false, streamArgs("x-max-age", "7D", "x-max-length-bytes", int64(1<<30), "x-stream-max-segment-size-bytes", int32(1<<20))); err != nil {
		t.Fatalf("equivalent redeclare: %v", err)
	}
	if qi, err := ch.QueueDeclarePassive(q, true, false, false, false, nil); err != nil || qi.Name != q {
		t.Fatalf("passive: %+v %v", qi, err)
	}
	n, err := ch.QueueDelete(q, false, false, false)
	if err != nil || n != 0 {
		t.Fatalf("delete: %d %v", n, err)
	}
	conn, ch := f.connChannel()
	_, err = ch.QueueDeclarePassive(q, true, false, false, false, nil)
	wantChannelError(t, conn, ch, err, amqp.NotFound, "NOT_FOUND - no queue '"+q+"' in vhost '/'")
}

func TestStreamDeclareRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name                           string
		durable, autoDelete, exclusive bool
		args                           amqp.Table
		reason                         string // after "PRECONDITION_FAILED - ", with Q for the queue's description
	}{
		{"NonDurable", false, false, false, streamArgs(), "invalid property 'non-durable' for Q"},
		{"Exclusive", true, false, true, streamArgs(), "invalid property 'exclusive-owner' for Q"},
		{"AutoDelete", true, true, false, streamArgs(), "invalid property 'auto-delete' for Q"},
		{"MaxAgeSyntax", true, false, false, streamArgs("x-max-age", "1x"), "invalid arg 'x-max-age' for Q: invalid_max_age"},
		{"MaxAgeZero", true, false, false, streamArgs("x-max-age", "0s"), "invalid arg 'x-max-age' for Q: invalid_max_age"},
		{"MaxAgeType", true, false, false, streamArgs("x-max-age", int32(5)), "invalid arg 'x-max-age' for Q: {unacceptable_type,signedint}"},
		{"MaxLengthBytesType", true, false, false, streamArgs("x-max-length-bytes", "x"), `invalid arg 'x-max-length-bytes' for Q: "expected integer, got longstr"`},
		{"MaxLengthBytesNegative", true, false, false, streamArgs("x-max-length-bytes", int32(-1)), "invalid arg 'x-max-length-bytes' for Q: {value_negative,-1}"},
		{"SegmentSizeType", true, false, false, streamArgs("x-stream-max-segment-size-bytes", "x"), `invalid arg 'x-stream-max-segment-size-bytes' for Q: "expected integer, got longstr"`},
		{"MaxLength", true, false, false, streamArgs("x-max-length", int32(5)), "invalid arg 'x-max-length' for Q of queue type rabbit_stream_queue"},
		{"MessageTTL", true, false, false, streamArgs("x-message-ttl", int32(5)), "invalid arg 'x-message-ttl' for Q of queue type rabbit_stream_queue"},
		{"DeadLetter", true, false, false, streamArgs("x-dead-letter-exchange", "x"), "invalid arg 'x-dead-letter-exchange' for Q of queue type rabbit_stream_queue"},
		{"MaxPriority", true, false, false, streamArgs("x-max-priority", int32(5)), "invalid arg 'x-max-priority' for Q of queue type rabbit_stream_queue"},
		{"Expires", true, false, false, streamArgs("x-expires", int32(5000)), "invalid arg 'x-expires' for Q of queue type rabbit_stream_queue"},
		{"Overflow", true, false, false, streamArgs("x-overflow", "reject-publish"), "invalid arg 'x-overflow' for Q of queue type rabbit_stream_queue"},
		{"SingleActiveConsumer", true, false, false, streamArgs("x-single-active-consumer", true), "invalid arg 'x-single-active-consumer' for Q of queue type rabbit_stream_queue"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t)
			conn, ch := f.connChannel()
			q := f.name("s")
			_, err := ch.QueueDeclare(q, tc.durable, tc.autoDelete, tc.exclusive, false, tc.args)
			reason := "PRECONDITION_FAILED - " + strings.Replace(tc.reason, "Q", "queue '"+q+"' in vhost '/'", 1)
			wantChannelError(t, conn, ch, err, amqp.PreconditionFailed, reason)
		})
	}
}

func TestStreamDeclareServerNamedRefused(t *testing.T) {
	t.Parallel()
	f := setup(t)
	conn, ch := f.connChannel()
	_, err := ch.QueueDeclare("", true, false, false, false, streamArgs())
	wantChannelError(t, conn, ch, err, amqp.PreconditionFailed, "PRECONDITION_FAILED - Cannot declare a server-named queue for type rabbit_stream_queue")
}

func TestStreamRedeclareInequivalent(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ch := f.channel()
	q := f.declareStream(ch, "s")
	conn, ch := f.connChannel()
	_, err := ch.QueueDeclare(q, true, false, false, false, nil)
	wantChannelError(t, conn, ch, err, amqp.PreconditionFailed,
		"PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue '"+q+"' in vhost '/': received none but current is the value 'stream' of type 'longstr'")
	conn, ch = f.connChannel()
	_, err = ch.QueueDeclare(q, true, false, false, false, streamArgs("x-max-age", "1h"))
	wantChannelError(t, conn, ch, err, amqp.PreconditionFailed,
		"PRECONDITION_FAILED - inequivalent arg 'x-max-age' for queue '"+q+"' in vhost '/': received the value '1h' of type 'longstr' but current is none")
	// A classic queue redeclared as a stream.
	c := f.name("c")
	conn, ch = f.connChannel()
	if _, err := ch.QueueDeclare(c, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	_, err = ch.QueueDeclare(c, true, false, false, false, streamArgs())
	wantChannelError(t, conn, ch, err, amqp.PreconditionFailed,
		"PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue '"+c+"' in vhost '/': received the value 'stream' of type 'longstr' but current is none")
}

// basic.get and queue.purge are refused with 540, a connection error.
func TestStreamGetAndPurgeRefused(t *testing.T) {
	t.Parallel()
	f := setup(t)
	q := f.declareStream(f.channel(), "s")
	conn, ch := f.connChannel()
	_, _, err := ch.Get(q, false)
	wantConnectionError(t, conn, err, amqp.NotImplemented, "NOT_IMPLEMENTED - basic.get not supported by stream queues queue '"+q+"' in vhost '/'")
	conn, ch = f.connChannel()
	_, err = ch.QueuePurge(q, false)
	wantConnectionError(t, conn, err, amqp.NotImplemented, "NOT_IMPLEMENTED - queue.purge not supported by stream queues queue '"+q+"' in vhost '/'")
}
