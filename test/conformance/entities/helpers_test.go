package entities

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warren-mq/warren/internal/testbroker"
)

// waitTimeout bounds every poll: generous, because the machine is shared and slow
// is not wrong; only "never" is.
const waitTimeout = 10 * time.Second

// fixture gives one test its broker URL and remembers the queues and exchanges it
// names, so they are deleted from the shared broker when the test ends, whatever
// state the test's own channels were left in.
type fixture struct {
	t   *testing.T
	url string

	mu        sync.Mutex
	queues    []string
	exchanges []string
}

// setup returns the test's fixture and registers the cleanup of its entities.
func setup(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{t: t, url: testbroker.URL(t)}
	t.Cleanup(f.cleanup)
	return f
}

func (f *fixture) cleanup() {
	f.mu.Lock()
	queues, exchanges := f.queues, f.exchanges
	f.mu.Unlock()
	if len(queues) == 0 && len(exchanges) == 0 {
		return
	}
	conn, err := amqp.Dial(f.url)
	if err != nil {
		f.t.Logf("cleanup: dial: %v", err)
		return
	}
	defer conn.Close()
	var ch *amqp.Channel
	// Each delete gets a working channel: a failed delete (an exclusive queue owned by
	// a connection that is still closing) closes the channel it ran on.
	do := func(fn func(*amqp.Channel) error) {
		if ch == nil || ch.IsClosed() {
			if ch, err = conn.Channel(); err != nil {
				f.t.Logf("cleanup: channel: %v", err)
				return
			}
		}
		if err := fn(ch); err != nil {
			f.t.Logf("cleanup: %v", err)
		}
	}
	for _, q := range queues {
		do(func(ch *amqp.Channel) error { _, err := ch.QueueDelete(q, false, false, false); return err })
	}
	for _, x := range exchanges {
		do(func(ch *amqp.Channel) error { return ch.ExchangeDelete(x, false, false) })
	}
}

// name returns a name unique to this test run: the test name keeps brokers' listings
// readable, the random suffix keeps reruns and parallel packages from colliding.
func (f *fixture) name(label string) string {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		f.t.Fatal(err)
	}
	n := strings.NewReplacer("/", ".", " ", "_").Replace(f.t.Name())
	return n + "." + label + "." + hex.EncodeToString(b[:])
}

// queueName returns a unique queue name that is deleted when the test ends.
func (f *fixture) queueName(label string) string {
	n := f.name(label)
	f.forgetQueue(n)
	return n
}

// forgetQueue registers a queue whose name the broker chose for deletion at cleanup.
func (f *fixture) forgetQueue(name string) {
	f.mu.Lock()
	f.queues = append(f.queues, name)
	f.mu.Unlock()
}

// exchangeName returns a unique exchange name that is deleted when the test ends.
func (f *fixture) exchangeName(label string) string {
	n := f.name(label)
	f.mu.Lock()
	f.exchanges = append(f.exchanges, n)
	f.mu.Unlock()
	return n
}

// dial opens a connection that is closed when the test ends.
func (f *fixture) dial() *amqp.Connection {
	f.t.Helper()
	conn, err := amqp.Dial(f.url)
	if err != nil {
		f.t.Fatalf("dial: %v", err)
	}
	f.t.Cleanup(func() { conn.Close() })
	return conn
}

// openChannel opens a channel on conn.
func (f *fixture) openChannel(conn *amqp.Connection) *amqp.Channel {
	f.t.Helper()
	ch, err := conn.Channel()
	if err != nil {
		f.t.Fatalf("open channel: %v", err)
	}
	return ch
}

// channel opens a channel on a connection of its own, so a channel or connection
// error provoked by the test cannot disturb anything else.
func (f *fixture) channel() *amqp.Channel {
	f.t.Helper()
	return f.openChannel(f.dial())
}

// connChannel opens a connection of its own and a channel on it, for tests that
// check whether an error closed just the channel or the whole connection.
func (f *fixture) connChannel() (*amqp.Connection, *amqp.Channel) {
	f.t.Helper()
	conn := f.dial()
	return conn, f.openChannel(conn)
}

// queue declares a plain (non-durable, non-exclusive, non-auto-delete) queue with
// args and a unique name, and returns the name.
func (f *fixture) queue(ch *amqp.Channel, label string, args amqp.Table) string {
	f.t.Helper()
	name := f.queueName(label)
	if _, err := ch.QueueDeclare(name, false, false, false, false, args); err != nil {
		f.t.Fatalf("queue.declare %q: %v", name, err)
	}
	return name
}

// exchange declares a non-durable exchange of kind with args and a unique name, and
// returns the name.
func (f *fixture) exchange(ch *amqp.Channel, label, kind string, args amqp.Table) string {
	f.t.Helper()
	name := f.exchangeName(label)
	if err := ch.ExchangeDeclare(name, kind, false, false, false, false, args); err != nil {
		f.t.Fatalf("exchange.declare %q: %v", name, err)
	}
	return name
}

// bind binds queue to exchange with key and args, failing the test on error.
func bind(t *testing.T, ch *amqp.Channel, queue, exchange, key string, args amqp.Table) {
	t.Helper()
	if err := ch.QueueBind(queue, key, exchange, false, args); err != nil {
		t.Fatalf("queue.bind %q to %q with %q: %v", queue, exchange, key, err)
	}
}

// publish sends msg, failing the test if the client cannot send it. Errors the
// broker raises for it arrive asynchronously, as a channel close.
func publish(t *testing.T, ch *amqp.Channel, exchange, key string, msg amqp.Publishing) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := ch.PublishWithContext(ctx, exchange, key, false, false, msg); err != nil {
		t.Fatalf("basic.publish to %q with %q: %v", exchange, key, err)
	}
}

// publishBody sends a transient message with just a body.
func publishBody(t *testing.T, ch *amqp.Channel, exchange, key, body string) {
	t.Helper()
	publish(t, ch, exchange, key, amqp.Publishing{Body: []byte(body)})
}

// wantAMQPError fails the test unless err is an AMQP exception with exactly code
// and reason: clients and people match on both, so both must be RabbitMQ's.
func wantAMQPError(t *testing.T, err error, code int, reason string) {
	t.Helper()
	reason = replyText(reason)
	var e *amqp.Error
	if !errors.As(err, &e) {
		t.Fatalf("got error %v (%T), want AMQP exception %d %q", err, err, code, reason)
	}
	if e.Code != code || e.Reason != reason {
		t.Fatalf("got AMQP exception %d %q,\nwant              %d %q", e.Code, e.Reason, code, reason)
	}
}

// replyText is text as RabbitMQ puts it on the wire: a reply-text is a shortstr, so
// RabbitMQ cuts a longer one to its first 252 bytes followed by "...".
func replyText(text string) string {
	if len(text) <= 255 {
		return text
	}
	return text[:252] + "..."
}

// wantChannelError checks err as wantAMQPError does and that it was a channel-level
// exception: the channel is closed but its connection lives on.
func wantChannelError(t *testing.T, conn *amqp.Connection, ch *amqp.Channel, err error, code int, reason string) {
	t.Helper()
	wantAMQPError(t, err, code, reason)
	if !ch.IsClosed() {
		t.Fatalf("channel still open after channel exception %d", code)
	}
	if conn.IsClosed() {
		t.Fatalf("connection closed by what should be a channel exception %d %q", code, reason)
	}
}

// wantConnectionError checks err as wantAMQPError does and that the broker closed the
// whole connection, as it must for a hard error.
func wantConnectionError(t *testing.T, conn *amqp.Connection, err error, code int, reason string) {
	t.Helper()
	wantAMQPError(t, err, code, reason)
	testbroker.CheckFor(t, waitTimeout, conn.IsClosed)
}

// notifyClose subscribes to ch's close before an asynchronous error is provoked.
func notifyClose(ch *amqp.Channel) chan *amqp.Error {
	return ch.NotifyClose(make(chan *amqp.Error, 1))
}

// wantClosed waits for the close announced on closed and checks its code and reason.
func wantClosed(t *testing.T, closed chan *amqp.Error, code int, reason string) {
	t.Helper()
	select {
	case e, ok := <-closed:
		if !ok || e == nil {
			t.Fatalf("channel closed without an exception, want %d %q", code, reason)
		}
		wantAMQPError(t, e, code, reason)
	case <-time.After(waitTimeout):
		t.Fatalf("no channel close within %v, want %d %q", waitTimeout, code, reason)
	}
}

// drain publishes a sentinel to queue on ch and fetches messages until the sentinel
// comes back, returning the bodies before it. Because one channel's messages reach a
// queue in order, everything ch published to the queue before drain is in the result:
// this proves "nothing else arrived" without waiting. Only for queues that neither
// drop nor reorder a transient priority-0 message.
func drain(t *testing.T, ch *amqp.Channel, queue string) []string {
	t.Helper()
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	sentinel := "sentinel-" + hex.EncodeToString(b[:])
	publishBody(t, ch, "", queue, sentinel)
	got := []string{}
	deadline := time.Now().Add(waitTimeout)
	for {
		d, ok, err := ch.Get(queue, true)
		if err != nil {
			t.Fatalf("basic.get %q: %v", queue, err)
		}
		if !ok {
			if time.Now().After(deadline) {
				t.Fatalf("sentinel never reached %q; got %q", queue, got)
			}
			time.Sleep(5 * time.Millisecond)
			continue
		}
		if string(d.Body) == sentinel {
			return got
		}
		got = append(got, string(d.Body))
	}
}

// wantDrain checks that drain returns exactly want, in order.
func wantDrain(t *testing.T, ch *amqp.Channel, queue string, want ...string) {
	t.Helper()
	got := drain(t, ch, queue)
	if !equalStrings(got, want) {
		t.Fatalf("queue %q held %q, want %q", queue, got, want)
	}
}

// getN polls basic.get (auto-ack) until n messages came from queue. For messages the
// broker moves itself (dead-lettering), where no sentinel can be ordered behind them.
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

// bodies returns the deliveries' bodies as strings.
func bodies(ds []amqp.Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = string(d.Body)
	}
	return out
}

// messageCount returns the ready-message count queue.declare-ok reports.
func messageCount(t *testing.T, ch *amqp.Channel, queue string) int {
	t.Helper()
	q, err := ch.QueueDeclarePassive(queue, false, false, false, false, nil)
	if err != nil {
		t.Fatalf("passive queue.declare %q: %v", queue, err)
	}
	return q.Messages
}

// waitMessageCount polls until queue reports exactly n ready messages; brokers count
// asynchronously, so the count may lag a publish by a moment.
func waitMessageCount(t *testing.T, ch *amqp.Channel, queue string, n int) {
	t.Helper()
	last := -1
	deadline := time.Now().Add(waitTimeout)
	for {
		if last = messageCount(t, ch, queue); last == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue %q has %d messages, want %d", queue, last, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// exists reports whether queue exists, asked on a fresh channel of conn because a
// 404 closes the channel it happens on.
func queueExists(t *testing.T, conn *amqp.Connection, queue string) bool {
	t.Helper()
	return passiveExists(t, conn, func(ch *amqp.Channel) error {
		_, err := ch.QueueDeclarePassive(queue, false, false, false, false, nil)
		return err
	})
}

// exchangeExists reports whether exchange exists, like queueExists.
func exchangeExists(t *testing.T, conn *amqp.Connection, exchange string) bool {
	t.Helper()
	return passiveExists(t, conn, func(ch *amqp.Channel) error {
		return ch.ExchangeDeclarePassive(exchange, "", false, false, false, false, nil)
	})
}

func passiveExists(t *testing.T, conn *amqp.Connection, declare func(*amqp.Channel) error) bool {
	t.Helper()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("open channel: %v", err)
	}
	err = declare(ch)
	if err == nil {
		ch.Close()
		return true
	}
	var e *amqp.Error
	if errors.As(err, &e) && e.Code == amqp.NotFound {
		return false
	}
	t.Fatalf("passive declare: %v", err)
	return false
}

// recv waits for one delivery on ds.
func recv(t *testing.T, ds <-chan amqp.Delivery) amqp.Delivery {
	t.Helper()
	select {
	case d, ok := <-ds:
		if !ok {
			t.Fatal("delivery channel closed")
		}
		return d
	case <-time.After(waitTimeout):
		t.Fatalf("no delivery within %v", waitTimeout)
	}
	return amqp.Delivery{}
}

// recvN waits for n deliveries on ds and returns their bodies.
func recvN(t *testing.T, ds <-chan amqp.Delivery, n int) []string {
	t.Helper()
	out := make([]string, 0, n)
	for range n {
		out = append(out, string(recv(t, ds).Body))
	}
	return out
}

// consume starts a consumer on queue and returns its deliveries.
func consume(t *testing.T, ch *amqp.Channel, queue, tag string, autoAck bool, args amqp.Table) <-chan amqp.Delivery {
	t.Helper()
	ds, err := ch.Consume(queue, tag, autoAck, false, false, false, args)
	if err != nil {
		t.Fatalf("basic.consume %q: %v", queue, err)
	}
	return ds
}

func equalStrings(a, b []string) bool {
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

// sprintf fills the single %s of format; the tests use it for reply texts that name
// the entity under test.
func sprintf(format, name string) string { return strings.Replace(format, "%s", name, 1) }

// fill replaces {q} and {x} in a reply-text template with a queue and exchange name.
func fill(template, queue, exchange string) string {
	return strings.NewReplacer("{q}", queue, "{x}", exchange).Replace(template)
}

// errorAs is errors.As, named for the tests that collect several errors before failing.
func errorAs(err error, target any) bool { return errors.As(err, target) }

// timeAfter is the timeout for waits on notification channels.
func timeAfter() <-chan time.Time { return time.After(waitTimeout) }
