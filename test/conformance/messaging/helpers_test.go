package messaging

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warren-mq/warren/internal/testbroker"
)

// waitTimeout bounds every wait for something the broker should send promptly.
// It is a failure deadline, never a synchronisation device.
const waitTimeout = 10 * time.Second

// dial opens a connection to the broker under test, closed when t ends.
func dial(t *testing.T) *amqp.Connection {
	t.Helper()
	conn, err := amqp.Dial(testbroker.URL(t))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// openChannel opens a channel on conn; it goes away with the connection.
func openChannel(t *testing.T, conn *amqp.Connection) *amqp.Channel {
	t.Helper()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("open channel: %v", err)
	}
	return ch
}

// dialChannel is the common case of one connection with one channel.
func dialChannel(t *testing.T) (*amqp.Connection, *amqp.Channel) {
	t.Helper()
	conn := dial(t)
	return conn, openChannel(t, conn)
}

// uniqueName gives a name no other test (or earlier run against a shared
// RabbitMQ) uses, while still saying which test made it.
func uniqueName(t *testing.T, kind string) string {
	t.Helper()
	base := strings.NewReplacer("/", ".", " ", "_").Replace(t.Name())
	return fmt.Sprintf("%s.%s.%08x", base, kind, rand.Uint32())
}

// cleanupQueue deletes the queue when t ends, over a fresh connection so that
// tests which deliberately break their own connection still clean up.
func cleanupQueue(t *testing.T, name string) {
	t.Helper()
	url := testbroker.URL(t)
	t.Cleanup(func() {
		conn, err := amqp.Dial(url)
		if err != nil {
			t.Logf("cleanup dial: %v", err)
			return
		}
		defer conn.Close()
		ch, err := conn.Channel()
		if err != nil {
			t.Logf("cleanup channel: %v", err)
			return
		}
		if _, err := ch.QueueDelete(name, false, false, false); err != nil {
			t.Logf("cleanup delete queue %q: %v", name, err)
		}
	})
}

// cleanupExchange deletes the exchange when t ends, like cleanupQueue.
func cleanupExchange(t *testing.T, name string) {
	t.Helper()
	url := testbroker.URL(t)
	t.Cleanup(func() {
		conn, err := amqp.Dial(url)
		if err != nil {
			t.Logf("cleanup dial: %v", err)
			return
		}
		defer conn.Close()
		ch, err := conn.Channel()
		if err != nil {
			t.Logf("cleanup channel: %v", err)
			return
		}
		if err := ch.ExchangeDelete(name, false, false); err != nil {
			t.Logf("cleanup delete exchange %q: %v", name, err)
		}
	})
}

// declareQueue declares a fresh non-durable queue with args and deletes it
// when t ends.
func declareQueue(t *testing.T, ch *amqp.Channel, args amqp.Table) string {
	t.Helper()
	name := uniqueName(t, "q")
	if _, err := ch.QueueDeclare(name, false, false, false, false, args); err != nil {
		t.Fatalf("declare queue %q: %v", name, err)
	}
	cleanupQueue(t, name)
	return name
}

// publish sends msg and fails t if the client could not write it.
func publish(t *testing.T, ch *amqp.Channel, exchange, key string, msg amqp.Publishing) {
	t.Helper()
	if err := ch.Publish(exchange, key, false, false, msg); err != nil {
		t.Fatalf("publish to %q/%q: %v", exchange, key, err)
	}
}

// publishBodies publishes one message per body to queue through the default
// exchange, in order.
func publishBodies(t *testing.T, ch *amqp.Channel, queue string, bodies ...string) {
	t.Helper()
	for _, b := range bodies {
		publish(t, ch, "", queue, amqp.Publishing{Body: []byte(b)})
	}
}

// numbered returns "prefix-1" ... "prefix-n".
func numbered(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", prefix, i+1)
	}
	return out
}

// queueCounts returns the ready-message and consumer counts of queue as a
// passive queue.declare reports them. It uses its own channel so that it also
// works as a synchronisation point for other channels' work.
func queueCounts(t *testing.T, conn *amqp.Connection, queue string) (messages, consumers int) {
	t.Helper()
	ch := openChannel(t, conn)
	defer ch.Close()
	q, err := ch.QueueDeclarePassive(queue, false, false, false, false, nil)
	if err != nil {
		t.Fatalf("passive declare %q: %v", queue, err)
	}
	return q.Messages, q.Consumers
}

// waitReady waits until queue holds exactly n ready messages, logging each
// count it sees on the way so a timeout says where it got stuck.
func waitReady(t *testing.T, conn *amqp.Connection, queue string, n int) {
	t.Helper()
	last := -1
	testbroker.CheckFor(t, waitTimeout, func() bool {
		got, _ := queueCounts(t, conn, queue)
		if got != last {
			last = got
			if got != n {
				t.Logf("queue %q: %d ready messages, waiting for %d", queue, got, n)
			}
		}
		return got == n
	})
}

// consume starts a consumer with the given tag (amqp091-go makes one up when
// empty) and manual acks.
func consume(t *testing.T, ch *amqp.Channel, queue, tag string) <-chan amqp.Delivery {
	t.Helper()
	ds, err := ch.Consume(queue, tag, false, false, false, false, nil)
	if err != nil {
		t.Fatalf("consume %q: %v", queue, err)
	}
	return ds
}

// next waits for one delivery.
func next(t *testing.T, ds <-chan amqp.Delivery) amqp.Delivery {
	t.Helper()
	select {
	case d, ok := <-ds:
		if !ok {
			t.Fatalf("delivery channel closed")
		}
		return d
	case <-time.After(waitTimeout):
		t.Fatalf("no delivery within %v", waitTimeout)
	}
	return amqp.Delivery{}
}

// nextN waits for n deliveries.
func nextN(t *testing.T, ds <-chan amqp.Delivery, n int) []amqp.Delivery {
	t.Helper()
	out := make([]amqp.Delivery, 0, n)
	for range n {
		out = append(out, next(t, ds))
	}
	return out
}

// bodies returns the deliveries' bodies as strings, for order comparisons.
func bodies(ds []amqp.Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = string(d.Body)
	}
	return out
}

// redelivered returns the deliveries' redelivered flags.
func redelivered(ds []amqp.Delivery) []bool {
	out := make([]bool, len(ds))
	for i, d := range ds {
		out[i] = d.Redelivered
	}
	return out
}

// equalStrings compares two string slices and reports the difference.
func equalStrings(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "\x00") != strings.Join(want, "\x00") || len(got) != len(want) {
		t.Fatalf("%s: got %q, want %q", what, got, want)
	}
}

// repeatBool builds a slice of n copies of v.
func repeatBool(v bool, n int) []bool {
	out := make([]bool, n)
	for i := range out {
		out[i] = v
	}
	return out
}

// equalBools compares two bool slices.
func equalBools(t *testing.T, what string, got, want []bool) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("%s: got %v, want %v", what, got, want)
	}
}

// expectError checks that err is the broker's *amqp.Error with code and text.
func expectError(t *testing.T, err error, code int, text string) {
	t.Helper()
	var amqpErr *amqp.Error
	if !errors.As(err, &amqpErr) {
		t.Fatalf("got error %v (%T), want AMQP error %d %q", err, err, code, text)
	}
	if amqpErr.Code != code || amqpErr.Reason != text {
		t.Fatalf("got AMQP error %d %q, want %d %q", amqpErr.Code, amqpErr.Reason, code, text)
	}
	if !amqpErr.Server {
		t.Fatalf("AMQP error %d %q was made by the client, not sent by the server", amqpErr.Code, amqpErr.Reason)
	}
}

// notifyChannelClose registers for ch's close notification.
func notifyChannelClose(ch *amqp.Channel) chan *amqp.Error {
	return ch.NotifyClose(make(chan *amqp.Error, 1))
}

// notifyConnClose registers for conn's close notification.
func notifyConnClose(conn *amqp.Connection) chan *amqp.Error {
	return conn.NotifyClose(make(chan *amqp.Error, 1))
}

// expectClosed waits for a close notification carrying code and text.
func expectClosed(t *testing.T, closes <-chan *amqp.Error, code int, text string) {
	t.Helper()
	select {
	case err, ok := <-closes:
		if !ok || err == nil {
			t.Fatalf("closed without error, want %d %q", code, text)
		}
		expectError(t, err, code, text)
	case <-time.After(waitTimeout):
		t.Fatalf("not closed within %v, want %d %q", waitTimeout, code, text)
	}
}

// expectNoReturn fails if a basic.return is already waiting in returns.
func expectNoReturn(t *testing.T, returns <-chan amqp.Return) {
	t.Helper()
	select {
	case r := <-returns:
		t.Fatalf("unexpected basic.return %d %q for %q", r.ReplyCode, r.ReplyText, r.Body)
	default:
	}
}

// nextReturn waits for one basic.return.
func nextReturn(t *testing.T, returns <-chan amqp.Return) amqp.Return {
	t.Helper()
	select {
	case r := <-returns:
		return r
	case <-time.After(waitTimeout):
		t.Fatalf("no basic.return within %v", waitTimeout)
	}
	return amqp.Return{}
}

// nextConfirm waits for one publisher confirm.
func nextConfirm(t *testing.T, confirms <-chan amqp.Confirmation) amqp.Confirmation {
	t.Helper()
	select {
	case c, ok := <-confirms:
		if !ok {
			t.Fatalf("confirm channel closed")
		}
		return c
	case <-time.After(waitTimeout):
		t.Fatalf("no confirm within %v", waitTimeout)
	}
	return amqp.Confirmation{}
}

// urlOf is the broker URL for tests that dial with their own Config.
func urlOf(t *testing.T) string {
	t.Helper()
	return testbroker.URL(t)
}

// timeAfterWait is the failure deadline for one wait.
func timeAfterWait() <-chan time.Time { return time.After(waitTimeout) }
