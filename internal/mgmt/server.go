// Package mgmt serves RabbitMQ's management HTTP API (/api/...) over the
// broker's query and operator API and its session registry, with
// RabbitMQ's JSON shapes, status codes and access rules, so that
// rabbitmqadmin, monitoring checks and client test suites work against
// Warren unchanged. It never imports a protocol front end.
package mgmt

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/warren-mq/warren/internal/broker"
	"github.com/warren-mq/warren/internal/mgmt/ui"
)

// Config configures a Server.
type Config struct {
	// Version is Warren's version, reported as product_version.
	Version string
	// ClusterName is what /api/cluster-name answers until an operator sets
	// it; "" means the node name.
	ClusterName string
	// Listeners are the broker's listeners, for /api/overview and the
	// port-listener and protocol-listener health checks.
	Listeners []Listener
	// MaxBody is the largest request body accepted (default 16 MiB, enough
	// for a definitions file of a large broker); larger ones get 413.
	MaxBody int64
	// SampleInterval is how often message rates are sampled (default 5 s,
	// as RabbitMQ's collect_statistics_interval).
	SampleInterval time.Duration
	// DataDir, MemoryLimit and DiskFreeLimit are the broker's, for /api/nodes.
	DataDir                    string
	MemoryLimit, DiskFreeLimit int64
	// Logger receives the server's logs; nil means the broker's.
	Logger *slog.Logger
}

// Listener is one port the node listens on.
type Listener struct {
	Protocol string // "amqp", "amqp/ssl", "http", "http/prometheus"...
	Addr     string // host:port
}

// Server is the management API. It is an http.Handler.
type Server struct {
	b       *broker.Broker
	cfg     Config
	log     *slog.Logger
	node    string
	started time.Time
	routes  []route
	rates   *sampler

	// clusterName is the name until an operator sets the cluster_name
	// global parameter.
	clusterName string
}

// New returns the management API of b and starts its rate sampler, which
// runs until Close.
func New(b *broker.Broker, cfg Config) *Server {
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = 16 << 20
	}
	if cfg.SampleInterval <= 0 {
		cfg.SampleInterval = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = b.Logger()
	}
	host, _ := os.Hostname()
	if host == "" {
		host = "localhost"
	}
	host, _, _ = strings.Cut(host, ".")
	s := &Server{b: b, cfg: cfg, log: cfg.Logger, node: "warren@" + host, started: time.Now()}
	s.clusterName = cfg.ClusterName
	if s.clusterName == "" {
		s.clusterName = s.node
	}
	s.rates = newSampler(s, cfg.SampleInterval)
	s.addRoutes()
	return s
}

// Close stops the rate sampler.
func (s *Server) Close() { s.rates.stop() }

// Node returns the node name the API reports ("warren@<host>").
func (s *Server) Node() string { return s.node }

// level is what a route needs of a user's tags, as RabbitMQ's management
// plugin grades them.
type level int

const (
	levelManagement level = iota // management, policymaker, monitoring or administrator
	levelPolicymaker
	levelMonitor
	levelAdmin
	levelNone // no login: what the web UI asks before it has one
)

func (l level) allowed(u *broker.User) bool {
	switch l {
	case levelPolicymaker:
		return u.HasTag("policymaker") || u.HasTag("administrator")
	case levelMonitor:
		return u.HasTag("monitoring") || u.HasTag("administrator")
	case levelAdmin:
		return u.HasTag("administrator")
	}
	return u.HasTag("management") || u.HasTag("policymaker") || u.HasTag("monitoring") || u.HasTag("administrator")
}

func (l level) refusal() string {
	return [...]string{"Not management user", "Not policymaker user", "Not monitor user", "Not administrator user", ""}[l]
}

// req is one authenticated request with its path parameters.
type req struct {
	*http.Request
	w    http.ResponseWriter
	s    *Server
	user *broker.User
	vars map[string]string
}

func (r *req) v(name string) string { return r.vars[name] }

// handler answers a request; a returned error is written as RabbitMQ's JSON.
type handler func(r *req) error

// route is a path pattern: literal segments and {name} placeholders.
type route struct {
	segs    []string
	methods map[string]routeMethod
}

type routeMethod struct {
	lvl level
	h   handler
}

func (s *Server) handle(method, pattern string, lvl level, h handler) {
	segs := strings.Split(strings.Trim(pattern, "/"), "/")
	for i := range s.routes {
		if slicesEqual(s.routes[i].segs, segs) {
			s.routes[i].methods[method] = routeMethod{lvl, h}
			return
		}
	}
	s.routes = append(s.routes, route{segs: segs, methods: map[string]routeMethod{method: {lvl, h}}})
}

func slicesEqual(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// split returns the request path's unescaped segments, so that %2F inside a
// vhost or queue name stays inside its segment; a trailing slash is ignored.
func split(r *http.Request) ([]string, bool) {
	p := strings.Trim(r.URL.EscapedPath(), "/")
	raw := strings.Split(p, "/")
	out := make([]string, len(raw))
	for i, seg := range raw {
		u, err := url.PathUnescape(seg)
		if err != nil {
			return nil, false
		}
		out[i] = u
	}
	return out, true
}

// match finds the route for segs: literal segments win over placeholders, so
// /api/queues/{vhost}/{name}/bindings is not taken for a queue named bindings.
func (s *Server) match(segs []string) (*route, map[string]string) {
	var best *route
	var bestVars map[string]string
	bestLiterals := -1
	for i := range s.routes {
		rt := &s.routes[i]
		if len(rt.segs) != len(segs) {
			continue
		}
		vars, literals, ok := map[string]string{}, 0, true
		for j, p := range rt.segs {
			if strings.HasPrefix(p, "{") {
				vars[p[1:len(p)-1]] = segs[j]
				continue
			}
			if p != segs[j] {
				ok = false
				break
			}
			literals++
		}
		if ok && literals > bestLiterals {
			best, bestVars, bestLiterals = rt, vars, literals
		}
	}
	return best, bestVars
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, hr *http.Request) {
	segs, ok := split(hr)
	if !ok {
		writeError(w, errNotFound)
		return
	}
	if segs[0] != "api" { // the web UI's pages and assets
		ui.Handler().ServeHTTP(w, hr)
		return
	}
	rt, vars := s.match(segs)
	if rt == nil {
		writeError(w, errNotFound)
		return
	}
	method := hr.Method
	if method == http.MethodHead {
		method = http.MethodGet
	}
	if method == http.MethodOptions {
		w.Header().Set("Allow", allowed(rt))
		w.WriteHeader(http.StatusOK)
		return
	}
	m, ok := rt.methods[method]
	if !ok {
		w.Header().Set("Allow", allowed(rt))
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	if m.lvl == levelNone {
		if err := m.h(&req{Request: hr, w: w, s: s, vars: vars}); err != nil {
			writeError(w, err)
		}
		return
	}
	user, ok := s.authenticate(w, hr)
	if !ok {
		return
	}
	if !m.lvl.allowed(user) {
		// A user with no management tag at all is told so, whatever the route.
		lvl := m.lvl
		if !levelManagement.allowed(user) {
			lvl = levelManagement
		}
		writeError(w, &apiError{http.StatusUnauthorized, "not_authorised", lvl.refusal()})
		return
	}
	hr.Body = http.MaxBytesReader(w, hr.Body, s.cfg.MaxBody)
	r := &req{Request: hr, w: w, s: s, user: user, vars: vars}
	if err := m.h(r); err != nil {
		writeError(w, err)
	}
}

func allowed(rt *route) string {
	ms := []string{"HEAD", "OPTIONS"}
	for m := range rt.methods {
		ms = append(ms, m)
	}
	sort.Strings(ms)
	return strings.Join(ms, ", ")
}

// authenticate checks HTTP Basic credentials against the broker's users;
// loopback_users apply to the HTTP client's address as to AMQP's.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (*broker.User, bool) {
	name, pass, ok := r.BasicAuth()
	w.Header().Set("WWW-Authenticate", `Basic realm="RabbitMQ Management"`)
	if !ok {
		w.WriteHeader(http.StatusUnauthorized)
		return nil, false
	}
	u, err := s.b.Authenticate(name, pass, fromLoopback(r.RemoteAddr))
	if err != nil {
		var ae *broker.AuthError
		reason := "Login failed"
		if errors.As(err, &ae) {
			s.log.Info("HTTP API login refused", "user", name, "remote", r.RemoteAddr, "reason", ae.Reason)
		}
		writeError(w, &apiError{http.StatusUnauthorized, "not_authorized", reason})
		return nil, false
	}
	w.Header().Del("WWW-Authenticate")
	return u, true
}

func fromLoopback(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// apiError is an error response: status, RabbitMQ's error word and reason.
type apiError struct {
	status        int
	error, reason string
}

func (e *apiError) Error() string { return e.error + ": " + e.reason }

var errNotFound = &apiError{http.StatusNotFound, "Object Not Found", "Not Found"}

func badRequest(reason string) error { return &apiError{http.StatusBadRequest, "bad_request", reason} }

func notAuthorised(reason string) error {
	return &apiError{http.StatusUnauthorized, "not_authorised", reason}
}

func writeError(w http.ResponseWriter, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		ae = brokerError(err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(ae.status)
	b, _ := json.Marshal(map[string]string{"error": ae.error, "reason": ae.reason})
	_, _ = w.Write(b)
}

// writeJSON writes v with 200.
func writeJSON(w http.ResponseWriter, v any) error {
	b, err := appendJSON(nil, v)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	_, err = w.Write(b)
	return err
}

// noContent answers 204, or 201 when the request created its object.
func noContent(r *req, created bool) error {
	if created {
		r.w.WriteHeader(http.StatusCreated)
	} else {
		r.w.WriteHeader(http.StatusNoContent)
	}
	return nil
}

// decode reads a JSON request body into v; an empty body leaves v as it is.
func (r *req) decode(v any) error {
	d := json.NewDecoder(r.Body)
	d.UseNumber()
	err := d.Decode(v)
	var tooBig *http.MaxBytesError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &tooBig):
		return &apiError{http.StatusRequestEntityTooLarge, "bad_request", "request body too large"}
	case errors.Is(err, io.EOF):
		return nil
	}
	return badRequest("not_json")
}
