package policy

import (
	"context"
	"errors"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warren-mq/warren/internal/testbroker"
)

// declare declares a non-durable queue with args and returns its name.
func (e *env) declare(ch *amqp.Channel, label string, args amqp.Table) string {
	e.t.Helper()
	name := e.name(label)
	if _, err := ch.QueueDeclare(name, false, false, false, false, args); err != nil {
		e.t.Fatalf("queue.declare %q: %v", name, err)
	}
	return name
}

// exchange declares a non-durable exchange.
func (e *env) exchange(ch *amqp.Channel, label, kind string, args amqp.Table) string {
	e.t.Helper()
	name := e.name(label)
	if err := ch.ExchangeDeclare(name, kind, false, false, false, false, args); err != nil {
		e.t.Fatalf("exchange.declare %q: %v", name, err)
	}
	return name
}

// deadLetterTarget declares a fanout exchange with a queue bound to it and
// returns both names.
func (e *env) deadLetterTarget(ch *amqp.Channel) (exchange, queue string) {
	e.t.Helper()
	exchange = e.exchange(ch, "dlx", "fanout", nil)
	queue = e.declare(ch, "dlq", nil)
	if err := ch.QueueBind(queue, "", exchange, false, nil); err != nil {
		e.t.Fatalf("queue.bind: %v", err)
	}
	return exchange, queue
}

// publish sends transient messages with the given bodies in order, with
// confirms so that each has reached its queue when publish returns.
func publish(t *testing.T, ch *amqp.Channel, exchange, key string, bodies ...string) {
	t.Helper()
	if err := ch.Confirm(false); err != nil {
		t.Fatalf("confirm.select: %v", err)
	}
	for _, b := range bodies {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, exchange, key, false, false, amqp.Publishing{Body: []byte(b)})
		if err != nil {
			cancel()
			t.Fatalf("basic.publish: %v", err)
		}
		if _, err := dc.WaitContext(ctx); err != nil {
			cancel()
			t.Fatalf("confirm of %q: %v", b, err)
		}
		cancel()
	}
}

// count returns the queue's ready message count.
func count(t *testing.T, ch *amqp.Channel, queue string) int {
	t.Helper()
	q, err := ch.QueueDeclarePassive(queue, false, false, false, false, nil)
	if err != nil {
		t.Fatalf("passive queue.declare %q: %v", queue, err)
	}
	return q.Messages
}

// waitCount polls until the queue holds exactly n ready messages: RabbitMQ
// applies a policy to its queues asynchronously.
func waitCount(t *testing.T, ch *amqp.Channel, queue string, n int) {
	t.Helper()
	last := -1
	deadline := time.Now().Add(waitTimeout)
	for {
		if last = count(t, ch, queue); last == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue %q holds %d messages, want %d", queue, last, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// getAll takes every ready message with basic.get (auto-ack).
func getAll(t *testing.T, ch *amqp.Channel, queue string) []string {
	t.Helper()
	out := []string{}
	for {
		d, ok, err := ch.Get(queue, true)
		if err != nil {
			t.Fatalf("basic.get %q: %v", queue, err)
		}
		if !ok {
			return out
		}
		out = append(out, string(d.Body))
	}
}

// getN polls basic.get until n messages came from queue (for messages the
// broker moves itself, such as dead letters).
func getN(t *testing.T, ch *amqp.Channel, queue string, n int) []amqp.Delivery {
	t.Helper()
	var got []amqp.Delivery
	testbroker.CheckFor(t, waitTimeout, func() bool {
		d, ok, err := ch.Get(queue, true)
		if err != nil {
			t.Fatalf("basic.get %q: %v", queue, err)
		}
		if ok {
			got = append(got, d)
		}
		return len(got) >= n
	})
	return got
}

func bodies(ds []amqp.Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = string(d.Body)
	}
	return out
}

func wantBodies(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %q, want %q", what, got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%s: got %q, want %q", what, got, want)
		}
	}
}

// deathReason returns the reason of a dead letter's latest x-death entry.
func deathReason(t *testing.T, d amqp.Delivery) string {
	t.Helper()
	deaths, _ := d.Headers["x-death"].([]any)
	if len(deaths) == 0 {
		t.Fatalf("dead letter %q has no x-death header: %v", d.Body, d.Headers)
	}
	reason, _ := deaths[0].(amqp.Table)["reason"].(string)
	return reason
}

// wantAMQPError fails unless err is an AMQP exception with code and reason.
func wantAMQPError(t *testing.T, err error, code int, reason string) {
	t.Helper()
	var e *amqp.Error
	if !errors.As(err, &e) {
		t.Fatalf("got error %v (%T), want AMQP exception %d %q", err, err, code, reason)
	}
	if e.Code != code || e.Reason != reason {
		t.Fatalf("got AMQP exception %d %q,\nwant              %d %q", e.Code, e.Reason, code, reason)
	}
}
