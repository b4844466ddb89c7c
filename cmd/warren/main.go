// Command warren runs the Warren message broker.
//
//	go run ./cmd/warren                       # AMQP on :5672, data in ./data
//	go run ./cmd/warren --amqp-addr 127.0.0.1:5673 --data-dir /tmp/w
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/warren-mq/warren/internal/amqpserver"
	"github.com/warren-mq/warren/internal/broker"
	"github.com/warren-mq/warren/internal/store"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "warren:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("warren", flag.ContinueOnError)
	addr := fs.String("amqp-addr", ":5672", "AMQP listen address (host:port)")
	dataDir := fs.String("data-dir", "./data", "data directory")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	memLimit := fs.String("memory-limit", "", "bytes of messages held before publishers are blocked, e.g. 2GiB or 40% of RAM (default 40% of RAM)")
	diskLimit := fs.String("disk-free-limit", "50MB", "free disk space on the data directory's file system below which publishers are blocked")
	syncMode := fs.String("sync", "always", "when persistent messages reach the disk: always (a confirm means fdatasync'ed, group commit), interval (fdatasync every --sync-interval: faster, a machine crash loses up to one interval), never (tests only)")
	syncInterval := fs.Duration("sync-interval", 100*time.Millisecond, "fdatasync period with --sync interval")
	conns := addConnFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(log)

	limit, err := parseMemoryLimit(*memLimit)
	if err != nil {
		return fmt.Errorf("--memory-limit: %w", err)
	}
	diskFree, err := parseSize(*diskLimit)
	if err != nil {
		return fmt.Errorf("--disk-free-limit: %w", err)
	}
	opts := store.Options{Interval: *syncInterval, Logger: log}
	switch *syncMode {
	case "always":
		opts.Sync = store.SyncAlways
	case "interval":
		opts.Sync = store.SyncInterval
	case "never":
		opts.Sync = store.SyncNever
	default:
		return fmt.Errorf("--sync: want always, interval or never, got %q", *syncMode)
	}
	if err := os.MkdirAll(*dataDir, 0o750); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	started := time.Now()
	st, err := store.Open(*dataDir, opts)
	if err != nil {
		return err
	}
	b, err := broker.New(broker.Config{Store: st, MemoryLimit: limit, DiskFreeLimit: diskFree, Logger: log})
	if err != nil {
		st.Close()
		return err
	}
	defer b.Close()
	log.Info("data recovered", "data_dir", *dataDir, "took", time.Since(started).Round(time.Millisecond))
	scfg := amqpserver.Config{Logger: log}
	conns.apply(&scfg, log)
	srv := amqpserver.New(b, scfg)
	l, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	log.Info("Warren started", "amqp", l.Addr().String(), "data_dir", *dataDir, "memory_limit", limit, "version", amqpserver.Version)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case s := <-sig:
		log.Info("shutting down", "signal", s.String())
	case err := <-errc:
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	log.Info("stopped")
	return nil
}
