// Package kafkaserver is Warren's Kafka protocol front end: a listener that
// speaks the Kafka wire protocol (franz-go's kmsg is the codec) over the
// broker's streams, so a Kafka topic is a stream (one partition) or a super
// stream (several) in one vhost, readable and writable over AMQP too.
//
// Each connection has one reader goroutine and one writer goroutine. The
// reader frames requests (a size limit that is much smaller until the client
// has authenticated, so memory is bounded before authentication), decodes
// them with kmsg and dispatches them through a table of handlers that other
// files fill in their init functions (register). A handler answers at once
// or later (produce waits for the log's fsync, fetch long-polls): either way
// its answer takes a slot in the connection's queue in request order, and the
// writer sends the slots in that order, as Kafka requires. A request with an
// unknown API key or an unsupported version closes the connection, as Kafka
// does, except ApiVersions, which answers UNSUPPORTED_VERSION in its v0 form
// so the client can retry with a version both sides know.
package kafkaserver

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warren-mq/warren/internal/broker"
	"github.com/warren-mq/warren/internal/netserve"
)

// Config configures a Server. Zero values take Kafka's defaults.
type Config struct {
	// AdvertisedAddr is the host:port clients are told to connect to in
	// Metadata (Kafka's advertised.listeners); "" means the address the
	// client reached, which is right unless there is NAT or a proxy between.
	AdvertisedAddr string
	// VHost is the vhost whose streams are the Kafka topics ("/").
	VHost string
	// NumPartitions is the partition count of auto-created topics and of
	// CreateTopics without one (num.partitions, 1).
	NumPartitions int
	// DisableAutoCreate turns off creating a topic when a client produces to
	// or asks metadata for one that does not exist (auto.create.topics.enable
	// is on by default, as in Kafka).
	DisableAutoCreate bool
	// MaxRequestSize is the largest request accepted from an authenticated
	// client (socket.request.max.bytes, 100 MiB).
	MaxRequestSize int
	// MaxUnauthRequestSize is the largest request accepted before the client
	// has authenticated (sasl.server.max.receive.size, 512 KiB).
	MaxUnauthRequestSize int
	// AnonymousUser is the Warren user a connection that does not use SASL
	// acts as ("guest"). The broker's loopback rule applies to it, so by
	// default only local clients may skip SASL. "none" requires SASL of
	// every client.
	AnonymousUser string
	// MaxInFlight is how many requests of one connection may wait for their
	// answers at once before the reader stops reading (16).
	MaxInFlight int
	// IdleTimeout closes a connection that sent nothing for this long
	// (connections.max.idle.ms, 10 min).
	IdleTimeout time.Duration
	// WriteTimeout bounds writing one response to a client that does not read (60 s).
	WriteTimeout time.Duration
	// TxnMaxTimeout is the longest transaction timeout a transactional
	// producer may ask for (transaction.max.timeout.ms, 15 min).
	TxnMaxTimeout time.Duration
	// GroupInitialRebalanceDelay is how long a group that had no members
	// waits for more before its first rebalance completes
	// (group.initial.rebalance.delay.ms, 3 s); negative: no wait.
	GroupInitialRebalanceDelay time.Duration
	// CrashAfterTxnDecisions is a crash-test hook: once this many
	// transactions have had their decision (EndTxn's prepare commit/abort)
	// recorded, the process kills itself (SIGKILL) before writing their
	// markers, so a test can check that the restarted broker completes the
	// decision. 0, the default, never.
	CrashAfterTxnDecisions int
	// Logger receives connection logs; nil means the broker's logger.
	Logger *slog.Logger
}

func (c *Config) defaults() {
	if c.VHost == "" {
		c.VHost = "/"
	}
	if c.NumPartitions <= 0 {
		c.NumPartitions = 1
	}
	if c.MaxRequestSize <= 0 {
		c.MaxRequestSize = 100 << 20
	}
	if c.MaxUnauthRequestSize <= 0 {
		c.MaxUnauthRequestSize = 512 << 10
	}
	if c.AnonymousUser == "" {
		c.AnonymousUser = "guest"
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 16
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 10 * time.Minute
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 60 * time.Second
	}
}

// Server accepts Kafka connections for a broker.
type Server struct {
	cfg    Config
	broker *broker.Broker
	log    *slog.Logger

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	closed    bool
	wg        sync.WaitGroup
	done      chan struct{} // closed by Close

	acceptor netserve.Acceptor
	panics   atomic.Int64    // handler panics recovered (tests check bad input causes none)
	txn      *txnCoordinator // transactions and producer ids (txn_*.go)
	groups   *coordinator    // consumer groups (group*.go)
}

// New returns a server for b.
func New(cfg Config, b *broker.Broker, log *slog.Logger) *Server {
	cfg.defaults()
	if log == nil {
		log = cfg.Logger
	}
	if log == nil {
		log = b.Logger()
	}
	s := &Server{cfg: cfg, broker: b, log: log, listeners: map[net.Listener]struct{}{}, conns: map[*conn]struct{}{}, done: make(chan struct{})}
	s.acceptor = netserve.Acceptor{Closed: s.isClosed, ErrClosed: ErrServerClosed, Log: log, Msg: "accepting Kafka connections failed, retrying"}
	s.txn = newServerTxn(s)
	s.groups = newServerGroups(s)
	b.OnUserDeleted(func(user string) {
		s.closeWhere(func(c *conn) bool { return c.userName() == user }, "user '"+user+"' is deleted")
	})
	b.OnVHostDeleted(func(vhost string) {
		if vhost == s.cfg.VHost {
			s.closeWhere(func(*conn) bool { return true }, "vhost '"+vhost+"' is deleted")
		}
	})
	return s
}

// isClosed reports whether Close has begun.
func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// ErrServerClosed is returned by Serve after Close.
var ErrServerClosed = errors.New("kafkaserver: server closed")

// Serve accepts connections on l until Close.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closed {
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
		c := newConn(s, nc)
		s.mu.Lock()
		if s.closed {
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

// ServeTLS accepts Kafka connections over TLS (the SSL and SASL_SSL
// listeners of Kafka) on l until Close.
func (s *Server) ServeTLS(l net.Listener, cfg *tls.Config) error {
	return s.Serve(tls.NewListener(l, cfg))
}

// Close stops accepting, closes every connection and waits for their
// goroutines to end.
func (s *Server) Close() error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.done)
	}
	for l := range s.listeners {
		l.Close()
	}
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.Close("broker shutdown")
	}
	s.wg.Wait()
	s.groups.close()
	s.txn.close()
	return nil
}

// closeWhere closes every connection match selects.
func (s *Server) closeWhere(match func(*conn) bool, reason string) {
	s.mu.Lock()
	var hit []*conn
	for c := range s.conns {
		if match(c) {
			hit = append(hit, c)
		}
	}
	s.mu.Unlock()
	for _, c := range hit {
		c.Close(reason)
	}
}
