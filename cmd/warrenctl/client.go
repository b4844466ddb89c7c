package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
)

// client calls the management HTTP API.
type client struct {
	base       string // scheme://host:port, no trailing slash
	user, pass string
	hc         *http.Client
}

func newClient(o *options) (*client, error) {
	scheme := "http"
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if o.tls {
		scheme = "https"
		cfg := &tls.Config{InsecureSkipVerify: o.insecure, ServerName: o.host} // #nosec G402 -- only with --insecure
		if o.cacert != "" {
			pem, err := os.ReadFile(o.cacert)
			if err != nil {
				return nil, usageErr("cannot read CA file: %v", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, usageErr("no PEM certificate in CA file %s", o.cacert)
			}
			cfg.RootCAs = pool
		}
		if o.cert != "" || o.key != "" {
			kp, err := tls.LoadX509KeyPair(o.cert, o.key)
			if err != nil {
				return nil, usageErr("cannot load client certificate: %v", err)
			}
			cfg.Certificates = []tls.Certificate{kp}
		}
		tr.TLSClientConfig = cfg
	}
	return &client{
		base: scheme + "://" + net.JoinHostPort(o.host, strconv.Itoa(o.port)),
		user: o.user, pass: o.password,
		hc: &http.Client{Transport: tr},
	}, nil
}

// apiPath joins /api and the path segments, escaping each one, so vhost "/"
// becomes %2F and names with spaces or slashes stay one segment.
func apiPath(segs ...string) string {
	var b strings.Builder
	b.WriteString("/api")
	for _, s := range segs {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(s))
	}
	return b.String()
}

// apiError is a response with an error status; reason is the API's
// {"error":..., "reason":...} text when it sent one.
type apiError struct {
	method, path string
	status       int
	errText      string
	reason       string
}

func (e *apiError) Error() string {
	var detail string
	switch {
	case e.errText != "" && e.reason != "" && e.errText != e.reason:
		detail = e.errText + ": " + e.reason
	case e.reason != "":
		detail = e.reason
	default:
		detail = e.errText
	}
	s := fmt.Sprintf("%s %s: HTTP %d %s", e.method, e.path, e.status, http.StatusText(e.status))
	if detail != "" {
		s += ": " + detail
	}
	return s
}

// do sends one request; body, when not nil, is sent as JSON (a []byte as
// is). It returns the response body of a 2xx answer; other statuses become
// a cliError with exit code 70 carrying an *apiError, transport failures 69
// (cannot connect) or 75 (timed out).
func (c *client) do(ctx context.Context, method, path string, body any, hdr http.Header) ([]byte, error) {
	status, data, err := c.raw(ctx, method, path, body, hdr)
	if err != nil {
		return nil, err
	}
	if status/100 == 2 {
		return data, nil
	}
	ae := &apiError{method: method, path: path, status: status}
	var eb struct {
		Error  any `json:"error"`
		Reason any `json:"reason"`
	}
	if json.Unmarshal(data, &eb) == nil {
		ae.errText, ae.reason = textOf(eb.Error), textOf(eb.Reason)
	} else {
		ae.reason = strings.TrimSpace(string(data))
		if len(ae.reason) > 200 {
			ae.reason = ae.reason[:200] + "..."
		}
	}
	msg := ae.Error()
	if status == http.StatusUnauthorized {
		msg = fmt.Sprintf("the management API at %s refused user %q: %s", c.base, c.user, msg)
	}
	return nil, &cliError{code: exitSoftware, msg: msg, api: ae}
}

// raw sends one request and returns whatever status and body came back;
// only transport failures are errors. Health checks use it because their
// failure answers (503) carry the details to print.
func (c *client) raw(ctx context.Context, method, path string, body any, hdr http.Header) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, ok := body.([]byte)
		if !ok {
			var err error
			if b, err = json.Marshal(body); err != nil {
				return 0, nil, err
			}
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return 0, nil, &cliError{code: exitUsage, msg: fmt.Sprintf("bad request %s %s: %v", method, path, err)}
	}
	req.SetBasicAuth(c.user, c.pass)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, c.transportError(ctx, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, c.transportError(ctx, err)
	}
	return resp.StatusCode, data, nil
}

func textOf(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	default:
		b, _ := json.Marshal(v)
		return string(b)
	}
}

func (c *client) transportError(ctx context.Context, err error) error {
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil || (errors.As(err, &ne) && ne.Timeout()) {
		return &cliError{code: exitTempFail, msg: fmt.Sprintf("operation timed out talking to the management API at %s: %v", c.base, err)}
	}
	return &cliError{code: exitUnavailable, msg: fmt.Sprintf("unable to connect to the management API at %s: %v\n"+
		"Check that the broker runs with its management listener enabled and that --host/--port/--ssl (or WARRENCTL_HOST/WARRENCTL_PORT) point at it.", c.base, err)}
}

// getJSON GETs path and decodes the answer, keeping numbers as json.Number
// so counters print exactly as the API sent them.
func (c *client) getJSON(ctx context.Context, path string, v any) error {
	data, err := c.do(ctx, http.MethodGet, path, nil, nil)
	if err != nil {
		return err
	}
	return decodeJSON(data, v)
}

func decodeJSON(data []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	if err := d.Decode(v); err != nil {
		return &cliError{code: exitSoftware, msg: fmt.Sprintf("the management API sent a response that is not the expected JSON: %v", err)}
	}
	return nil
}

// statusOf returns the HTTP status of an API error, 0 for anything else.
func statusOf(err error) int {
	var ce *cliError
	if errors.As(err, &ce) && ce.api != nil {
		return ce.api.status
	}
	return 0
}
