package main

import (
	"crypto/tls"
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
// and --mgmt-tls-addr, and returns a function that stops it and the plain
// address. The default address being taken
// (another broker's management plugin on this host) is logged and the broker
// runs without the API; an address asked for explicitly must be free.
func startMgmt(cfg *config, b *broker.Broker, log *slog.Logger, listeners []mgmt.Listener) (stop func(), addr string, err error) {
	if cfg.MgmtAddr == "" && cfg.MgmtTLSAddr == "" {
		return func() {}, "", nil
	}
	var l net.Listener
	if cfg.MgmtAddr != "" {
		if l, err = net.Listen("tcp", cfg.MgmtAddr); err != nil {
			if cfg.MgmtAddr != defaultMgmtAddr {
				return nil, "", fmt.Errorf("--mgmt-addr: %w", err)
			}
			log.Warn("management HTTP API not listening on its default address, which is in use; set --mgmt-addr", "addr", cfg.MgmtAddr, "err", err)
			if cfg.MgmtTLSAddr == "" {
				return func() {}, "", nil
			}
			l = nil
		} else {
			listeners = append(listeners, mgmt.Listener{Protocol: "http", Addr: l.Addr().String()})
			addr = l.Addr().String()
		}
	}
	var tl net.Listener
	if cfg.MgmtTLSAddr != "" {
		// The AMQPS certificate, loaded once: SIGHUP reloads only the AMQPS listener's.
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err == nil {
			tl, err = tls.Listen("tcp", cfg.MgmtTLSAddr, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
		}
		if err != nil {
			if l != nil {
				l.Close()
			}
			return nil, "", fmt.Errorf("--mgmt-tls-addr: %w", err)
		}
		listeners = append(listeners, mgmt.Listener{Protocol: "https", Addr: tl.Addr().String()})
		log.Info("management HTTP API over TLS", "addr", tl.Addr().String())
	}
	api := mgmt.New(b, mgmt.Config{Version: amqpserver.Version, Listeners: listeners, DataDir: cfg.DataDir,
		MemoryLimit: cfg.MemoryLimit, DiskFreeLimit: cfg.DiskFreeLimit, Logger: log})
	hs := &http.Server{Handler: api, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	for _, ln := range []net.Listener{l, tl} {
		if ln == nil {
			continue
		}
		go func() {
			if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("management HTTP API stopped", "addr", ln.Addr().String(), "err", err)
			}
		}()
	}
	return func() { _ = hs.Close(); api.Close() }, addr, nil
}
