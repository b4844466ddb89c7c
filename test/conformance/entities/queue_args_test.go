package entities

import (
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warren-mq/warren/internal/testbroker"
)

// deadLetterTarget declares a fanout exchange bound to a queue, for queues to
// dead-letter into; it returns both names.
func deadLetterTarget(t *testing.T, f *fixture, ch *amqp.Channel) (dlx, dlq string) {
	t.Helper()
	dlx = f.exchange(ch, "dlx", "fanout", nil)
	dlq = f.queue(ch, "dlq", nil)
	bind(t, ch, dlq, dlx, "", nil)
	return dlx, dlq
}

// publishConfirmed publishes msgs on a channel in confirm mode and reports, in order,
// whether the broker acked (true) or nacked (false) each.
func publishConfirmed(t *testing.T, ch *amqp.Channel, confirms chan amqp.Confirmation, exchange, key string, msgs ...amqp.Publishing) []bool {
	t.Helper()
	for _, m := range msgs {
		publish(t, ch, exchange, key, m)
	}
	acks := make([]bool, 0, len(msgs))
	for range msgs {
		select {
		case c := <-confirms:
			acks = append(acks, c.Ack)
		case <-timeAfter():
			t.Fatalf("missing confirms; got %v of %d", acks, len(msgs))
		}
	}
	return acks
}

// msgs turns bodies into transient messages.
func msgs(bodies ...string) []amqp.Publishing {
	out := make([]amqp.Publishing, len(bodies))
	for i, b := range bodies {
		out[i] = amqp.Publishing{Body: []byte(b)}
	}
	return out
}

func TestQueueArgMessageTTLExpiresWithoutConsumer(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ch, confirms, _ := confirmChannel(t, f)
	q := f.queue(ch, "q", amqp.Table{"x-message-ttl": int32(20)})
	// Confirmed means enqueued, so a count of zero afterwards means expired.
	if acks := publishConfirmed(t, ch, confirms, "", q, msgs("1", "2")...); !equalBools(acks, []bool{true, true}) {
		t.Fatalf("confirms %v", acks)
	}
	waitMessageCount(t, ch, q, 0)
	if d, ok, err := ch.Get(q, true); err != nil || ok {
		t.Fatalf("get after expiry: %q ok=%v err=%v", d.Body, ok, err)
	}
}

func TestQueueArgMessageTTLDeadLettersExpired(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ch := f.channel()
	dlx, dlq := deadLetterTarget(t, f, ch)
	q := f.queue(ch, "q", amqp.Table{"x-message-ttl": int32(20), "x-dead-letter-exchange": dlx})
	publishBody(t, ch, "", q, "1")
	publishBody(t, ch, "", q, "2")
	got := getN(t, ch, dlq, 2)
	if b := bodies(got); !equalStrings(b, []string{"1", "2"}) {
		t.Fatalf("dead-lettered %q, want 1 2 in order", b)
	}
	for _, d := range got {
		deaths := xDeath(t, d)
		if len(deaths) != 1 {
			t.Fatalf("x-death has %d entries, want 1: %v", len(deaths), deaths)
		}
		wantDeath(t, deaths[0], death{queue: q, reason: "expired", exchange: "", keys: []string{q}, count: 1})
		wantFirstDeath(t, d, q, "expired", "")
	}
}

// With a TTL of zero a message lives only as long as it takes to hand it to a waiting
// consumer: none waiting, it expires at once.
func TestQueueArgMessageTTLZero(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ch := f.channel()
	dlx, dlq := deadLetterTarget(t, f, ch)
	q := f.queue(ch, "q", amqp.Table{"x-message-ttl": int32(0), "x-dead-letter-exchange": dlx})
	publishBody(t, ch, "", q, "no-consumer")
	d := getN(t, ch, dlq, 1)[0]
	if string(d.Body) != "no-consumer" {
		t.Fatalf("dead-lettered %q", d.Body)
	}
	wantDeath(t, xDeath(t, d)[0], death{queue: q, reason: "expired", exchange: "", keys: []string{q}, count: 1})

	cch := f.channel()
	ds := consume(t, cch, q, "c", true, nil)
	publishBody(t, ch, "", q, "consumer-waiting")
	if got := recv(t, ds); string(got.Body) != "consumer-waiting" {
		t.Fatalf("consumer got %q", got.Body)
	}
}

func TestQueueArgPerMessageExpiration(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ch := f.channel()
	dlx, dlq := deadLetterTarget(t, f, ch)
	q := f.queue(ch, "q", amqp.Table{"x-dead-letter-exchange": dlx})
	publish(t, ch, "", q, amqp.Publishing{Body: []byte("m"), Expiration: "20"})
	d := getN(t, ch, dlq, 1)[0]
	// The expiration moves into x-death, so the dead-lettered copy does not expire again.
	if d.Expiration != "" {
		t.Fatalf("dead-lettered message keeps expiration %q", d.Expiration)
	}
	wantDeath(t, xDeath(t, d)[0], death{queue: q, reason: "expired", exchange: "", keys: []string{q}, count: 1, originalExpiration: "20"})
	if n := messageCount(t, ch, q); n != 0 {
		t.Fatalf("queue still holds %d messages", n)
	}
}

// Expiration "0" behaves like a queue TTL of zero: kept only for a consumer ready now.
func TestQueueArgPerMessageExpirationZero(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ch := f.channel()
	dlx, dlq := deadLetterTarget(t, f, ch)
	q := f.queue(ch, "q", amqp.Table{"x-dead-letter-exchange": dlx})
	publish(t, ch, "", q, amqp.Publishing{Body: []byte("no-consumer"), Expiration: "0"})
	d := getN(t, ch, dlq, 1)[0]
	wantDeath(t, xDeath(t, d)[0], death{queue: q, reason: "expired", exchange: "", keys: []string{q}, count: 1, originalExpiration: "0"})

	cch := f.channel()
	ds := consume(t, cch, q, "c", true, nil)
	publish(t, ch, "", q, amqp.Publishing{Body: []byte("consumer-waiting"), Expiration: "0"})
	got := recv(t, ds)
	if string(got.Body) != "consumer-waiting" || got.Expiration != "0" {
		t.Fatalf("consumer got %q with expiration %q, want consumer-waiting with 0", got.Body, got.Expiration)
	}
}

// The shorter of queue TTL and per-message expiration wins; either way the message's
// own expiration is recorded in x-death.
func TestQueueArgTTLShorterWins(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, queueTTL, expiration string
		ttl                        int32
	}{
		{"MessageShorter", "", "10", 600000},
		{"QueueShorter", "", "600000", 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t)
			ch := f.channel()
			dlx, dlq := deadLetterTarget(t, f, ch)
			q := f.queue(ch, "q", amqp.Table{"x-message-ttl": tc.ttl, "x-dead-letter-exchange": dlx})
			publish(t, ch, "", q, amqp.Publishing{Body: []byte("m"), Expiration: tc.expiration})
			d := getN(t, ch, dlq, 1)[0]
			wantDeath(t, xDeath(t, d)[0], death{queue: q, reason: "expired", exchange: "", keys: []string{q}, count: 1, originalExpiration: tc.expiration})
		})
	}
}

func TestQueueArgInvalidExpiration(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ expiration, detail string }{
		{"abc", "no_integer"},
		{"-1", "{value_negative,-1}"},
		{"1.5", `{leftover_string,".5"}`},
		{" 10", "no_integer"},
	} {
		t.Run(tc.expiration, func(t *testing.T) {
			t.Parallel()
			f := setup(t)
			conn, ch := f.connChannel()
			q := f.queue(ch, "q", nil)
			closed := notifyClose(ch)
			publish(t, ch, "", q, amqp.Publishing{Body: []byte("m"), Expiration: tc.expiration})
			wantClosed(t, closed, amqp.PreconditionFailed,
				"PRECONDITION_FAILED - invalid expiration '"+tc.expiration+"': "+tc.detail)
			if conn.IsClosed() {
				t.Fatal("connection closed; it is a channel error")
			}
		})
	}
}

func TestQueueArgInvalid(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		args   amqp.Table
		reason string // %s = queue name
	}{
		{"NegativeTTL", amqp.Table{"x-message-ttl": int32(-1)}, "invalid arg 'x-message-ttl' for queue '%s' in vhost '/': {value_negative,-1}"},
		{"StringTTL", amqp.Table{"x-message-ttl": "abc"}, `invalid arg 'x-message-ttl' for queue '%s' in vhost '/': "expected integer, got longstr"`},
		{"NegativeExpires", amqp.Table{"x-expires": int32(-1)}, "invalid arg 'x-expires' for queue '%s' in vhost '/': {value_negative,-1}"},
		{"ZeroExpires", amqp.Table{"x-expires": int32(0)}, "invalid arg 'x-expires' for queue '%s' in vhost '/': {value_zero,0}"},
		{"StringExpires", amqp.Table{"x-expires": "x"}, `invalid arg 'x-expires' for queue '%s' in vhost '/': "expected integer, got longstr"`},
		{"NegativeMaxLength", amqp.Table{"x-max-length": int32(-1)}, "invalid arg 'x-max-length' for queue '%s' in vhost '/': {value_negative,-1}"},
		{"StringMaxLength", amqp.Table{"x-max-length": "x"}, `invalid arg 'x-max-length' for queue '%s' in vhost '/': "expected integer, got longstr"`},
		{"NegativeMaxLengthBytes", amqp.Table{"x-max-length-bytes": int32(-1)}, "invalid arg 'x-max-length-bytes' for queue '%s' in vhost '/': {value_negative,-1}"},
		{"BadOverflow", amqp.Table{"x-overflow": "foo"}, "invalid arg 'x-overflow' for queue '%s' in vhost '/': invalid_overflow"},
		{"DeadLetterExchangeNotString", amqp.Table{"x-dead-letter-exchange": int32(1)}, "invalid type 'signedint' for arg 'x-dead-letter-exchange' in queue '%s' in vhost '/'"},
		{"DeadLetterRoutingKeyWithoutExchange", amqp.Table{"x-dead-letter-routing-key": "k"}, "invalid arg 'x-dead-letter-routing-key' for queue '%s' in vhost '/': routing_key_but_no_dlx_defined"},
		{"NegativeMaxPriority", amqp.Table{"x-max-priority": int32(-1)}, "invalid arg 'x-max-priority' for queue '%s' in vhost '/': {value_negative,-1}"},
		{"MaxPriorityTooHigh", amqp.Table{"x-max-priority": int32(300)}, "invalid arg 'x-max-priority' for queue '%s' in vhost '/': {max_value_exceeded,300}"},
		{"StringMaxPriority", amqp.Table{"x-max-priority": "x"}, `invalid arg 'x-max-priority' for queue '%s' in vhost '/': "expected integer, got longstr"`},
		{"StringSingleActiveConsumer", amqp.Table{"x-single-active-consumer": "x"}, "invalid arg 'x-single-active-consumer' for queue '%s' in vhost '/': {unacceptable_type,longstr}"},
		{"BadQueueMode", amqp.Table{"x-queue-mode": "foo"}, `invalid arg 'x-queue-mode' for queue '%s' in vhost '/': "unsupported queue mode 'foo'"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t)
			conn, ch := f.connChannel()
			q := f.queueName("q")
			_, err := ch.QueueDeclare(q, false, false, false, false, tc.args)
			wantChannelError(t, conn, ch, err, amqp.PreconditionFailed, "PRECONDITION_FAILED - "+sprintf(tc.reason, q))
			if queueExists(t, conn, q) {
				t.Fatal("refused declare created the queue")
			}
		})
	}
}

// goneByPublish reports whether queue has been deleted, found out by a mandatory
// publish through the default exchange coming back unroutable. Unlike a passive
// declare, a publish does not renew an x-expires lease.
func goneByPublish(t *testing.T, ch *amqp.Channel, confirms chan amqp.Confirmation, returns chan amqp.Return, queue string) bool {
	t.Helper()
	_, returned := publishMandatory(t, ch, confirms, returns, "", queue, "probe")
	return returned
}

func TestQueueArgExpiresDeletesIdleQueue(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ch, confirms, returns := confirmChannel(t, f)
	q := f.queue(ch, "q", amqp.Table{"x-expires": int32(50)})
	testbroker.CheckFor(t, waitTimeout, func() bool { return goneByPublish(t, ch, confirms, returns, q) })
}

// A queue with a consumer is not idle. The proof needs no clock: a twin declared later
// with the same x-expires and no consumer is gone first, while the consumed one stays.
func TestQueueArgExpiresKeptWhileConsumed(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ch, confirms, returns := confirmChannel(t, f)
	args := amqp.Table{"x-expires": int32(100)}
	consumed := f.queue(ch, "consumed", args)
	cch := f.channel()
	consume(t, cch, consumed, "c", true, nil)
	idle := f.queue(ch, "idle", args)
	testbroker.CheckFor(t, waitTimeout, func() bool { return goneByPublish(t, ch, confirms, returns, idle) })
	if goneByPublish(t, ch, confirms, returns, consumed) {
		t.Fatal("queue with a consumer expired")
	}
	// Once the consumer goes, the queue becomes idle and expires.
	if err := cch.Cancel("c", false); err != nil {
		t.Fatalf("cancel: %v", err)
	}
	testbroker.CheckFor(t, waitTimeout, func() bool { return goneByPublish(t, ch, confirms, returns, consumed) })
}

// In RabbitMQ a passive declare counts as use and renews the x-expires lease, so a
// queue polled that way never expires. The twin, only published to, does. (This needs
// the polls to come more often than the lease, one second, runs out.)
func TestQueueArgExpiresRenewedByPassiveDeclare(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ch, confirms, returns := confirmChannel(t, f)
	args := amqp.Table{"x-expires": int32(1000)}
	polled := f.queue(ch, "polled", args)
	twin := f.queue(ch, "twin", args)
	pch := f.channel()
	testbroker.CheckFor(t, waitTimeout, func() bool {
		if _, err := pch.QueueDeclarePassive(polled, false, false, false, false, nil); err != nil {
			t.Fatalf("passive declare of the polled queue: %v", err)
		}
		return goneByPublish(t, ch, confirms, returns, twin)
	})
	if goneByPublish(t, ch, confirms, returns, polled) {
		t.Fatal("queue polled with passive declares expired")
	}
}

// x-max-length without x-overflow drops from the head; dropped messages are
// dead-lettered with reason maxlen.
func TestQueueArgMaxLengthDropHead(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ch, confirms, _ := confirmChannel(t, f)
	dlx, dlq := deadLetterTarget(t, f, ch)
	q := f.queue(ch, "q", amqp.Table{"x-max-length": int32(2), "x-dead-letter-exchange": dlx})
	acks := publishConfirmed(t, ch, confirms, "", q, msgs("1", "2", "3", "4")...)
	if !equalBools(acks, []bool{true, true, true, true}) {
		t.Fatalf("confirms %v, want all acked", acks)
	}
	if got := bodies(getN(t, ch, q, 2)); !equalStrings(got, []string{"3", "4"}) {
		t.Fatalf("queue kept %q, want 3 4", got)
	}
	dead := getN(t, ch, dlq, 2)
	if got := bodies(dead); !equalStrings(got, []string{"1", "2"}) {
		t.Fatalf("dead-lettered %q, want 1 2", got)
	}
	wantDeath(t, xDeath(t, dead[0])[0], death{queue: q, reason: "maxlen", exchange: "", keys: []string{q}, count: 1})
	wantFirstDeath(t, dead[0], q, "maxlen", "")
}

// x-max-length-bytes counts body bytes only.
func TestQueueArgMaxLengthBytesDropHead(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ch, confirms, _ := confirmChannel(t, f)
	q := f.queue(ch, "q", amqp.Table{"x-max-length-bytes": int32(10), "x-overflow": "drop-head"})
	// Headers and properties do not count: these two fit exactly.
	big := amqp.Publishing{Body: []byte("aaaaa"), Headers: amqp.Table{"pad": string(make([]byte, 100))}, MessageId: "id"}
	if acks := publishConfirmed(t, ch, confirms, "", q, big, amqp.Publishing{Body: []byte("bbbbb")}); !equalBools(acks, []bool{true, true}) {
		t.Fatalf("confirms %v", acks)
	}
	if n := messageCount(t, ch, q); n != 2 {
		t.Fatalf("queue holds %d messages, want 2 (10 body bytes fit x-max-length-bytes 10)", n)
	}
	if acks := publishConfirmed(t, ch, confirms, "", q, msgs("c")...); !equalBools(acks, []bool{true}) {
		t.Fatalf("drop-head nacked a publish: %v", acks)
	}
	if got := bodies(getN(t, ch, q, 2)); !equalStrings(got, []string{"bbbbb", "c"}) {
		t.Fatalf("queue kept %q, want bbbbb c", got)
	}
}

// reject-publish refuses new messages once full: nacked in confirm mode and not
// dead-lettered.
func TestQueueArgMaxLengthRejectPublish(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ch, confirms, _ := confirmChannel(t, f)
	dlx, dlq := deadLetterTarget(t, f, ch)
	q := f.queue(ch, "q", amqp.Table{"x-max-length": int32(2), "x-overflow": "reject-publish", "x-dead-letter-exchange": dlx})
	acks := publishConfirmed(t, ch, confirms, "", q, msgs("1", "2", "3")...)
	if !equalBools(acks, []bool{true, true, false}) {
		t.Fatalf("confirms %v, want ack ack nack", acks)
	}
	if got := bodies(getN(t, ch, q, 2)); !equalStrings(got, []string{"1", "2"}) {
		t.Fatalf("queue kept %q, want 1 2", got)
	}
	// Room again: the next message is accepted.
	if acks := publishConfirmed(t, ch, confirms, "", q, msgs("4")...); !equalBools(acks, []bool{true}) {
		t.Fatalf("confirm after making room: %v", acks)
	}
	wantDrain(t, ch, dlq)
}

// Without confirm mode a rejected publish is dropped silently; the channel stays open.
func TestQueueArgMaxLengthRejectPublishUnconfirmed(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ch := f.channel()
	q := f.queue(ch, "q", amqp.Table{"x-max-length": int32(1), "x-overflow": "reject-publish"})
	publishBody(t, ch, "", q, "1")
	publishBody(t, ch, "", q, "2")
	// Switching to confirm mode now gives a sync point: q handles this channel's
	// messages in order, so the confirm for "3" comes after "2" was dealt with.
	if err := ch.Confirm(false); err != nil {
		t.Fatalf("confirm.select: %v", err)
	}
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, 1))
	if acks := publishConfirmed(t, ch, confirms, "", q, msgs("3")...); !equalBools(acks, []bool{false}) {
		t.Fatalf("confirm for a publish into the full queue: %v, want nack", acks)
	}
	if got := bodies(getN(t, ch, q, 1)); !equalStrings(got, []string{"1"}) {
		t.Fatalf("queue kept %q, want 1", got)
	}
	if n := messageCount(t, ch, q); n != 0 {
		t.Fatalf("queue holds %d more", n)
	}
}

// reject-publish-dlx also nacks, and dead-letters the refused message (reason maxlen).
func TestQueueArgMaxLengthRejectPublishDLX(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ch, confirms, _ := confirmChannel(t, f)
	dlx, dlq := deadLetterTarget(t, f, ch)
	q := f.queue(ch, "q", amqp.Table{"x-max-length": int32(1), "x-overflow": "reject-publish-dlx", "x-dead-letter-exchange": dlx})
	acks := publishConfirmed(t, ch, confirms, "", q, msgs("1", "2")...)
	if !equalBools(acks, []bool{true, false}) {
		t.Fatalf("confirms %v, want ack nack", acks)
	}
	d := getN(t, ch, dlq, 1)[0]
	if string(d.Body) != "2" {
		t.Fatalf("dead-lettered %q, want 2", d.Body)
	}
	wantDeath(t, xDeath(t, d)[0], death{queue: q, reason: "maxlen", exchange: "", keys: []string{q}, count: 1})
	if got := bodies(getN(t, ch, q, 1)); !equalStrings(got, []string{"1"}) {
		t.Fatalf("queue kept %q, want 1", got)
	}
}

func equalBools(a, b []bool) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// x-max-length 0 keeps nothing: drop-head accepts and drops (dead-letters) at once,
// reject-publish refuses.
func TestQueueArgMaxLengthZero(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ch, confirms, _ := confirmChannel(t, f)
	dlx, dlq := deadLetterTarget(t, f, ch)
	dropHead := f.queue(ch, "drophead", amqp.Table{"x-max-length": int32(0), "x-dead-letter-exchange": dlx})
	if acks := publishConfirmed(t, ch, confirms, "", dropHead, msgs("a")...); !equalBools(acks, []bool{true}) {
		t.Fatalf("drop-head confirms %v, want ack", acks)
	}
	if n := messageCount(t, ch, dropHead); n != 0 {
		t.Fatalf("drop-head queue with max length 0 holds %d", n)
	}
	d := getN(t, ch, dlq, 1)[0]
	wantDeath(t, xDeath(t, d)[0], death{queue: dropHead, reason: "maxlen", exchange: "", keys: []string{dropHead}, count: 1})
	reject := f.queue(ch, "reject", amqp.Table{"x-max-length": int32(0), "x-overflow": "reject-publish"})
	if acks := publishConfirmed(t, ch, confirms, "", reject, msgs("b")...); !equalBools(acks, []bool{false}) {
		t.Fatalf("reject-publish confirms %v, want nack", acks)
	}
}

// A message routed to several queues is nacked if any one of them refuses it, though
// the others keep their copy.
func TestQueueArgRejectPublishNackWhenAnyQueueRefuses(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ch, confirms, _ := confirmChannel(t, f)
	x := f.exchange(ch, "x", "fanout", nil)
	full := f.queue(ch, "full", amqp.Table{"x-max-length": int32(0), "x-overflow": "reject-publish"})
	open := f.queue(ch, "open", nil)
	bind(t, ch, full, x, "", nil)
	bind(t, ch, open, x, "", nil)
	if acks := publishConfirmed(t, ch, confirms, x, "", msgs("m")...); !equalBools(acks, []bool{false}) {
		t.Fatalf("confirms %v, want nack", acks)
	}
	wantDrain(t, ch, open, "m")
}

// A delivered, unacknowledged message does not expire; once requeued it keeps its
// original expiry, so a message older than the TTL dies as soon as it is back.
func TestQueueArgMessageTTLNotWhileUnacked(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ch, confirms, _ := confirmChannel(t, f)
	dlx, dlq := deadLetterTarget(t, f, ch)
	q := f.queue(ch, "q", amqp.Table{"x-message-ttl": int32(50), "x-dead-letter-exchange": dlx})
	cch := f.channel()
	if err := cch.Qos(1, 0, false); err != nil {
		t.Fatalf("qos: %v", err)
	}
	ds := consume(t, cch, q, "c", false, nil)
	publishConfirmed(t, ch, confirms, "", q, msgs("held")...)
	held := recv(t, ds)
	// "later" cannot reach the consumer (no credit) and expires; "held" is older and
	// would have expired first if unacked messages could.
	publishConfirmed(t, ch, confirms, "", q, msgs("later")...)
	if got := bodies(getN(t, ch, dlq, 1)); !equalStrings(got, []string{"later"}) {
		t.Fatalf("dead-lettered %q, want later", got)
	}
	if err := held.Nack(false, true); err != nil {
		t.Fatalf("nack: %v", err)
	}
	d := getN(t, ch, dlq, 1)[0]
	if string(d.Body) != "held" {
		t.Fatalf("dead-lettered %q, want held", d.Body)
	}
	wantDeath(t, xDeath(t, d)[0], death{queue: q, reason: "expired", exchange: "", keys: []string{q}, count: 1})
}
