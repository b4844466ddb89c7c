// Package testbroker gives tests a broker to talk to: by default a Warren started
// in-process on 127.0.0.1:0 with a temporary data directory; with WARREN_TEST_URL set,
// that external broker instead, so the same suite can be checked against RabbitMQ.
package testbroker

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"github.com/warren-mq/warren/internal/amqpserver"
	"github.com/warren-mq/warren/internal/broker"
)

// External reports whether tests run against an external broker (WARREN_TEST_URL).
func External() bool { return os.Getenv("WARREN_TEST_URL") != "" }

// Options adjust an in-process broker.
type Options struct {
	Broker broker.Config
	Server amqpserver.Config
}

// Instance is a running in-process broker.
type Instance struct {
	URL    string
	Addr   string
	Broker *broker.Broker
	Server *amqpserver.Server
}

// URL returns the AMQP URL of a broker for t, stopped when t ends.
func URL(t testing.TB) string {
	t.Helper()
	if u := os.Getenv("WARREN_TEST_URL"); u != "" {
		return u
	}
	return Start(t, Options{}).URL
}

// Start runs an in-process Warren for t with opts, stopped when t ends.
func Start(t testing.TB, opts Options) *Instance {
	t.Helper()
	if opts.Broker.Logger == nil {
		level := slog.LevelWarn
		if os.Getenv("WARREN_TEST_LOG") != "" {
			level = slog.LevelDebug
		}
		var w io.Writer = os.Stderr
		if os.Getenv("WARREN_TEST_LOG") == "" {
			w = io.Discard
		}
		opts.Broker.Logger = slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
	}
	b, err := broker.New(opts.Broker)
	if err != nil {
		t.Fatalf("testbroker: %v", err)
	}
	srv := amqpserver.New(b, opts.Server)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testbroker: listen: %v", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(l)
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
		_ = b.Close()
	})
	addr := l.Addr().String()
	return &Instance{URL: "amqp://guest:guest@" + addr + "/", Addr: addr, Broker: b, Server: srv}
}

// CheckFor polls fn until it returns true or timeout passes, then fails t.
func CheckFor(t testing.TB, timeout time.Duration, fn func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !fn() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
