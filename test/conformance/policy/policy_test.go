package policy

import (
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warren-mq/warren/internal/broker"
	"github.com/warren-mq/warren/internal/testbroker"
)

// A max-length policy set on a queue that already holds more drops the
// excess from the head at once.
func TestPolicyMaxLengthLiveQueue(t *testing.T) {
	e := setup(t)
	ch := e.channel()
	q := e.declare(ch, "q", nil)
	publish(t, ch, "", q, "m1", "m2", "m3", "m4", "m5")
	e.mustSetPolicy("maxlen", "^"+regexp.QuoteMeta(q)+"$", "queues", 0, `{"max-length":2}`)
	waitCount(t, ch, q, 2)
	wantBodies(t, "after max-length 2", getAll(t, ch, q), "m4", "m5")
	// New messages obey it too.
	publish(t, ch, "", q, "m6", "m7", "m8")
	wantBodies(t, "after three more", getAll(t, ch, q), "m7", "m8")
}

// The excess a new max-length drops is dead-lettered (reason maxlen) when the
// queue has a dead-letter exchange.
func TestPolicyMaxLengthDeadLetters(t *testing.T) {
	e := setup(t)
	ch := e.channel()
	dlx, dlq := e.deadLetterTarget(ch)
	q := e.declare(ch, "q", amqp.Table{"x-dead-letter-exchange": dlx})
	publish(t, ch, "", q, "m1", "m2", "m3")
	e.mustSetPolicy("maxlen", "^"+regexp.QuoteMeta(q)+"$", "queues", 0, `{"max-length":1}`)
	dead := getN(t, ch, dlq, 2)
	wantBodies(t, "dead-lettered", bodies(dead), "m1", "m2")
	for _, d := range dead {
		if r := deathReason(t, d); r != "maxlen" {
			t.Fatalf("x-death reason %q, want maxlen", r)
		}
	}
	wantBodies(t, "left", getAll(t, ch, q), "m3")
}

// A message-ttl policy applies to messages enqueued after it; one already
// queued keeps the expiry it had (none). Removing the policy restores that.
func TestPolicyMessageTTL(t *testing.T) {
	e := setup(t)
	ch := e.channel()
	dlx, dlq := e.deadLetterTarget(ch)
	q := e.declare(ch, "q", amqp.Table{"x-dead-letter-exchange": dlx})
	publish(t, ch, "", q, "before")
	e.mustSetPolicy("ttl", "^"+regexp.QuoteMeta(q)+"$", "queues", 0, `{"message-ttl":0}`)
	publish(t, ch, "", q, "after")
	// "before" is at the head and never expires; taking it exposes "after",
	// whose TTL of 0 has passed.
	d, ok, err := ch.Get(q, true)
	if err != nil || !ok || string(d.Body) != "before" {
		t.Fatalf("basic.get: %q %v %v, want \"before\"", d.Body, ok, err)
	}
	dead := getN(t, ch, dlq, 1)
	if string(dead[0].Body) != "after" || deathReason(t, dead[0]) != "expired" {
		t.Fatalf("dead letter %q reason %q, want \"after\" expired", dead[0].Body, deathReason(t, dead[0]))
	}
	e.clearPolicy(t, "ttl", false)
	publish(t, ch, "", q, "cleared")
	wantBodies(t, "after clearing", getAll(t, ch, q), "cleared")
}

// A dead-letter-exchange policy gives a queue dead-lettering; a queue's own
// x-dead-letter-exchange argument wins over it.
func TestPolicyDeadLetterExchange(t *testing.T) {
	e := setup(t)
	ch := e.channel()
	dlx, dlq := e.deadLetterTarget(ch)
	ownDLX, ownDLQ := e.deadLetterTarget(ch)
	prefix := e.name("dl")
	plain := e.declare(ch, prefix+".plain", nil)
	own := e.declare(ch, prefix+".own", amqp.Table{"x-dead-letter-exchange": ownDLX})
	e.mustSetPolicy("dlx", "^"+regexp.QuoteMeta(prefix)+`\.`, "queues", 0, `{"dead-letter-exchange":"`+dlx+`","dead-letter-routing-key":"rk"}`)
	publish(t, ch, "", plain, "p1")
	publish(t, ch, "", own, "o1")
	for _, q := range []string{plain, own} {
		d, ok, err := ch.Get(q, false)
		if err != nil || !ok {
			t.Fatalf("basic.get %q: %v %v", q, ok, err)
		}
		if err := d.Reject(false); err != nil {
			t.Fatal(err)
		}
	}
	d := getN(t, ch, dlq, 1)[0]
	if string(d.Body) != "p1" || d.RoutingKey != "rk" || deathReason(t, d) != "rejected" {
		t.Fatalf("policy dead letter %q key %q reason %q, want p1 rk rejected", d.Body, d.RoutingKey, deathReason(t, d))
	}
	if got := bodies(getN(t, ch, ownDLQ, 1)); got[0] != "o1" {
		t.Fatalf("argument's dead-letter exchange got %q", got)
	}
	if n := count(t, ch, dlq); n != 0 {
		t.Fatalf("policy dead-letter queue holds %d more", n)
	}
}

// An operator policy caps a queue argument and a user policy: the lower
// limit wins.
func TestPolicyOperatorCaps(t *testing.T) {
	e := setup(t)
	ch := e.channel()
	prefix := e.name("op")
	argQ := e.declare(ch, prefix+".arg", amqp.Table{"x-max-length": int32(10)})
	polQ := e.declare(ch, prefix+".pol", nil)
	pattern := "^" + regexp.QuoteMeta(prefix) + `\.`
	e.mustSetPolicy("user", `^`+regexp.QuoteMeta(polQ)+`$`, "queues", 0, `{"max-length":4}`)
	e.mustSetOperatorPolicy("cap", pattern, 0, `{"max-length":2}`)
	publish(t, ch, "", argQ, "a1", "a2", "a3")
	publish(t, ch, "", polQ, "p1", "p2", "p3")
	waitCount(t, ch, argQ, 2)
	waitCount(t, ch, polQ, 2)
	wantBodies(t, "argument capped", getAll(t, ch, argQ), "a2", "a3")
	wantBodies(t, "policy capped", getAll(t, ch, polQ), "p2", "p3")
	// An operator limit above the queue's own leaves the lower one in force.
	e.mustSetOperatorPolicy("cap", pattern, 0, `{"max-length":3}`)
	e.mustSetPolicy("user", `^`+regexp.QuoteMeta(polQ)+`$`, "queues", 0, `{"max-length":1}`)
	publish(t, ch, "", polQ, "p4", "p5")
	waitCount(t, ch, polQ, 1)
	wantBodies(t, "user policy lower", getAll(t, ch, polQ), "p5")
	// Without the operator policy the argument applies again.
	e.clearPolicy(t, "cap", true)
	publish(t, ch, "", argQ, "b1", "b2", "b3", "b4")
	wantBodies(t, "argument again", getAll(t, ch, argQ), "b1", "b2", "b3", "b4")
}

// Clearing a policy restores the queue's own behaviour.
func TestPolicyRemovalRestores(t *testing.T) {
	e := setup(t)
	ch := e.channel()
	q := e.declare(ch, "q", nil)
	e.mustSetPolicy("maxlen", "^"+regexp.QuoteMeta(q)+"$", "all", 0, `{"max-length":1}`)
	publish(t, ch, "", q, "m1", "m2", "m3")
	waitCount(t, ch, q, 1)
	e.clearPolicy(t, "maxlen", false)
	publish(t, ch, "", q, "m4", "m5")
	wantBodies(t, "after clearing", getAll(t, ch, q), "m3", "m4", "m5")
}

// Of two matching policies the one of higher priority applies; raising the
// other's priority switches to it on the live queue.
func TestPolicyPriority(t *testing.T) {
	e := setup(t)
	ch := e.channel()
	q := e.declare(ch, "q", nil)
	pattern := "^" + regexp.QuoteMeta(q) + "$"
	e.mustSetPolicy("low", pattern, "queues", 1, `{"max-length":1}`)
	e.mustSetPolicy("high", pattern, "queues", 2, `{"max-length":3}`)
	publish(t, ch, "", q, "m1", "m2", "m3", "m4", "m5")
	waitCount(t, ch, q, 3)
	e.mustSetPolicy("low", pattern, "queues", 5, `{"max-length":1}`)
	waitCount(t, ch, q, 1)
	wantBodies(t, "after raising low", getAll(t, ch, q), "m5")
}

// An alternate-exchange policy gives an exchange an alternate; an exchange's
// own alternate-exchange argument wins over it. Policies for queues do not
// apply to exchanges.
func TestPolicyAlternateExchange(t *testing.T) {
	e := setup(t)
	ch := e.channel()
	ae := e.exchange(ch, "ae", "fanout", nil)
	aeQ := e.declare(ch, "aeq", nil)
	ownAE := e.exchange(ch, "ownae", "fanout", nil)
	ownQ := e.declare(ch, "ownq", nil)
	for q, x := range map[string]string{aeQ: ae, ownQ: ownAE} {
		if err := ch.QueueBind(q, "", x, false, nil); err != nil {
			t.Fatal(err)
		}
	}
	prefix := e.name("src")
	plain := e.exchange(ch, prefix+".plain", "direct", nil)
	own := e.exchange(ch, prefix+".own", "direct", amqp.Table{"alternate-exchange": ownAE})
	pattern := "^" + regexp.QuoteMeta(prefix) + `\.`
	e.mustSetPolicy("ae-queues", pattern, "queues", 9, `{"alternate-exchange":"`+ae+`"}`)
	publish(t, ch, plain, "nowhere", "unrouted-1")
	e.mustSetPolicy("ae", pattern, "exchanges", 0, `{"alternate-exchange":"`+ae+`"}`)
	publish(t, ch, plain, "nowhere", "unrouted-2")
	publish(t, ch, own, "nowhere", "unrouted-3")
	wantBodies(t, "policy's alternate", bodies(getN(t, ch, aeQ, 1)), "unrouted-2")
	wantBodies(t, "argument's alternate", bodies(getN(t, ch, ownQ, 1)), "unrouted-3")
	e.clearPolicy(t, "ae", false)
	publish(t, ch, plain, "nowhere", "unrouted-4")
	publish(t, ch, "", aeQ, "sentinel")
	wantBodies(t, "after clearing", getAll(t, ch, aeQ), "sentinel")
}

// queue.declare equivalence compares the declared arguments only, not what
// a policy adds.
func TestPolicyDeclareEquivalence(t *testing.T) {
	e := setup(t)
	ch := e.channel()
	q := e.declare(ch, "q", nil)
	e.mustSetPolicy("maxlen", "^"+regexp.QuoteMeta(q)+"$", "queues", 0, `{"max-length":1}`)
	if _, err := ch.QueueDeclare(q, false, false, false, false, nil); err != nil {
		t.Fatalf("redeclare without arguments: %v", err)
	}
	_, err := ch.QueueDeclare(q, false, false, false, false, amqp.Table{"x-max-length": int32(1)})
	wantAMQPError(t, err, 406, "PRECONDITION_FAILED - inequivalent arg 'x-max-length' for queue '"+q+"' in vhost '"+e.vhost+"': received the value '1' of type 'signedint' but current is none")
}

// Bad policies are refused with RabbitMQ's reasons; nothing else changes.
func TestPolicyValidation(t *testing.T) {
	e := setup(t)
	for _, c := range []struct {
		def, applyTo string
		operator     bool
		want         string // exact reason, or a prefix ending in "..."
	}{
		{def: `{"foo":1}`, want: `[{<<"foo">>,1}] are not recognised policy settings`},
		{def: `{"max-length":1,"zz":1,"aa":"b"}`, want: `[{<<"aa">>,<<"b">>},{<<"zz">>,1}] are not recognised policy settings`},
		{def: `{"max-priority":5}`, want: `[{<<"max-priority">>,5}] are not recognised policy settings`},
		{def: `{"max-length":"x"}`, want: `<<"x">> is not a valid maximum length`},
		{def: `{"max-length":-1}`, want: `-1 is not a valid maximum length`},
		{def: `{"message-ttl":1.0}`, want: `1.0 is not a valid message TTL`},
		{def: `{"expires":0}`, want: `0 is not a valid queue expiry`},
		{def: `{"overflow":"x"}`, want: `<<"x">> is not a valid overflow value`},
		{def: `{"alternate-exchange":1}`, want: `1 is not a valid alternate exchange name`},
		{def: `{"queue-mode":"x"}`, want: `<<"x">> is not a valid queue-mode value`},
		{def: `{}`, want: `no policy provided`},
		{def: `{"dead-letter-exchange":"x"}`, operator: true, want: `[{<<"dead-letter-exchange">>,<<"x">>}] are not recognised policy settings`},
		{def: `{"max-length":1}`, applyTo: "bogus", want: `apply-to 'bogus' unrecognised; should be ...`},
	} {
		reason := e.setPolicy(t, broker.Policy{VHost: e.vhost, Name: "bad", Pattern: "^x", ApplyTo: c.applyTo, Definition: json.RawMessage(c.def), Operator: c.operator})
		if want, prefix := strings.CutSuffix(c.want, "..."); (prefix && !strings.HasPrefix(reason, want)) || (!prefix && reason != want) {
			t.Errorf("policy %s (operator %v, apply-to %q): reason %q, want %q", c.def, c.operator, c.applyTo, reason, c.want)
		}
	}
	reason := e.setPolicy(t, broker.Policy{VHost: e.vhost, Name: "bad", Pattern: "[", Definition: json.RawMessage(`{"max-length":1}`)})
	if !strings.HasPrefix(reason, "pattern should be regular expression but is invalid") {
		t.Errorf("invalid regex: reason %q", reason)
	}
	// The broker still serves.
	ch := e.channel()
	q := e.declare(ch, "q", nil)
	publish(t, ch, "", q, "ok")
	wantBodies(t, "after refusals", getAll(t, ch, q), "ok")
}

// An expires policy set on an unused live queue starts its expiry clock:
// the queue goes.
func TestPolicyExpiresLiveQueue(t *testing.T) {
	e := setup(t)
	conn := e.dial()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	q := e.declare(ch, "q", nil)
	e.mustSetPolicy("expires", "^"+regexp.QuoteMeta(q)+"$", "queues", 0, `{"expires":1}`)
	testbroker.CheckFor(t, waitTimeout, func() bool {
		c, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.QueueDeclarePassive(q, false, false, false, false, nil)
		var ae *amqp.Error
		if errors.As(err, &ae) && ae.Code == 404 {
			return true
		}
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		return false
	})
}
