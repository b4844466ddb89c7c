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
	"github.com/warren-mq/warren/internal/netserve"
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
	// HandshakeTimeout bounds the time from accept to connection.open (10 s):
	// one deadline for the whole handshake, however the client trickles bytes.
	HandshakeTimeout time.Duration
	// MaxConnections is how many client connections may be open at once; a
	// socket accepted beyond it is closed at once. It keeps the process under
	// its file descriptor limit. 0 means no limit.
	MaxConnections int
	// OutboxLimit is the outbound bytes buffered per connection before
	// deliveries to it pause (1 MiB).
	OutboxLimit int
	// ConsumerTimeout is how long a delivery may stay unacknowledged before
	// its channel is closed (RabbitMQ's consumer_timeout, 30 min); negative
	// means never. A queue's x-consumer-timeout or policy overrides it.
	ConsumerTimeout time.Duration
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
	if c.ConsumerTimeout == 0 {
		c.ConsumerTimeout = 30 * time.Minute
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

	blockLog netserve.RateLog // publishers blocked by an alarm
	acceptor netserve.Acceptor
	limitLog netserve.RateLog // sockets refused at MaxConnections
	auth     authThrottle
	acct     accounting // under mu

	// methodHook, when set (by tests), runs before each channel method is handled.
	methodHook func(name string)
}

// full reports whether MaxConnections connections are open.
func (s *Server) full() bool {
	if s.cfg.MaxConnections <= 0 {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns) >= s.cfg.MaxConnections
}

// New returns a server for b.
func New(b *broker.Broker, cfg Config) *Server {
	cfg.defaults()
	log := cfg.Logger
	if log == nil {
		log = b.Logger()
	}
	s := &Server{cfg: cfg, broker: b, log: log, listeners: map[net.Listener]struct{}{}, conns: map[*connection]struct{}{}, auth: newAuthThrottle()}
	s.acceptor = netserve.Acceptor{Closed: s.isShutdown, ErrClosed: ErrServerClosed, Log: log, Msg: "accepting connections failed, retrying"}
	s.watchAccess()
	return s
}

// isShutdown reports whether Shutdown has begun.
func (s *Server) isShutdown() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.shutdown
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
	for {
		nc, err := s.acceptor.Accept(l)
		if err != nil {
			return err
		}
		if s.full() {
			nc.Close()
			if n, ok := s.limitLog.Allow(); ok {
				s.log.Warn("connection limit reached, refusing new connections", "max_connections", s.cfg.MaxConnections, "refused_since_last_log", n)
			}
			continue
		}
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
