package policy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warren-mq/warren/internal/amqpserver"
	"github.com/warren-mq/warren/internal/broker"
	"github.com/warren-mq/warren/internal/testbroker"
)

// waitTimeout bounds every poll: generous, because the machine is shared.
const waitTimeout = 10 * time.Second

// testConsumerTimeout is the delivery acknowledgement timeout the consumer
// timeout tests use (ms): short, so that they are quick, and long enough
// for a loaded machine to deliver before it runs out.
const testConsumerTimeout = 1000

// admin sets policies on the broker under test: rabbitmqctl for an external
// RabbitMQ, the broker's API for an in-process Warren.
type admin interface {
	// setPolicy runs set_policy (set_operator_policy for an operator policy)
	// and returns the broker's validation error text, "" on success.
	setPolicy(t *testing.T, p broker.Policy) string
	clearPolicy(t *testing.T, name string, operator bool)
	// withConsumerTimeout runs open (which opens the channels a test
	// consumes on) with the broker's delivery acknowledgement timeout set to
	// testConsumerTimeout.
	withConsumerTimeout(t *testing.T, open func())
}

// env is one test's broker: its own vhost on RabbitMQ (so policies there
// touch nothing else), its own in-process Warren otherwise.
type env struct {
	t     *testing.T
	url   string
	vhost string
	admin
}

func setup(t *testing.T) *env {
	t.Helper()
	t.Parallel()
	if testbroker.External() {
		return setupExternal(t)
	}
	inst := testbroker.Start(t, testbroker.Options{Server: amqpserver.Config{ConsumerTimeout: testConsumerTimeout * time.Millisecond}})
	return &env{t: t, url: inst.URL, vhost: "/", admin: &warrenAdmin{b: inst.Broker, vhost: "/"}}
}

// mustSetPolicy sets a policy, failing the test on a validation error.
func (e *env) mustSetPolicy(name, pattern, applyTo string, priority int, definition string) {
	e.t.Helper()
	e.setPol(name, pattern, applyTo, priority, definition, false)
}

// mustSetOperatorPolicy sets an operator policy, failing the test on error.
func (e *env) mustSetOperatorPolicy(name, pattern string, priority int, definition string) {
	e.t.Helper()
	e.setPol(name, pattern, "queues", priority, definition, true)
}

func (e *env) setPol(name, pattern, applyTo string, priority int, definition string, operator bool) {
	e.t.Helper()
	p := broker.Policy{VHost: e.vhost, Name: name, Pattern: pattern, ApplyTo: applyTo, Priority: priority, Definition: json.RawMessage(definition), Operator: operator}
	if reason := e.setPolicy(e.t, p); reason != "" {
		e.t.Fatalf("set policy %s %s: %s", name, definition, reason)
	}
}

// name returns a unique entity name with a label.
func (e *env) name(label string) string {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		e.t.Fatal(err)
	}
	return label + "." + hex.EncodeToString(b[:])
}

// dial opens a connection closed when the test ends.
func (e *env) dial() *amqp.Connection {
	e.t.Helper()
	conn, err := amqp.Dial(e.url)
	if err != nil {
		e.t.Fatalf("dial: %v", err)
	}
	e.t.Cleanup(func() { conn.Close() })
	return conn
}

// channel opens a channel on a connection of its own.
func (e *env) channel() *amqp.Channel {
	e.t.Helper()
	ch, err := e.dial().Channel()
	if err != nil {
		e.t.Fatalf("channel: %v", err)
	}
	return ch
}

// warrenAdmin drives an in-process Warren's broker API.
type warrenAdmin struct {
	b     *broker.Broker
	vhost string
}

func (w *warrenAdmin) setPolicy(t *testing.T, p broker.Policy) string {
	err := w.b.SetPolicy(p)
	if err == nil {
		return ""
	}
	var vf *broker.ValidationFailed
	if !errors.As(err, &vf) {
		t.Fatalf("set policy: %v", err)
	}
	return vf.Reason
}

func (w *warrenAdmin) clearPolicy(t *testing.T, name string, operator bool) {
	if err := w.b.ClearPolicy(w.vhost, name, operator); err != nil {
		t.Fatalf("clear policy %s: %v", name, err)
	}
}

func (w *warrenAdmin) withConsumerTimeout(t *testing.T, open func()) { open() }

// rabbitAdmin drives an external RabbitMQ with rabbitmqctl, in a vhost of
// the test's own.
type rabbitAdmin struct {
	vhost string
}

func setupExternal(t *testing.T) *env {
	var b [4]byte
	_, _ = rand.Read(b[:])
	vhost := "warren-policy-" + hex.EncodeToString(b[:])
	a := &rabbitAdmin{vhost: vhost}
	a.ctl(t, "add_vhost", vhost)
	t.Cleanup(func() { a.ctl(t, "delete_vhost", vhost) })
	a.ctl(t, "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
	u, err := url.Parse(os.Getenv("WARREN_TEST_URL"))
	if err != nil {
		t.Fatal(err)
	}
	u.Path, u.RawPath = "/"+vhost, "/"+url.PathEscape(vhost)
	return &env{t: t, url: u.String(), vhost: vhost, admin: a}
}

// ctl runs rabbitmqctl, failing the test if it fails.
func (a *rabbitAdmin) ctl(t *testing.T, args ...string) {
	t.Helper()
	if out, err := a.run(args...); err != nil {
		t.Fatalf("rabbitmqctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func (a *rabbitAdmin) run(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "rabbitmqctl", args...).CombinedOutput()
	return string(out), err
}

func (a *rabbitAdmin) setPolicy(t *testing.T, p broker.Policy) string {
	cmd := "set_policy"
	if p.Operator {
		cmd = "set_operator_policy"
	}
	args := []string{cmd, "-p", a.vhost, "--priority", strconv.Itoa(p.Priority)}
	if p.ApplyTo != "" {
		args = append(args, "--apply-to", p.ApplyTo)
	}
	out, err := a.run(append(args, p.Name, p.Pattern, string(p.Definition))...)
	if err == nil {
		return ""
	}
	// rabbitmqctl prints "Error:\nValidation failed\n\n<reason>\n".
	_, reason, ok := strings.Cut(out, "Validation failed\n\n")
	if !ok {
		_, reason, _ = strings.Cut(out, "Error:\n")
	}
	return strings.TrimSpace(reason)
}

func (a *rabbitAdmin) clearPolicy(t *testing.T, name string, operator bool) {
	cmd := "clear_policy"
	if operator {
		cmd = "clear_operator_policy"
	}
	a.ctl(t, cmd, "-p", a.vhost, name)
}

var consumerTimeoutMu sync.Mutex

// withConsumerTimeout sets RabbitMQ's consumer_timeout only while open runs:
// a channel takes the value when it opens, so channels of other tests are
// affected only if they open in that moment.
func (a *rabbitAdmin) withConsumerTimeout(t *testing.T, open func()) {
	consumerTimeoutMu.Lock() // parallel tests must not restore it under each other
	defer consumerTimeoutMu.Unlock()
	a.ctl(t, "eval", "application:set_env(rabbit, consumer_timeout, "+strconv.Itoa(testConsumerTimeout)+").")
	defer a.ctl(t, "eval", "application:set_env(rabbit, consumer_timeout, 1800000).")
	open()
}
