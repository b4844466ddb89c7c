package amqpserver

import (
	"crypto/tls"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warren-mq/warren/internal/broker"
)

// A connection registers with the broker's session registry once its
// handshake is done, so management can list and close it. What the reader
// goroutine owns is published for those readers without slowing the hot path:
// per-channel counters the reader keeps (publishes, unroutable) are added to
// the channel's lock-guarded totals once per read batch, next to the ack
// flush; deliveries and acks are counted where the channel's lock is held
// anyway; bytes are counted once per read or write call.

// Connection states as the management API shows them.
const (
	stateRunning int32 = iota
	stateBlocked
	stateClosing
)

var stateNames = [...]string{"running", "blocked", "closing"}

// sessionState is what a connection publishes for its session.
type sessionState struct {
	unregister  func()
	connectedAt time.Time
	state       atomic.Int32
	recvCnt     atomic.Uint64              // frames, published once per read batch
	frames      uint64                     // the reader's count
	chans       atomic.Pointer[[]*channel] // copy-on-write list, for Channels
	mechanism   string

	retiredMu sync.Mutex
	retired   broker.MessageStats // of channels already closed
}

// chanStats is a channel's counters: guarded by channel.mu, except pend*,
// which the reader owns until flushStats.
type chanStats struct {
	broker.MessageStats
	pendPublish, pendReturn, pendDrop uint64
	dirty                             bool // in conn.statsDirty
	// The exchange published to and counts not yet added to it.
	pendEx              *broker.Exchange
	pendExIn, pendExOut uint64
	tx                  atomic.Bool
	tracker             atomic.Pointer[confirmTracker]
}

// register adds the connection to the broker's registry; called by the reader
// once connection.open-ok is sent, so every handshake field is set.
func (c *connection) register(mechanism string) {
	c.sess.mechanism = mechanism
	c.publishChannels()
	c.sess.unregister = c.srv.broker.RegisterSession(c)
}

// publishChannels republishes the channel list after a channel opens or closes.
func (c *connection) publishChannels() {
	list := make([]*channel, 0, len(c.channels))
	for _, ch := range c.channels {
		list = append(list, ch)
	}
	c.sess.chans.Store(&list)
}

// notePublish counts a publish on the reader.
func (ch *channel) notePublish(ex *broker.Exchange, res broker.PublishResult, mandatory bool) {
	s := &ch.stats
	if s.pendEx != ex {
		s.flushExchange()
		s.pendEx = ex
	}
	s.pendExIn++
	s.pendExOut += uint64(res.Queues)
	s.pendPublish++
	if routed := res.Routed; !routed {
		if mandatory {
			s.pendReturn++
		} else {
			s.pendDrop++
		}
	}
	if !s.dirty {
		s.dirty = true
		ch.conn.statsDirty = append(ch.conn.statsDirty, ch)
	}
}

// flushStats moves the reader's pending counters into the channels' totals.
func (c *connection) flushStats() {
	c.sess.recvCnt.Store(c.sess.frames)
	for _, ch := range c.statsDirty {
		s := &ch.stats
		ch.mu.Lock()
		s.Publish += s.pendPublish
		s.ReturnUnroutable += s.pendReturn
		s.DropUnroutable += s.pendDrop
		ch.mu.Unlock()
		s.pendPublish, s.pendReturn, s.pendDrop, s.dirty = 0, 0, 0, false
		s.flushExchange()
	}
	clear(c.statsDirty)
	c.statsDirty = c.statsDirty[:0]
}

// flushExchange adds the pending exchange counts to the exchange.
func (s *chanStats) flushExchange() {
	if s.pendEx != nil && s.pendExIn > 0 {
		s.pendEx.AddPublished(s.pendExIn, s.pendExOut)
	}
	s.pendExIn, s.pendExOut = 0, 0
}

// retireStats keeps a closing channel's counters in the connection's totals.
func (c *connection) retireStats(ch *channel) {
	ch.mu.Lock()
	st := ch.stats.MessageStats
	ch.mu.Unlock()
	st.Publish += ch.stats.pendPublish
	ch.stats.flushExchange()
	if t := ch.stats.tracker.Load(); t != nil {
		t.mu.Lock()
		st.Confirm += t.confirmed
		t.mu.Unlock()
	}
	c.sess.retiredMu.Lock()
	c.sess.retired.Add(st)
	c.sess.retiredMu.Unlock()
}

// Info implements broker.Session.
func (c *connection) Info() broker.SessionInfo {
	info := broker.SessionInfo{
		Name: c.name, Protocol: "AMQP 0-9-1", AuthMechanism: c.sess.mechanism,
		ClientProperties: map[string]any(c.clientCaps), ConnectedAt: c.sess.connectedAt,
		FrameMax: c.frameMax, ChannelMax: c.channelMax, Heartbeat: int(time.Duration(c.heartbeat.Load()) / time.Second),
		RecvOct: c.rd.bytes.Load(), SendOct: c.out.sentBytes.Load(), RecvCnt: c.sess.recvCnt.Load(), SendCnt: c.out.sentFrames.Load(),
		State: stateNames[c.sess.state.Load()],
	}
	if c.user != nil {
		info.User = c.user.Name
	}
	if c.vhost != nil {
		info.VHost = c.vhost.Name
	}
	if name, ok := c.clientCaps["connection_name"].(string); ok {
		info.UserProvidedName = name
	}
	info.PeerHost, info.PeerPort = hostPort(c.nc.RemoteAddr())
	info.Host, info.Port = hostPort(c.nc.LocalAddr())
	if tc, ok := c.nc.(*tls.Conn); ok {
		cs := tc.ConnectionState()
		info.TLS, info.TLSVersion, info.TLSCipher = true, tls.VersionName(cs.Version), tls.CipherSuiteName(cs.CipherSuite)
		if len(cs.PeerCertificates) > 0 {
			info.PeerCertSubject = cs.PeerCertificates[0].Subject.String()
		}
	}
	if reason, _ := c.srv.broker.Alarm(); reason != "" && info.State == "blocked" {
		info.Blocked, info.BlockedReasons = true, []string{reason}
	}
	c.sess.retiredMu.Lock()
	total := c.sess.retired
	c.sess.retiredMu.Unlock()
	for _, ch := range c.Channels() {
		info.Channels++
		info.Unacked += ch.Unacked
		info.Unconfirmed += ch.Unconfirmed
		total.Add(ch.Stats)
	}
	info.MessagesPublished, info.MessagesConfirmed = total.Publish, total.Confirm
	info.MessagesDelivered, info.MessagesDeliveredNoAck = total.Deliver, total.DeliverNoAck
	info.MessagesGet, info.MessagesGetNoAck, info.MessagesGetEmpty = total.Get, total.GetNoAck, total.GetEmpty
	info.MessagesAcknowledged, info.MessagesRedelivered = total.Ack, total.Redeliver
	info.MessagesUnroutable = total.ReturnUnroutable + total.DropUnroutable
	return info
}

func hostPort(a net.Addr) (string, int) {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.IP.String(), t.Port
	}
	return a.String(), 0
}

// Channels implements broker.Session.
func (c *connection) Channels() []broker.ChannelInfo {
	p := c.sess.chans.Load()
	if p == nil {
		return nil
	}
	out := make([]broker.ChannelInfo, 0, len(*p))
	for _, ch := range *p {
		out = append(out, ch.info())
	}
	return out
}

// name is RabbitMQ's channel name: "<connection name> (N)".
func (ch *channel) name() string { return ch.conn.name + " (" + itoa(int(ch.id)) + ")" }

func (ch *channel) info() broker.ChannelInfo {
	ci := broker.ChannelInfo{Number: int(ch.id), Name: ch.name(), State: "running", Transactional: ch.stats.tx.Load()}
	if ch.conn.user != nil {
		ci.User = ch.conn.user.Name
	}
	ci.VHost = ch.vhost.Name
	if t := ch.stats.tracker.Load(); t != nil {
		ci.Confirm = true
		t.mu.Lock()
		ci.Unconfirmed = len(t.states) - t.head
		ci.Stats.Confirm = t.confirmed
		t.mu.Unlock()
	}
	ch.mu.Lock()
	ci.PrefetchCount, ci.GlobalPrefetchCount = int(ch.prefetchConsumer), int(ch.prefetchChannel)
	ci.Unacked = ch.unacked.len()
	ci.Consumers = len(ch.consumers)
	if !ch.flowActive {
		ci.State = "flow"
	}
	if ch.released {
		ci.State = "closing"
	}
	confirm := ci.Stats.Confirm
	ci.Stats = ch.stats.MessageStats
	ci.Stats.Confirm = confirm
	ch.mu.Unlock()
	return ci
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}

// Close implements broker.Session: connection.close 320 CONNECTION_FORCED
// with reason as its text.
func (c *connection) Close(reason string) { c.forceClose(reason) }
