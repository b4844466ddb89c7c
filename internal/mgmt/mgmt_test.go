package mgmt

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/warren-mq/warren/internal/broker"
	"github.com/warren-mq/warren/internal/testbroker"
)

// api is a management API over an in-process broker for one test.
type api struct {
	t    *testing.T
	inst *testbroker.Instance
	b    *broker.Broker
	s    *Server
	url  string
}

func newAPI(t *testing.T) *api {
	t.Helper()
	inst := testbroker.Start(t, testbroker.Options{})
	s := New(inst.Broker, Config{Version: "test", SampleInterval: time.Hour,
		Listeners: []Listener{{Protocol: "amqp", Addr: inst.Addr}}})
	hs := httptest.NewServer(s)
	t.Cleanup(func() { hs.Close(); s.Close() })
	return &api{t: t, inst: inst, b: inst.Broker, s: s, url: hs.URL}
}

// resp is a response with its body read.
type resp struct {
	code   int
	header http.Header
	body   []byte
}

func (r resp) json(t *testing.T) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("response %d is not JSON: %v: %q", r.code, err, r.body)
	}
	return v
}

func (r resp) obj(t *testing.T) map[string]any {
	t.Helper()
	m, ok := r.json(t).(map[string]any)
	if !ok {
		t.Fatalf("response is not an object: %s", r.body)
	}
	return m
}

func (r resp) list(t *testing.T) []any {
	t.Helper()
	l, ok := r.json(t).([]any)
	if !ok {
		t.Fatalf("response is not a list: %s", r.body)
	}
	return l
}

// do sends a request as user:pass (guest:guest when user is "").
func (a *api) do(method, path, user, pass, body string, hdr ...string) resp {
	a.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, a.url+path, rd)
	if err != nil {
		a.t.Fatal(err)
	}
	if user == "" {
		user, pass = "guest", "guest"
	}
	if user != "-" {
		req.SetBasicAuth(user, pass)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{res.StatusCode, res.Header, b}
}

func (a *api) get(path string) resp                { return a.do("GET", path, "", "", "") }
func (a *api) put(path, body string) resp          { return a.do("PUT", path, "", "", body) }
func (a *api) post(path, body string) resp         { return a.do("POST", path, "", "", body) }
func (a *api) del(path string, hdr ...string) resp { return a.do("DELETE", path, "", "", "", hdr...) }

// want fails unless r has the status code.
func want(t *testing.T, r resp, code int) {
	t.Helper()
	if r.code != code {
		t.Fatalf("status %d, want %d: %s", r.code, code, r.body)
	}
}

// wantError checks RabbitMQ's error JSON.
func wantError(t *testing.T, r resp, code int, errWord, reason string) {
	t.Helper()
	want(t, r, code)
	m := r.obj(t)
	if m["error"] != errWord || (reason != "" && m["reason"] != reason) {
		t.Fatalf("error %v / %q, want %q / %q", m["error"], m["reason"], errWord, reason)
	}
}

func TestMgmtAuth(t *testing.T) {
	a := newAPI(t)
	r := a.do("GET", "/api/overview", "-", "", "")
	want(t, r, 401)
	if r.header.Get("WWW-Authenticate") != `Basic realm="RabbitMQ Management"` {
		t.Errorf("WWW-Authenticate %q", r.header.Get("WWW-Authenticate"))
	}
	wantError(t, a.do("GET", "/api/overview", "guest", "bad", ""), 401, "not_authorized", "Login failed")
	if r := a.do("GET", "/api/auth", "-", "", ""); r.code != 200 || r.obj(t)["enable_uaa"] != false {
		t.Errorf("/api/auth without a login: %d %s", r.code, r.body)
	}
	wantError(t, a.do("GET", "/api/overview", "nobody", "x", ""), 401, "not_authorized", "Login failed")

	for _, u := range []struct{ name, tags string }{{"none", ""}, {"mgmt", "management"}, {"mon", "monitoring"}, {"pm", "policymaker"}} {
		if err := a.b.AddUser(u.name, "pw", broker.ParseTags(u.tags)...); err != nil {
			t.Fatal(err)
		}
	}
	wantError(t, a.do("GET", "/api/overview", "none", "pw", ""), 401, "not_authorised", "Not management user")
	wantError(t, a.do("GET", "/api/users", "none", "pw", ""), 401, "not_authorised", "Not management user")
	want(t, a.do("GET", "/api/overview", "mgmt", "pw", ""), 200)
	wantError(t, a.do("GET", "/api/users", "mgmt", "pw", ""), 401, "not_authorised", "Not administrator user")
	wantError(t, a.do("GET", "/api/nodes", "mgmt", "pw", ""), 401, "not_authorised", "Not monitor user")
	want(t, a.do("GET", "/api/nodes", "mon", "pw", ""), 200)
	wantError(t, a.do("PUT", "/api/policies/%2F/p", "mgmt", "pw", `{"pattern":".*","definition":{}}`), 401, "not_authorised", "Not policymaker user")

	// Without permissions a management user sees no vhost; a monitoring one sees all.
	if l := a.do("GET", "/api/vhosts", "mgmt", "pw", "").list(t); len(l) != 0 {
		t.Errorf("management user without permissions sees %d vhosts", len(l))
	}
	wantError(t, a.do("GET", "/api/queues/%2F", "mgmt", "pw", ""), 401, "not_authorised", "User not authorised to access virtual host")
	if l := a.do("GET", "/api/vhosts", "mon", "pw", "").list(t); len(l) != 1 {
		t.Errorf("monitoring user sees %d vhosts, want 1", len(l))
	}
	if err := a.b.SetPermissions("mgmt", "/", broker.Permission{Configure: ".*", Write: ".*", Read: ".*"}); err != nil {
		t.Fatal(err)
	}
	if l := a.do("GET", "/api/vhosts", "mgmt", "pw", "").list(t); len(l) != 1 {
		t.Errorf("management user with permissions sees %d vhosts, want 1", len(l))
	}
	want(t, a.do("PUT", "/api/queues/%2F/mine", "mgmt", "pw", `{}`), 201)
	if err := a.b.SetPermissions("mgmt", "/", broker.Permission{Configure: "^mine$", Write: "", Read: ""}); err != nil {
		t.Fatal(err)
	}
	wantError(t, a.do("PUT", "/api/queues/%2F/other", "mgmt", "pw", `{}`), 401, "not_authorised", "Access refused.")

	// loopback_users: guest only from localhost.
	req := httptest.NewRequest("GET", "/api/overview", nil)
	req.RemoteAddr = "192.0.2.1:40000"
	req.SetBasicAuth("guest", "guest")
	w := httptest.NewRecorder()
	a.s.ServeHTTP(w, req)
	if w.Code != 401 {
		t.Errorf("guest from a remote address: %d, want 401", w.Code)
	}
	req.RemoteAddr = "[::1]:40000"
	w = httptest.NewRecorder()
	a.s.ServeHTTP(w, req)
	if w.Code != 200 {
		t.Errorf("guest from ::1: %d, want 200", w.Code)
	}
}

func TestMgmtErrors(t *testing.T) {
	a := newAPI(t)
	wantError(t, a.get("/api/queues/%2F/nope"), 404, "Object Not Found", "Not Found")
	wantError(t, a.get("/api/no-such-route"), 404, "Object Not Found", "Not Found")
	wantError(t, a.get("/api/queues/no-vhost"), 404, "Object Not Found", "Not Found")
	r := a.do("PATCH", "/api/overview", "", "", "")
	want(t, r, 405)
	if r.header.Get("Allow") == "" {
		t.Error("405 without Allow")
	}
	want(t, a.del("/api/overview"), 405)
	wantError(t, a.put("/api/queues/%2F/q", `{bad`), 400, "bad_request", "not_json")
	big := `{"arguments":{"x":"` + strings.Repeat("a", 17<<20) + `"}}`
	want(t, a.put("/api/queues/%2F/q", big), 413)

	// Trailing slashes, %2F, names with spaces and slashes.
	want(t, a.put("/api/queues/%2F/a%20b%2Fc", `{"durable":false}`), 201)
	want(t, a.put("/api/queues/%2F/a%20b%2Fc", `{"durable":false}`), 204)
	if m := a.get("/api/queues/%2F/a%20b%2Fc/").obj(t); m["name"] != "a b/c" || m["vhost"] != "/" {
		t.Errorf("queue %v in %v", m["name"], m["vhost"])
	}
	if l := a.get("/api/queues/").list(t); len(l) != 1 {
		t.Errorf("/api/queues/ lists %d", len(l))
	}
	// A queue named like a sub-resource is still the queue.
	want(t, a.put("/api/queues/%2F/bindings", `{}`), 201)
	if m := a.get("/api/queues/%2F/bindings").obj(t); m["name"] != "bindings" {
		t.Errorf("GET queue named bindings: %v", m)
	}
	wantError(t, a.put("/api/queues/%2F/a%20b%2Fc", `{"durable":true}`), 400, "bad_request",
		"inequivalent arg 'durable' for queue 'a b/c' in vhost '/': received 'true' but current is 'false'")
	wantError(t, a.put("/api/queues/no-vhost/q", `{}`), 404, "not_found", "vhost_not_found")
	wantError(t, a.put("/api/queues/%2F/amq.x", `{}`), 401, "not_authorised", "Access refused.")
	wantError(t, a.put("/api/exchanges/%2F/x", `{"type":"bogus"}`), 400, "bad_request", "unknown exchange type 'bogus'")
	wantError(t, a.del("/api/exchanges/%2F/amq.direct"), 401, "not_authorised", "Access refused.")
	wantError(t, a.put("/api/policies/%2F/p", `{"pattern":"^a","definition":{"max-length":-1}}`), 400, "bad_request",
		"Validation failed\n\n-1 is not a valid maximum length\n")
}

func TestMgmtTopology(t *testing.T) {
	a := newAPI(t)
	want(t, a.put("/api/exchanges/%2F/x1", `{"type":"topic","durable":"false","auto_delete":false}`), 201)
	want(t, a.put("/api/queues/%2F/q%201", `{"durable":"false","arguments":{"x-max-length":10}}`), 201)
	x := a.get("/api/exchanges/%2F/x1").obj(t)
	if x["type"] != "topic" || x["durable"] != false || x["vhost"] != "/" {
		t.Errorf("exchange %v", x)
	}
	q := a.get("/api/queues/%2F/q%201").obj(t)
	if q["arguments"].(map[string]any)["x-max-length"] != 10.0 || q["durable"] != false || q["node"] != a.s.Node() {
		t.Errorf("queue %v", q)
	}
	for _, k := range []string{"messages", "messages_ready", "messages_unacknowledged", "consumers", "state", "policy", "message_stats", "consumer_details", "idle_since"} {
		if _, ok := q[k]; !ok {
			t.Errorf("queue has no %s", k)
		}
	}
	if d := a.get("/api/exchanges/%2F/amq.default").obj(t); d["name"] != "" {
		t.Errorf("amq.default is %v", d["name"])
	}

	r := a.post("/api/bindings/%2F/e/x1/q/q%201", `{"routing_key":"a.*","arguments":{}}`)
	want(t, r, 201)
	if loc := r.header.Get("Location"); loc != "q+1/a.%252A" {
		t.Errorf("Location %q", loc)
	}
	want(t, a.post("/api/bindings/%2F/e/x1/q/q%201", `{"routing_key":"h","arguments":{"k":"v"}}`), 201)
	l := a.get("/api/bindings/%2F/e/x1/q/q%201").list(t)
	if len(l) != 2 {
		t.Fatalf("bindings x1 -> q 1: %v", l)
	}
	var withArgs string
	for _, b := range l {
		m := b.(map[string]any)
		if m["routing_key"] == "a.*" && m["properties_key"] != "a.%2A" {
			t.Errorf("properties_key %v", m["properties_key"])
		}
		if m["routing_key"] == "h" {
			withArgs = m["properties_key"].(string)
		}
	}
	if m := a.get("/api/bindings/%2F/e/x1/q/q%201/a.%252A").obj(t); m["destination_type"] != "queue" || m["source"] != "x1" {
		t.Errorf("binding %v", m)
	}
	if l := a.get("/api/queues/%2F/q%201/bindings").list(t); len(l) != 3 { // with the default exchange's
		t.Errorf("queue bindings %v", l)
	}
	if l := a.get("/api/exchanges/%2F/x1/bindings/source").list(t); len(l) != 2 {
		t.Errorf("source bindings %v", l)
	}
	want(t, a.put("/api/exchanges/%2F/x2", `{"type":"fanout"}`), 201)
	want(t, a.post("/api/bindings/%2F/e/x1/e/x2", `{"routing_key":"#"}`), 201)
	if l := a.get("/api/exchanges/%2F/x2/bindings/destination").list(t); len(l) != 1 {
		t.Errorf("destination bindings %v", l)
	}
	want(t, a.del("/api/bindings/%2F/e/x1/q/q%201/"+strings.ReplaceAll(withArgs, "%", "%25")), 204)
	wantError(t, a.del("/api/bindings/%2F/e/x1/q/q%201/nope"), 404, "Object Not Found", "Not Found")

	pub := a.post("/api/exchanges/%2F/x1/publish", `{"routing_key":"a.b","payload":"hi","payload_encoding":"string","properties":{"headers":{"h":1},"delivery_mode":2,"content_type":"text/plain"}}`)
	want(t, pub, 200)
	if pub.obj(t)["routed"] != true {
		t.Errorf("publish %s", pub.body)
	}
	if pub := a.post("/api/exchanges/%2F/x1/publish", `{"routing_key":"zzz","payload":"aGk=","payload_encoding":"base64","properties":{}}`).obj(t); pub["routed"] != false {
		t.Errorf("unroutable publish %v", pub)
	}
	want(t, a.post("/api/exchanges/%2F/amq.default/publish", `{"routing_key":"q 1","payload":"/wA=","payload_encoding":"base64","properties":{}}`), 200)
	wantError(t, a.post("/api/exchanges/%2F/x1/publish", `{"routing_key":"a"}`), 400, "bad_request", "")

	get := func(body string) []any {
		t.Helper()
		r := a.post("/api/queues/%2F/q%201/get", body)
		want(t, r, 200)
		return r.list(t)
	}
	msgs := get(`{"count":"5","ackmode":"ack_requeue_true","encoding":"auto","truncate":50000}`)
	if len(msgs) != 2 {
		t.Fatalf("got %d messages", len(msgs))
	}
	m0 := msgs[0].(map[string]any)
	if m0["payload"] != "hi" || m0["payload_encoding"] != "string" || m0["exchange"] != "x1" || m0["routing_key"] != "a.b" ||
		m0["message_count"] != 1.0 || m0["redelivered"] != false || m0["payload_bytes"] != 2.0 {
		t.Errorf("message %v", m0)
	}
	props := m0["properties"].(map[string]any)
	if props["delivery_mode"] != 2.0 || props["content_type"] != "text/plain" || props["headers"].(map[string]any)["h"] != 1.0 {
		t.Errorf("properties %v", props)
	}
	msgs = get(`{"count":1,"ackmode":"ack_requeue_true","encoding":"base64","truncate":1}`)
	if m := msgs[0].(map[string]any); m["payload"] != "aA==" || m["payload_encoding"] != "base64" || m["redelivered"] != true || m["payload_bytes"] != 2.0 {
		t.Errorf("base64 truncated %v", m)
	}
	if m := get(`{"count":2,"ackmode":"ack_requeue_false","encoding":"auto"}`); len(m) != 2 || m[1].(map[string]any)["payload_encoding"] != "base64" {
		t.Errorf("ack_requeue_false %v", m)
	}
	if m := get(`{"count":1,"ackmode":"ack_requeue_true","encoding":"auto"}`); len(m) != 0 {
		t.Errorf("queue not empty after ack_requeue_false: %v", m)
	}
	wantError(t, a.post("/api/queues/%2F/q%201/get", `{"count":1,"ackmode":"nope","encoding":"auto"}`), 400, "bad_request", "")

	a.post("/api/exchanges/%2F/amq.default/publish", `{"routing_key":"q 1","payload":"x","payload_encoding":"string","properties":{}}`)
	wantError(t, a.del("/api/queues/%2F/q%201?if-empty=true"), 400, "bad_request", "queue 'q 1' in vhost '/' not empty")
	want(t, a.del("/api/queues/%2F/q%201/contents"), 204)
	if q := a.get("/api/queues/%2F/q%201").obj(t); q["messages"] != 0.0 {
		t.Errorf("after purge: %v messages", q["messages"])
	}
	want(t, a.del("/api/queues/%2F/q%201?if-empty=true"), 204)
	wantError(t, a.del("/api/exchanges/%2F/x1?if-unused=true"), 400, "bad_request", "exchange 'x1' in vhost '/' in use")
	want(t, a.del("/api/exchanges/%2F/x1"), 204)
	wantError(t, a.del("/api/exchanges/%2F/x1"), 404, "Object Not Found", "Not Found")
	wantError(t, a.del("/api/queues/%2F/q%201"), 404, "Object Not Found", "Not Found")
}

func TestMgmtListParameters(t *testing.T) {
	a := newAPI(t)
	for _, n := range []string{"c", "a", "b", "ab"} {
		want(t, a.put("/api/queues/%2F/"+n, `{}`), 201)
	}
	a.post("/api/exchanges/%2F/amq.default/publish", `{"routing_key":"b","payload":"x","payload_encoding":"string","properties":{}}`)
	r := a.get("/api/queues?page=1&page_size=3&columns=name,messages").obj(t)
	if r["filtered_count"] != 4.0 || r["item_count"] != 3.0 || r["page"] != 1.0 || r["page_count"] != 2.0 || r["page_size"] != 3.0 || r["total_count"] != 4.0 {
		t.Errorf("page %v", r)
	}
	items := r["items"].([]any)
	if first := items[0].(map[string]any); len(first) != 2 || first["name"] != "a" {
		t.Errorf("columns: %v", first)
	}
	r = a.get("/api/queues/%2F?page=1&name=a&use_regex=false").obj(t)
	if r["filtered_count"] != 2.0 || r["total_count"] != 4.0 {
		t.Errorf("name filter %v", r)
	}
	r = a.get("/api/queues?page=1&name=%5Ea%24&use_regex=true").obj(t)
	if r["filtered_count"] != 1.0 {
		t.Errorf("regex filter %v", r)
	}
	l := a.get("/api/queues?sort=messages&sort_reverse=true&columns=name").list(t)
	if l[0].(map[string]any)["name"] != "b" {
		t.Errorf("sort by messages reversed: %v", l)
	}
	l = a.get("/api/queues?columns=name,message_stats.publish&disable_stats=true").list(t)
	if _, ok := l[0].(map[string]any)["message_stats"]; ok {
		t.Errorf("disable_stats kept message_stats: %v", l[0])
	}
	l = a.get("/api/queues?columns=name,message_stats.publish&name=b&use_regex=true").list(t)
	if ms := l[1].(map[string]any)["message_stats"].(map[string]any); ms["publish"] != 1.0 || len(ms) != 1 || l[1].(map[string]any)["name"] != "b" {
		t.Errorf("nested column: %v", l[1])
	}
	wantError(t, a.get("/api/queues?page=1&page_size=501"), 400, "bad_request", "")
	wantError(t, a.get("/api/queues?page=9"), 400, "bad_request", "")
}

func TestMgmtAccessRoutes(t *testing.T) {
	a := newAPI(t)
	want(t, a.put("/api/vhosts/v%201", `{"description":"d","tags":"a,b","default_queue_type":"classic"}`), 201)
	want(t, a.put("/api/vhosts/v%201", `{"description":"d2","tags":["a"]}`), 204)
	v := a.get("/api/vhosts/v%201").obj(t)
	if v["description"] != "d2" || len(v["tags"].([]any)) != 1 || v["name"] != "v 1" {
		t.Errorf("vhost %v", v)
	}
	if p := a.get("/api/permissions/v%201/guest"); p.code != 200 {
		t.Errorf("creator has no permissions on the new vhost: %d", p.code)
	}
	want(t, a.put("/api/users/u1", `{"password":"p1","tags":"management"}`), 201)
	want(t, a.put("/api/users/u2", `{"password_hash":"","tags":""}`), 201)
	want(t, a.put("/api/users/u1", `{"tags":"management,monitoring"}`), 204)
	if who := a.do("GET", "/api/whoami", "u1", "p1", "").obj(t); who["name"] != "u1" || len(who["tags"].([]any)) != 2 {
		t.Errorf("whoami %v", who)
	}
	u := a.get("/api/users/u1").obj(t)
	if u["hashing_algorithm"] != broker.HashSHA256 || u["password_hash"] == "" || u["limits"] == nil {
		t.Errorf("user %v", u)
	}
	if l := a.get("/api/users/without-permissions").list(t); len(l) != 2 {
		t.Errorf("without permissions: %v", l)
	}
	want(t, a.put("/api/permissions/v%201/u1", `{"configure":".*","write":".*","read":".*"}`), 201)
	want(t, a.put("/api/permissions/v%201/u1", `{"configure":"","write":".*","read":".*"}`), 204)
	if p := a.get("/api/permissions/v%201/u1").obj(t); p["configure"] != "" || p["user"] != "u1" || p["vhost"] != "v 1" {
		t.Errorf("permission %v", p)
	}
	if l := a.get("/api/vhosts/v%201/permissions").list(t); len(l) != 2 {
		t.Errorf("vhost permissions %v", l)
	}
	if l := a.get("/api/users/u1/permissions").list(t); len(l) != 1 {
		t.Errorf("user permissions %v", l)
	}
	wantError(t, a.put("/api/permissions/v%201/u1", `{"configure":"(","write":"","read":""}`), 400, "bad_request", "")
	wantError(t, a.put("/api/permissions/nov/u1", `{"configure":"","write":"","read":""}`), 404, "not_found", "vhost_not_found")
	want(t, a.put("/api/topic-permissions/v%201/u1", `{"exchange":"amq.topic","write":"^a","read":".*"}`), 201)
	if l := a.get("/api/topic-permissions/v%201/u1").list(t); len(l) != 1 || l[0].(map[string]any)["exchange"] != "amq.topic" {
		t.Errorf("topic permissions %v", l)
	}
	want(t, a.del("/api/topic-permissions/v%201/u1"), 204)
	want(t, a.del("/api/permissions/v%201/u1"), 204)
	wantError(t, a.del("/api/permissions/v%201/u1"), 404, "Object Not Found", "Not Found")

	want(t, a.put("/api/vhost-limits/v%201/max-queues", `{"value":5}`), 204)
	if l := a.get("/api/vhost-limits").list(t); len(l) != 1 || l[0].(map[string]any)["value"].(map[string]any)["max-queues"] != 5.0 {
		t.Errorf("vhost limits %v", l)
	}
	want(t, a.put("/api/user-limits/u1/max-channels", `{"value":3}`), 204)
	if l := a.get("/api/user-limits/u1").list(t); len(l) != 1 || l[0].(map[string]any)["user"] != "u1" {
		t.Errorf("user limits %v", l)
	}
	want(t, a.del("/api/user-limits/u1/max-channels"), 204)
	want(t, a.del("/api/vhost-limits/v%201/max-queues"), 204)
	if l := a.get("/api/vhost-limits/v%201").list(t); len(l) != 0 {
		t.Errorf("vhost limits after delete %v", l)
	}
	wantError(t, a.post("/api/users/bulk-delete", `{"users":["u1","u2","nobody"]}`), 400, "bad_request", "no_such_user: nobody")
	if l := a.get("/api/users").list(t); len(l) != 1 {
		t.Errorf("users after bulk delete %v", l)
	}
	want(t, a.del("/api/vhosts/v%201"), 204)
	wantError(t, a.get("/api/vhosts/v%201"), 404, "Object Not Found", "Not Found")
}

func TestMgmtPoliciesAndParameters(t *testing.T) {
	a := newAPI(t)
	want(t, a.put("/api/policies/%2F/p1", `{"pattern":"^q","definition":{"max-length":5},"priority":1,"apply-to":"queues"}`), 201)
	want(t, a.put("/api/policies/%2F/p1", `{"pattern":"^q","definition":{"max-length":6},"priority":1,"apply-to":"queues"}`), 204)
	p := a.get("/api/policies/%2F/p1").obj(t)
	if p["apply-to"] != "queues" || p["definition"].(map[string]any)["max-length"] != 6.0 || p["priority"] != 1.0 {
		t.Errorf("policy %v", p)
	}
	want(t, a.put("/api/queues/%2F/q1", `{}`), 201)
	if q := a.get("/api/queues/%2F/q1").obj(t); q["policy"] != "p1" || q["effective_policy_definition"].(map[string]any)["max-length"] != 6.0 {
		t.Errorf("queue under policy: %v %v", q["policy"], q["effective_policy_definition"])
	}
	want(t, a.put("/api/operator-policies/%2F/op", `{"pattern":".*","definition":{"max-length":100},"apply-to":"queues"}`), 201)
	if l := a.get("/api/operator-policies").list(t); len(l) != 1 {
		t.Errorf("operator policies %v", l)
	}
	want(t, a.put("/api/parameters/federation-upstream/%2F/up", `{"value":{"uri":"amqp://x"}}`), 201)
	if l := a.get("/api/parameters/federation-upstream").list(t); len(l) != 1 || l[0].(map[string]any)["value"].(map[string]any)["uri"] != "amqp://x" {
		t.Errorf("parameters %v", l)
	}
	if l := a.get("/api/parameters").list(t); len(l) != 2 { // the operator policy is listed too, as RabbitMQ does
		t.Errorf("all parameters %v", l)
	}
	want(t, a.get("/api/parameters/federation-upstream/%2F/up"), 200)
	want(t, a.del("/api/parameters/federation-upstream/%2F/up"), 204)
	wantError(t, a.del("/api/parameters/federation-upstream/%2F/up"), 404, "Object Not Found", "Not Found")
	want(t, a.put("/api/global-parameters/g1", `{"value":"v"}`), 201)
	if g := a.get("/api/global-parameters/g1").obj(t); g["value"] != "v" {
		t.Errorf("global parameter %v", g)
	}
	want(t, a.del("/api/global-parameters/g1"), 204)
	want(t, a.del("/api/operator-policies/%2F/op"), 204)
	want(t, a.del("/api/policies/%2F/p1"), 204)
	wantError(t, a.del("/api/policies/%2F/p1"), 404, "Object Not Found", "Not Found")
}

func TestMgmtNodeAndHealth(t *testing.T) {
	a := newAPI(t)
	o := a.get("/api/overview").obj(t)
	for _, k := range []string{"management_version", "rabbitmq_version", "cluster_name", "node", "object_totals", "queue_totals", "message_stats", "listeners", "exchange_types"} {
		if o[k] == nil {
			t.Errorf("overview %s is %v", k, o[k])
		}
	}
	if o["node"] != a.s.Node() || !strings.HasPrefix(a.s.Node(), "warren@") {
		t.Errorf("node %v", o["node"])
	}
	nodes := a.get("/api/nodes").list(t)
	if len(nodes) != 1 || nodes[0].(map[string]any)["name"] != a.s.Node() {
		t.Errorf("nodes %v", nodes)
	}
	if n := a.get("/api/nodes/" + a.s.Node()).obj(t); n["running"] != true || n["mem_used"] == nil {
		t.Errorf("node %v", n)
	}
	want(t, a.get("/api/nodes/rabbit@elsewhere"), 404)
	for _, p := range []string{"alarms", "local-alarms", "virtual-hosts", "node-is-quorum-critical", "is-in-service"} {
		if r := a.get("/api/health/checks/" + p).obj(t); r["status"] != "ok" {
			t.Errorf("%s: %v", p, r)
		}
	}
	port := a.inst.Addr[strings.LastIndex(a.inst.Addr, ":")+1:]
	want(t, a.get("/api/health/checks/port-listener/"+port), 200)
	if r := a.get("/api/health/checks/port-listener/1"); r.code != 503 || r.obj(t)["status"] != "failed" {
		t.Errorf("port-listener/1: %d %s", r.code, r.body)
	}
	want(t, a.get("/api/health/checks/protocol-listener/amqp"), 200)
	want(t, a.get("/api/health/checks/protocol-listener/mqtt"), 503)
	if r := a.get("/api/aliveness-test/%2F").obj(t); r["status"] != "ok" {
		t.Errorf("aliveness %v", r)
	}
	want(t, a.get("/api/aliveness-test/nope"), 404)
	if l := a.get("/api/extensions").list(t); l == nil {
		t.Error("extensions null")
	}
	want(t, a.put("/api/cluster-name", `{"name":"c1"}`), 204)
	if c := a.get("/api/cluster-name").obj(t); c["name"] != "c1" {
		t.Errorf("cluster name %v", c)
	}
	if l := a.get("/api/feature-flags").list(t); len(l) == 0 {
		t.Error("no feature flags")
	}
}

func TestMgmtDefinitions(t *testing.T) {
	a := newAPI(t)
	want(t, a.put("/api/vhosts/dv", `{}`), 201)
	want(t, a.put("/api/exchanges/dv/dx", `{"type":"fanout"}`), 201)
	want(t, a.put("/api/queues/dv/dq", `{}`), 201)
	want(t, a.post("/api/bindings/dv/e/dx/q/dq", `{}`), 201)
	all := a.get("/api/definitions")
	want(t, all, 200)
	f := all.obj(t)
	if len(f["users"].([]any)) != 1 || len(f["queues"].([]any)) != 1 || len(f["bindings"].([]any)) != 1 {
		t.Errorf("definitions %s", all.body)
	}
	one := a.get("/api/definitions/dv").obj(t)
	if _, ok := one["users"]; ok || len(one["exchanges"].([]any)) != 1 {
		t.Errorf("vhost definitions %v", one)
	}
	want(t, a.del("/api/vhosts/dv"), 204)
	want(t, a.post("/api/definitions", string(all.body)), 204)
	if q := a.get("/api/queues/dv/dq"); q.code != 200 {
		t.Errorf("queue not imported: %d", q.code)
	}
	// A vhost's definitions go into another vhost.
	want(t, a.put("/api/vhosts/dv2", `{}`), 201)
	b, _ := json.Marshal(one)
	want(t, a.post("/api/definitions/dv2", string(b)), 204)
	if l := a.get("/api/bindings/dv2/e/dx/q/dq").list(t); len(l) != 1 {
		t.Errorf("bindings in dv2: %v", l)
	}
	wantError(t, a.post("/api/definitions", `{"queues":[{"name":"x","vhost":"nope","durable":true}]}`), 400, "bad_request", "")
	wantError(t, a.post("/api/definitions", `not json`), 400, "bad_request", "")
}

func TestMgmtRates(t *testing.T) {
	a := newAPI(t)
	want(t, a.put("/api/queues/%2F/rq", `{}`), 201)
	t0 := time.Now()
	a.s.rates.take(t0)
	for range 10 {
		a.post("/api/exchanges/%2F/amq.default/publish", `{"routing_key":"rq","payload":"x","payload_encoding":"string","properties":{}}`)
	}
	a.s.rates.take(t0.Add(5 * time.Second))
	q := a.get("/api/queues/%2F/rq").obj(t)
	ms := q["message_stats"].(map[string]any)
	if ms["publish"] != 10.0 || ms["publish_details"].(map[string]any)["rate"] != 2.0 {
		t.Errorf("queue publish %v, rate %v; want 10 and 2/s", ms["publish"], ms["publish_details"])
	}
	if r := q["messages_details"].(map[string]any)["rate"]; r != 2.0 {
		t.Errorf("messages rate %v, want 2/s", r)
	}
	x := a.get("/api/exchanges/%2F/amq.default").obj(t)["message_stats"].(map[string]any)
	if x["publish_in"] != 10.0 || x["publish_in_details"].(map[string]any)["rate"] != 2.0 {
		t.Errorf("exchange publish_in %v, rate %v", x["publish_in"], x["publish_in_details"])
	}
	o := a.get("/api/overview").obj(t)
	if r := o["message_stats"].(map[string]any)["publish_details"].(map[string]any)["rate"]; r != 2.0 {
		t.Errorf("overview publish rate %v", r)
	}
	// A deleted queue's counts stay in the node's totals.
	want(t, a.del("/api/queues/%2F/rq"), 204)
	a.s.rates.take(t0.Add(10 * time.Second))
	if n := a.s.rates.node(); n[cPublish] != 10 {
		t.Errorf("node publish total %d after the queue's deletion, want 10", n[cPublish])
	}
}

// fakeSession is a session as a front end registers it.
type fakeSession struct {
	info   broker.SessionInfo
	closed chan string
}

func (f *fakeSession) Info() broker.SessionInfo { return f.info }
func (f *fakeSession) Channels() []broker.ChannelInfo {
	return []broker.ChannelInfo{{Number: 1, Name: f.info.Name + " (1)", User: f.info.User, VHost: f.info.VHost, PrefetchCount: 10,
		Stats: broker.MessageStats{Publish: 3}}}
}
func (f *fakeSession) Close(reason string) { f.closed <- reason }

func TestMgmtConnections(t *testing.T) {
	a := newAPI(t)
	name := "127.0.0.1:50000 -> 127.0.0.1:5672"
	fs := &fakeSession{closed: make(chan string, 1), info: broker.SessionInfo{Name: name, Protocol: "AMQP 0-9-1", User: "guest", VHost: "/",
		PeerHost: "127.0.0.1", PeerPort: 50000, Host: "127.0.0.1", Port: 5672, State: "running", Channels: 1,
		ClientProperties: map[string]any{"connection_name": "app", "capabilities": map[string]any{"publisher_confirms": true}},
		UserProvidedName: "app", ConnectedAt: time.Now()}}
	unregister := a.b.RegisterSession(fs)
	defer unregister()
	want(t, a.put("/api/queues/%2F/cq", `{}`), 201)
	q, _ := a.b.VHost("/")
	cq, _ := q.Queue("cq")
	c := &broker.Consumer{Tag: "ctag", Sink: nopSink{}, Channel: name + " (1)", PrefetchCount: 10}
	if err := cq.Consume(c); err != nil {
		t.Fatal(err)
	}
	defer cq.Cancel(c)

	l := a.get("/api/connections").list(t)
	if len(l) != 1 {
		t.Fatalf("connections %v", l)
	}
	conn := l[0].(map[string]any)
	if conn["name"] != name || conn["user_provided_name"] != "app" || conn["client_properties"].(map[string]any)["connection_name"] != "app" ||
		conn["peer_port"] != 50000.0 || conn["node"] != a.s.Node() {
		t.Errorf("connection %v", conn)
	}
	enc := strings.ReplaceAll(name, " ", "%20")
	want(t, a.get("/api/connections/"+enc), 200)
	if l := a.get("/api/connections/" + enc + "/channels").list(t); len(l) != 1 {
		t.Errorf("connection channels %v", l)
	}
	ch := a.get("/api/channels").list(t)[0].(map[string]any)
	if ch["name"] != name+" (1)" || ch["connection_details"].(map[string]any)["name"] != name || ch["prefetch_count"] != 10.0 ||
		ch["message_stats"].(map[string]any)["publish"] != 3.0 {
		t.Errorf("channel %v", ch)
	}
	want(t, a.get("/api/channels/"+enc+"%20(1)"), 200)
	cons := a.get("/api/consumers/%2F").list(t)
	if len(cons) != 1 {
		t.Fatalf("consumers %v", cons)
	}
	co := cons[0].(map[string]any)
	if co["consumer_tag"] != "ctag" || co["channel_details"].(map[string]any)["connection_name"] != name || co["queue"].(map[string]any)["name"] != "cq" {
		t.Errorf("consumer %v", co)
	}
	if l := a.get("/api/vhosts/%2F/connections").list(t); len(l) != 1 {
		t.Errorf("vhost connections %v", l)
	}
	// A management user sees only its own connections.
	if err := a.b.AddUser("m", "pw", "management"); err != nil {
		t.Fatal(err)
	}
	if l := a.do("GET", "/api/connections", "m", "pw", "").list(t); len(l) != 0 {
		t.Errorf("management user sees others' connections: %v", l)
	}
	want(t, a.do("DELETE", "/api/connections/"+enc, "m", "pw", ""), 404)
	want(t, a.del("/api/connections/"+enc, "X-Reason", "go away"), 204)
	if got := <-fs.closed; got != "go away" {
		t.Errorf("closed with %q", got)
	}
	want(t, a.del("/api/connections/nope"), 404)
}

type nopSink struct{}

func (nopSink) Deliver(*broker.Consumer, broker.Source, *broker.Entry) bool { return false }
func (nopSink) Cancelled(*broker.Consumer)                                  {}

// TestMgmtCloseAMQPConnection closes a real AMQP connection through the API:
// the client gets 320 CONNECTION_FORCED with the X-Reason text.
func TestMgmtCloseAMQPConnection(t *testing.T) {
	a := newAPI(t)
	conn, err := amqp.DialConfig(a.inst.URL, amqp.Config{Properties: amqp.Table{"connection_name": "to-close"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	var name string
	testbroker.CheckFor(t, 5*time.Second, func() bool {
		for _, c := range a.get("/api/connections").list(t) {
			if m := c.(map[string]any); m["user_provided_name"] == "to-close" {
				name = m["name"].(string)
			}
		}
		return name != ""
	})
	want(t, a.del("/api/connections/"+url.PathEscape(name), "X-Reason", "maintenance window"), 204)
	select {
	case e := <-closed:
		if e == nil || e.Code != 320 || !strings.Contains(e.Reason, "maintenance window") {
			t.Errorf("closed with %v", e)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("connection not closed")
	}
}

// TestMgmtDefinitionsConcurrentImport imports the same file from several
// clients at once: each succeeds and the result is the file's objects once.
func TestMgmtDefinitionsConcurrentImport(t *testing.T) {
	a := newAPI(t)
	var qs, bs []string
	for i := range 20 {
		n := "cq" + strings.Repeat("x", i)
		qs = append(qs, `{"name":"`+n+`","vhost":"/","durable":true,"auto_delete":false,"arguments":{}}`)
		bs = append(bs, `{"source":"amq.direct","vhost":"/","destination":"`+n+`","destination_type":"queue","routing_key":"k","arguments":{}}`)
	}
	file := `{"vhosts":[{"name":"/"}],"users":[{"name":"ci","password_hash":"","hashing_algorithm":"rabbit_password_hashing_sha256","tags":[]}],` +
		`"queues":[` + strings.Join(qs, ",") + `],"bindings":[` + strings.Join(bs, ",") + `]}`
	codes := make(chan int, 4)
	for range 4 {
		go func() {
			req, _ := http.NewRequest("POST", a.url+"/api/definitions", strings.NewReader(file))
			req.SetBasicAuth("guest", "guest")
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				codes <- 0
				return
			}
			res.Body.Close()
			codes <- res.StatusCode
		}()
	}
	for range 4 {
		if c := <-codes; c != 204 {
			t.Errorf("concurrent import: %d", c)
		}
	}
	if l := a.get("/api/queues/%2F").list(t); len(l) != 20 {
		t.Errorf("%d queues after the imports, want 20", len(l))
	}
	if l := a.get("/api/exchanges/%2F/amq.direct/bindings/source").list(t); len(l) != 20 {
		t.Errorf("%d bindings after the imports, want 20", len(l))
	}
}

// TestMgmtOverviewSamples asks the overview for chart samples as RabbitMQ's
// web UI does (lengths_age/lengths_incr, msg_rates_age/msg_rates_incr).
func TestMgmtOverviewSamples(t *testing.T) {
	a := newAPI(t)
	want(t, a.put("/api/queues/%2F/hq", `{}`), 201)
	now := time.Now()
	a.s.rates.take(now.Add(-20 * time.Second))
	for range 4 {
		a.post("/api/exchanges/%2F/amq.default/publish", `{"routing_key":"hq","payload":"x","payload_encoding":"string","properties":{}}`)
	}
	a.s.rates.take(now.Add(-10 * time.Second))
	o := a.get("/api/overview?lengths_age=60&lengths_incr=5&msg_rates_age=60&msg_rates_incr=5").obj(t)
	md := o["queue_totals"].(map[string]any)["messages_details"].(map[string]any)
	samples := md["samples"].([]any)
	if len(samples) != 13 {
		t.Fatalf("%d samples over 60 s every 5 s, want 13", len(samples))
	}
	if s0 := samples[0].(map[string]any); s0["sample"] != 4.0 || int64(s0["timestamp"].(float64))%5000 != 0 {
		t.Errorf("newest sample %v", s0)
	}
	if s := samples[12].(map[string]any); s["sample"] != 0.0 {
		t.Errorf("oldest sample %v, want 0 (before the first sample)", s)
	}
	pd := o["message_stats"].(map[string]any)["publish_details"].(map[string]any)
	if pd["avg_rate"] != 4.0/60 || len(pd["samples"].([]any)) != 13 {
		t.Errorf("publish details %v", pd)
	}
	if _, ok := a.get("/api/overview").obj(t)["queue_totals"].(map[string]any)["messages_details"].(map[string]any)["samples"]; ok {
		t.Error("samples without being asked for")
	}
}

// TestMgmtAMQPCounters checks counts of real AMQP traffic: publishes (from
// the exchanges), deliveries and acks (from the queue), channel stats.
func TestMgmtAMQPCounters(t *testing.T) {
	a := newAPI(t)
	conn, err := amqp.Dial(a.inst.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare("aq", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, 5))
	for range 5 {
		if err := ch.Publish("", "aq", false, false, amqp.Publishing{Body: []byte("m")}); err != nil {
			t.Fatal(err)
		}
	}
	for range 5 {
		<-confirms
	}
	for range 2 {
		m, ok, err := ch.Get("aq", false)
		if err != nil || !ok {
			t.Fatal(ok, err)
		}
		if err := m.Ack(false); err != nil {
			t.Fatal(err)
		}
	}
	testbroker.CheckFor(t, 5*time.Second, func() bool {
		a.s.rates.take(time.Now())
		ms := a.get("/api/overview").obj(t)["message_stats"].(map[string]any)
		return ms["publish"] == 5.0 && ms["get"] == 2.0 && ms["ack"] == 2.0
	})
	q := a.get("/api/queues/%2F/aq").obj(t)
	if q["messages"] != 3.0 || q["message_stats"].(map[string]any)["get"] != 2.0 {
		t.Errorf("queue %v messages, stats %v", q["messages"], q["message_stats"])
	}
}
