package mgmt

import (
	"encoding/json"
	"net/url"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warren-mq/warren/internal/testbroker"
)

// TestMgmtCompareRabbitMQ fetches each list route from a real RabbitMQ
// (WARREN_TEST_MGMT_URL, e.g. http://guest:guest@127.0.0.1:15672, whose AMQP
// port is WARREN_TEST_URL or 5672 on the same host) and from Warren, with the
// same objects on both, and reports the fields RabbitMQ returns that Warren
// lacks. It fails on a missing field of a route Warren claims, except those
// listed in notImplemented; the rest is printed.
func TestMgmtCompareRabbitMQ(t *testing.T) {
	mgmtURL := os.Getenv("WARREN_TEST_MGMT_URL")
	if mgmtURL == "" {
		t.Skip("WARREN_TEST_MGMT_URL not set")
	}
	ru, err := url.Parse(mgmtURL)
	if err != nil {
		t.Fatal(err)
	}
	amqpURL := os.Getenv("WARREN_TEST_URL")
	if amqpURL == "" {
		amqpURL = "amqp://guest:guest@" + ru.Hostname() + ":5672/"
	}
	a := newAPI(t)
	rabbit := &api{t: t, url: strings.TrimSuffix(ru.Scheme+"://"+ru.Host, "/")}
	user, pass := "guest", "guest"
	if ru.User != nil {
		user = ru.User.Username()
		pass, _ = ru.User.Password()
	}
	setUp(t, rabbit, amqpURL, user, pass)
	setUp(t, a, a.inst.URL, "guest", "guest")
	// RabbitMQ's stats arrive every 5 s: wait until its consumer shows.
	testbroker.CheckFor(t, 30*time.Second, func() bool {
		var l []any
		_ = json.Unmarshal(rabbit.do("GET", "/api/channels", user, pass, "").body, &l)
		return len(l) > 0
	})
	a.s.rates.take(time.Now())

	routes := []string{"overview", "nodes", "connections", "channels", "consumers", "queues", "exchanges", "bindings", "vhosts", "users",
		"permissions", "topic-permissions", "policies", "operator-policies", "parameters", "global-parameters", "vhost-limits",
		"user-limits", "definitions", "whoami", "feature-flags", "cluster-name", "queues/%2F/mgmt-cmp-q", "exchanges/%2F/mgmt-cmp-x",
		"vhosts/%2F", "users/guest"}
	var failures []string
	for _, route := range routes {
		rf := fields(rabbit.do("GET", "/api/"+route, user, pass, "").body)
		wf := fields(a.get("/api/" + route).body)
		var missing, allowed []string
		for f, seen := range rf {
			// A field RabbitMQ never sends as null must not be only null in Warren.
			if have, ok := wf[f]; ok && (have&filled != 0 || seen&null != 0) {
				continue
			} else if ok {
				f += " (null in Warren)"
			}
			if notImplemented(f) {
				allowed = append(allowed, f)
			} else {
				missing = append(missing, f)
			}
		}
		sort.Strings(missing)
		sort.Strings(allowed)
		if len(missing) > 0 {
			failures = append(failures, route+": "+strings.Join(missing, ", "))
		}
		if len(allowed) > 0 {
			t.Logf("%s: not implemented: %s", route, strings.Join(allowed, ", "))
		}
	}
	if len(failures) > 0 {
		t.Errorf("fields RabbitMQ has and Warren lacks:\n%s", strings.Join(failures, "\n"))
	}
}

// notImplemented are RabbitMQ's fields Warren does not have, on purpose
// (Erlang runtime details, clustering, quorum queues) or not yet.
func notImplemented(f string) bool {
	for _, p := range []string{"garbage_collection", "reductions", "backing_queue_status.", "applications.", "exchange_types.",
		"auth_mechanisms.", "contexts.", "listeners.socket_opts", "ra_open_file_metrics", "metrics_gc_queue_length", "log_files", "config_files",
		"cluster_links", "sample_retention_policies", "channel_details.", "connection_details."} {
		if strings.HasPrefix(f, p) || strings.Contains(f, "."+p) {
			return true
		}
	}
	return false
}

// fields returns the dotted field paths of a JSON object or list of objects
// (the union over the list's items), each with whether any item has it
// non-null, not descending into maps whose keys are data (arguments,
// properties, definitions...).
func fields(body []byte) map[string]int {
	var v any
	if json.Unmarshal(body, &v) != nil {
		return nil
	}
	out := map[string]int{}
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch v := v.(type) {
		case []any:
			for _, x := range v {
				walk(prefix, x)
			}
		case map[string]any:
			for k, x := range v {
				p := k
				if prefix != "" {
					p = prefix + "." + k
				}
				if x == nil {
					out[p] |= null
				} else {
					out[p] |= filled
				}
				if !slices.Contains(dataMaps, k) && prefix != "cluster_state" {
					walk(p, x)
				}
			}
		}
	}
	if l, ok := v.([]any); ok {
		for _, x := range l {
			walk("", x)
		}
	} else {
		walk("", v)
	}
	return out
}

// What fields saw of a field.
const (
	filled = 1 << iota // non-null in some item
	null               // null in some item
)

var dataMaps = []string{"arguments", "client_properties", "cluster_state", "definition", "value", "effective_policy_definition", "limits",
	"capabilities", "metadata", "properties", "headers", "users", "vhosts", "permissions", "topic_permissions", "parameters",
	"global_parameters", "policies", "queues", "exchanges", "bindings"}

// setUp makes the same objects on a broker: a queue with a message and a
// consumer on an open connection, an exchange with a binding, a policy.
func setUp(t *testing.T, b *api, amqpURL, user, pass string) {
	t.Helper()
	mustOK := func(method, path, body string) {
		t.Helper()
		r := b.do(method, path, user, pass, body)
		if r.code >= 300 {
			t.Fatalf("%s %s: %d %s", method, path, r.code, r.body)
		}
	}
	mustOK("PUT", "/api/queues/%2F/mgmt-cmp-q", `{"durable":false,"auto_delete":true}`)
	mustOK("PUT", "/api/exchanges/%2F/mgmt-cmp-x", `{"type":"topic","durable":false,"auto_delete":false}`)
	mustOK("POST", "/api/bindings/%2F/e/mgmt-cmp-x/q/mgmt-cmp-q", `{"routing_key":"k.#"}`)
	mustOK("PUT", "/api/policies/%2F/mgmt-cmp-p", `{"pattern":"^mgmt-cmp-none$","definition":{"max-length":5}}`)
	mustOK("PUT", "/api/topic-permissions/%2F/"+user, `{"exchange":"mgmt-cmp-x","write":".*","read":".*"}`)
	mustOK("PUT", "/api/operator-policies/%2F/mgmt-cmp-op", `{"pattern":"^mgmt-cmp-none$","definition":{"max-length":5},"apply-to":"queues"}`)
	mustOK("PUT", "/api/global-parameters/mgmt-cmp-g", `{"value":"x"}`)
	mustOK("PUT", "/api/vhosts/mgmt-cmp-v", `{}`)
	mustOK("PUT", "/api/vhost-limits/mgmt-cmp-v/max-queues", `{"value":1000}`)
	mustOK("PUT", "/api/users/mgmt-cmp-u", `{"password":"x","tags":""}`)
	mustOK("PUT", "/api/user-limits/mgmt-cmp-u/max-channels", `{"value":10}`)
	if b.s != nil { // RabbitMQ takes parameters of its plugins' components only; the shared one has some
		mustOK("PUT", "/api/parameters/federation-upstream/%2F/mgmt-cmp", `{"value":{"uri":"amqp://x"}}`)
	}
	t.Cleanup(func() {
		b.do("DELETE", "/api/topic-permissions/%2F/"+user+"?exchange=mgmt-cmp-x", user, pass, "")
		b.do("DELETE", "/api/operator-policies/%2F/mgmt-cmp-op", user, pass, "")
		b.do("DELETE", "/api/global-parameters/mgmt-cmp-g", user, pass, "")
		b.do("DELETE", "/api/vhosts/mgmt-cmp-v", user, pass, "")
		b.do("DELETE", "/api/users/mgmt-cmp-u", user, pass, "")
		b.do("DELETE", "/api/exchanges/%2F/mgmt-cmp-x", user, pass, "")
		b.do("DELETE", "/api/queues/%2F/mgmt-cmp-q", user, pass, "")
		b.do("DELETE", "/api/policies/%2F/mgmt-cmp-p", user, pass, "")
	})
	mustOK("POST", "/api/exchanges/%2F/mgmt-cmp-x/publish", `{"routing_key":"k.1","payload":"x","payload_encoding":"string","properties":{}}`)
	cfg := amqp.Config{Properties: amqp.Table{"connection_name": "mgmt-cmp"}}
	conn, err := amqp.DialConfig(amqpURL, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Qos(5, 0, false); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.Consume("mgmt-cmp-q", "mgmt-cmp-ctag", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
}
