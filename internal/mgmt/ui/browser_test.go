package ui_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/warren-mq/warren/internal/mgmt"
	"github.com/warren-mq/warren/internal/testbroker"
)

// chromium finds a Chromium or Chrome binary: $WARREN_CHROMIUM, then the
// usual names on PATH.
func chromium() string {
	if p := os.Getenv("WARREN_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// browser drives one headless Chromium against one management server.
type browser struct {
	t    *testing.T
	ctx  context.Context
	base string
	shot string // screenshot directory
	n    int

	mu     sync.Mutex
	errors []string // uncaught JavaScript exceptions
}

func newBrowser(t *testing.T, base string) *browser {
	t.Helper()
	bin := chromium()
	if bin == "" {
		t.Skip("no chromium binary (install Debian's chromium or set WARREN_CHROMIUM); the web UI browser test needs one")
	}
	shot := os.Getenv("WARREN_UI_SCREENSHOTS")
	if shot == "" {
		shot = t.TempDir()
	} else if err := os.MkdirAll(shot, 0o755); err != nil {
		t.Fatal(err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1280, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	b := &browser{t: t, ctx: ctx, base: base, shot: shot}
	err := chromedp.Listen(ctx, func(ev any) { // starts the browser
		if e, ok := ev.(*runtime.EventExceptionThrown); ok && e.ExceptionDetails != nil {
			d := e.ExceptionDetails
			text := d.Text
			if d.Exception != nil && d.Exception.Description != "" {
				text = d.Exception.Description
			}
			b.mu.Lock()
			b.errors = append(b.errors, fmt.Sprintf("%s:%d: %s", d.URL, d.LineNumber+1, text))
			b.mu.Unlock()
		}
	})
	if err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	t.Logf("screenshots in %s", shot)
	return b
}

func (b *browser) run(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, actions...); err != nil {
		page, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.body.innerText`))
		b.t.Fatalf("%s: %v\npage text:\n%s", what, err, page)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.errors) > 0 {
		b.t.Fatalf("%s: JavaScript exceptions: %v", what, b.errors)
	}
}

// login opens the UI and logs in as guest through the login form.
func (b *browser) login() {
	b.t.Helper()
	b.run("open the UI", chromedp.Navigate(b.base+"/"), chromedp.WaitVisible(chromedp.CSS("#login-form")))
	b.screenshot("login")
	b.run("log in",
		chromedp.SendKeys(chromedp.CSS("#login-user"), "guest"),
		chromedp.SendKeys(chromedp.CSS("#login-pass"), "guest"),
		chromedp.Click(chromedp.CSS("#login-submit")),
		chromedp.WaitVisible(chromedp.CSS("#page-overview #overview-totals")))
}

// until polls a JavaScript condition in the page until it is true.
func (b *browser) until(what, cond string) {
	b.t.Helper()
	b.run(what, chromedp.Poll[chromedp.Void](cond, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(30*time.Second)))
}

// page goes to a hash route and waits until its section has rendered.
func (b *browser) page(hash, id string) {
	b.t.Helper()
	b.run("go to "+hash, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`location.hash = %q`, hash)))
	b.until("page "+id+" rendered", fmt.Sprintf(`document.querySelector("#main #page-%s[data-loaded]") !== null`, id))
}

// js runs a script in the page as one step, so that a periodic re-render
// cannot swap the elements it fills and clicks between two steps.
func (b *browser) js(what, script string) {
	b.t.Helper()
	b.run(what, chromedp.Evaluate[chromedp.Void](script))
}

func (b *browser) screenshot(name string) {
	b.t.Helper()
	buf, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	b.n++
	p := filepath.Join(b.shot, fmt.Sprintf("%s-%02d-%s.png", b.t.Name(), b.n, name))
	if err := os.WriteFile(p, buf, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// TestBrowser drives the web UI in headless Chromium against an in-process
// broker: log in, create a queue, publish to it through the default
// exchange's publish form, see its count reach 1 and the overview chart
// record it, get the message back, delete the queue, and visit every page,
// saving a screenshot of each.
func TestBrowser(t *testing.T) {
	amqpURL, base := startUI(t)

	// A client connection, so the connections and channels pages list one.
	conn, err := amqp.DialConfig(amqpURL, amqp.Config{Properties: amqp.Table{"connection_name": "ui-test-client"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Channel(); err != nil {
		t.Fatal(err)
	}

	b := newBrowser(t, base)
	b.login()
	b.until("overview shows the client connection", `document.querySelector("#total-connections b").textContent === "1"`)
	b.screenshot("overview")

	const q, body = "ui test queue", "hello from the web UI"
	b.page("#/queues", "queues")
	b.js("create a queue", fmt.Sprintf(`{
		const f = document.querySelector("#queue-create");
		f.elements.name.value = %q;
		f.querySelector("#queue-create-submit").click();
	}`, q))
	b.until("the new queue is listed", fmt.Sprintf(`document.querySelector('#page-queues tr[data-name=%q]') !== null`, q))
	b.screenshot("queues")

	b.page("#/exchange/%2F/amq.default", "exchange")
	b.js("publish through the default exchange", fmt.Sprintf(`{
		const f = document.querySelector("#publish");
		f.elements.key.value = %q;
		f.elements.payload.value = %q;
		f.querySelector("#publish-submit").click();
	}`, q, body))
	b.until("the publish is confirmed routed", `document.querySelector("#publish-result").textContent === "Message published."`)
	b.screenshot("exchange-default-publish")

	b.page("#/queue/%2F/"+strings.ReplaceAll(q, " ", "%20"), "queue")
	b.until("the queue holds 1 message", `document.querySelector("#q-messages").textContent === "1"`)
	b.until("the queue chart is drawn", `Number(document.querySelector("#q-chart").dataset.samples) >= 1`)

	b.js("get the message", `document.querySelector("#get-messages-submit").click()`)
	b.until("the message body is shown", fmt.Sprintf(`(document.querySelector("#get-result pre.payload") || {}).textContent === %q`, body))
	b.screenshot("queue-get")

	b.page("#/overview", "overview")
	b.until("the chart has samples with the queued message",
		`warrenUI.samples.some(s => s.messages >= 1) && Number(document.querySelector("#chart").dataset.samples) >= 2`)
	b.screenshot("overview-chart")

	b.page("#/queue/%2F/"+strings.ReplaceAll(q, " ", "%20"), "queue")
	b.js("delete the queue", `{
		document.querySelector("#q-delete").click();
		document.querySelector("#q-delete-confirm").click();
	}`)
	b.until("back on the queue list without the queue", fmt.Sprintf(
		`document.querySelector("#page-queues") !== null && document.querySelector('#page-queues tr[data-name=%q]') === null`, q))
	if code, _ := apiCall(t, base, "GET", "/api/queues/%2F/"+strings.ReplaceAll(q, " ", "%20"), ""); code != http.StatusNotFound {
		t.Errorf("queue still there after the UI deleted it: GET answered %d", code)
	}
	b.screenshot("queues-after-delete")

	for _, p := range []struct{ hash, id, cond string }{
		{"#/connections", "connections", `document.querySelector("#page-connections tr[data-name]") !== null`},
		{"#/channels", "channels", `document.querySelector("#page-channels tbody td").textContent.includes("(1)")`},
		{"#/exchanges", "exchanges", `document.querySelector('#page-exchanges tr[data-name="amq.direct"]') !== null`},
		{"#/users", "users", `document.querySelector('#page-users tr[data-name="guest"]') !== null`},
		{"#/vhosts", "vhosts", `document.querySelector('#page-vhosts tr[data-name="/"]') !== null`},
		{"#/policies", "policies", `document.querySelector("#policy-set") !== null`},
		{"#/definitions", "definitions", `document.querySelector("#export") !== null`},
	} {
		b.page(p.hash, p.id)
		b.until(p.id+" page content", p.cond)
		b.screenshot(p.id)
	}
}

// TestAssets checks the handler serves the page and its assets with their
// types and leaves other paths 404, through the management server's mount.
func TestAssets(t *testing.T) {
	inst := testbroker.Start(t, testbroker.Options{})
	s := mgmt.New(inst.Broker, mgmt.Config{Version: "test", SampleInterval: time.Hour})
	hs := httptest.NewServer(s)
	t.Cleanup(func() { hs.Close(); s.Close() })
	for _, c := range []struct {
		path, ctype string
		code        int
	}{
		{"/", "text/html", 200},
		{"/ui/app.js", "text/javascript", 200},
		{"/ui/app.css", "text/css", 200},
		{"/ui/missing.js", "", 404},
		{"/nothing", "", 404},
		{"/api/overview", "", 401},
	} {
		resp, err := http.Get(hs.URL + c.path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.code || !strings.HasPrefix(resp.Header.Get("Content-Type"), c.ctype) {
			t.Errorf("GET %s: %d %q, want %d %q", c.path, resp.StatusCode, resp.Header.Get("Content-Type"), c.code, c.ctype)
		}
	}
}

// startUI starts an in-process broker and a management server for it and
// returns its AMQP URL and the UI's base URL. With WARREN_UI_URL (the
// management listener of a running warren, e.g. http://127.0.0.1:15672) and
// WARREN_UI_AMQP_URL set, it uses that broker instead: .ci/run points
// TestBrowser at the built binary so.
func startUI(t *testing.T) (amqpURL, base string) {
	t.Helper()
	if u := os.Getenv("WARREN_UI_URL"); u != "" {
		a := os.Getenv("WARREN_UI_AMQP_URL")
		if a == "" {
			t.Fatal("WARREN_UI_URL needs WARREN_UI_AMQP_URL: the same broker's AMQP URL")
		}
		return a, strings.TrimSuffix(u, "/")
	}
	if testbroker.External() {
		t.Skip("the web UI test needs an in-process Warren or WARREN_UI_URL")
	}
	inst := testbroker.Start(t, testbroker.Options{})
	s := mgmt.New(inst.Broker, mgmt.Config{Version: "test", SampleInterval: 500 * time.Millisecond,
		Listeners: []mgmt.Listener{{Protocol: "amqp", Addr: inst.Addr}}})
	hs := httptest.NewServer(s)
	t.Cleanup(func() { hs.Close(); s.Close() })
	return inst.URL, hs.URL
}

// apiCall sends one request to the management API as guest and returns
// its status and body.
func apiCall(t *testing.T, base, method, path, body string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("guest", "guest")
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestBrowserOperations drives the operator forms of the other pages:
// vhost create and delete, user create, permission set and delete, exchange
// create, bind, publish and delete, queue purge, policy set and clear,
// closing a client connection, and a definitions import from a file.
func TestBrowserOperations(t *testing.T) {
	amqpURL, base := startUI(t)
	conn, err := amqp.DialConfig(amqpURL, amqp.Config{Properties: amqp.Table{"connection_name": "ui-victim"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	if code, body := apiCall(t, base, "PUT", "/api/queues/%2F/ui-bound", `{"durable":false}`); code != http.StatusCreated {
		t.Fatalf("declare ui-bound: %d %s", code, body)
	}

	b := newBrowser(t, base)
	b.login()

	// Virtual hosts: create, then delete.
	b.page("#/vhosts", "vhosts")
	b.js("create a vhost", `{
		const f = document.querySelector("#vhost-create");
		f.elements.name.value = "ui-vh";
		f.elements.description.value = "made by the UI";
		f.querySelector("#vhost-create-submit").click();
	}`)
	b.until("the vhost is listed", `document.querySelector('#page-vhosts tr[data-name="ui-vh"]') !== null`)
	b.screenshot("vhost-created")
	b.js("delete the vhost", `{
		document.querySelector('#page-vhosts tr[data-name="ui-vh"] button').click();
		document.querySelector('#page-vhosts tr[data-name="ui-vh"] button').click();
	}`)
	b.until("the vhost is gone", `document.querySelector("#page-vhosts") !== null && document.querySelector('#page-vhosts tr[data-name="ui-vh"]') === null`)
	if code, _ := apiCall(t, base, "GET", "/api/vhosts/ui-vh", ""); code != http.StatusNotFound {
		t.Errorf("vhost ui-vh after the UI deleted it: GET answered %d", code)
	}

	// Users and permissions.
	b.page("#/users", "users")
	b.js("create a user", `{
		const f = document.querySelector("#user-create");
		f.elements.name.value = "ui-user";
		f.elements.password.value = "ui-pass";
		f.elements.tags.value = "management";
		f.querySelector("#user-create-submit").click();
	}`)
	b.until("the user is listed", `document.querySelector('#page-users tr[data-name="ui-user"]') !== null`)
	b.js("grant the user permissions on /", `{
		const f = document.querySelector("#permission-set");
		f.elements.user.value = "ui-user";
		f.elements.vhost.value = "/";
		f.elements.read.value = "^ui-";
		f.querySelector("#permission-set-submit").click();
	}`)
	b.until("the user can access /", `document.querySelector('#page-users tr[data-name="ui-user"] td:nth-child(3)').textContent === "/"`)
	b.screenshot("user-permissions")
	if code, body := apiCall(t, base, "GET", "/api/permissions/%2F/ui-user", ""); code != http.StatusOK || !strings.Contains(body, `"read":"^ui-"`) {
		t.Errorf("permissions set by the UI: %d %s", code, body)
	}
	b.js("delete the user", `{
		document.querySelector('#page-users tr[data-name="ui-user"] button').click();
		document.querySelector('#page-users tr[data-name="ui-user"] button').click();
	}`)
	b.until("the user is gone", `document.querySelector("#page-users") !== null && document.querySelector('#page-users tr[data-name="ui-user"]') === null`)

	// Exchanges: create a fanout, bind the queue, publish, delete.
	b.page("#/exchanges", "exchanges")
	b.js("create an exchange", `{
		const f = document.querySelector("#exchange-create");
		f.elements.name.value = "ui-x";
		f.elements.type.value = "fanout";
		f.querySelector("#exchange-create-submit").click();
	}`)
	b.until("the exchange is listed", `document.querySelector('#page-exchanges tr[data-name="ui-x"]') !== null`)
	b.page("#/exchange/%2F/ui-x", "exchange")
	b.js("bind the queue", `{
		const f = document.querySelector("#exchange-bind");
		f.elements.dest.value = "ui-bound";
		f.querySelector("#exchange-bind-submit").click();
	}`)
	b.until("the binding is listed", `document.querySelector("#page-exchange tbody td") !== null && document.querySelector("#page-exchange tbody td").textContent === "ui-bound (queue)"`)
	b.js("publish to the exchange", `{
		const f = document.querySelector("#publish");
		f.elements.payload.value = "fanned";
		f.querySelector("#publish-submit").click();
	}`)
	b.until("the publish is routed", `document.querySelector("#publish-result").textContent === "Message published."`)
	b.screenshot("exchange-bound-publish")

	// The queue page: the message arrived through the binding; purge it.
	b.page("#/queue/%2F/ui-bound", "queue")
	b.until("the queue holds the message", `document.querySelector("#q-messages").textContent === "1"`)
	b.js("purge the queue", `{
		document.querySelector("#q-purge").click();
		document.querySelector("#q-purge-confirm").click();
	}`)
	b.until("the queue is empty", `document.querySelector("#page-queue") !== null && document.querySelector("#q-messages").textContent === "0"`)
	b.screenshot("queue-purged")

	b.page("#/exchange/%2F/ui-x", "exchange")
	b.js("delete the exchange", `{
		document.querySelector("#exchange-delete").click();
		document.querySelector("#exchange-delete-confirm").click();
	}`)
	b.until("the exchange is gone", `document.querySelector("#page-exchanges") !== null && document.querySelector('#page-exchanges tr[data-name="ui-x"]') === null`)

	// Policies: set, then clear.
	b.page("#/policies", "policies")
	b.js("set a policy", `{
		const f = document.querySelector("#policy-set");
		f.elements.name.value = "ui-pol";
		f.elements.pattern.value = "^ui-";
		f.elements.applyto.value = "queues";
		f.elements.definition.value = '{"max-length": 10}';
		f.querySelector("#policy-set-submit").click();
	}`)
	b.until("the policy is listed", `document.querySelector('#page-policies tr[data-name="ui-pol"]') !== null`)
	b.screenshot("policy-set")
	if code, body := apiCall(t, base, "GET", "/api/queues/%2F/ui-bound", ""); code != http.StatusOK || !strings.Contains(body, `"policy":"ui-pol"`) {
		t.Errorf("queue ui-bound under the UI's policy: %d %s", code, body)
	}
	b.js("clear the policy", `document.querySelector('#page-policies tr[data-name="ui-pol"] button').click()`)
	b.until("the policy is gone", `document.querySelector("#page-policies") !== null && document.querySelector('#page-policies tr[data-name="ui-pol"]') === null`)

	// Connections: close the client's.
	b.page("#/connections", "connections")
	b.until("the client connection is listed", `document.querySelector("#page-connections tr[data-name]") !== null`)
	b.js("close the connection", `{
		document.querySelector("#page-connections tr[data-name] button").click();
		document.querySelector("#page-connections tr[data-name] button").click();
	}`)
	b.until("the connection is gone", `document.querySelector("#page-connections") !== null && document.querySelector("#page-connections tr[data-name]") === null`)
	select {
	case e := <-closed:
		if e == nil || e.Code != amqp.ConnectionForced {
			t.Errorf("client connection closed with %v, want 320", e)
		}
	case <-time.After(10 * time.Second):
		t.Error("client connection not closed 10 s after the UI closed it")
	}

	// Definitions: import a file that declares a vhost.
	defs := filepath.Join(t.TempDir(), "defs.json")
	if err := os.WriteFile(defs, []byte(`{"vhosts":[{"name":"ui-imported"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	b.page("#/definitions", "definitions")
	b.run("choose the definitions file", chromedp.SetUploadFiles(chromedp.CSS("#import-file"), []string{defs}))
	b.js("import", `document.querySelector("#import").click()`)
	b.until("the import succeeded", `document.querySelector("#import-result").textContent === "Definitions imported."`)
	b.screenshot("definitions-imported")
	if code, _ := apiCall(t, base, "GET", "/api/vhosts/ui-imported", ""); code != http.StatusOK {
		t.Errorf("vhost from the UI's definitions import: GET answered %d", code)
	}
}

// TestBrowserLoginRefused shows the login form's error for a wrong
// password and keeps the pages hidden.
func TestBrowserLoginRefused(t *testing.T) {
	_, base := startUI(t)
	b := newBrowser(t, base)
	b.run("open the UI", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS("#login-form")))
	b.run("log in with a wrong password",
		chromedp.SendKeys(chromedp.CSS("#login-user"), "guest"),
		chromedp.SendKeys(chromedp.CSS("#login-pass"), "wrong"),
		chromedp.Click(chromedp.CSS("#login-submit")))
	b.until("the login error is shown", `document.querySelector("#login-error").textContent.startsWith("Login failed")`)
	b.until("the pages stay hidden", `document.querySelector("#app").classList.contains("hidden") && sessionStorage.getItem("warren-auth") === null`)
	b.screenshot("login-refused")
}
