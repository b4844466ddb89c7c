package definitions

import (
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/warren-mq/warren/internal/broker"
	"github.com/warren-mq/warren/internal/store"
)

func newBroker(t *testing.T) *broker.Broker {
	t.Helper()
	b, err := broker.New(broker.Config{Store: store.NewMemory(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func load(t *testing.T, path string) *File {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// testdata/rabbitmq-3.10.8.json was written by `rabbitmqctl export_definitions`
// of the RabbitMQ 3.10.8 on this machine (see testdata/README).
func TestDefinitionsImportRabbitMQExport(t *testing.T) {
	b := newBroker(t)
	if err := Import(b, load(t, "testdata/rabbitmq-3.10.8.json")); err != nil {
		t.Fatal(err)
	}
	checkShop(t, b)
}

// checkShop checks what testdata/rabbitmq-3.10.8.json describes.
func checkShop(t *testing.T, b *broker.Broker) {
	t.Helper()
	// Logins: the hashes RabbitMQ wrote check the same passwords.
	for user, pass := range map[string]string{"alice": "alicepw", "bob": "bobpw", "guest": "guest"} {
		if _, err := b.Authenticate(user, pass, true); err != nil {
			t.Errorf("login %s: %v", user, err)
		}
	}
	if _, err := b.Authenticate("alice", "wrong", true); err == nil {
		t.Error("alice logged in with a wrong password")
	}
	if _, err := b.Authenticate("certuser", "", true); err == nil {
		t.Error("password-less certuser logged in with PLAIN")
	}
	if u, _ := b.User("bob"); u == nil || !slices.Equal(u.Tags, []string{"monitoring", "policymaker"}) {
		t.Errorf("bob: %+v", u)
	}
	if l := b.UserLimits("alice"); l["max-connections"] != 10 || l["max-channels"] != 20 {
		t.Errorf("alice's limits %v", l)
	}
	v, ok := b.VHost("shop")
	if !ok {
		t.Fatal("no vhost shop")
	}
	if info := v.Info(); info.Description != "Order processing" || info.Tags != "prod,eu" || info.DefaultQueueType != "classic" {
		t.Errorf("shop's metadata %+v", info)
	}
	if l := b.VHostLimits("shop"); l["max-connections"] != 100 || l["max-queues"] != 500 {
		t.Errorf("shop's limits %v", l)
	}
	perms := map[string]broker.Permission{}
	for _, p := range b.Permissions() {
		if p.VHost == "shop" {
			perms[p.User] = p.Permission
		}
	}
	if perms["alice"] != (broker.Permission{Configure: "^orders.*", Write: `^(orders|amq\.default).*`, Read: ".*"}) || perms["bob"] != (broker.Permission{Read: ".*"}) {
		t.Errorf("permissions %+v", perms)
	}
	if tp := b.TopicPermissions(); len(tp) != 1 || tp[0].User != "alice" || tp[0].Exchange != "amq.topic" || tp[0].Write != `^orders\.{username}\..*` {
		t.Errorf("topic permissions %+v", tp)
	}
	if gp := b.GlobalParameters(); len(gp) != 1 || gp[0].Name != "cluster_name" || string(gp[0].Value) != `"warren-test"` {
		t.Errorf("global parameters %+v", gp)
	}
	if ps := b.Policies("shop", false); len(ps) != 1 || ps[0].Name != "orders-limit" || ps[0].Priority != 5 || ps[0].ApplyTo != "queues" {
		t.Errorf("policies %+v", ps)
	}
	if ps := b.Policies("shop", true); len(ps) != 1 || ps[0].Name != "cap" {
		t.Errorf("operator policies %+v", ps)
	}
	var exchanges []string
	for _, x := range v.Exchanges() {
		if x.Name != "" && !strings.HasPrefix(x.Name, "amq.") {
			exchanges = append(exchanges, x.Name+" "+x.Kind)
		}
	}
	if !slices.Equal(exchanges, []string{"dlx fanout", "orders topic", "orders.audit headers", "unrouted fanout"}) {
		t.Errorf("exchanges %v", exchanges)
	}
	if x, _ := v.Exchange("orders"); x == nil || x.Args["alternate-exchange"] != "unrouted" {
		t.Errorf("orders' arguments %v", x.Args)
	}
	q, ok := v.Queue("orders.new")
	if !ok || !q.Durable || q.Args["x-max-priority"] != int64(5) || q.Args["x-dead-letter-exchange"] != "dlx" {
		t.Fatalf("orders.new: %+v", q)
	}
	// The policy applies; the operator policy caps, as in RabbitMQ.
	if ap := q.Policy(); ap.Policy != "orders-limit" || ap.OperatorPolicy != "cap" {
		t.Errorf("orders.new's policies %+v", ap)
	}
	if len(v.Queues()) != 4 {
		t.Errorf("queues %d, want 4", len(v.Queues()))
	}
	var bindings []string
	for _, x := range v.Exchanges() {
		for _, bd := range x.Bindings() {
			bindings = append(bindings, x.Name+"->"+bd.Destination+" "+bd.Key)
			if x.Name == "orders.audit" && (bd.Args["x-match"] != "any" || bd.Args["priority"] != int64(1)) {
				t.Errorf("headers binding arguments %v", bd.Args)
			}
		}
	}
	slices.Sort(bindings)
	want := []string{"dlx->orders.dead ", "orders->inventory order.*.eu", "orders->orders.audit #", "orders->orders.new order.created.#", "orders.audit->audit "}
	if !slices.Equal(bindings, want) {
		t.Errorf("bindings\n%q\nwant\n%q", bindings, want)
	}
}

// Importing the same file again changes nothing and fails nothing.
func TestDefinitionsImportIdempotent(t *testing.T) {
	b := newBroker(t)
	f := load(t, "testdata/rabbitmq-3.10.8.json")
	for range 2 {
		if err := Import(b, f); err != nil {
			t.Fatal(err)
		}
	}
	checkShop(t, b)
}

// What Warren exports imports into another Warren as the same state, and
// exports again to the same document.
func TestDefinitionsExportRoundTrip(t *testing.T) {
	a := newBroker(t)
	if err := Import(a, load(t, "testdata/rabbitmq-3.10.8.json")); err != nil {
		t.Fatal(err)
	}
	first, err := json.Marshal(Export(a, "test"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := Parse(first)
	if err != nil {
		t.Fatal(err)
	}
	b := newBroker(t)
	if err := Import(b, f); err != nil {
		t.Fatal(err)
	}
	checkShop(t, b)
	second, _ := json.Marshal(Export(b, "test"))
	if string(first) != string(second) {
		t.Fatalf("export of the import differs:\n%s\n%s", first, second)
	}
	if strings.Contains(string(first), "null") {
		t.Fatalf("export holds a null: %s", first)
	}
}

func TestDefinitionsBadInput(t *testing.T) {
	for name, tc := range map[string]struct{ doc, want string }{
		"syntax":        {"{\n  \"users\": [\n    {\"name\": \"a\",, }\n  ]\n}", "line 3, column"},
		"type":          {`{"queues": [{"name": 5}]}`, "field queues.name"},
		"two documents": {`{} {}`, "more than one JSON document"},
		"tags":          {`{"users": [{"name": "a", "tags": 5}]}`, "tags: want a list"},
		"limits":        {`{"vhosts": [{"name": "v", "limits": [["max-queues", "x"]]}]}`, "limits: want"},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Parse([]byte(tc.doc)); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse: %v, want it to say %q", err, tc.want)
			}
		})
	}
	// Entities the broker refuses are each reported; the rest is imported.
	b := newBroker(t)
	f, err := Parse([]byte(`{
		"users": [{"name": "x", "password_hash": "", "hashing_algorithm": "rabbit_password_hashing_rot13", "tags": []},
		          {"name": "ok", "password_hash": "", "tags": "management"}],
		"vhosts": [{"name": "v"}],
		"permissions": [{"user": "ok", "vhost": "v", "configure": "(", "write": ".*", "read": ".*"}],
		"policies": [{"vhost": "v", "name": "p", "pattern": ".*", "apply-to": "queues", "definition": {"no-such-key": 1}, "priority": 0}],
		"queues": [{"name": "q", "vhost": "missing", "durable": true, "auto_delete": false, "arguments": {}},
		           {"name": "good", "vhost": "v", "durable": true, "auto_delete": false, "arguments": {}}],
		"bindings": [{"source": "orders.audit", "vhost": "v", "destination": "good", "destination_type": "queue", "routing_key": "", "arguments": {}}]
	}`))
	if err != nil {
		t.Fatal(err)
	}
	err = Import(b, f)
	for _, want := range []string{"user 'x'", "rabbit_password_hashing_rot13", "permissions of user 'ok' in vhost 'v'", "policy 'p' in vhost 'v'", "queue 'q' in vhost 'missing': no vhost 'missing'", "binding from 'orders.audit'", "no exchange 'orders.audit'"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Import error %v\nwant it to say %q", err, want)
		}
	}
	v, ok := b.VHost("v")
	if !ok {
		t.Fatal("vhost v not imported")
	}
	if _, ok := v.Queue("good"); !ok {
		t.Error("queue good not imported")
	}
	if u, ok := b.User("ok"); !ok || !slices.Equal(u.Tags, []string{"management"}) {
		t.Errorf("user ok (tags as a string, as RabbitMQ before 3.9 wrote them): %+v", u)
	}
}

// The store compacts its metadata log to the broker's snapshot: a data
// directory whose log was compacted must recover exactly the state it had,
// users, permissions, limits, policies and parameters included.
func TestDefinitionsSurviveMetadataCompaction(t *testing.T) {
	dir := t.TempDir()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	open := func() *broker.Broker {
		st, err := store.Open(dir, store.Options{Sync: store.SyncNever, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		b, err := broker.New(broker.Config{Store: st, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	b := open()
	if err := Import(b, load(t, "testdata/rabbitmq-3.10.8.json")); err != nil {
		t.Fatal(err)
	}
	v, _ := b.VHost("shop")
	for i := range 400 { // enough commands for the log to be compacted
		name := "churn"
		if i%2 == 1 {
			if _, err := v.DeleteQueue(name, false, false, nil); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if _, _, _, err := v.DeclareQueue(broker.QueueDecl{Name: name, Durable: true}); err != nil {
			t.Fatal(err)
		}
	}
	before, _ := json.Marshal(Export(b, "test"))
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	// The compacted log holds one command per live object and what came
	// after the last compaction (at most 256): fewer than the 440 committed.
	st, err := store.Open(dir, store.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	recs, err := st.MetaLog()
	st.Close()
	if err != nil || len(recs) > 300 {
		t.Fatalf("meta.log not compacted: %d records, %v", len(recs), err)
	}
	b = open()
	defer b.Close()
	after, _ := json.Marshal(Export(b, "test"))
	if string(before) != string(after) {
		t.Fatalf("state after compaction and restart differs:\nbefore %s\nafter  %s", before, after)
	}
	checkShop(t, b)
}
