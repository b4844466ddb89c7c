package access

import (
	"errors"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// op runs fn on a fresh channel and returns the error the channel was closed
// with, if any. An asynchronous refusal (basic.publish) is seen through a
// round trip on another channel: the broker answers in order, so the close
// has arrived before that answer. (A round trip on the same channel could
// race with the close: a method the client sends after its close-ok is on a
// channel that no longer exists, and closes the connection.)
func op(f *fixture, c *amqp.Connection, fn func(ch *amqp.Channel) error) error {
	f.t.Helper()
	ch := f.channel(c)
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	err := fn(ch)
	if err == nil {
		probe := f.channel(c)
		if err := probe.ExchangeDeclarePassive("amq.direct", "direct", true, false, false, false, nil); err != nil {
			f.t.Fatalf("probe: %v", err)
		}
		_ = probe.Close()
		select {
		case e := <-closed:
			if e != nil {
				return e
			}
		default:
		}
		_ = ch.Close()
		return nil
	}
	// The call may have been refused as "not open" because the close came
	// first: the close says why.
	select {
	case e := <-closed:
		if e != nil {
			return e
		}
	case <-time.After(waitTimeout):
	}
	return err
}

// The access-control table of RabbitMQ's documentation, operation by
// operation, with configure ^(cfg|both)-, write ^(wr|both)-, read ^(rd|both)-.
func TestAccessPermissionsTable(t *testing.T) {
	f := setup(t)
	admin := f.dial("guest")
	ach := f.channel(admin)
	for _, q := range []string{"cfg-q", "wr-q", "rd-q", "other-q", "cfg-del"} {
		if _, err := ach.QueueDeclare(q, false, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ach.QueueDeclare("cfg-existing", false, false, false, false, amqp.Table{"x-dead-letter-exchange": "rd-x"}); err != nil {
		t.Fatal(err)
	}
	for _, x := range []string{"cfg-x", "wr-x", "rd-x", "other-x", "cfg-delx"} {
		if err := ach.ExchangeDeclare(x, "direct", false, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
	}
	u := f.user([]string{"^(cfg|both)-", "^(wr|both)-", "^(rd|both)-"})
	c := f.dial(u)
	ok := func(what string, fn func(ch *amqp.Channel) error) {
		t.Helper()
		if err := op(f, c, fn); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	no := func(what, kind, name string, fn func(ch *amqp.Channel) error) {
		t.Helper()
		f.expect(what, op(f, c, fn), amqp.AccessRefused, f.refused(kind, name, u))
	}
	declare := func(name string, args amqp.Table) func(*amqp.Channel) error {
		return func(ch *amqp.Channel) error {
			_, err := ch.QueueDeclare(name, false, false, false, false, args)
			return err
		}
	}
	passive := func(name string) func(*amqp.Channel) error {
		return func(ch *amqp.Channel) error {
			_, err := ch.QueueDeclarePassive(name, false, false, false, false, nil)
			return err
		}
	}
	exchange := func(name string, args amqp.Table) func(*amqp.Channel) error {
		return func(ch *amqp.Channel) error {
			return ch.ExchangeDeclare(name, "direct", false, false, false, false, args)
		}
	}
	publish := func(x string) func(*amqp.Channel) error {
		return func(ch *amqp.Channel) error {
			return ch.Publish(x, "k", false, false, amqp.Publishing{Body: []byte("m")})
		}
	}

	ok("queue.declare on configure", declare("cfg-new", nil))
	no("queue.declare without configure", "queue", "other-new", declare("other-new", nil))
	ok("queue.declare passive needs nothing", passive("other-q"))
	ok("exchange.declare on configure", exchange("cfg-newx", nil))
	no("exchange.declare without configure", "exchange", "other-newx", exchange("other-newx", nil))
	ok("exchange.declare passive needs nothing", func(ch *amqp.Channel) error {
		return ch.ExchangeDeclarePassive("other-x", "direct", false, false, false, false, nil)
	})

	ok("queue.delete on configure", func(ch *amqp.Channel) error { _, err := ch.QueueDelete("cfg-del", false, false, false); return err })
	no("queue.delete without configure", "queue", "other-q", func(ch *amqp.Channel) error { _, err := ch.QueueDelete("other-q", false, false, false); return err })
	ok("exchange.delete on configure", func(ch *amqp.Channel) error { return ch.ExchangeDelete("cfg-delx", false, false) })
	no("exchange.delete without configure", "exchange", "other-x", func(ch *amqp.Channel) error { return ch.ExchangeDelete("other-x", false, false) })

	ok("queue.purge on read", func(ch *amqp.Channel) error { _, err := ch.QueuePurge("rd-q", false); return err })
	no("queue.purge without read", "queue", "cfg-q", func(ch *amqp.Channel) error { _, err := ch.QueuePurge("cfg-q", false); return err })

	bind := func(q, x string) func(*amqp.Channel) error {
		return func(ch *amqp.Channel) error { return ch.QueueBind(q, "k", x, false, nil) }
	}
	unbind := func(q, x string) func(*amqp.Channel) error {
		return func(ch *amqp.Channel) error { return ch.QueueUnbind(q, "k", x, nil) }
	}
	ok("queue.bind: write on queue, read on exchange", bind("wr-q", "rd-x"))
	no("queue.bind without write on the queue", "queue", "cfg-q", bind("cfg-q", "rd-x"))
	no("queue.bind without read on the exchange", "exchange", "cfg-x", bind("wr-q", "cfg-x"))
	no("queue.bind without either: the queue is named", "queue", "cfg-q", bind("cfg-q", "cfg-x"))
	ok("queue.unbind", unbind("wr-q", "rd-x"))
	no("queue.unbind without write on the queue", "queue", "cfg-q", unbind("cfg-q", "rd-x"))
	no("queue.unbind without read on the exchange", "exchange", "cfg-x", unbind("wr-q", "cfg-x"))

	xbind := func(dst, src string) func(*amqp.Channel) error {
		return func(ch *amqp.Channel) error { return ch.ExchangeBind(dst, "k", src, false, nil) }
	}
	ok("exchange.bind: write on destination, read on source", xbind("wr-x", "rd-x"))
	no("exchange.bind without write on the destination", "exchange", "rd-x", xbind("rd-x", "rd-x"))
	no("exchange.bind without read on the source", "exchange", "cfg-x", xbind("wr-x", "cfg-x"))
	ok("exchange.unbind", func(ch *amqp.Channel) error { return ch.ExchangeUnbind("wr-x", "k", "rd-x", false, nil) })

	ok("basic.publish on write", publish("wr-x"))
	no("basic.publish without write", "exchange", "rd-x", publish("rd-x"))
	no("basic.publish to the default exchange", "exchange", "amq.default", publish(""))

	ok("basic.get on read", func(ch *amqp.Channel) error { _, _, err := ch.Get("rd-q", false); return err })
	no("basic.get without read", "queue", "wr-q", func(ch *amqp.Channel) error { _, _, err := ch.Get("wr-q", false); return err })
	ok("basic.consume on read", func(ch *amqp.Channel) error {
		_, err := ch.Consume("rd-q", "", false, false, false, false, nil)
		return err
	})
	no("basic.consume without read", "queue", "cfg-q", func(ch *amqp.Channel) error {
		_, err := ch.Consume("cfg-q", "", false, false, false, false, nil)
		return err
	})

	// A new queue with a dead-letter exchange: read on the queue, write on the DLX.
	ok("queue.declare with a DLX", declare("both-dlq", amqp.Table{"x-dead-letter-exchange": "wr-x"}))
	no("queue.declare with a DLX without write on it", "exchange", "rd-x", declare("both-dlq2", amqp.Table{"x-dead-letter-exchange": "rd-x"}))
	no("queue.declare with a DLX without read on the queue", "queue", "cfg-dlq", declare("cfg-dlq", amqp.Table{"x-dead-letter-exchange": "wr-x"}))
	ok("redeclaring an existing queue does not check its DLX", declare("cfg-existing", amqp.Table{"x-dead-letter-exchange": "rd-x"}))
	// A new exchange with an alternate exchange: read on the exchange, write on the AE.
	ok("exchange.declare with an AE", exchange("both-ae", amqp.Table{"alternate-exchange": "wr-x"}))
	no("exchange.declare with an AE without write on it", "exchange", "rd-x", exchange("both-ae2", amqp.Table{"alternate-exchange": "rd-x"}))
	no("exchange.declare with an AE without read on the exchange", "exchange", "cfg-ae", exchange("cfg-ae", amqp.Table{"alternate-exchange": "wr-x"}))

	// Permissions come before existence: no write, no 404.
	no("basic.publish to a missing exchange without write", "exchange", "other-missing", publish("other-missing"))
	f.expect("basic.publish to a missing exchange with write", op(f, c, publish("wr-missing")), amqp.NotFound,
		"NOT_FOUND - no exchange 'wr-missing' in vhost '"+f.vhost+"'")
	no("queue.bind of a missing queue without write", "queue", "other-missing", bind("other-missing", "rd-x"))
	no("queue.delete of a missing queue without configure", "queue", "other-missing", func(ch *amqp.Channel) error {
		_, err := ch.QueueDelete("other-missing", false, false, false)
		return err
	})

	// A server-named queue is checked under the name the server chose.
	err := op(f, c, declare("", nil))
	var ae *amqp.Error
	if !errors.As(err, &ae) || ae.Code != amqp.AccessRefused || !strings.HasPrefix(ae.Reason, "ACCESS_REFUSED - access to queue 'amq.gen-") {
		t.Fatalf("server-named queue: %v", err)
	}
}

// "" matches nothing; an expression matches anywhere in a name unless anchored.
func TestAccessPermissionsEmptyAndUnanchored(t *testing.T) {
	f := setup(t)
	u := f.user([]string{"", "x", ""})
	c := f.dial(u)
	f.expect("configure ''", op(f, c, func(ch *amqp.Channel) error {
		_, err := ch.QueueDeclare("q", false, false, false, false, nil)
		return err
	}), amqp.AccessRefused, f.refused("queue", "q", u))
	admin := f.channel(f.dial("guest"))
	if err := admin.ExchangeDeclare("abxcd", "fanout", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.QueueDeclare("rd-q", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := op(f, c, func(ch *amqp.Channel) error {
		return ch.Publish("abxcd", "", false, false, amqp.Publishing{})
	}); err != nil {
		t.Fatalf("write 'x' on exchange 'abxcd': %v", err)
	}
}

// Opening a vhost takes permissions on it; a change applies to connections
// already open, from their next operation.
func TestAccessPermissionsVHostAndLiveChanges(t *testing.T) {
	f := setup(t)
	u := f.user(nil)
	cl := openRaw(t, f.addr, u, "pw", f.vhost)
	if cl == nil || cl.ReplyCode != amqp.NotAllowed || cl.ReplyText != "NOT_ALLOWED - access to vhost '"+f.vhost+"' refused for user '"+u+"'" {
		t.Fatalf("open without permissions: %+v", cl)
	}
	nowhere := f.name("nowhere")
	if cl := openRaw(t, f.addr, u, "pw", nowhere); cl == nil || cl.ReplyCode != amqp.NotAllowed || cl.ReplyText != "NOT_ALLOWED - vhost "+nowhere+" not found" {
		t.Fatalf("open of a missing vhost: %+v", cl)
	}
	f.must(f.adm.setPermissions(u, f.vhost, ".*", ".*", ".*"))
	if cl := openRaw(t, f.addr, u, "pw", f.vhost); cl != nil {
		t.Fatalf("open with permissions: %+v", cl)
	}
	c := f.dial(u)
	declare := func(ch *amqp.Channel) error {
		_, err := ch.QueueDeclare("live-q", false, false, false, false, nil)
		return err
	}
	admin := f.channel(f.dial("guest"))
	if _, err := admin.QueueDeclare("rd-q", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := op(f, c, declare); err != nil {
		t.Fatal(err)
	}
	f.must(f.adm.setPermissions(u, f.vhost, "^nothing$", ".*", ".*"))
	f.expect("after the change", op(f, c, declare), amqp.AccessRefused, f.refused("queue", "live-q", u))
	f.must(f.adm.clearPermissions(u, f.vhost))
	f.expect("after clearing", op(f, c, func(ch *amqp.Channel) error {
		_, _, err := ch.Get("rd-q", false)
		return err
	}), amqp.AccessRefused, f.refused("queue", "rd-q", u))
}

// Topic permissions restrict routing keys on topic exchanges only, with
// {username} expanded.
func TestAccessTopicPermissions(t *testing.T) {
	f := setup(t)
	u := f.user([]string{".*", ".*", ".*"})
	f.must(f.adm.setTopicPermissions(u, f.vhost, "amq.topic", "^{username}\\.", "^rd\\."))
	f.must(f.adm.setTopicPermissions(u, f.vhost, "amq.direct", "^nothing$", "^nothing$"))
	c := f.dial(u)
	if err := op(f, c, func(ch *amqp.Channel) error {
		if _, err := ch.QueueDeclare("rd-q", false, false, false, false, nil); err != nil {
			return err
		}
		return ch.Publish("amq.topic", u+".x", false, false, amqp.Publishing{})
	}); err != nil {
		t.Fatalf("allowed key: %v", err)
	}
	topicRefused := func(key, x string) string {
		return "ACCESS_REFUSED - access to topic '" + key + "' in exchange '" + x + "' in vhost '" + f.vhost + "' refused for user '" + u + "'"
	}
	f.expect("publish with another key", op(f, c, func(ch *amqp.Channel) error {
		return ch.Publish("amq.topic", "other.x", false, false, amqp.Publishing{})
	}), amqp.AccessRefused, topicRefused("other.x", "amq.topic"))
	if err := op(f, c, func(ch *amqp.Channel) error { return ch.QueueBind("rd-q", "rd.#", "amq.topic", false, nil) }); err != nil {
		t.Fatalf("bind with a readable key: %v", err)
	}
	f.expect("bind with another key", op(f, c, func(ch *amqp.Channel) error {
		return ch.QueueBind("rd-q", "x.#", "amq.topic", false, nil)
	}), amqp.AccessRefused, topicRefused("x.#", "amq.topic"))
	f.expect("exchange.bind from a topic exchange with another key", op(f, c, func(ch *amqp.Channel) error {
		return ch.ExchangeBind("amq.fanout", "x.#", "amq.topic", false, nil)
	}), amqp.AccessRefused, topicRefused("x.#", "amq.topic"))
	// Not a topic exchange: topic permissions do not apply.
	if err := op(f, c, func(ch *amqp.Channel) error {
		if err := ch.QueueBind("rd-q", "any", "amq.direct", false, nil); err != nil {
			return err
		}
		return ch.Publish("amq.direct", "any", false, false, amqp.Publishing{})
	}); err != nil {
		t.Fatalf("direct exchange: %v", err)
	}
}

// user_id must name the connection's user unless it has the impersonator tag.
func TestAccessUserIDProperty(t *testing.T) {
	f := setup(t)
	u := f.user([]string{".*", ".*", ".*"})
	imp := f.user([]string{".*", ".*", ".*"}, "impersonator")
	f.channel(f.dial("guest")).QueueDeclare("rd-q", false, false, false, false, nil)
	pub := func(id string) func(*amqp.Channel) error {
		return func(ch *amqp.Channel) error {
			return ch.Publish("", "rd-q", false, false, amqp.Publishing{UserId: id})
		}
	}
	c := f.dial(u)
	if err := op(f, c, pub(u)); err != nil {
		t.Fatalf("own user_id: %v", err)
	}
	f.expect("another user_id", op(f, c, pub("someone-else")), amqp.PreconditionFailed,
		"PRECONDITION_FAILED - user_id property set to 'someone-else' but authenticated user was '"+u+"'")
	if err := op(f, f.dial(imp), pub("someone-else")); err != nil {
		t.Fatalf("impersonator: %v", err)
	}
}
