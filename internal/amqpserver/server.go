// Package amqpserver is Warren's AMQP 0-9-1 front end: connection and channel
// state machines over net.Conn, driving the broker core. Each connection has
// one reader goroutine that decodes and handles frames inline and one writer
// goroutine that flushes the connection's outbox.
package amqpserver

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/warren-mq/warren/internal/broker"
)

// Config configures a Server. Zero values take RabbitMQ's defaults.
type Config struct {
	// ChannelMax is the highest channel number offered in connection.tune (2047).
	ChannelMax uint16
	// FrameMax is the largest frame offered in connection.tune (131072).
	FrameMax uint32
	// Heartbeat is the heartbeat interval offered, in seconds (60).
	Heartbeat uint16
	// MaxMessageSize is the largest message body accepted (128 MiB).
	MaxMessageSize uint64
	// HandshakeTimeout bounds the time from accept to connection.open (10 s).
	HandshakeTimeout time.Duration
	// OutboxLimit is the outbound bytes buffered per connection before
	// deliveries to it pause (1 MiB).
	OutboxLimit int
	// Logger receives connection logs; nil means the broker's logger.
	Logger *slog.Logger
}

func (c *Config) defaults() {
	if c.ChannelMax == 0 {
		c.ChannelMax = 2047
	}
	if c.FrameMax == 0 {
		c.FrameMax = 131072
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = 60
	}
	if c.MaxMessageSize == 0 {
		c.MaxMessageSize = 128 << 20
	}
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = 10 * time.Second
	}
	if c.OutboxLimit == 0 {
		c.OutboxLimit = 1 << 20
	}
}

// Server accepts AMQP connections for a broker.
type Server struct {
	cfg    Config
	broker *broker.Broker
	log    *slog.Logger

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*connection]struct{}
	shutdown  bool
	wg        sync.WaitGroup

	// methodHook, when set (by tests), runs before each channel method is handled.
	methodHook func(name string)
}

// New returns a server for b.
func New(b *broker.Broker, cfg Config) *Server {
	cfg.defaults()
	log := cfg.Logger
	if log == nil {
		log = b.Logger()
	}
	return &Server{cfg: cfg, broker: b, log: log, listeners: map[net.Listener]struct{}{}, conns: map[*connection]struct{}{}}
}

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("amqpserver: server closed")

// Serve accepts connections on l until Shutdown.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.shutdown {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	var delay time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			done := s.shutdown
			s.mu.Unlock()
			if done {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay) // back off on accept errors (e.g. EMFILE)
				continue
			}
			return err
		}
		delay = 0
		c := newConnection(s, nc)
		s.mu.Lock()
		if s.shutdown {
			s.mu.Unlock()
			nc.Close()
			continue
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			c.serve()
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}

// Shutdown stops accepting, closes every client connection with 320
// CONNECTION_FORCED and waits for them to finish or ctx to end.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.shutdown = true
	for l := range s.listeners {
		l.Close()
	}
	conns := make([]*connection, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.forceClose("broker forced connection closure with reason 'shutdown'")
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		for c := range s.conns {
			c.nc.Close()
		}
		s.mu.Unlock()
		return ctx.Err()
	}
}
