// Package prom serves Warren's metrics in the Prometheus exposition format
// with the metric names, types, help texts and labels of RabbitMQ's
// rabbitmq_prometheus plugin, so that dashboards and alerts written for
// RabbitMQ (its RabbitMQ-Overview Grafana dashboard among them) work against
// Warren unchanged.
//
// Like the plugin it answers three paths: /metrics (every object's metrics
// summed into one series per name), /metrics/per-object (one series per
// queue, channel and connection) and /metrics/detailed?family=...&vhost=...
// (only the families asked for, per object, named rabbitmq_detailed_*).
//
// Nothing is counted here: each scrape reads the broker's query side (queue
// snapshots, the session registry, the broker's lifetime totals, the alarm
// state) and the process's own statistics, so metrics cost nothing on the
// message path. Counters summed over objects that come and go include what
// deleted queues and closed connections had counted (broker.Totals) and never
// go backwards between scrapes.
package prom

import (
	"log/slog"
	"net/http"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/warren-mq/warren/internal/broker"
)

// Config configures a Handler.
type Config struct {
	Broker *broker.Broker
	// Node is the node's name ("warren@<host>" when empty), ClusterName the
	// cluster's (the node's name when empty), as the management API shows them.
	Node, ClusterName string
	// Version is Warren's version, shown in rabbitmq_build_info.
	Version string
	// MaxConnections is the AMQP listener's connection limit, shown as
	// rabbitmq_process_max_tcp_sockets; 0 leaves that series out.
	MaxConnections int
	// Logger receives scrape errors; nil means the broker's logger.
	Logger *slog.Logger
}

// Handler is the http.Handler of the metrics endpoints.
type Handler struct {
	cfg     Config
	b       *broker.Broker
	started time.Time
	mux     *http.ServeMux
	mono    monotonic
}

// New returns the metrics handler of cfg.Broker.
func New(cfg Config) *Handler {
	if cfg.Logger == nil {
		cfg.Logger = cfg.Broker.Logger()
	}
	if cfg.Node == "" {
		host, _ := os.Hostname()
		host, _, _ = strings.Cut(host, ".")
		if host == "" {
			host = "localhost"
		}
		cfg.Node = "warren@" + host
	}
	if cfg.ClusterName == "" {
		cfg.ClusterName = cfg.Node
	}
	h := &Handler{cfg: cfg, b: cfg.Broker, started: time.Now(), mux: http.NewServeMux()}
	h.mono.last = map[string]float64{}

	agg := prometheus.NewRegistry()
	agg.MustRegister(&collector{h: h, mode: aggregated},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	objs := prometheus.NewRegistry()
	objs.MustRegister(&collector{h: h, mode: perObject})

	h.mux.Handle("GET /metrics", h.serve(agg))
	h.mux.Handle("GET /metrics/per-object", h.serve(objs))
	h.mux.HandleFunc("GET /metrics/detailed", func(w http.ResponseWriter, r *http.Request) {
		c := &collector{h: h, mode: detailed, families: map[string]bool{}}
		q := r.URL.Query()
		for _, f := range q["family"] {
			c.families[f] = true
		}
		if vs := q["vhost"]; len(vs) > 0 {
			c.vhosts = map[string]bool{}
			for _, v := range vs {
				c.vhosts[v] = true
			}
		}
		reg := prometheus.NewRegistry()
		reg.MustRegister(c)
		h.serve(reg).ServeHTTP(w, r)
	})
	return h
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

func (h *Handler) serve(g prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{ErrorLog: slogPrinter{h.cfg.Logger}, ErrorHandling: promhttp.ContinueOnError})
}

// slogPrinter adapts a slog.Logger to promhttp's error log.
type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Println(v ...any) {
	p.log.Warn("prometheus: scrape error", "err", v)
}

// monotonic keeps summed counters from going backwards. A queue deleted or a
// connection closed between the moment a scrape lists the live ones and the
// moment it reads the broker's totals is briefly in neither; the series then
// holds its last value until the sum catches up, as a counter must.
type monotonic struct {
	mu   sync.Mutex
	last map[string]float64
}

// clamp returns v, or the largest value returned before for key if that is larger.
func (m *monotonic) clamp(key string, v float64) float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if prev, ok := m.last[key]; ok && prev > v {
		return prev
	}
	m.last[key] = v
	return v
}

// clientVersion is the version of client_golang built in, for rabbitmq_build_info.
var clientVersion = func() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/prometheus/client_golang" {
				return strings.TrimPrefix(d.Version, "v")
			}
		}
	}
	return "unknown"
}()
