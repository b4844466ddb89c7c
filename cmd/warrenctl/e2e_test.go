package main

import (
	"crypto/rand"
	"encoding/hex"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warren-mq/warren/internal/mgmt"
	"github.com/warren-mq/warren/internal/testbroker"
)

// TestCtlEndToEndWarren runs the operator script against an in-process
// Warren and its management API.
func TestCtlEndToEndWarren(t *testing.T) {
	inst := testbroker.Start(t, testbroker.Options{})
	api := mgmt.New(inst.Broker, mgmt.Config{Version: "test", SampleInterval: 100 * time.Millisecond,
		Listeners: []mgmt.Listener{{Protocol: "amqp", Addr: inst.Addr}}})
	hs := httptest.NewServer(api)
	t.Cleanup(func() { hs.Close(); api.Close() })
	e2e(t, hs.URL, inst.URL)
}

// TestCtlEndToEndExternal runs the same script against the management API
// at WARREN_TEST_MGMT_URL (e.g. http://guest:guest@127.0.0.1:15672 for the
// real RabbitMQ), whose AMQP port is WARREN_TEST_URL or 5672 on that host.
func TestCtlEndToEndExternal(t *testing.T) {
	mu := os.Getenv("WARREN_TEST_MGMT_URL")
	if mu == "" {
		t.Skip("WARREN_TEST_MGMT_URL not set")
	}
	au := os.Getenv("WARREN_TEST_URL")
	if au == "" {
		u, err := url.Parse(mu)
		if err != nil {
			t.Fatal(err)
		}
		u.Scheme, u.Host, u.Path = "amqp", u.Hostname()+":5672", "/"
		au = u.String()
	}
	e2e(t, mu, au)
}

// script runs warrenctl commands against one API and checks their results.
type script struct {
	t   *testing.T
	url string
}

func (s script) ok(args ...string) string {
	s.t.Helper()
	out, errs, code := ctl(s.t, s.url, args...)
	if code != 0 {
		s.t.Fatalf("warrenctl %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

func (s script) fails(code int, args ...string) string {
	s.t.Helper()
	out, errs, got := ctl(s.t, s.url, args...)
	if got != code {
		s.t.Fatalf("warrenctl %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), got, code, out, errs)
	}
	return errs
}

// hasLine reports whether out has line as one of its lines.
func hasLine(out, line string) bool {
	for _, l := range strings.Split(out, "\n") {
		if l == line {
			return true
		}
	}
	return false
}

func (s script) wantLine(line string, args ...string) {
	s.t.Helper()
	if out := s.ok(args...); !hasLine(out, line) {
		s.t.Fatalf("warrenctl %s: no line %q in\n%s", strings.Join(args, " "), line, out)
	}
}

// eventually polls a list command until it shows line: management
// statistics (message counts, connections) are sampled, not immediate.
func (s script) eventually(line string, args ...string) {
	s.t.Helper()
	var out string
	ok := poll(30*time.Second, func() bool {
		// An error is retried too: RabbitMQ's API answers 500 now and then
		// while its statistics are being collected.
		var errs string
		var code int
		out, errs, code = ctl(s.t, s.url, args...)
		out += errs
		return code == 0 && hasLine(out, line)
	})
	if !ok {
		s.t.Fatalf("warrenctl %s: no line %q within 30 s; last output:\n%s", strings.Join(args, " "), line, out)
	}
}

// poll calls fn until it is true or timeout passes. Unlike
// testbroker.CheckFor it waits 100 ms between tries: each try is a round of
// HTTP requests to a management API that may be a shared RabbitMQ, which
// samples its statistics every few seconds anyway.
func poll(timeout time.Duration, fn func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !fn() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond) // a polling interval, not synchronisation
	}
	return true
}

func unique(t *testing.T) string {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "ctl-e2e-" + hex.EncodeToString(b)
}

// e2e is the operator's session: health, vhost, user, permissions, policy,
// a queue with messages, purge, definitions export/import, close a
// connection, and clean-up, all through warrenctl over the HTTP API. amqpURL
// is the same broker's AMQP URL (guest), used to make something to look at.
func e2e(t *testing.T, apiURL, amqpURL string) {
	s := script{t, apiURL}
	v, user, q := unique(t), unique(t), "e2e-q"
	t.Cleanup(func() { // also when a step fails half way
		_, _, _ = ctl(t, apiURL, "delete_vhost", v)
		_, _, _ = ctl(t, apiURL, "delete_user", user)
	})

	for _, c := range []string{"ping", "check_running", "check_local_alarms", "check_virtual_hosts", "check_port_connectivity", "await_startup"} {
		s.ok(c)
	}
	if out := s.ok("status"); !strings.Contains(out, "Listeners") || !strings.Contains(out, "Node name: ") {
		t.Fatalf("status:\n%s", out)
	}

	s.ok("add_vhost", v, "--description", "warrenctl e2e")
	s.wantLine(v, "list_vhosts")
	s.wantLine(v+"\twarrenctl e2e", "-q", "list_vhosts", "name", "description")
	s.ok("add_user", user, "pw1")
	s.fails(exitSoftware, "add_user", user, "pw1")
	s.ok("change_password", user, "pw2")
	s.ok("set_user_tags", user, "management", "monitoring") // sorted: Warren sorts tags, RabbitMQ keeps their order
	s.wantLine(user+"\t[management, monitoring]", "list_users")
	s.ok("set_permissions", "-p", v, user, "^e2e-.*", ".*", ".*")
	s.ok("set_permissions", "-p", v, "guest", ".*", ".*", ".*")
	s.fails(exitNoUser, "set_permissions", "-p", v, user+"-nobody", ".*", ".*", ".*")
	s.fails(exitUnavailable, "set_permissions", "-p", v+"-nowhere", user, ".*", ".*", ".*")
	s.wantLine(user+"\t^e2e-.*\t.*\t.*", "list_permissions", "-p", v)
	s.ok("set_topic_permissions", "-p", v, user, "amq.topic", "^a\\.", "^b\\.")
	s.wantLine(user+"\tamq.topic\t^a\\.\t^b\\.", "list_topic_permissions", "-p", v)
	s.ok("set_topic_permissions", "-p", v, user, "other.topic", "^c", "^d")
	s.ok("clear_topic_permissions", "-p", v, user, "other.topic")
	if out := s.ok("-s", "list_topic_permissions", "-p", v); out != user+"\tamq.topic\t^a\\.\t^b\\.\n" {
		t.Fatalf("after clearing other.topic's topic permissions:\n%s", out)
	}
	s.ok("set_policy", "-p", v, "--priority", "1", "--apply-to", "queues", "cap", "^e2e-", `{"max-length":2}`)
	s.wantLine(v+"\tcap\t^e2e-\tqueues\t{\"max-length\":2}\t1", "list_policies", "-p", v)
	s.ok("set_vhost_limits", "-p", v, `{"max-queues":10}`)
	s.wantLine(`{"max-queues":10}`, "list_vhost_limits", "-p", v)
	s.wantLine(v+"\t"+`{"max-queues":10}`, "list_vhost_limits", "--global")
	s.wantLine(v+"\t^e2e-.*\t.*\t.*", "list_user_permissions", user)
	s.ok("set_user_limits", user, `{"max-connections":5}`)
	s.ok("set_user_limits", user, `{"max-channels":3}`)
	s.fails(exitUnavailable, "set_user_limits", user+"-nobody", `{"max-channels":3}`)
	s.ok("clear_user_limits", user, "max-channels")
	s.ok("clear_user_limits", user, "all")

	// A queue with messages, a consumer and a connection to look at.
	u, err := url.Parse(amqpURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + v
	conn, err := amqp.DialConfig(u.String(), amqp.Config{Properties: amqp.Table{"connection_name": "ctl-e2e"}})
	if err != nil {
		t.Fatalf("AMQP dial %s: %v", u.Redacted(), err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(q, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare("e2e-consumed", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(q, "a.b", "amq.topic", false, nil); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := ch.Publish("", q, false, false, amqp.Publishing{Body: []byte("m")}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ch.Consume("e2e-consumed", "e2e-tag", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))

	s.eventually(q+"\t2\t0", "list_queues", "-p", v, "name", "messages_ready", "messages_unacknowledged") // max-length 2 from the policy
	s.wantLine(q+"\tcap\ttrue", "-q", "list_queues", "-p", v, "name", "policy", "durable")
	s.wantLine("amq.topic\ttopic", "list_exchanges", "-p", v)
	s.wantLine("amq.topic\texchange\t"+q+"\tqueue\ta.b\t[]", "list_bindings", "-p", v)
	s.wantLine("\texchange\t"+q+"\tqueue\t"+q+"\t[]", "list_bindings", "-p", v)
	s.eventually("e2e-consumed\te2e-tag\ttrue", "list_consumers", "-p", v, "queue_name", "consumer_tag", "ack_required")
	s.eventually("guest\t"+v+"\trunning", "list_connections", "user", "vhost", "state")
	s.eventually(v+"\t1", "list_channels", "vhost", "consumer_count")

	s.ok("purge_queue", "-p", v, q)
	s.eventually(q+"\t0", "list_queues", "-p", v)

	defs := filepath.Join(t.TempDir(), "defs.json")
	s.ok("export_definitions", defs)
	exported, err := os.ReadFile(defs)
	if err != nil || !strings.Contains(string(exported), `"`+v+`"`) || !strings.Contains(string(exported), `"`+user+`"`) {
		t.Fatalf("export lacks vhost or user (%v): %.300s", err, exported)
	}
	if out := s.ok("delete_queue", "-p", v, q); !strings.Contains(out, "Queue was successfully deleted with 0 ready messages") {
		t.Fatalf("delete_queue: %q", out)
	}
	s.fails(exitUnavailable, "delete_queue", "-p", v, q)
	small := filepath.Join(t.TempDir(), "small.json")
	if err := os.WriteFile(small, []byte(`{"queues":[{"name":"`+q+`","vhost":"`+v+`","durable":true,"auto_delete":false,"arguments":{}}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	s.ok("import_definitions", small)
	s.wantLine(q, "-s", "list_queues", "-p", v, "name")

	// close_connection takes the name list_connections shows.
	var name string
	for _, l := range strings.Split(s.ok("-s", "list_connections", "name", "vhost"), "\n") {
		if n, ok := strings.CutSuffix(l, "\t"+v); ok {
			name = n
		}
	}
	if name == "" {
		t.Fatal("our connection is not listed")
	}
	s.ok("close_connection", name, "e2e says bye")
	select {
	case e := <-closed:
		if e == nil || e.Code != amqp.ConnectionForced || !strings.Contains(e.Reason, "e2e says bye") {
			t.Fatalf("connection closed with %v", e)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("connection not closed by close_connection")
	}

	conn2, err := amqp.Dial(u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	closed2 := conn2.NotifyClose(make(chan *amqp.Error, 1))
	// Wait until the vhost lists only conn2: the first one may linger a moment.
	var last string
	only2 := poll(30*time.Second, func() bool {
		out, errs, code := ctl(t, apiURL, "-s", "list_connections", "name", "vhost")
		last = out + errs
		var names []string
		for _, l := range strings.Split(out, "\n") {
			if n, ok := strings.CutSuffix(l, "\t"+v); ok {
				names = append(names, n)
			}
		}
		return code == 0 && len(names) == 1 && names[0] != name
	})
	if !only2 {
		t.Fatalf("list_connections does not show just the second connection in %s; last:\n%s", v, last)
	}
	if out := s.ok("close_all_connections", "-p", v, "maintenance"); !strings.Contains(out, "Closed 1 connections") {
		t.Fatalf("close_all_connections: %q", out)
	}
	select {
	case e := <-closed2:
		if e == nil || e.Code != amqp.ConnectionForced {
			t.Fatalf("close_all_connections closed with %v", e)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("connection not closed by close_all_connections")
	}

	s.ok("clear_policy", "-p", v, "cap")
	s.fails(exitUnavailable, "clear_policy", "-p", v, "cap")
	s.ok("clear_permissions", "-p", v, user)
	if out := s.ok("list_permissions", "-p", v); hasLine(out, user+"\t^e2e-.*\t.*\t.*") {
		t.Fatalf("permissions not cleared:\n%s", out)
	}
	s.ok("delete_user", user)
	s.fails(exitNoUser, "delete_user", user)
	s.ok("delete_vhost", v)
	s.fails(exitDataErr, "delete_vhost", v)
}
