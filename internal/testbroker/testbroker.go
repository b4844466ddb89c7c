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
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warren-mq/warren/internal/amqpserver"
	"github.com/warren-mq/warren/internal/broker"
	"github.com/warren-mq/warren/internal/store"
)

// External reports whether tests run against an external broker (WARREN_TEST_URL).
func External() bool { return os.Getenv("WARREN_TEST_URL") != "" }

// Options adjust an in-process broker.
type Options struct {
	Broker broker.Config
	Server amqpserver.Config
	// DataDir, if set, gives the broker a file store there (unless
	// Broker.Store is set), so a test can restart a broker on the same data.
	DataDir string
	// Sync is the file store's sync mode (default store.SyncAlways).
	Sync store.SyncMode
}

// Instance is a running in-process broker.
type Instance struct {
	URL    string
	Addr   string
	Broker *broker.Broker
	Server *amqpserver.Server

	done     chan struct{}
	stopOnce sync.Once
}

var shared struct {
	once sync.Once
	url  string
	err  error
}

// URL returns the AMQP URL of the broker tests share: WARREN_TEST_URL, or one
// in-process Warren per test binary, started on first use. Like a shared
// RabbitMQ, it outlives each test, so tests use unique names; tests that need
// their own broker or settings call Start.
func URL(t testing.TB) string {
	t.Helper()
	if u := os.Getenv("WARREN_TEST_URL"); u != "" {
		return u
	}
	shared.once.Do(func() {
		b, err := broker.New(broker.Config{Logger: testLogger()})
		if err != nil {
			shared.err = err
			return
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			shared.err = err
			return
		}
		go func() { _ = amqpserver.New(b, amqpserver.Config{}).Serve(l) }()
		shared.url = "amqp://guest:guest@" + l.Addr().String() + "/"
	})
	if shared.err != nil {
		t.Fatalf("testbroker: %v", shared.err)
	}
	return shared.url
}

func testLogger() *slog.Logger {
	if os.Getenv("WARREN_TEST_LOG") == "" {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// Start runs an in-process Warren for t with opts, stopped when t ends.
func Start(t testing.TB, opts Options) *Instance {
	t.Helper()
	if opts.Broker.Logger == nil {
		opts.Broker.Logger = testLogger()
	}
	if opts.DataDir != "" && opts.Broker.Store == nil {
		st, err := store.Open(opts.DataDir, store.Options{Sync: opts.Sync, Logger: opts.Broker.Logger, Weigh: broker.RecordBodyLen})
		if err != nil {
			t.Fatalf("testbroker: store: %v", err)
		}
		opts.Broker.Store = st
	}
	if opts.Broker.StreamDir == "" {
		if opts.DataDir != "" {
			opts.Broker.StreamDir = filepath.Join(opts.DataDir, "streams")
		} else {
			opts.Broker.StreamDir = t.TempDir()
		}
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
	inst := &Instance{Broker: b, Server: srv, done: done}
	t.Cleanup(inst.Stop)
	inst.Addr = l.Addr().String()
	inst.URL = "amqp://guest:guest@" + inst.Addr + "/"
	return inst
}

// Stop shuts the broker down cleanly (connections closed with 320, store
// flushed and closed). It is safe to call more than once.
func (i *Instance) Stop() {
	i.stopOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = i.Server.Shutdown(ctx)
		<-i.done
		_ = i.Broker.Close()
	})
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

// SyncBuffer collects output (a child process's, a logger's) that one
// goroutine writes while the test reads it.
type SyncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

// Write implements io.Writer.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
