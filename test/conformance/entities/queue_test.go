package entities

import (
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warren-mq/warren/internal/testbroker"
)

// resourceLocked is RabbitMQ's text for any use of another connection's exclusive queue.
func resourceLocked(queue string) string {
	return "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '" + queue +
		"' in vhost '/'. It could be originally declared on another connection or the exclusive" +
		" property value does not match that of the original declaration."
}

func noQueue(queue string) string { return "NOT_FOUND - no queue '" + queue + "' in vhost '/'" }

func TestQueueDeclareServerNamed(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ch := f.channel()
	var names []string
	for range 2 {
		q, err := ch.QueueDeclare("", false, false, false, false, nil)
		if err != nil {
			t.Fatalf("declare: %v", err)
		}
		f.forgetQueue(q.Name)
		if !strings.HasPrefix(q.Name, "amq.gen-") || len(q.Name) <= len("amq.gen-") {
			t.Fatalf("server-named queue %q, want prefix amq.gen- and a suffix", q.Name)
		}
		if q.Messages != 0 || q.Consumers != 0 {
			t.Fatalf("new queue reports %d messages %d consumers", q.Messages, q.Consumers)
		}
		names = append(names, q.Name)
	}
	if names[0] == names[1] {
		t.Fatalf("two server-named queues share the name %q", names[0])
	}
	// The name is an ordinary queue name: the default exchange routes to it.
	publishBody(t, ch, "", names[1], "m")
	wantDrain(t, ch, names[1], "m")
}

// declare-ok counts ready messages only: delivered-but-unacknowledged ones do not count.
func TestQueueDeclareOkMessageCount(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ch := f.channel()
	q := f.queue(ch, "q", nil)
	for _, b := range []string{"1", "2", "3"} {
		publishBody(t, ch, "", q, b)
	}
	waitMessageCount(t, ch, q, 3)
	if _, ok, err := ch.Get(q, false); err != nil || !ok {
		t.Fatalf("basic.get: ok=%v err=%v", ok, err)
	}
	if n := messageCount(t, ch, q); n != 2 {
		t.Fatalf("message count %d with one message unacked, want 2", n)
	}
	// An active redeclare reports the same counts.
	qi, err := ch.QueueDeclare(q, false, false, false, false, nil)
	if err != nil {
		t.Fatalf("redeclare: %v", err)
	}
	if qi.Messages != 2 || qi.Name != q {
		t.Fatalf("redeclare-ok %q %d messages, want %q 2", qi.Name, qi.Messages, q)
	}
}

func TestQueueDeclareOkConsumerCount(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ch := f.channel()
	q := f.queue(ch, "q", nil)
	other := f.channel()
	consume(t, ch, q, "c1", false, nil)
	consume(t, other, q, "c2", false, nil)
	consume(t, other, q, "c3", false, nil)
	qi, err := ch.QueueDeclarePassive(q, false, false, false, false, nil)
	if err != nil {
		t.Fatalf("passive declare: %v", err)
	}
	if qi.Consumers != 3 || qi.Messages != 0 {
		t.Fatalf("declare-ok reports %d consumers %d messages, want 3 and 0", qi.Consumers, qi.Messages)
	}
	if err := other.Cancel("c2", false); err != nil {
		t.Fatalf("cancel: %v", err)
	}
	testbroker.CheckFor(t, waitTimeout, func() bool {
		qi, err := ch.QueueDeclarePassive(q, false, false, false, false, nil)
		if err != nil {
			t.Fatalf("passive declare: %v", err)
		}
		return qi.Consumers == 2
	})
}

func TestQueueDeclarePassiveMissing(t *testing.T) {
	t.Parallel()
	f := setup(t)
	conn, ch := f.connChannel()
	name := f.name("missing")
	_, err := ch.QueueDeclarePassive(name, false, false, false, false, nil)
	wantChannelError(t, conn, ch, err, amqp.NotFound, noQueue(name))
}

// A passive declare only looks the queue up: the flags and arguments sent are ignored.
func TestQueueDeclarePassiveIgnoresProperties(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ch := f.channel()
	q := f.queue(ch, "q", nil)
	qi, err := ch.QueueDeclarePassive(q, true, true, false, false, amqp.Table{"x-message-ttl": int32(5)})
	if err != nil {
		t.Fatalf("passive declare with other properties: %v", err)
	}
	if qi.Name != q {
		t.Fatalf("passive declare-ok names %q, want %q", qi.Name, q)
	}
}

func TestQueueReservedPrefixRefused(t *testing.T) {
	t.Parallel()
	f := setup(t)
	conn, ch := f.connChannel()
	name := "amq." + f.name("q")
	_, err := ch.QueueDeclare(name, false, false, false, false, nil)
	wantChannelError(t, conn, ch, err, amqp.AccessRefused,
		"ACCESS_REFUSED - queue name '"+name+"' contains reserved prefix 'amq.*'")
}

func TestQueueReservedPrefixPassiveNotFound(t *testing.T) {
	t.Parallel()
	f := setup(t)
	conn, ch := f.connChannel()
	name := "amq." + f.name("q")
	_, err := ch.QueueDeclarePassive(name, false, false, false, false, nil)
	wantChannelError(t, conn, ch, err, amqp.NotFound, noQueue(name))
}

func TestQueueDurable(t *testing.T) {
	t.Parallel()
	f := setup(t)
	conn, ch := f.connChannel()
	q := f.queueName("q")
	for range 2 {
		if _, err := ch.QueueDeclare(q, true, false, false, false, nil); err != nil {
			t.Fatalf("declare durable: %v", err)
		}
	}
	_, err := ch.QueueDeclare(q, false, false, false, false, nil)
	wantChannelError(t, conn, ch, err, amqp.PreconditionFailed,
		"PRECONDITION_FAILED - inequivalent arg 'durable' for queue '"+q+"' in vhost '/': received 'false' but current is 'true'")
}

// Every use of an exclusive queue from another connection is refused with 405 - except
// queue.unbind, which RabbitMQ answers with unbind-ok.
func TestQueueExclusiveOtherConnection(t *testing.T) {
	t.Parallel()
	f := setup(t)
	owner := f.channel()
	q := f.queueName("q")
	if _, err := owner.QueueDeclare(q, false, false, true, false, nil); err != nil {
		t.Fatalf("declare exclusive: %v", err)
	}
	bind(t, owner, q, "amq.direct", q, nil)
	intruder := f.dial()
	ops := []struct {
		name string
		do   func(ch *amqp.Channel) error
	}{
		{"DeclareExclusive", func(ch *amqp.Channel) error {
			_, err := ch.QueueDeclare(q, false, false, true, false, nil)
			return err
		}},
		{"DeclareShared", func(ch *amqp.Channel) error {
			_, err := ch.QueueDeclare(q, false, false, false, false, nil)
			return err
		}},
		{"DeclarePassive", func(ch *amqp.Channel) error {
			_, err := ch.QueueDeclarePassive(q, false, false, false, false, nil)
			return err
		}},
		{"Consume", func(ch *amqp.Channel) error {
			_, err := ch.Consume(q, "", false, false, false, false, nil)
			return err
		}},
		{"Get", func(ch *amqp.Channel) error { _, _, err := ch.Get(q, false); return err }},
		{"Bind", func(ch *amqp.Channel) error { return ch.QueueBind(q, "other", "amq.direct", false, nil) }},
		{"Purge", func(ch *amqp.Channel) error { _, err := ch.QueuePurge(q, false); return err }},
		{"Delete", func(ch *amqp.Channel) error { _, err := ch.QueueDelete(q, false, false, false); return err }},
	}
	for _, op := range ops {
		ch := f.openChannel(intruder)
		err := op.do(ch)
		if err == nil {
			t.Errorf("%s on another connection's exclusive queue succeeded", op.name)
			continue
		}
		var e *amqp.Error
		if !errorAs(err, &e) || e.Code != amqp.ResourceLocked || e.Reason != replyText(resourceLocked(q)) {
			t.Errorf("%s: got %v, want 405 %q", op.name, err, replyText(resourceLocked(q)))
		}
	}
	ch := f.openChannel(intruder)
	err := ch.QueueUnbind(q, q, "amq.direct", nil)
	wantChannelError(t, intruder, ch, err, amqp.ResourceLocked, resourceLocked(q))
	// The binding survived the refused unbind.
	publishBody(t, owner, "amq.direct", q, "still-bound")
	wantDrain(t, owner, q, "still-bound")
}

// Unbinding a binding that does not exist succeeds before exclusivity is checked, so
// another connection gets unbind-ok.
func TestQueueExclusiveOtherConnectionUnbindMissingBinding(t *testing.T) {
	t.Parallel()
	f := setup(t)
	owner := f.channel()
	q := f.queueName("q")
	if _, err := owner.QueueDeclare(q, false, false, true, false, nil); err != nil {
		t.Fatalf("declare exclusive: %v", err)
	}
	if err := f.channel().QueueUnbind(q, "never-bound", "amq.direct", nil); err != nil {
		t.Fatalf("unbind of a missing binding from another connection: %v", err)
	}
}

// A reply-text is a shortstr: RabbitMQ cuts long ones to 252 bytes plus "...".
func TestQueueReplyTextTruncated(t *testing.T) {
	t.Parallel()
	f := setup(t)
	conn, ch := f.connChannel()
	name := f.name(strings.Repeat("long", 50))
	_, err := ch.QueueDeclarePassive(name, false, false, false, false, nil)
	var e *amqp.Error
	if !errorAs(err, &e) {
		t.Fatalf("got %v, want a 404", err)
	}
	full := noQueue(name)
	if len(full) <= 255 {
		t.Fatalf("test bug: text of %d bytes fits a shortstr", len(full))
	}
	if want := full[:252] + "..."; e.Code != amqp.NotFound || e.Reason != want {
		t.Fatalf("got %d %q,\nwant %d %q", e.Code, e.Reason, amqp.NotFound, want)
	}
	if conn.IsClosed() {
		t.Fatal("connection closed")
	}
}

// Other channels of the owning connection use the queue freely.
func TestQueueExclusiveSameConnectionOtherChannel(t *testing.T) {
	t.Parallel()
	f := setup(t)
	conn := f.dial()
	ch1 := f.openChannel(conn)
	ch2 := f.openChannel(conn)
	q := f.queueName("q")
	if _, err := ch1.QueueDeclare(q, false, false, true, false, nil); err != nil {
		t.Fatalf("declare exclusive: %v", err)
	}
	if _, err := ch2.QueueDeclare(q, false, false, true, false, nil); err != nil {
		t.Fatalf("redeclare on another channel of the owner: %v", err)
	}
	publishBody(t, ch2, "", q, "m")
	wantDrain(t, ch2, q, "m")
	// Closing the declaring channel does not delete the queue: the connection owns it.
	if err := ch1.Close(); err != nil {
		t.Fatalf("close ch1: %v", err)
	}
	if !queueExists(t, conn, q) {
		t.Fatal("exclusive queue deleted with its declaring channel")
	}
}

// Redeclaring with a different exclusive flag is refused with 405, not 406, even on the
// owning connection.
func TestQueueExclusiveFlagMismatch(t *testing.T) {
	t.Parallel()
	for _, firstExclusive := range []bool{true, false} {
		name := "ExclusiveThenShared"
		if !firstExclusive {
			name = "SharedThenExclusive"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := setup(t)
			conn, ch := f.connChannel()
			q := f.queueName("q")
			if _, err := ch.QueueDeclare(q, false, false, firstExclusive, false, nil); err != nil {
				t.Fatalf("declare: %v", err)
			}
			_, err := ch.QueueDeclare(q, false, false, !firstExclusive, false, nil)
			wantChannelError(t, conn, ch, err, amqp.ResourceLocked, resourceLocked(q))
		})
	}
}

func TestQueueExclusiveDeletedWithConnection(t *testing.T) {
	t.Parallel()
	f := setup(t)
	owner := f.dial()
	ch := f.openChannel(owner)
	q := f.queueName("q")
	if _, err := ch.QueueDeclare(q, false, false, true, false, nil); err != nil {
		t.Fatalf("declare exclusive: %v", err)
	}
	observer := f.dial()
	if !queueExists(t, owner, q) {
		t.Fatal("exclusive queue missing")
	}
	if err := owner.Close(); err != nil {
		t.Fatalf("close owner: %v", err)
	}
	testbroker.CheckFor(t, waitTimeout, func() bool { return !queueExists(t, observer, q) })
	// Once gone, the name is free for anyone.
	if _, err := f.openChannel(observer).QueueDeclare(q, false, false, true, false, nil); err != nil {
		t.Fatalf("declare the freed name: %v", err)
	}
}

func TestQueueAutoDeleteAfterLastConsumer(t *testing.T) {
	t.Parallel()
	f := setup(t)
	conn, ch := f.connChannel()
	q := f.queueName("q")
	if _, err := ch.QueueDeclare(q, false, true, false, false, nil); err != nil {
		t.Fatalf("declare auto-delete: %v", err)
	}
	consume(t, ch, q, "c1", false, nil)
	consume(t, ch, q, "c2", false, nil)
	if err := ch.Cancel("c1", false); err != nil {
		t.Fatalf("cancel c1: %v", err)
	}
	if !queueExists(t, conn, q) {
		t.Fatal("auto-delete queue deleted while a consumer remained")
	}
	if err := ch.Cancel("c2", false); err != nil {
		t.Fatalf("cancel c2: %v", err)
	}
	testbroker.CheckFor(t, waitTimeout, func() bool { return !queueExists(t, conn, q) })
}

// Until it has had a consumer, an auto-delete queue stays, whatever else happens to it.
func TestQueueAutoDeleteKeptBeforeFirstConsumer(t *testing.T) {
	t.Parallel()
	f := setup(t)
	conn, ch := f.connChannel()
	q := f.queueName("q")
	if _, err := ch.QueueDeclare(q, false, true, false, false, nil); err != nil {
		t.Fatalf("declare auto-delete: %v", err)
	}
	publishBody(t, ch, "", q, "m")
	if got := drain(t, ch, q); !equalStrings(got, []string{"m"}) {
		t.Fatalf("got %q", got)
	}
	if _, err := ch.QueuePurge(q, false); err != nil {
		t.Fatalf("purge: %v", err)
	}
	other := f.channel()
	if err := other.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if !queueExists(t, conn, q) {
		t.Fatal("auto-delete queue deleted before it ever had a consumer")
	}
}

// Closing the channel that held the last consumer counts as cancelling it.
func TestQueueAutoDeleteOnConsumerChannelClose(t *testing.T) {
	t.Parallel()
	f := setup(t)
	conn, ch := f.connChannel()
	q := f.queueName("q")
	if _, err := ch.QueueDeclare(q, false, true, false, false, nil); err != nil {
		t.Fatalf("declare auto-delete: %v", err)
	}
	cch := f.openChannel(conn)
	consume(t, cch, q, "c", false, nil)
	if err := cch.Close(); err != nil {
		t.Fatalf("close consumer channel: %v", err)
	}
	testbroker.CheckFor(t, waitTimeout, func() bool { return !queueExists(t, conn, q) })
}

func TestQueueRedeclareInequivalent(t *testing.T) {
	t.Parallel()
	type decl struct {
		durable, autoDelete bool
		args                amqp.Table
	}
	ttl := func(v any) amqp.Table { return amqp.Table{"x-message-ttl": v} }
	for _, tc := range []struct {
		name        string
		first, then decl
		reason      string // after "PRECONDITION_FAILED - inequivalent arg ", %s = queue
	}{
		{"Durable", decl{}, decl{durable: true}, "'durable' for queue '%s' in vhost '/': received 'true' but current is 'false'"},
		{"AutoDelete", decl{}, decl{autoDelete: true}, "'auto_delete' for queue '%s' in vhost '/': received 'true' but current is 'false'"},
		{"NotAutoDelete", decl{autoDelete: true}, decl{}, "'auto_delete' for queue '%s' in vhost '/': received 'false' but current is 'true'"},
		{"AddTTL", decl{}, decl{args: ttl(int32(1000))},
			"'x-message-ttl' for queue '%s' in vhost '/': received the value '1000' of type 'signedint' but current is none"},
		{"DropTTL", decl{args: ttl(int32(1000))}, decl{},
			"'x-message-ttl' for queue '%s' in vhost '/': received none but current is the value '1000' of type 'signedint'"},
		{"ChangeTTL", decl{args: ttl(int32(1000))}, decl{args: ttl(int32(2000))},
			"'x-message-ttl' for queue '%s' in vhost '/': received '2000' but current is '1000'"},
		// Same number, but a string: the text then names two equal-looking values.
		{"TTLAsString", decl{args: ttl(int32(1000))}, decl{args: ttl("1000")},
			"'x-message-ttl' for queue '%s' in vhost '/': received '1000' but current is '1000'"},
		{"AddDeadLetterExchange", decl{}, decl{args: amqp.Table{"x-dead-letter-exchange": "dlx"}},
			"'x-dead-letter-exchange' for queue '%s' in vhost '/': received the value 'dlx' of type 'longstr' but current is none"},
		{"AddMaxLength", decl{}, decl{args: amqp.Table{"x-max-length": int32(10)}},
			"'x-max-length' for queue '%s' in vhost '/': received the value '10' of type 'signedint' but current is none"},
		{"AddExpires", decl{}, decl{args: amqp.Table{"x-expires": int32(60000)}},
			"'x-expires' for queue '%s' in vhost '/': received the value '60000' of type 'signedint' but current is none"},
		{"AddMaxPriority", decl{}, decl{args: amqp.Table{"x-max-priority": int32(5)}},
			"'x-max-priority' for queue '%s' in vhost '/': received the value '5' of type 'signedint' but current is none"},
		{"ChangeOverflow", decl{args: amqp.Table{"x-max-length": int32(1), "x-overflow": "drop-head"}},
			decl{args: amqp.Table{"x-max-length": int32(1), "x-overflow": "reject-publish"}},
			"'x-overflow' for queue '%s' in vhost '/': received 'reject-publish' but current is 'drop-head'"},
		{"QueueTypeQuorumOnClassic", decl{durable: true}, decl{durable: true, args: amqp.Table{"x-queue-type": "quorum"}},
			"'x-queue-type' for queue '%s' in vhost '/': received the value 'quorum' of type 'longstr' but current is none"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t)
			conn, ch := f.connChannel()
			q := f.queueName("q")
			d := tc.first
			if _, err := ch.QueueDeclare(q, d.durable, d.autoDelete, false, false, d.args); err != nil {
				t.Fatalf("first declare: %v", err)
			}
			d = tc.then
			_, err := ch.QueueDeclare(q, d.durable, d.autoDelete, false, false, d.args)
			wantChannelError(t, conn, ch, err, amqp.PreconditionFailed,
				"PRECONDITION_FAILED - inequivalent arg "+sprintf(tc.reason, q))
		})
	}
}

// Equivalence compares integer arguments by value, whatever width the client encoded,
// and ignores arguments RabbitMQ does not know.
func TestQueueRedeclareEquivalent(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		first, then amqp.Table
	}{
		{"IntWidths", amqp.Table{"x-message-ttl": int32(1000)}, amqp.Table{"x-message-ttl": int64(1000)}},
		{"UnknownArgument", amqp.Table{"x-foo": "a"}, amqp.Table{"x-foo": "b"}},
		{"UnknownArgumentDropped", amqp.Table{"x-foo": "a"}, nil},
		{"ClassicTypeExplicitLater", nil, amqp.Table{"x-queue-type": "classic"}},
		{"ClassicTypeExplicitFirst", amqp.Table{"x-queue-type": "classic"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t)
			ch := f.channel()
			q := f.queue(ch, "q", tc.first)
			if _, err := ch.QueueDeclare(q, false, false, false, false, tc.then); err != nil {
				t.Fatalf("equivalent redeclare: %v", err)
			}
		})
	}
}

func TestQueueBindUnbind(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ch := f.channel()
	x := f.exchange(ch, "x", "direct", nil)
	q := f.queue(ch, "q", nil)
	bind(t, ch, q, x, "k", nil)
	publishBody(t, ch, x, "k", "bound")
	if err := ch.QueueUnbind(q, "k", x, nil); err != nil {
		t.Fatalf("unbind: %v", err)
	}
	publishBody(t, ch, x, "k", "unbound")
	wantDrain(t, ch, q, "bound")
}

// An empty queue name in bind, get, purge and delete means the queue this channel
// declared last; on a channel that declared none it is a 404.
func TestQueueLastDeclaredShortcut(t *testing.T) {
	t.Parallel()
	f := setup(t)
	conn, ch := f.connChannel()
	q := f.queue(ch, "q", nil)
	if err := ch.QueueBind("", "shortcut-key", "amq.direct", false, nil); err != nil {
		t.Fatalf("bind with empty name: %v", err)
	}
	publishBody(t, ch, "amq.direct", "shortcut-key", "m1")
	publishBody(t, ch, "", q, "m2")
	waitMessageCount(t, ch, q, 2)
	d, ok, err := ch.Get("", true)
	if err != nil || !ok || string(d.Body) != "m1" {
		t.Fatalf("get with empty name: %q ok=%v err=%v", d.Body, ok, err)
	}
	if n, err := ch.QueuePurge("", false); err != nil || n != 1 {
		t.Fatalf("purge with empty name: %d %v, want 1", n, err)
	}
	if _, err := ch.QueueDelete("", false, false, false); err != nil {
		t.Fatalf("delete with empty name: %v", err)
	}
	if queueExists(t, conn, q) {
		t.Fatal("delete with empty name left the queue")
	}

	fresh := f.openChannel(conn)
	err = fresh.QueueBind("", "k", "amq.direct", false, nil)
	wantChannelError(t, conn, fresh, err, amqp.NotFound, "NOT_FOUND - no previously declared queue")
}

func TestQueuePurge(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ch := f.channel()
	q := f.queue(ch, "q", nil)
	for _, b := range []string{"1", "2", "3", "4"} {
		publishBody(t, ch, "", q, b)
	}
	waitMessageCount(t, ch, q, 4)
	d, ok, err := ch.Get(q, false)
	if err != nil || !ok {
		t.Fatalf("get: ok=%v err=%v", ok, err)
	}
	// Purge removes ready messages only; the unacknowledged one survives it.
	n, err := ch.QueuePurge(q, false)
	if err != nil || n != 3 {
		t.Fatalf("purge = %d, %v; want 3", n, err)
	}
	if err := ch.Nack(d.DeliveryTag, false, true); err != nil {
		t.Fatalf("nack: %v", err)
	}
	wantDrain(t, ch, q, "1")
	if n, err := ch.QueuePurge(q, false); err != nil || n != 0 {
		t.Fatalf("purge of an empty queue = %d, %v; want 0", n, err)
	}
}

func TestQueuePurgeMissing(t *testing.T) {
	t.Parallel()
	f := setup(t)
	conn, ch := f.connChannel()
	name := f.name("missing")
	_, err := ch.QueuePurge(name, false)
	wantChannelError(t, conn, ch, err, amqp.NotFound, noQueue(name))
}

func TestQueueDelete(t *testing.T) {
	t.Parallel()
	f := setup(t)
	conn, ch := f.connChannel()
	q := f.queue(ch, "q", nil)
	for _, b := range []string{"1", "2", "3"} {
		publishBody(t, ch, "", q, b)
	}
	waitMessageCount(t, ch, q, 3)
	// delete-ok counts ready messages: the unacknowledged one is not included.
	if _, ok, err := ch.Get(q, false); err != nil || !ok {
		t.Fatalf("get: ok=%v err=%v", ok, err)
	}
	n, err := ch.QueueDelete(q, false, false, false)
	if err != nil || n != 2 {
		t.Fatalf("delete = %d, %v; want 2", n, err)
	}
	if queueExists(t, conn, q) {
		t.Fatal("queue still exists")
	}
}

// RabbitMQ 3.x answers delete-ok with a zero count for a queue that does not exist.
func TestQueueDeleteMissingIsOK(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ch := f.channel()
	for _, flags := range [][2]bool{{false, false}, {true, true}} {
		n, err := ch.QueueDelete(f.name("missing"), flags[0], flags[1], false)
		if err != nil || n != 0 {
			t.Fatalf("delete missing (if-unused/if-empty %v) = %d, %v", flags, n, err)
		}
	}
}

func TestQueueDeleteIfUnused(t *testing.T) {
	t.Parallel()
	f := setup(t)
	conn, ch := f.connChannel()
	q := f.queue(ch, "q", nil)
	cch := f.channel()
	consume(t, cch, q, "c", false, nil)
	_, err := ch.QueueDelete(q, true, false, false)
	wantChannelError(t, conn, ch, err, amqp.PreconditionFailed, "PRECONDITION_FAILED - queue '"+q+"' in vhost '/' in use")
	if err := cch.Cancel("c", false); err != nil {
		t.Fatalf("cancel: %v", err)
	}
	ch = f.openChannel(conn)
	if _, err := ch.QueueDelete(q, true, false, false); err != nil {
		t.Fatalf("delete if-unused without consumers: %v", err)
	}
}

func TestQueueDeleteIfEmpty(t *testing.T) {
	t.Parallel()
	f := setup(t)
	conn, ch := f.connChannel()
	q := f.queue(ch, "q", nil)
	publishBody(t, ch, "", q, "m")
	waitMessageCount(t, ch, q, 1)
	_, err := ch.QueueDelete(q, false, true, false)
	wantChannelError(t, conn, ch, err, amqp.PreconditionFailed, "PRECONDITION_FAILED - queue '"+q+"' in vhost '/' not empty")
}

// if-empty looks at ready messages only: a queue whose one message is delivered but
// unacknowledged counts as empty and is deleted.
func TestQueueDeleteIfEmptyIgnoresUnacked(t *testing.T) {
	t.Parallel()
	f := setup(t)
	conn, ch := f.connChannel()
	q := f.queue(ch, "q", nil)
	publishBody(t, ch, "", q, "m")
	waitMessageCount(t, ch, q, 1)
	if _, ok, err := ch.Get(q, false); err != nil || !ok {
		t.Fatalf("get: ok=%v err=%v", ok, err)
	}
	if n, err := ch.QueueDelete(q, false, true, false); err != nil || n != 0 {
		t.Fatalf("delete if-empty with only an unacked message = %d, %v; want 0, nil", n, err)
	}
	if queueExists(t, conn, q) {
		t.Fatal("queue still exists")
	}
}

// Deleting a queue cancels its consumers with a server-sent basic.cancel.
func TestQueueDeleteCancelsConsumers(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ch := f.channel()
	q := f.queue(ch, "q", nil)
	cch := f.channel()
	cancels := cch.NotifyCancel(make(chan string, 1))
	ds := consume(t, cch, q, "the-consumer", false, nil)
	if _, err := ch.QueueDelete(q, false, false, false); err != nil {
		t.Fatalf("delete: %v", err)
	}
	select {
	case tag := <-cancels:
		if tag != "the-consumer" {
			t.Fatalf("basic.cancel for %q, want the-consumer", tag)
		}
	case <-timeAfter():
		t.Fatal("no basic.cancel after the queue was deleted")
	}
	// amqp091-go closes the deliveries channel of a cancelled consumer.
	testbroker.CheckFor(t, waitTimeout, func() bool {
		select {
		case _, ok := <-ds:
			return !ok
		default:
			return false
		}
	})
	if cch.IsClosed() {
		t.Fatal("the consumer's channel was closed; only the consumer should be cancelled")
	}
}
