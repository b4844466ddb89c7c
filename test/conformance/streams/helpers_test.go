package streams

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warren-mq/warren/internal/testbroker"
)

// waitTimeout bounds every wait: the machine is shared and slow is not wrong.
const waitTimeout = 10 * time.Second

// fixture gives a test its broker URL and deletes the streams it names
// when it ends.
type fixture struct {
	t         *testing.T
	url       string
	queues    []string
	exchanges []string
}

func setup(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{t: t, url: testbroker.URL(t)}
	t.Cleanup(f.cleanup)
	return f
}

func (f *fixture) cleanup() {
	if len(f.queues)+len(f.exchanges) == 0 {
		return
	}
	conn, err := amqp.Dial(f.url)
	if err != nil {
		f.t.Logf("cleanup: %v", err)
		return
	}
	defer conn.Close()
	for _, q := range f.queues {
		if ch, err := conn.Channel(); err == nil {
			_, _ = ch.QueueDelete(q, false, false, false)
			_ = ch.Close()
		}
	}
	for _, x := range f.exchanges {
		if ch, err := conn.Channel(); err == nil {
			_ = ch.ExchangeDelete(x, false, false)
			_ = ch.Close()
		}
	}
}

// name returns a name unique to this run, deleted as a queue at the end.
func (f *fixture) name(label string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	n := strings.NewReplacer("/", ".", " ", "_").Replace(f.t.Name()) + "." + label + "." + hex.EncodeToString(b[:])
	f.queues = append(f.queues, n)
	return n
}

// exchangeName returns a unique exchange name, deleted at the end.
func (f *fixture) exchangeName(label string) string {
	n := f.name(label)
	f.queues = f.queues[:len(f.queues)-1]
	f.exchanges = append(f.exchanges, n)
	return n
}

func (f *fixture) connChannel() (*amqp.Connection, *amqp.Channel) {
	f.t.Helper()
	conn, err := amqp.Dial(f.url)
	if err != nil {
		f.t.Fatalf("dial: %v", err)
	}
	f.t.Cleanup(func() { conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		f.t.Fatalf("channel: %v", err)
	}
	return conn, ch
}

func (f *fixture) channel() *amqp.Channel {
	_, ch := f.connChannel()
	return ch
}

func streamArgs(kv ...any) amqp.Table {
	t := amqp.Table{"x-queue-type": "stream"}
	for i := 0; i < len(kv); i += 2 {
		t[kv[i].(string)] = kv[i+1]
	}
	return t
}

// declareStream declares a new stream with args added to its type.
func (f *fixture) declareStream(ch *amqp.Channel, label string, kv ...any) string {
	f.t.Helper()
	q := f.name(label)
	if _, err := ch.QueueDeclare(q, true, false, false, false, streamArgs(kv...)); err != nil {
		f.t.Fatalf("declare stream: %v", err)
	}
	return q
}

func wantAMQPError(t *testing.T, err error, code int, reason string) {
	t.Helper()
	var ae *amqp.Error
	if !errors.As(err, &ae) {
		t.Fatalf("got %v, want %d %q", err, code, reason)
	}
	if ae.Code != code || ae.Reason != reason {
		t.Fatalf("got %d %q, want %d %q", ae.Code, ae.Reason, code, reason)
	}
}

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

func wantConnectionError(t *testing.T, conn *amqp.Connection, err error, code int, reason string) {
	t.Helper()
	wantAMQPError(t, err, code, reason)
	testbroker.CheckFor(t, waitTimeout, conn.IsClosed)
}
