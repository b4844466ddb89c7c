package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/warren-mq/warren/internal/amqpserver"
	"github.com/warren-mq/warren/internal/broker"
	"github.com/warren-mq/warren/internal/mgmt/prom"
)

// defaultPrometheusAddr is RabbitMQ's rabbitmq_prometheus port.
const defaultPrometheusAddr = ":15692"

// startPrometheus serves the metrics on --prometheus-addr ("" disables them)
// and returns a function that stops it. The default address being taken
// (another broker's plugin on this host) is logged and the broker runs
// without metrics; an address asked for explicitly must be free.
func startPrometheus(cfg *config, b *broker.Broker, log *slog.Logger, maxConns int) (stop func(), addr string, err error) {
	if cfg.PrometheusAddr == "" {
		return func() {}, "", nil
	}
	l, err := net.Listen("tcp", cfg.PrometheusAddr)
	if err != nil {
		if cfg.PrometheusAddr == defaultPrometheusAddr {
			log.Warn("Prometheus metrics not served: their default address is in use; set --prometheus-addr", "addr", cfg.PrometheusAddr, "err", err)
			return func() {}, "", nil
		}
		return nil, "", fmt.Errorf("--prometheus-addr: %w", err)
	}
	hs := &http.Server{Handler: prom.New(prom.Config{Broker: b, Version: amqpserver.Version, MaxConnections: maxConns, Logger: log}),
		ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	go func() {
		if err := hs.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("Prometheus metrics listener stopped", "err", err)
		}
	}()
	return func() { _ = hs.Close() }, l.Addr().String(), nil
}
