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
	"github.com/warren-mq/warren/internal/mgmt"
)

// defaultMgmtAddr is RabbitMQ's management port.
const defaultMgmtAddr = ":15672"

// startMgmt serves the management HTTP API on --mgmt-addr ("" disables it)
// and returns a function that stops it. The default address being taken
// (another broker's management plugin on this host) is logged and the broker
// runs without the API; an address asked for explicitly must be free.
func startMgmt(cfg *config, b *broker.Broker, log *slog.Logger, listeners []mgmt.Listener) (stop func(), addr string, err error) {
	if cfg.MgmtAddr == "" {
		return func() {}, "", nil
	}
	l, err := net.Listen("tcp", cfg.MgmtAddr)
	if err != nil {
		if cfg.MgmtAddr == defaultMgmtAddr {
			log.Warn("management HTTP API not started: its default address is in use; set --mgmt-addr", "addr", cfg.MgmtAddr, "err", err)
			return func() {}, "", nil
		}
		return nil, "", fmt.Errorf("--mgmt-addr: %w", err)
	}
	listeners = append(listeners, mgmt.Listener{Protocol: "http", Addr: l.Addr().String()})
	api := mgmt.New(b, mgmt.Config{Version: amqpserver.Version, Listeners: listeners, DataDir: cfg.DataDir,
		MemoryLimit: cfg.MemoryLimit, DiskFreeLimit: cfg.DiskFreeLimit, Logger: log})
	hs := &http.Server{Handler: api, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	go func() {
		if err := hs.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("management HTTP API stopped", "err", err)
		}
	}()
	return func() { _ = hs.Close(); api.Close() }, l.Addr().String(), nil
}
