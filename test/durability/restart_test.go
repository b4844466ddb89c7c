// Package durability checks what survives a broker restart: durable entities
// and persistent messages do, transient ones do not. These tests restart an
// in-process broker on the same data directory; test/crash kills the real
// binary.
package durability

import (
	"errors"
	"fmt"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warren-mq/warren/internal/testbroker"
)

// node is a broker that can be restarted on its data directory.
type node struct {
	t    *testing.T
	dir  string
	inst *testbroker.Instance
}

func newNode(t *testing.T) *node {
	n := &node{t: t, dir: t.TempDir()}
	n.start()
	return n
}

func (n *node) start() { n.inst = testbroker.Start(n.t, testbroker.Options{DataDir: n.dir}) }

func (n *node) restart() {
	n.inst.Stop()
	n.start()
}

func (n *node) channel() *amqp.Channel {
	n.t.Helper()
	c, err := amqp.Dial(n.inst.URL)
	if err != nil {
		n.t.Fatal(err)
	}
	n.t.Cleanup(func() { c.Close() })
	ch, err := c.Channel()
	if err != nil {
		n.t.Fatal(err)
	}
	return ch
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// publishConfirmed publishes bodies and waits until every one is acked.
func publishConfirmed(t *testing.T, ch *amqp.Channel, exchange, key string, mode uint8, bodies ...string) {
	t.Helper()
	must(t, ch.Confirm(false))
	for _, b := range bodies {
		dc, err := ch.PublishWithDeferredConfirm(exchange, key, false, false, amqp.Publishing{DeliveryMode: mode, Body: []byte(b)})
		must(t, err)
		if !dc.Wait() {
			t.Fatalf("publish %q nacked", b)
		}
	}
}

type got struct {
	body        string
	redelivered bool
}

// getAll drains a queue with basic.get (auto-ack).
func getAll(t *testing.T, ch *amqp.Channel, q string) []got {
	t.Helper()
	var out []got
	for {
		d, ok, err := ch.Get(q, true)
		must(t, err)
		if !ok {
			return out
		}
		out = append(out, got{string(d.Body), d.Redelivered})
	}
}

func expectGot(t *testing.T, what string, have []got, want ...got) {
	t.Helper()
	if fmt.Sprint(have) != fmt.Sprint(want) {
		t.Fatalf("%s: got %v, want %v", what, have, want)
	}
}

func notFound(err error) bool {
	var ae *amqp.Error
	return errors.As(err, &ae) && ae.Code == 404
}

func TestDurableEntitiesSurviveRestart(t *testing.T) {
	n := newNode(t)
	ch := n.channel()
	must(t, ch.ExchangeDeclare("events", "topic", true, false, false, false, nil))
	must(t, ch.ExchangeDeclare("fan", "fanout", true, false, false, false, amqp.Table{"alternate-exchange": "events"}))
	must(t, ch.ExchangeDeclare("scratch", "direct", false, false, false, false, nil))
	_, err := ch.QueueDeclare("orders", true, false, false, false, amqp.Table{"x-max-length": int32(100)})
	must(t, err)
	_, err = ch.QueueDeclare("temp", false, false, false, false, nil)
	must(t, err)
	must(t, ch.QueueBind("orders", "order.*", "events", false, nil))
	must(t, ch.ExchangeBind("events", "#", "fan", false, nil))
	_, err = ch.QueueDeclare("gone", true, false, false, false, nil)
	must(t, err)
	_, err = ch.QueueDelete("gone", false, false, false)
	must(t, err)

	n.restart()
	ch = n.channel()
	must(t, ch.ExchangeDeclarePassive("events", "topic", true, false, false, false, nil))
	// Redeclaring with the same arguments must be equivalent: arguments survived.
	must(t, ch.ExchangeDeclare("fan", "fanout", true, false, false, false, amqp.Table{"alternate-exchange": "events"}))
	_, err = ch.QueueDeclare("orders", true, false, false, false, amqp.Table{"x-max-length": int32(100)})
	must(t, err)
	// Routing through the surviving exchange-to-exchange and queue bindings.
	publishConfirmed(t, ch, "fan", "order.created", amqp.Persistent, "o-1")
	expectGot(t, "orders after restart", getAll(t, ch, "orders"), got{"o-1", false})

	for _, q := range []string{"temp", "gone"} {
		if _, err := ch.QueueDeclarePassive(q, false, false, false, false, nil); !notFound(err) {
			t.Fatalf("queue %q after restart: %v, want 404", q, err)
		}
		ch = n.channel()
	}
	if err := ch.ExchangeDeclarePassive("scratch", "direct", false, false, false, false, nil); !notFound(err) {
		t.Fatalf("transient exchange after restart: %v, want 404", err)
	}
}

func TestDurablePersistentMessagesSurviveRestart(t *testing.T) {
	n := newNode(t)
	ch := n.channel()
	_, err := ch.QueueDeclare("jobs", true, false, false, false, nil)
	must(t, err)
	_, err = ch.QueueDeclare("transient-queue", false, false, false, false, nil)
	must(t, err)
	publishConfirmed(t, ch, "", "jobs", amqp.Persistent, "p-1")
	publishConfirmed(t, ch, "", "jobs", amqp.Transient, "t-1")
	publishConfirmed(t, ch, "", "jobs", amqp.Persistent, "p-2", "p-3")
	publishConfirmed(t, ch, "", "transient-queue", amqp.Persistent, "lost")

	n.restart()
	ch = n.channel()
	expectGot(t, "jobs after restart", getAll(t, ch, "jobs"), got{"p-1", false}, got{"p-2", false}, got{"p-3", false})
	n.restart()
	ch = n.channel()
	expectGot(t, "jobs after a second restart (all were acked)", getAll(t, ch, "jobs"))
}

func TestDurableAckedGoneUnackedRedelivered(t *testing.T) {
	n := newNode(t)
	ch := n.channel()
	_, err := ch.QueueDeclare("work", true, false, false, false, nil)
	must(t, err)
	var bodies []string
	for i := 1; i <= 8; i++ {
		bodies = append(bodies, fmt.Sprintf("m-%d", i))
	}
	publishConfirmed(t, ch, "", "work", amqp.Persistent, bodies...)
	cch := n.channel()
	var got5 []amqp.Delivery
	for len(got5) < 5 {
		d, ok, err := cch.Get("work", false)
		must(t, err)
		if !ok {
			t.Fatalf("only %d messages", len(got5))
		}
		got5 = append(got5, d)
	}
	must(t, got5[2].Ack(true)) // m-1..m-3 acked; m-4, m-5 delivered and unacked
	must(t, cch.Close())       // and now requeued; still marked delivered in the store

	n.restart()
	ch = n.channel()
	expectGot(t, "work after restart", getAll(t, ch, "work"),
		got{"m-4", true}, got{"m-5", true}, got{"m-6", false}, got{"m-7", false}, got{"m-8", false})
}

func TestDurableRedeclaredQueueKeepsOnlyItsOwnMessages(t *testing.T) {
	n := newNode(t)
	ch := n.channel()
	_, err := ch.QueueDeclare("q", true, false, false, false, nil)
	must(t, err)
	publishConfirmed(t, ch, "", "q", amqp.Persistent, "old-1", "old-2")
	_, err = ch.QueueDelete("q", false, false, false)
	must(t, err)
	_, err = ch.QueueDeclare("q", true, false, false, false, nil)
	must(t, err)
	publishConfirmed(t, ch, "", "q", amqp.Persistent, "new-1")
	n.restart()
	ch = n.channel()
	expectGot(t, "q after restart", getAll(t, ch, "q"), got{"new-1", false})
}

func TestDurableTxCommitSurvivesRestart(t *testing.T) {
	n := newNode(t)
	ch := n.channel()
	_, err := ch.QueueDeclare("ledger", true, false, false, false, nil)
	must(t, err)
	must(t, ch.Tx())
	for _, b := range []string{"a", "b"} {
		must(t, ch.Publish("", "ledger", false, false, amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte(b)}))
	}
	must(t, ch.TxCommit())
	must(t, ch.Publish("", "ledger", false, false, amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte("rolled back")}))
	must(t, ch.TxRollback())
	n.restart()
	ch = n.channel()
	expectGot(t, "ledger after restart", getAll(t, ch, "ledger"), got{"a", false}, got{"b", false})
}

func TestDurableDeadLetteredMessagesPersist(t *testing.T) {
	n := newNode(t)
	ch := n.channel()
	_, err := ch.QueueDeclare("dead", true, false, false, false, nil)
	must(t, err)
	_, err = ch.QueueDeclare("live", true, false, false, false, amqp.Table{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "dead"})
	must(t, err)
	publishConfirmed(t, ch, "", "live", amqp.Persistent, "x")
	d, ok, err := ch.Get("live", false)
	must(t, err)
	if !ok {
		t.Fatal("live is empty")
	}
	must(t, d.Reject(false))
	// The dead letter lands asynchronously; wait until it is there.
	testbroker.CheckFor(t, 10*time.Second, func() bool {
		q, err := ch.QueueDeclarePassive("dead", true, false, false, false, nil)
		return err == nil && q.Messages == 1
	})
	n.restart()
	ch = n.channel()
	expectGot(t, "live after restart", getAll(t, ch, "live"))
	expectGot(t, "dead after restart", getAll(t, ch, "dead"), got{"x", false})
}
