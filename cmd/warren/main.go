// Command warren runs the Warren message broker.
//
//	go run ./cmd/warren                       # AMQP on :5672, data in ./data
//	go run ./cmd/warren --amqp-addr 127.0.0.1:5673 --data-dir /tmp/w
//	go run ./cmd/warren --help                # every setting, the config file, signals, recovery
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/warren-mq/warren/internal/amqpserver"
	"github.com/warren-mq/warren/internal/broker"
	"github.com/warren-mq/warren/internal/mgmt"
	"github.com/warren-mq/warren/internal/store"
)

func main() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr, sig))
}

// run is warren's main with its surroundings passed in, so tests can call
// it: it returns the exit status (0 stopped cleanly or printed help or the
// version, 1 failed, 2 bad configuration) and stops on SIGINT or SIGTERM
// from sig.
func run(args []string, getenv func(string) string, stdout, stderr io.Writer, sig <-chan os.Signal) int {
	if status, ok := runSubcommand(args, getenv, stdout, stderr); ok {
		return status
	}
	cfg, reg, from, err := loadConfig(args, getenv)
	if err != nil {
		fmt.Fprintf(stderr, "warren: %v\n", err)
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintln(stderr, "Run 'warren --help' for usage.")
		}
		return 2
	}
	if cfg.Help {
		writeHelp(stdout, reg)
		return 0
	}
	if cfg.Version {
		fmt.Fprintf(stdout, "warren %s\n", amqpserver.Version)
		return 0
	}
	logOpts := &slog.HandlerOptions{Level: cfg.LogLevel}
	var logTo slog.Handler = slog.NewTextHandler(stderr, logOpts)
	if cfg.LogFormat == "json" {
		logTo = slog.NewJSONHandler(stderr, logOpts)
	}
	log := slog.New(logTo)
	slog.SetDefault(log)
	logEffective(log, reg, from)
	if err := serve(cfg, log, sig); err != nil {
		fmt.Fprintf(stderr, "warren: %v\n", err)
		return 1
	}
	return 0
}

// serve opens the data directory, starts the listeners and runs until a stop signal.
func serve(cfg *config, log *slog.Logger, sig <-chan os.Signal) error {
	opts := store.Options{Interval: cfg.SyncInterval, SegmentSize: cfg.SegmentSize, Logger: log, Weigh: broker.RecordBodyLen}
	switch cfg.Sync {
	case "always":
		opts.Sync = store.SyncAlways
	case "interval":
		opts.Sync = store.SyncInterval
	case "never":
		opts.Sync = store.SyncNever
	}
	var tlsCfg *amqpserver.TLS
	if cfg.TLSCert != "" {
		var err error
		if tlsCfg, err = amqpserver.NewTLS(cfg.tlsConfig()); err != nil {
			return err
		}
	}
	started := time.Now()
	st, err := openDataDir(cfg.DataDir, opts)
	if err != nil {
		return err
	}
	setRuntimeMemoryLimit(cfg.MemoryLimit, log)
	b, err := broker.New(cfg.brokerConfig(st, log))
	if err != nil {
		st.Close()
		return dataDirError(cfg.DataDir, err)
	}
	defer b.Close()
	log.Info("data recovered", "data_dir", cfg.DataDir, "took", time.Since(started).Round(time.Millisecond))
	if cfg.LoadDefinitions != "" {
		if err := loadDefinitions(b, cfg.LoadDefinitions, log); err != nil {
			return err
		}
	}
	scfg := amqpserver.Config{Logger: log, ConsumerTimeout: cfg.ConsumerTimeout}
	cfg.Conns.apply(&scfg, log)
	srv := amqpserver.New(b, scfg)
	l, err := net.Listen("tcp", cfg.AMQPAddr)
	if err != nil {
		return err
	}
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(l) }()
	attrs := []any{"amqp", l.Addr().String()}
	if tlsCfg != nil {
		tl, err := net.Listen("tcp", cfg.AMQPSAddr)
		if err != nil {
			shutdown(srv, log)
			return fmt.Errorf("--amqps-addr: %w", err)
		}
		go func() { errc <- srv.ServeTLS(tl, tlsCfg) }()
		attrs = append(attrs, "amqps", tl.Addr().String(), "tls_verify", cfg.TLSVerify,
			"tls_cert", tlsCfg.Leaf().Subject.String(), "tls_cert_expires", tlsCfg.Leaf().NotAfter)
	}
	listeners := []mgmt.Listener{{Protocol: "amqp", Addr: l.Addr().String()}}
	if tlsCfg != nil {
		listeners = append(listeners, mgmt.Listener{Protocol: "amqp/ssl", Addr: cfg.AMQPSAddr})
	}
	stopKafka, kafkaAddr, err := startKafka(cfg, b, log, tlsCfg)
	if err != nil {
		shutdown(srv, log)
		return err
	}
	defer stopKafka()
	if kafkaAddr != "" {
		attrs = append(attrs, "kafka", kafkaAddr)
		listeners = append(listeners, mgmt.Listener{Protocol: "kafka", Addr: kafkaAddr})
	}
	if cfg.Kafka.TLSAddr != "" {
		listeners = append(listeners, mgmt.Listener{Protocol: "kafka/ssl", Addr: cfg.Kafka.TLSAddr})
	}
	stopMgmt, mgmtAddr, err := startMgmt(cfg, b, log, listeners)
	if err != nil {
		shutdown(srv, log)
		return err
	}
	defer stopMgmt()
	if mgmtAddr != "" {
		attrs = append(attrs, "mgmt", mgmtAddr)
	}
	stopProm, promAddr, err := startPrometheus(cfg, b, log, scfg.MaxConnections)
	if err != nil {
		shutdown(srv, log)
		return err
	}
	defer stopProm()
	if promAddr != "" {
		attrs = append(attrs, "prometheus", promAddr)
	}
	attrs = append(attrs, "data_dir", cfg.DataDir, "memory_limit", cfg.MemoryLimit, "version", amqpserver.Version)
	log.Info("Warren started", attrs...)

	for {
		select {
		case s := <-sig:
			if s == syscall.SIGHUP {
				reload(tlsCfg, log)
				continue
			}
			log.Info("shutting down", "signal", s.String())
			return shutdown(srv, log)
		case err := <-errc:
			shutdown(srv, log)
			return err
		}
	}
}

// reload re-reads the TLS files on SIGHUP; on error the old ones stay in use.
func reload(t *amqpserver.TLS, log *slog.Logger) {
	if t == nil {
		log.Info("SIGHUP: nothing to reload (no TLS listener)")
		return
	}
	if err := t.Reload(); err != nil {
		log.Error("SIGHUP: TLS files not reloaded, the previous certificate stays in use", "err", err)
		return
	}
	log.Info("SIGHUP: TLS certificate, key and CA bundle reloaded", "tls_cert", t.Leaf().Subject.String(), "tls_cert_expires", t.Leaf().NotAfter)
}

// shutdown closes every connection (320) and waits up to 10 s for them.
func shutdown(srv *amqpserver.Server, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	log.Info("stopped")
	return nil
}
