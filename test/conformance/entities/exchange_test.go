package entities

import (
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warren-mq/warren/internal/testbroker"
)

const defaultExchangeRefused = "ACCESS_REFUSED - operation not permitted on the default exchange"

func TestExchangeDefaultRoutesByQueueName(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ch := f.channel()
	q := f.queue(ch, "q", nil)
	other := f.queue(ch, "other", nil)
	publishBody(t, ch, "", q, "to-q")
	publishBody(t, ch, "", other, "to-other")
	publishBody(t, ch, "", q+".nope", "nowhere")
	wantDrain(t, ch, q, "to-q")
	wantDrain(t, ch, other, "to-other")
}

func TestExchangeDefaultRefusesDeclare(t *testing.T) {
	t.Parallel()
	f := setup(t)
	conn, ch := f.connChannel()
	err := ch.ExchangeDeclare("", "direct", true, false, false, false, nil)
	wantChannelError(t, conn, ch, err, amqp.AccessRefused, defaultExchangeRefused)
}

// RabbitMQ refuses even a passive declare of the default exchange, although it exists.
func TestExchangeDefaultRefusesPassiveDeclare(t *testing.T) {
	t.Parallel()
	f := setup(t)
	conn, ch := f.connChannel()
	err := ch.ExchangeDeclarePassive("", "direct", true, false, false, false, nil)
	wantChannelError(t, conn, ch, err, amqp.AccessRefused, defaultExchangeRefused)
}

func TestExchangeDefaultRefusesDelete(t *testing.T) {
	t.Parallel()
	f := setup(t)
	conn, ch := f.connChannel()
	err := ch.ExchangeDelete("", false, false)
	wantChannelError(t, conn, ch, err, amqp.AccessRefused, defaultExchangeRefused)
}

func TestExchangeDefaultRefusesQueueBind(t *testing.T) {
	t.Parallel()
	f := setup(t)
	conn, ch := f.connChannel()
	q := f.queue(ch, "q", nil)
	err := ch.QueueBind(q, "other-key", "", false, nil)
	wantChannelError(t, conn, ch, err, amqp.AccessRefused, defaultExchangeRefused)
}

// Even unbinding the implicit binding by the queue's own name is refused.
func TestExchangeDefaultRefusesQueueUnbind(t *testing.T) {
	t.Parallel()
	f := setup(t)
	conn, ch := f.connChannel()
	q := f.queue(ch, "q", nil)
	err := ch.QueueUnbind(q, q, "", nil)
	wantChannelError(t, conn, ch, err, amqp.AccessRefused, defaultExchangeRefused)
}

func TestExchangeDefaultRefusesExchangeBind(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		dest string // "" means the default exchange; "x" the test's own
		src  string
	}{
		{"AsDestination", "", "x"},
		{"AsSource", "x", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t)
			conn, ch := f.connChannel()
			x := f.exchange(ch, "x", "direct", nil)
			dest, src := tc.dest, tc.src
			if dest == "x" {
				dest = x
			}
			if src == "x" {
				src = x
			}
			err := ch.ExchangeBind(dest, "k", src, false, nil)
			wantChannelError(t, conn, ch, err, amqp.AccessRefused, defaultExchangeRefused)
		})
	}
}

// "amq.default" is only a display name; as an exchange name it does not exist.
func TestExchangeAmqDefaultIsNotAnExchange(t *testing.T) {
	t.Parallel()
	f := setup(t)
	conn, ch := f.connChannel()
	err := ch.ExchangeDeclarePassive("amq.default", "direct", true, false, false, false, nil)
	wantChannelError(t, conn, ch, err, amqp.NotFound, "NOT_FOUND - no exchange 'amq.default' in vhost '/'")
}

func TestExchangePredeclared(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, kind, wrongKind string }{
		{"amq.direct", "direct", "fanout"},
		{"amq.fanout", "fanout", "direct"},
		{"amq.topic", "topic", "direct"},
		{"amq.headers", "headers", "direct"},
		{"amq.match", "headers", "topic"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t)
			conn, ch := f.connChannel()
			if err := ch.ExchangeDeclarePassive(tc.name, tc.kind, true, false, false, false, nil); err != nil {
				t.Fatalf("passive declare: %v", err)
			}
			// An active declare with the same properties is an idempotent no-op, even
			// for a reserved name.
			if err := ch.ExchangeDeclare(tc.name, tc.kind, true, false, false, false, nil); err != nil {
				t.Fatalf("equivalent declare: %v", err)
			}
			err := ch.ExchangeDeclare(tc.name, tc.wrongKind, true, false, false, false, nil)
			wantChannelError(t, conn, ch, err, amqp.PreconditionFailed,
				"PRECONDITION_FAILED - inequivalent arg 'type' for exchange '"+tc.name+
					"' in vhost '/': received '"+tc.wrongKind+"' but current is '"+tc.kind+"'")
		})
	}
}

// amq.rabbitmq.trace is RabbitMQ's internal topic exchange for the firehose
// tracer: it can be declared passively and bound from, not published to or deleted.
func TestExchangePredeclaredTrace(t *testing.T) {
	t.Parallel()
	f := setup(t)
	conn, ch := f.connChannel()
	const x = "amq.rabbitmq.trace"
	if err := ch.ExchangeDeclarePassive(x, "topic", true, false, true, false, nil); err != nil {
		t.Fatalf("passive declare: %v", err)
	}
	if err := ch.ExchangeDeclare(x, "topic", true, false, true, false, nil); err != nil {
		t.Fatalf("equivalent declare: %v", err)
	}
	q := f.queue(ch, "traced", nil)
	bind(t, ch, q, x, "#", nil)
	closed := notifyClose(ch)
	publishBody(t, ch, x, "publish.x", "x")
	wantClosed(t, closed, amqp.AccessRefused, "ACCESS_REFUSED - cannot publish to internal exchange '"+x+"' in vhost '/'")
	ch = f.openChannel(conn)
	err := ch.ExchangeDelete(x, false, false)
	wantChannelError(t, conn, ch, err, amqp.AccessRefused,
		"ACCESS_REFUSED - deletion of system exchange '"+x+"' in vhost '/' not allowed")
}

func TestExchangePredeclaredRefusesDelete(t *testing.T) {
	t.Parallel()
	f := setup(t)
	conn, ch := f.connChannel()
	err := ch.ExchangeDelete("amq.direct", false, false)
	wantChannelError(t, conn, ch, err, amqp.AccessRefused,
		"ACCESS_REFUSED - deletion of system exchange 'amq.direct' in vhost '/' not allowed")
}

func TestExchangePredeclaredRoutes(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ch := f.channel()
	q := f.queue(ch, "q", nil)
	key := f.name("key")
	bind(t, ch, q, "amq.direct", key, nil)
	bind(t, ch, q, "amq.topic", key+".#", nil)
	bind(t, ch, q, "amq.headers", "", amqp.Table{"x-match": "all", "to": key})
	publishBody(t, ch, "amq.direct", key, "direct")
	publishBody(t, ch, "amq.topic", key+".a.b", "topic")
	publish(t, ch, "amq.headers", "", amqp.Publishing{Headers: amqp.Table{"to": key}, Body: []byte("headers")})
	wantDrain(t, ch, q, "direct", "topic", "headers")
}

func TestExchangeReservedPrefixRefused(t *testing.T) {
	t.Parallel()
	f := setup(t)
	conn, ch := f.connChannel()
	name := "amq." + f.name("x")
	err := ch.ExchangeDeclare(name, "direct", false, false, false, false, nil)
	wantChannelError(t, conn, ch, err, amqp.AccessRefused,
		"ACCESS_REFUSED - exchange name '"+name+"' contains reserved prefix 'amq.*'")
}

// A passive declare of a reserved name is just a lookup: 404, not 403.
func TestExchangeReservedPrefixPassiveNotFound(t *testing.T) {
	t.Parallel()
	f := setup(t)
	conn, ch := f.connChannel()
	name := "amq." + f.name("x")
	err := ch.ExchangeDeclarePassive(name, "direct", false, false, false, false, nil)
	wantChannelError(t, conn, ch, err, amqp.NotFound, "NOT_FOUND - no exchange '"+name+"' in vhost '/'")
}

func TestExchangeDeclarePassiveMissing(t *testing.T) {
	t.Parallel()
	f := setup(t)
	conn, ch := f.connChannel()
	name := f.name("missing")
	err := ch.ExchangeDeclarePassive(name, "direct", false, false, false, false, nil)
	wantChannelError(t, conn, ch, err, amqp.NotFound, "NOT_FOUND - no exchange '"+name+"' in vhost '/'")
}

// A passive declare checks existence only: type and flags in the request are ignored.
func TestExchangeDeclarePassiveIgnoresProperties(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ch := f.channel()
	x := f.exchange(ch, "x", "direct", nil)
	if err := ch.ExchangeDeclarePassive(x, "fanout", true, true, true, false, amqp.Table{"alternate-exchange": "ae"}); err != nil {
		t.Fatalf("passive declare with other properties: %v", err)
	}
}

// An unknown exchange type is a hard error: RabbitMQ closes the connection.
func TestExchangeDeclareUnknownType(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"foo", ""} {
		t.Run("Type="+kind, func(t *testing.T) {
			t.Parallel()
			f := setup(t)
			conn, ch := f.connChannel()
			err := ch.ExchangeDeclare(f.exchangeName("x"), kind, false, false, false, false, nil)
			wantConnectionError(t, conn, err, amqp.CommandInvalid, "COMMAND_INVALID - invalid exchange type '"+kind+"'")
		})
	}
}

func TestExchangeDeclareEquivalentIsNoOp(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ch := f.channel()
	x := f.exchangeName("x")
	args := amqp.Table{"alternate-exchange": "ae"}
	for range 2 {
		if err := ch.ExchangeDeclare(x, "topic", true, false, false, false, args); err != nil {
			t.Fatalf("declare: %v", err)
		}
	}
}

func TestExchangeRedeclareInequivalent(t *testing.T) {
	t.Parallel()
	type decl struct {
		kind                        string
		durable, autoDelete, intern bool
		args                        amqp.Table
	}
	base := decl{kind: "direct"}
	for _, tc := range []struct {
		name        string
		first, then decl
		reason      string // after "PRECONDITION_FAILED - inequivalent arg "
	}{
		{"Type", base, decl{kind: "fanout"}, "'type' for exchange '%s' in vhost '/': received 'fanout' but current is 'direct'"},
		{"Durable", base, decl{kind: "direct", durable: true}, "'durable' for exchange '%s' in vhost '/': received 'true' but current is 'false'"},
		{"NotDurable", decl{kind: "direct", durable: true}, base, "'durable' for exchange '%s' in vhost '/': received 'false' but current is 'true'"},
		{"AutoDelete", base, decl{kind: "direct", autoDelete: true}, "'auto_delete' for exchange '%s' in vhost '/': received 'true' but current is 'false'"},
		{"Internal", base, decl{kind: "direct", intern: true}, "'internal' for exchange '%s' in vhost '/': received 'true' but current is 'false'"},
		{"AddAlternateExchange", base, decl{kind: "direct", args: amqp.Table{"alternate-exchange": "ae"}},
			"'alternate-exchange' for exchange '%s' in vhost '/': received the value 'ae' of type 'longstr' but current is none"},
		{"DropAlternateExchange", decl{kind: "direct", args: amqp.Table{"alternate-exchange": "ae"}}, base,
			"'alternate-exchange' for exchange '%s' in vhost '/': received none but current is the value 'ae' of type 'longstr'"},
		{"ChangeAlternateExchange", decl{kind: "direct", args: amqp.Table{"alternate-exchange": "ae1"}}, decl{kind: "direct", args: amqp.Table{"alternate-exchange": "ae2"}},
			"'alternate-exchange' for exchange '%s' in vhost '/': received 'ae2' but current is 'ae1'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t)
			conn, ch := f.connChannel()
			x := f.exchangeName("x")
			d := tc.first
			if err := ch.ExchangeDeclare(x, d.kind, d.durable, d.autoDelete, d.intern, false, d.args); err != nil {
				t.Fatalf("first declare: %v", err)
			}
			d = tc.then
			err := ch.ExchangeDeclare(x, d.kind, d.durable, d.autoDelete, d.intern, false, d.args)
			wantChannelError(t, conn, ch, err, amqp.PreconditionFailed,
				"PRECONDITION_FAILED - inequivalent arg "+sprintf(tc.reason, x))
		})
	}
}

// Arguments RabbitMQ does not know take no part in equivalence.
func TestExchangeRedeclareUnknownArgumentIgnored(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ch := f.channel()
	x := f.exchange(ch, "x", "direct", amqp.Table{"x-foo": "a"})
	if err := ch.ExchangeDeclare(x, "direct", false, false, false, false, amqp.Table{"x-foo": "b"}); err != nil {
		t.Fatalf("redeclare with another unknown argument: %v", err)
	}
	if err := ch.ExchangeDeclare(x, "direct", false, false, false, false, nil); err != nil {
		t.Fatalf("redeclare without the unknown argument: %v", err)
	}
}

func TestExchangeDelete(t *testing.T) {
	t.Parallel()
	f := setup(t)
	conn, ch := f.connChannel()
	x := f.exchange(ch, "x", "direct", nil)
	if err := ch.ExchangeDelete(x, false, false); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if exchangeExists(t, conn, x) {
		t.Fatalf("exchange %q still exists after delete", x)
	}
}

// RabbitMQ 3.x answers delete-ok for an exchange that does not exist.
func TestExchangeDeleteMissingIsOK(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ch := f.channel()
	for _, ifUnused := range []bool{false, true} {
		if err := ch.ExchangeDelete(f.name("missing"), ifUnused, false); err != nil {
			t.Fatalf("delete missing (if-unused %v): %v", ifUnused, err)
		}
	}
}

func TestExchangeDeleteIfUnused(t *testing.T) {
	t.Parallel()
	f := setup(t)
	conn, ch := f.connChannel()
	x := f.exchange(ch, "x", "direct", nil)
	q := f.queue(ch, "q", nil)
	bind(t, ch, q, x, "k", nil)
	err := ch.ExchangeDelete(x, true, false)
	wantChannelError(t, conn, ch, err, amqp.PreconditionFailed, "PRECONDITION_FAILED - exchange '"+x+"' in vhost '/' in use")

	ch = f.openChannel(conn)
	if !exchangeExists(t, conn, x) {
		t.Fatal("refused delete removed the exchange")
	}
	if err := ch.QueueUnbind(q, "k", x, nil); err != nil {
		t.Fatalf("unbind: %v", err)
	}
	if err := ch.ExchangeDelete(x, true, false); err != nil {
		t.Fatalf("delete if-unused without bindings: %v", err)
	}
	if exchangeExists(t, conn, x) {
		t.Fatal("exchange still exists")
	}
}

// An exchange-to-exchange binding makes its source "in use".
func TestExchangeDeleteIfUnusedSourceOfExchangeBinding(t *testing.T) {
	t.Parallel()
	f := setup(t)
	conn, ch := f.connChannel()
	src := f.exchange(ch, "src", "fanout", nil)
	dst := f.exchange(ch, "dst", "fanout", nil)
	if err := ch.ExchangeBind(dst, "", src, false, nil); err != nil {
		t.Fatalf("exchange.bind: %v", err)
	}
	err := ch.ExchangeDelete(src, true, false)
	wantChannelError(t, conn, ch, err, amqp.PreconditionFailed, "PRECONDITION_FAILED - exchange '"+src+"' in vhost '/' in use")
}

// Bindings to the exchange as a destination do not count as use: only outgoing ones do.
func TestExchangeDeleteIfUnusedDestinationOnly(t *testing.T) {
	t.Parallel()
	f := setup(t)
	conn, ch := f.connChannel()
	src := f.exchange(ch, "src", "fanout", nil)
	dst := f.exchange(ch, "dst", "fanout", nil)
	if err := ch.ExchangeBind(dst, "", src, false, nil); err != nil {
		t.Fatalf("exchange.bind: %v", err)
	}
	if err := ch.ExchangeDelete(dst, true, false); err != nil {
		t.Fatalf("delete if-unused of a destination-only exchange: %v", err)
	}
	if exchangeExists(t, conn, dst) {
		t.Fatal("exchange still exists")
	}
}

// Deleting an exchange removes its bindings: a new exchange of the same name starts empty.
func TestExchangeDeleteRemovesBindings(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ch := f.channel()
	x := f.exchange(ch, "x", "fanout", nil)
	q := f.queue(ch, "q", nil)
	bind(t, ch, q, x, "", nil)
	if err := ch.ExchangeDelete(x, false, false); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if err := ch.ExchangeDeclare(x, "fanout", false, false, false, false, nil); err != nil {
		t.Fatalf("redeclare: %v", err)
	}
	publishBody(t, ch, x, "", "after")
	wantDrain(t, ch, q)
}

// Deleting a queue removes its bindings; a queue redeclared under that name is unbound.
func TestExchangeQueueDeleteRemovesBindings(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ch := f.channel()
	x := f.exchange(ch, "x", "fanout", nil)
	q := f.queue(ch, "q", nil)
	bind(t, ch, q, x, "", nil)
	if _, err := ch.QueueDelete(q, false, false, false); err != nil {
		t.Fatalf("queue.delete: %v", err)
	}
	if _, err := ch.QueueDeclare(q, false, false, false, false, nil); err != nil {
		t.Fatalf("redeclare queue: %v", err)
	}
	publishBody(t, ch, x, "", "after")
	wantDrain(t, ch, q)
}

func TestExchangePublishToMissing(t *testing.T) {
	t.Parallel()
	f := setup(t)
	conn, ch := f.connChannel()
	closed := notifyClose(ch)
	name := f.name("missing")
	publishBody(t, ch, name, "k", "x")
	wantClosed(t, closed, amqp.NotFound, "NOT_FOUND - no exchange '"+name+"' in vhost '/'")
	if conn.IsClosed() {
		t.Fatal("publishing to a missing exchange closed the connection")
	}
}

func TestExchangeInternalRefusesPublish(t *testing.T) {
	t.Parallel()
	f := setup(t)
	conn, ch := f.connChannel()
	x := f.exchangeName("internal")
	if err := ch.ExchangeDeclare(x, "fanout", false, false, true, false, nil); err != nil {
		t.Fatalf("declare internal: %v", err)
	}
	closed := notifyClose(ch)
	publishBody(t, ch, x, "", "x")
	wantClosed(t, closed, amqp.AccessRefused, "ACCESS_REFUSED - cannot publish to internal exchange '"+x+"' in vhost '/'")
	if conn.IsClosed() {
		t.Fatal("publishing to an internal exchange closed the connection")
	}
}

// Internal exchanges exist to be reached through exchange-to-exchange bindings.
func TestExchangeInternalRoutesFromOtherExchange(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ch := f.channel()
	pub := f.exchange(ch, "public", "fanout", nil)
	in := f.exchangeName("internal")
	if err := ch.ExchangeDeclare(in, "direct", false, false, true, false, nil); err != nil {
		t.Fatalf("declare internal: %v", err)
	}
	if err := ch.ExchangeBind(in, "", pub, false, nil); err != nil {
		t.Fatalf("exchange.bind: %v", err)
	}
	q := f.queue(ch, "q", nil)
	bind(t, ch, q, in, "k", nil)
	publishBody(t, ch, pub, "k", "via-internal")
	publishBody(t, ch, pub, "other", "filtered")
	wantDrain(t, ch, q, "via-internal")
}

func TestExchangeDurable(t *testing.T) {
	t.Parallel()
	f := setup(t)
	conn, ch := f.connChannel()
	x := f.exchangeName("x")
	if err := ch.ExchangeDeclare(x, "topic", true, false, false, false, nil); err != nil {
		t.Fatalf("declare durable: %v", err)
	}
	if !exchangeExists(t, conn, x) {
		t.Fatal("durable exchange missing")
	}
	if err := ch.ExchangeDeclare(x, "topic", true, false, false, false, nil); err != nil {
		t.Fatalf("redeclare durable: %v", err)
	}
}

// An auto-delete exchange that never had a binding stays.
func TestExchangeAutoDeleteKeptBeforeFirstBinding(t *testing.T) {
	t.Parallel()
	f := setup(t)
	conn, ch := f.connChannel()
	x := f.exchangeName("x")
	if err := ch.ExchangeDeclare(x, "direct", false, true, false, false, nil); err != nil {
		t.Fatalf("declare: %v", err)
	}
	// Creating and removing a binding elsewhere is a positive sync: by the time it
	// completes, any background deletion sweep would have had its chance.
	other := f.exchange(ch, "other", "direct", nil)
	q := f.queue(ch, "q", nil)
	bind(t, ch, q, other, "k", nil)
	if err := ch.QueueUnbind(q, "k", other, nil); err != nil {
		t.Fatalf("unbind: %v", err)
	}
	if !exchangeExists(t, conn, x) {
		t.Fatal("auto-delete exchange vanished before it ever had a binding")
	}
}

func TestExchangeAutoDeleteOnLastUnbind(t *testing.T) {
	t.Parallel()
	f := setup(t)
	conn, ch := f.connChannel()
	x := f.exchangeName("x")
	if err := ch.ExchangeDeclare(x, "direct", false, true, false, false, nil); err != nil {
		t.Fatalf("declare: %v", err)
	}
	q1 := f.queue(ch, "q1", nil)
	q2 := f.queue(ch, "q2", nil)
	bind(t, ch, q1, x, "k", nil)
	bind(t, ch, q2, x, "k", nil)
	if err := ch.QueueUnbind(q1, "k", x, nil); err != nil {
		t.Fatalf("unbind q1: %v", err)
	}
	if !exchangeExists(t, conn, x) {
		t.Fatal("auto-delete exchange deleted while it still had a binding")
	}
	if err := ch.QueueUnbind(q2, "k", x, nil); err != nil {
		t.Fatalf("unbind q2: %v", err)
	}
	testbroker.CheckFor(t, waitTimeout, func() bool { return !exchangeExists(t, conn, x) })
}

// Deleting the only bound queue removes the last binding, and with it the exchange.
func TestExchangeAutoDeleteOnQueueDelete(t *testing.T) {
	t.Parallel()
	f := setup(t)
	conn, ch := f.connChannel()
	x := f.exchangeName("x")
	if err := ch.ExchangeDeclare(x, "fanout", false, true, false, false, nil); err != nil {
		t.Fatalf("declare: %v", err)
	}
	q := f.queue(ch, "q", nil)
	bind(t, ch, q, x, "", nil)
	if _, err := ch.QueueDelete(q, false, false, false); err != nil {
		t.Fatalf("queue.delete: %v", err)
	}
	testbroker.CheckFor(t, waitTimeout, func() bool { return !exchangeExists(t, conn, x) })
}

// Exchange-to-exchange bindings count too: removing the last one the auto-delete
// exchange is the source of deletes it.
func TestExchangeAutoDeleteOnLastExchangeUnbind(t *testing.T) {
	t.Parallel()
	f := setup(t)
	conn, ch := f.connChannel()
	src := f.exchangeName("src")
	if err := ch.ExchangeDeclare(src, "fanout", false, true, false, false, nil); err != nil {
		t.Fatalf("declare: %v", err)
	}
	dst := f.exchange(ch, "dst", "fanout", nil)
	if err := ch.ExchangeBind(dst, "", src, false, nil); err != nil {
		t.Fatalf("exchange.bind: %v", err)
	}
	if err := ch.ExchangeUnbind(dst, "", src, false, nil); err != nil {
		t.Fatalf("exchange.unbind: %v", err)
	}
	testbroker.CheckFor(t, waitTimeout, func() bool { return !exchangeExists(t, conn, src) })
	if !exchangeExists(t, conn, dst) {
		t.Fatal("destination exchange deleted")
	}
}

// Only bindings an exchange is the source of keep it alive: an auto-delete exchange that
// is merely a destination is not deleted when that binding goes.
func TestExchangeAutoDeleteDestinationKept(t *testing.T) {
	t.Parallel()
	f := setup(t)
	conn, ch := f.connChannel()
	src := f.exchange(ch, "src", "fanout", nil)
	dst := f.exchangeName("dst")
	if err := ch.ExchangeDeclare(dst, "fanout", false, true, false, false, nil); err != nil {
		t.Fatalf("declare: %v", err)
	}
	if err := ch.ExchangeBind(dst, "", src, false, nil); err != nil {
		t.Fatalf("exchange.bind: %v", err)
	}
	if err := ch.ExchangeUnbind(dst, "", src, false, nil); err != nil {
		t.Fatalf("exchange.unbind: %v", err)
	}
	if !exchangeExists(t, conn, dst) {
		t.Fatal("auto-delete destination exchange was deleted")
	}
}

func TestExchangeBindMissing(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name              string
		queueOK, exchange bool
		want              string // {q} and {x} stand for the queue and exchange names
	}{
		{"MissingQueue", false, true, "NOT_FOUND - no queue '{q}' in vhost '/'"},
		{"MissingExchange", true, false, "NOT_FOUND - no exchange '{x}' in vhost '/'"},
		// When both are missing RabbitMQ names the exchange.
		{"BothMissing", false, false, "NOT_FOUND - no exchange '{x}' in vhost '/'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t)
			conn, ch := f.connChannel()
			q, x := f.name("q"), f.name("x")
			if tc.queueOK {
				q = f.queue(ch, "q", nil)
			}
			if tc.exchange {
				x = f.exchange(ch, "x", "direct", nil)
			}
			err := ch.QueueBind(q, "k", x, false, nil)
			wantChannelError(t, conn, ch, err, amqp.NotFound, fill(tc.want, q, x))
		})
	}
}

func TestExchangeBindExchangeMissing(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		destMissing bool
	}{
		{"MissingDestination", true},
		{"MissingSource", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t)
			conn, ch := f.connChannel()
			x := f.exchange(ch, "x", "direct", nil)
			missing := f.name("missing")
			dest, src := x, missing
			if tc.destMissing {
				dest, src = missing, x
			}
			err := ch.ExchangeBind(dest, "k", src, false, nil)
			wantChannelError(t, conn, ch, err, amqp.NotFound, "NOT_FOUND - no exchange '"+missing+"' in vhost '/'")
		})
	}
}

// RabbitMQ answers unbind-ok for a binding that does not exist, even when the queue or
// exchange named does not exist either.
func TestExchangeUnbindMissingIsOK(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ch := f.channel()
	q := f.queue(ch, "q", nil)
	x := f.exchange(ch, "x", "direct", nil)
	steps := []struct {
		name string
		do   func() error
	}{
		{"queue.unbind no such binding", func() error { return ch.QueueUnbind(q, "nope", x, nil) }},
		{"queue.unbind missing exchange", func() error { return ch.QueueUnbind(q, "k", f.name("nox"), nil) }},
		{"queue.unbind missing queue", func() error { return ch.QueueUnbind(f.name("noq"), "k", x, nil) }},
		{"exchange.unbind no such binding", func() error { return ch.ExchangeUnbind(x, "nope", "amq.direct", false, nil) }},
		{"exchange.unbind missing source", func() error { return ch.ExchangeUnbind(x, "k", f.name("nox"), false, nil) }},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
	}
}

// Binding twice with the same key and arguments is one binding: one copy per message.
func TestExchangeBindTwiceIsOneBinding(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ch := f.channel()
	x := f.exchange(ch, "x", "direct", nil)
	q := f.queue(ch, "q", nil)
	bind(t, ch, q, x, "k", nil)
	bind(t, ch, q, x, "k", nil)
	publishBody(t, ch, x, "k", "once")
	wantDrain(t, ch, q, "once")
	// And one unbind removes it.
	if err := ch.QueueUnbind(q, "k", x, nil); err != nil {
		t.Fatalf("unbind: %v", err)
	}
	publishBody(t, ch, x, "k", "after-unbind")
	wantDrain(t, ch, q)
}

// Binding arguments are part of a binding's identity: unbinding needs the same ones.
func TestExchangeUnbindNeedsSameArguments(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ch := f.channel()
	x := f.exchange(ch, "x", "direct", nil)
	q := f.queue(ch, "q", nil)
	bind(t, ch, q, x, "k", amqp.Table{"tag": "a"})
	if err := ch.QueueUnbind(q, "k", x, nil); err != nil {
		t.Fatalf("unbind without arguments: %v", err)
	}
	publishBody(t, ch, x, "k", "still-bound")
	wantDrain(t, ch, q, "still-bound")
	if err := ch.QueueUnbind(q, "k", x, amqp.Table{"tag": "a"}); err != nil {
		t.Fatalf("unbind with arguments: %v", err)
	}
	publishBody(t, ch, x, "k", "unbound")
	wantDrain(t, ch, q)
}

func TestExchangeAlternateExchangeWrongType(t *testing.T) {
	t.Parallel()
	f := setup(t)
	conn, ch := f.connChannel()
	x := f.exchangeName("x")
	err := ch.ExchangeDeclare(x, "direct", false, false, false, false, amqp.Table{"alternate-exchange": int32(1)})
	wantChannelError(t, conn, ch, err, amqp.PreconditionFailed,
		"PRECONDITION_FAILED - invalid type 'signedint' for arg 'alternate-exchange' in exchange '"+x+"' in vhost '/'")
}

// Predeclared exchanges are durable; an equivalent declare must say so.
func TestExchangePredeclaredRedeclareNotDurable(t *testing.T) {
	t.Parallel()
	f := setup(t)
	conn, ch := f.connChannel()
	err := ch.ExchangeDeclare("amq.direct", "direct", false, false, false, false, nil)
	wantChannelError(t, conn, ch, err, amqp.PreconditionFailed,
		"PRECONDITION_FAILED - inequivalent arg 'durable' for exchange 'amq.direct' in vhost '/': received 'false' but current is 'true'")
}
