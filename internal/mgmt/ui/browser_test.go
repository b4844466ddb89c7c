package ui_test

import (
	"context"
	"fmt"
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
	p := filepath.Join(b.shot, fmt.Sprintf("%02d-%s.png", b.n, name))
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
	if testbroker.External() {
		t.Skip("the web UI test needs an in-process Warren")
	}
	inst := testbroker.Start(t, testbroker.Options{})
	s := mgmt.New(inst.Broker, mgmt.Config{Version: "test", SampleInterval: 500 * time.Millisecond,
		Listeners: []mgmt.Listener{{Protocol: "amqp", Addr: inst.Addr}}})
	hs := httptest.NewServer(s)
	t.Cleanup(func() { hs.Close(); s.Close() })

	// A client connection, so the connections and channels pages list one.
	conn, err := amqp.DialConfig(inst.URL, amqp.Config{Properties: amqp.Table{"connection_name": "ui-test-client"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Channel(); err != nil {
		t.Fatal(err)
	}

	b := newBrowser(t, hs.URL)
	b.run("open the UI", chromedp.Navigate(hs.URL+"/"), chromedp.WaitVisible(chromedp.CSS("#login-form")))
	b.screenshot("login")
	b.run("log in",
		chromedp.SendKeys(chromedp.CSS("#login-user"), "guest"),
		chromedp.SendKeys(chromedp.CSS("#login-pass"), "guest"),
		chromedp.Click(chromedp.CSS("#login-submit")),
		chromedp.WaitVisible(chromedp.CSS("#page-overview #overview-totals")))
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
	req, _ := http.NewRequest("GET", hs.URL+"/api/queues/%2F/"+strings.ReplaceAll(q, " ", "%20"), nil)
	req.SetBasicAuth("guest", "guest")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("queue still there after the UI deleted it: GET answered %d", resp.StatusCode)
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
