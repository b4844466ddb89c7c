package broker

import (
	"slices"
	"strings"
	"sync"
	"time"
)

// The session registry: protocol front ends register each client session
// (an AMQP connection today, a Kafka one later) so that management, metrics
// and operators can list and close them without importing a front end.

// Session is a client session as a front end registers it.
type Session interface {
	// Info returns a snapshot of the session; cheap enough to call for
	// thousands of sessions per second.
	Info() SessionInfo
	// Channels returns snapshots of the session's channels, by number.
	Channels() []ChannelInfo
	// Close closes the session with a connection-forced error whose text
	// carries reason, as RabbitMQ's "broker forced connection closure with
	// reason '...'" does. It does not wait.
	Close(reason string)
}

// SessionInfo describes one client connection.
type SessionInfo struct {
	// Name is RabbitMQ's connection name: "127.0.0.1:50000 -> 127.0.0.1:5672".
	Name     string
	Protocol string // "AMQP 0-9-1"
	// Node is the broker node the session is on.
	PeerHost, Host         string
	PeerPort, Port         int
	User, VHost            string
	AuthMechanism          string
	State                  string // "starting", "tuning", "opening", "running", "blocked", "blocking", "closing"
	ClientProperties       map[string]any
	UserProvidedName       string // client_properties.connection_name
	ConnectedAt            time.Time
	TLS                    bool
	TLSVersion, TLSCipher  string
	PeerCertSubject        string
	FrameMax               uint32
	ChannelMax             uint16
	Heartbeat              int // seconds
	Channels               int
	RecvOct, SendOct       uint64 // bytes in and out
	RecvCnt, SendCnt       uint64 // frames in and out
	Blocked                bool   // publishing is blocked by a resource alarm
	BlockedReasons         []string
	Unconfirmed, Unacked   int
	MessagesPublished      uint64 // basic.publish received
	MessagesDelivered      uint64 // deliveries and get-oks sent
	MessagesConfirmed      uint64
	MessagesAcknowledged   uint64 // client acks received
	MessagesRedelivered    uint64
	MessagesUnroutable     uint64 // returned or dropped
	MessagesGetEmpty       uint64
	MessagesDeliveredNoAck uint64
	MessagesGetNoAck       uint64
	MessagesGet            uint64
}

// ChannelInfo describes one channel of a session.
type ChannelInfo struct {
	Number int
	// Name is "<connection name> (N)", as RabbitMQ names channels.
	Name                   string
	User, VHost            string
	State                  string // "running", "flow", "closing"
	Confirm, Transactional bool
	PrefetchCount          int // basic.qos global=false
	GlobalPrefetchCount    int // basic.qos global=true
	Unacked, Unconfirmed   int
	UncommittedMessages    int
	UncommittedAcks        int
	Consumers              int
	AcksUncommitted        int
	IdleSince              time.Time
	Stats                  MessageStats
}

// MessageStats are message counters, as RabbitMQ's message_stats holds them
// (publish, deliver, ack ...). Totals since the object was created.
type MessageStats struct {
	Publish, Confirm, ReturnUnroutable, DropUnroutable uint64
	Deliver, DeliverNoAck, Get, GetNoAck, GetEmpty     uint64
	Redeliver, Ack                                     uint64
	// DeadLettered counts messages that left a queue for good other than by
	// an ack, by reason (DeadExpired, DeadMaxLen, DeadRejected), and whether
	// the queue had a dead-letter exchange ([1]) or discarded them ([0]).
	DeadLettered [2][3]uint64
}

// Reasons a message leaves a queue unacknowledged, as DeadLettered's index.
const (
	DeadExpired = iota
	DeadMaxLen
	DeadRejected
)

// Add adds o's counters to s.
func (s *MessageStats) Add(o MessageStats) {
	s.Publish += o.Publish
	s.Confirm += o.Confirm
	s.ReturnUnroutable += o.ReturnUnroutable
	s.DropUnroutable += o.DropUnroutable
	s.Deliver += o.Deliver
	s.DeliverNoAck += o.DeliverNoAck
	s.Get += o.Get
	s.GetNoAck += o.GetNoAck
	s.GetEmpty += o.GetEmpty
	s.Redeliver += o.Redeliver
	s.Ack += o.Ack
	for i := range s.DeadLettered {
		for j := range s.DeadLettered[i] {
			s.DeadLettered[i][j] += o.DeadLettered[i][j]
		}
	}
}

// sessions is the broker's registry.
type sessions struct {
	mu  sync.Mutex
	all map[Session]struct{}
}

// RegisterSession adds s to the registry until the returned function runs.
// That function calls s.Info and s.Channels once, to keep the session's
// counters in the broker's totals (totals.go): call it holding no lock they
// take, and before closing the channels, whose counters Info still includes.
func (b *Broker) RegisterSession(s Session) (unregister func()) {
	b.sess.mu.Lock()
	if b.sess.all == nil {
		b.sess.all = map[Session]struct{}{}
	}
	b.sess.all[s] = struct{}{}
	b.sess.mu.Unlock()
	b.totals.connsOpened.Add(1)
	return func() {
		b.sess.mu.Lock()
		_, ok := b.sess.all[s]
		delete(b.sess.all, s)
		b.sess.mu.Unlock()
		if ok {
			b.retireSession(s)
		}
	}
}

// Sessions returns the registered sessions with their info, sorted by name.
func (b *Broker) Sessions() []SessionSnapshot {
	b.sess.mu.Lock()
	list := make([]Session, 0, len(b.sess.all))
	for s := range b.sess.all {
		list = append(list, s)
	}
	b.sess.mu.Unlock()
	out := make([]SessionSnapshot, len(list))
	for i, s := range list {
		out[i] = SessionSnapshot{Session: s, Info: s.Info()}
	}
	slices.SortFunc(out, func(x, y SessionSnapshot) int { return strings.Compare(x.Info.Name, y.Info.Name) })
	return out
}

// SessionSnapshot is a session with the info it had when listed.
type SessionSnapshot struct {
	Session Session
	Info    SessionInfo
}
