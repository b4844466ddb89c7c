package broker

import (
	"encoding/json"
	"errors"
	"log/slog"
	"reflect"
	"strings"
	"testing"

	"github.com/warren-mq/warren/internal/amqp091"
	"github.com/warren-mq/warren/internal/store"
)

func TestPolicyCommandRoundTrip(t *testing.T) {
	for _, c := range []command{
		&setPolicyCmd{VHost: "v", Name: "p", Pattern: "^a", ApplyTo: "queues", Priority: -3, Definition: `{"max-length":1}`, Operator: true},
		&clearPolicyCmd{VHost: "v", Name: "p", Operator: true},
		&setParameterCmd{VHost: "v", Component: "federation-upstream", Name: "u", Value: `{"uri":"amqp://"}`},
		&setParameterCmd{Global: true, Name: "cluster_name", Value: `"c"`},
		&clearParameterCmd{VHost: "v", Component: "shovel", Name: "s", Global: true},
	} {
		got, err := decodeCommand(encodeCommand(c))
		if err != nil || !reflect.DeepEqual(got, c) {
			t.Fatalf("round trip %+v: %+v %v", c, got, err)
		}
	}
}

func mustPolicy(t *testing.T, b *Broker, p Policy) {
	t.Helper()
	if err := b.SetPolicy(p); err != nil {
		t.Fatalf("SetPolicy %+v: %v", p, err)
	}
}

func declare(t *testing.T, v *VHost, name string, args amqp091.Table) *Queue {
	t.Helper()
	q, _, _, err := v.DeclareQueue(QueueDecl{Name: name, Durable: true, Args: args})
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// The effective arguments merge declared arguments, the policy and the
// operator policy by RabbitMQ's rules.
func TestPolicyEffectiveArgs(t *testing.T) {
	b, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	v, _ := b.VHost("/")
	q := declare(t, v, "q", amqp091.Table{"x-max-length": int32(10), "x-dead-letter-exchange": "own", "x-message-ttl": int32(500)})
	mustPolicy(t, b, Policy{VHost: "/", Name: "p", Pattern: "^q$", Definition: json.RawMessage(`{"max-length":20,"message-ttl":100,"dead-letter-exchange":"pol","dead-letter-routing-key":"k","expires":9000}`)})
	mustPolicy(t, b, Policy{VHost: "/", Name: "op", Pattern: ".*", Definition: json.RawMessage(`{"max-length":5,"expires":60000}`), Operator: true})
	want := amqp091.Table{"x-max-length": int64(5), "x-message-ttl": int64(100), "x-dead-letter-exchange": "own", "x-dead-letter-routing-key": "k", "x-expires": int64(9000)}
	if got := q.EffectiveArgs(); !reflect.DeepEqual(got, want) {
		t.Fatalf("effective args %v, want %v", got, want)
	}
	ap := q.Policy()
	if ap.Policy != "p" || ap.OperatorPolicy != "op" || ap.Definition["max-length"] != int64(5) || ap.Definition["expires"] != int64(9000) {
		t.Fatalf("applied %+v", ap)
	}
	if !reflect.DeepEqual(q.Args, amqp091.Table{"x-max-length": int32(10), "x-dead-letter-exchange": "own", "x-message-ttl": int32(500)}) {
		t.Fatalf("declared args changed: %v", q.Args)
	}
	if err := b.ClearPolicy("/", "op", true); err != nil {
		t.Fatal(err)
	}
	if got := q.EffectiveArgs()["x-max-length"]; got != int64(10) {
		t.Fatalf("max-length after clearing the operator policy: %v", got)
	}
	if err := b.ClearPolicy("/", "op", true); err == nil {
		t.Fatal("clearing a missing policy succeeded")
	}
}

// Ties between equal priorities go to the lowest name; "^(?!amq\.)" works.
func TestPolicyMatching(t *testing.T) {
	b, _ := New(Config{Logger: slog.New(slog.DiscardHandler)})
	v, _ := b.VHost("/")
	q := declare(t, v, "orders", nil)
	gen := declare(t, v, "", nil) // amq.gen-...
	for _, name := range []string{"zz", "mm", "aa"} {
		mustPolicy(t, b, Policy{VHost: "/", Name: name, Pattern: `^(?!amq\.).*`, ApplyTo: "classic_queues", Definition: json.RawMessage(`{"queue-mode":"lazy"}`)})
	}
	if got := q.Policy().Policy; got != "aa" {
		t.Fatalf("tie went to %q, want aa", got)
	}
	if got := gen.Policy().Policy; got != "" {
		t.Fatalf("amq.gen queue matched %q", got)
	}
	mustPolicy(t, b, Policy{VHost: "/", Name: "ex", Pattern: "^orders$", ApplyTo: "exchanges", Priority: 100, Definition: json.RawMessage(`{"alternate-exchange":"ae"}`)})
	mustPolicy(t, b, Policy{VHost: "/", Name: "st", Pattern: "^orders$", ApplyTo: "streams", Priority: 100, Definition: json.RawMessage(`{"max-age":"1D"}`)})
	if got := q.Policy().Policy; got != "aa" {
		t.Fatalf("queue took %q", got)
	}
}

// Bad policies and parameters are refused with a ValidationFailed.
func TestPolicyRefused(t *testing.T) {
	b, _ := New(Config{})
	for _, p := range []Policy{
		{VHost: "/", Name: "p", Pattern: "(", Definition: json.RawMessage(`{"max-length":1}`)},
		{VHost: "/", Name: "p", Pattern: "x", Definition: json.RawMessage(`{"max-length":1`)},
		{VHost: "/", Name: "p", Pattern: "x", Definition: json.RawMessage(`[1]`)},
		{VHost: "/", Name: "p", Pattern: "x", Definition: json.RawMessage(`{"nope":1}`)},
		{VHost: "/", Name: "", Pattern: "x", Definition: json.RawMessage(`{"max-length":1}`)},
		{VHost: "/", Name: "p", Pattern: "x", Definition: json.RawMessage(`{"consumer-timeout":1}`), Operator: true},
	} {
		var vf *ValidationFailed
		if err := b.SetPolicy(p); !errors.As(err, &vf) {
			t.Fatalf("SetPolicy %+v: %v", p, err)
		}
	}
	if err := b.SetPolicy(Policy{VHost: "nope", Name: "p", Pattern: "x", Definition: json.RawMessage(`{"max-length":1}`)}); err == nil {
		t.Fatal("policy in a missing vhost")
	}
	var vf *ValidationFailed
	if err := b.SetParameter(Parameter{VHost: "/", Component: "c", Name: "n", Value: json.RawMessage(`{`)}); !errors.As(err, &vf) {
		t.Fatalf("bad parameter JSON: %v", err)
	}
	if err := b.SetGlobalParameter(GlobalParameter{Name: "n", Value: json.RawMessage(`nul`)}); !errors.As(err, &vf) {
		t.Fatalf("bad global parameter JSON: %v", err)
	}
	if len(b.Policies("", false)) != 0 || len(b.Parameters("")) != 0 || len(b.GlobalParameters()) != 0 {
		t.Fatal("a refused change was kept")
	}
}

// Policies, operator policies and parameters survive a restart and a
// compaction of the log to a snapshot, and the policy still applies.
func TestPolicySurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	open := func() *Broker {
		st, err := store.Open(dir, store.Options{Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		b, err := New(Config{Store: st, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	b := open()
	v, _ := b.VHost("/")
	declare(t, v, "q", nil)
	mustPolicy(t, b, Policy{VHost: "/", Name: "p", Pattern: "^q", ApplyTo: "queues", Priority: 3, Definition: json.RawMessage(`{"max-length":7,"dead-letter-exchange":"d"}`)})
	mustPolicy(t, b, Policy{VHost: "/", Name: "op", Pattern: ".", Definition: json.RawMessage(`{"max-length":5}`), Operator: true})
	mustPolicy(t, b, Policy{VHost: "/", Name: "gone", Pattern: ".", Definition: json.RawMessage(`{"expires":5}`)})
	if err := b.ClearPolicy("/", "gone", false); err != nil {
		t.Fatal(err)
	}
	if err := b.SetParameter(Parameter{VHost: "/", Component: "federation-upstream", Name: "up", Value: json.RawMessage(`{"uri": "amqp://x", "ack-mode":"on-confirm"}`)}); err != nil {
		t.Fatal(err)
	}
	if err := b.SetGlobalParameter(GlobalParameter{Name: "cluster_name", Value: json.RawMessage(`"warren@x"`)}); err != nil {
		t.Fatal(err)
	}
	state := func(b *Broker) string {
		v, _ := b.VHost("/")
		q, _ := v.Queue("q")
		parts := []any{b.Policies("", false), b.Policies("", true), b.Parameters(""), b.GlobalParameters(), q.EffectiveArgs()}
		out, _ := json.Marshal(parts)
		return string(out)
	}
	before := state(b)
	if !strings.Contains(before, `"x-max-length":5`) || !strings.Contains(before, `warren@x`) {
		t.Fatalf("state %s", before)
	}
	snap := b.snapshot()
	_ = b.Close()
	b = open()
	if got := state(b); got != before {
		t.Fatalf("after restart\n%s\nwant\n%s", got, before)
	}
	_ = b.Close()
	// The snapshot replays to the same state.
	mem := store.NewMemory()
	for _, rec := range snap {
		mem.CommitMeta(rec, func(error) {})
	}
	b2, err := New(Config{Store: mem})
	if err != nil {
		t.Fatal(err)
	}
	if got := state(b2); got != before {
		t.Fatalf("from the snapshot\n%s\nwant\n%s", got, before)
	}
}

// TestPolicyApplyToQueueTypes: "queues" reaches every queue type, as in
// RabbitMQ; "classic_queues" only classic queues, "streams" only streams,
// "exchanges" neither.
func TestPolicyApplyToQueueTypes(t *testing.T) {
	n := newStreamNode(t)
	v := n.vhost()
	q := declare(t, v, "pq", nil)
	if _, _, _, err := v.DeclareQueue(QueueDecl{Name: "ps", Durable: true, Args: streamArgsOf()}); err != nil {
		t.Fatal(err)
	}
	v.mu.RLock()
	s := v.streams["ps"]
	v.mu.RUnlock()
	for _, c := range []struct {
		applyTo         string
		classic, stream bool
	}{
		{"queues", true, true},
		{"all", true, true},
		{"classic_queues", true, false},
		{"streams", false, true},
		{"exchanges", false, false},
		{"quorum_queues", false, false},
	} {
		mustPolicy(t, n.b, Policy{VHost: "/", Name: "p", Pattern: "^p[qs]$", ApplyTo: c.applyTo, Definition: json.RawMessage(`{"max-length-bytes":1000000}`)})
		if got := q.EffectiveArgs()["x-max-length-bytes"] != nil; got != c.classic {
			t.Errorf("apply-to %s: classic queue has the policy: %v, want %v", c.applyTo, got, c.classic)
		}
		if got := s.Options().MaxBytes == 1000000; got != c.stream {
			t.Errorf("apply-to %s: stream has the policy: %v, want %v (options %+v)", c.applyTo, got, c.stream, s.Options())
		}
	}
}
