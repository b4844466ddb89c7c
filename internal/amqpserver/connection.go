package amqpserver

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warren-mq/warren/internal/amqp091"
	"github.com/warren-mq/warren/internal/broker"
)

// Version is Warren's version as advertised to clients.
const Version = "0.1.0"

// connection is one client connection. Its fields are owned by the reader
// goroutine (serve) unless noted.
type connection struct {
	srv  *Server
	nc   net.Conn
	rd   *deadlineReader
	fr   *amqp091.FrameReader
	out  *outbox
	name string
	log  *slog.Logger

	vhost  *broker.VHost
	user   *broker.User
	access *broker.Access // the user's permissions on vhost, cached

	// Guarded by srv.mu (access.go): counted for limits from open-ok on.
	counted             bool
	openUser, openVHost string
	openChans           int
	frameMax            uint32
	channelMax          uint16
	heartbeat           atomic.Int64 // negotiated interval (time.Duration), read by the writer
	clientCaps          amqp091.Table

	channels     map[uint16]*channel
	ackPending   []*channel // channels with collected acks, flushed by the reader
	lastCh       *channel   // the channel of the previous frame: most frames repeat it
	confirmMu    sync.Mutex
	confirmDirty []*channel // channels with confirms due, flushed by reader or writer
	closing      bool       // connection.close sent, awaiting close-ok
	forced       atomic.Bool
	forcedCh     chan struct{} // closed by forceClose
	writerDone   chan struct{}
	stopWriter   chan struct{}
	tuned        bool // connection.tune-ok accepted
	peerCloses   bool // the client asked to close: let it close the socket first
	// handshakeDeadline is accept time plus the handshake timeout: the one
	// read deadline until connection.open, however slowly bytes trickle in.
	handshakeDeadline time.Time
	// What logs.go says when the connection ends.
	accepted  bool // the client sent the protocol header
	endLevel  slog.Level
	endReason string

	sess       sessionState // the management view (session.go)
	statsDirty []*channel   // channels with counters to flush
}

// deadlineReader sets a read deadline before every read, so a silent peer is
// dropped after the timeout (two heartbeat intervals). It also wakes the
// reader for periodic work on the connection (tick at tickAt, see
// acktimeout.go) without ending the read.
type deadlineReader struct {
	nc      net.Conn
	timeout atomic.Int64 // time.Duration; 0 = none

	// Owned by the reader goroutine.
	tick         func()
	tickAt       int64 // unix nanoseconds; 0 = no tick due
	tickDeadline bool  // the socket's deadline is a tick's, not the heartbeat's
	bytes        atomic.Uint64
}

// recheckWindow is how long a read whose deadline passed looks once more
// for bytes already in the socket.
const recheckWindow = 5 * time.Millisecond

func (d *deadlineReader) Read(p []byte) (int, error) {
	t := time.Duration(d.timeout.Load())
	var now time.Time
	if t > 0 || d.tickAt != 0 {
		now = time.Now()
	}
	var heartbeat time.Time
	if t > 0 {
		heartbeat = now.Add(t)
	}
	for {
		if d.tickAt != 0 && now.UnixNano() >= d.tickAt {
			d.tickAt = 0
			d.tick() // may arm the next tick
		}
		deadline, ticking := heartbeat, false
		if d.tickAt != 0 && (t <= 0 || d.tickAt < heartbeat.UnixNano()) {
			deadline, ticking = time.Unix(0, d.tickAt), true
		}
		if t > 0 || ticking || d.tickDeadline {
			if err := d.nc.SetReadDeadline(deadline); err != nil {
				return 0, err
			}
			d.tickDeadline = ticking
		}
		n, err := d.nc.Read(p)
		if n == 0 && ticking && isTimeout(err) {
			now = time.Now()
			continue // the tick is due; the heartbeat deadline stays as it was
		}
		return d.recheck(p, n, err, t)
	}
}

// recheck looks once more at a socket whose heartbeat deadline passed.
func (d *deadlineReader) recheck(p []byte, n int, err error, t time.Duration) (int, error) {
	if n == 0 && t > 0 && isTimeout(err) {
		// The deadline also passes while the whole process is stopped (SIGSTOP,
		// a paused VM), with the peer's heartbeats already waiting in the
		// socket; a read whose deadline passed returns without looking at them.
		// Look once more with a fresh deadline before calling the peer dead.
		if d.nc.SetReadDeadline(time.Now().Add(recheckWindow)) == nil {
			n, err = d.nc.Read(p)
		}
	}
	if n > 0 {
		d.bytes.Add(uint64(n))
	}
	return n, err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func newConnection(s *Server, nc net.Conn) *connection {
	c := &connection{
		srv:        s,
		nc:         nc,
		rd:         &deadlineReader{nc: nc},
		out:        newOutbox(s.cfg.OutboxLimit),
		name:       nc.RemoteAddr().String() + " -> " + nc.LocalAddr().String(),
		channels:   map[uint16]*channel{},
		writerDone: make(chan struct{}),
		forcedCh:   make(chan struct{}),
		stopWriter: make(chan struct{}),

		handshakeDeadline: time.Now().Add(s.cfg.HandshakeTimeout),
	}
	c.sess.connectedAt = time.Now()
	c.log = s.log.With("connection", c.name)
	c.rd.tick = c.ackTick
	c.out.beforeWrite = c.flushConfirms
	// Before authentication a client gets only the protocol's minimum frame size.
	c.fr = amqp091.NewFrameReader(c.rd, amqp091.FrameMinSize)
	return c
}

// serve runs the connection until it ends.
func (c *connection) serve() {
	defer c.teardown()
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("panic while handling connection", "panic", r, "stack", string(debug.Stack()))
			c.sendClose(amqp091.NewError(amqp091.InternalError, "%v", r))
			c.closing = true
		}
	}()
	_ = c.nc.SetReadDeadline(c.handshakeDeadline)
	if err := c.fr.ReadProtocolHeader(); err != nil {
		close(c.writerDone) // no writer was started: teardown need not wait for one
		if errors.Is(err, amqp091.ErrBadProtocolHeader) {
			_ = c.nc.SetWriteDeadline(c.handshakeDeadline)
			_, _ = c.nc.Write(amqp091.ProtocolHeader)
		}
		return
	}
	c.logAccepted()
	go func() {
		defer close(c.writerDone)
		hb := func() time.Duration { return time.Duration(c.heartbeat.Load()) }
		if err := c.out.run(c.nc, hb, c.stopWriter); err != nil {
			c.nc.Close() // wakes the reader
		}
	}()
	if err := c.handshake(); err != nil {
		// Like RabbitMQ, say nothing about errors before tuning is done (a failed
		// login is answered only to clients that ask for it): just close.
		var ae *amqp091.Error
		var refused loginRefused
		if errors.As(err, &refused) {
			c.sendClose(refused.err)
		} else if errors.As(err, &ae) && c.tuned {
			c.sendClose(ae)
		} else if isClosedErr(err) {
			c.endWith(slog.LevelWarn, "client unexpectedly closed TCP connection")
		} else {
			c.log.Debug("handshake failed", "err", err)
			c.endWith(slog.LevelWarn, "handshake failed: "+err.Error())
		}
		return
	}
	c.loop()
}

func isClosedErr(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrUnexpectedEOF)
}

// loop reads and handles frames until the connection ends.
func (c *connection) loop() {
	for {
		c.out.waitRoom()
		if c.fr.Buffered() == 0 {
			c.flushAcks()
			c.flushConfirms()
			c.flushStats()
		}
		f, err := c.fr.ReadFrame()
		if err != nil {
			var ae *amqp091.Error
			if errors.As(err, &ae) && !c.closing {
				c.sendClose(ae) // framing is lost: close without waiting for close-ok
			} else if !c.closing && !c.forced.Load() {
				if isTimeout(err) {
					c.endWith(slog.LevelWarn, fmt.Sprintf("missed heartbeats from client, timeout: %ds", time.Duration(c.heartbeat.Load())/time.Second))
				} else {
					c.endWith(slog.LevelWarn, "client unexpectedly closed TCP connection")
				}
			}
			return
		}
		c.sess.frames++
		done, err := c.handleFrame(f)
		if err != nil {
			var ae *amqp091.Error
			if !errors.As(err, &ae) {
				ae = amqp091.NewError(amqp091.InternalError, "%v", err)
			}
			c.srv.uncount(c) // before the client hears of it: it may connect again at once
			c.sendClose(ae)
			c.closing = true
			c.rd.timeout.Store(int64(closeOkTimeout))
			continue
		}
		if done {
			return
		}
	}
}

// closeOkTimeout is how long Warren waits for connection.close-ok.
const closeOkTimeout = 3 * time.Second

// handleFrame handles one frame; done is true when the connection must end.
func (c *connection) handleFrame(f amqp091.Frame) (done bool, err error) {
	if c.closing {
		if f.Type == amqp091.FrameMethod && f.Channel == 0 {
			if cls, mth, ok := amqp091.MethodIDs(f.Payload); ok && cls == 10 && (mth == 51 || mth == 50) {
				if mth == 50 {
					c.out.sendMethod(0, &amqp091.ConnectionCloseOk{})
				}
				return true, nil
			}
		}
		return false, nil // after connection.close everything else is discarded
	}
	switch f.Type {
	case amqp091.FrameHeartbeat:
		if f.Channel != 0 {
			return false, unexpectedFrame(f)
		}
		return false, nil
	case amqp091.FrameMethod:
		if len(f.Payload) < 4 {
			return false, amqp091.NewError(amqp091.FrameError, "%s: unknown_frame", amqp091.FrameOctets(f.Type, f.Payload))
		}
		if f.Channel == 0 {
			return c.handleConnectionMethod(f.Payload)
		}
		ch := c.channel(f.Channel)
		if ch == nil {
			return false, c.openChannel(f.Channel, f.Payload)
		}
		return false, c.channelResult(ch, ch.handleMethod(f.Payload))
	case amqp091.FrameHeader, amqp091.FrameBody:
		ch := c.channel(f.Channel)
		if ch == nil {
			if f.Channel == 0 {
				return false, unexpectedFrame(f)
			}
			return false, contentWithoutMethod()
		}
		return false, c.channelResult(ch, ch.handleContent(f))
	}
	return false, amqp091.NewError(amqp091.FrameError, "unknown frame type %d", f.Type)
}

// unexpectedFrame is RabbitMQ's 505 for a frame that has no place where it came.
func unexpectedFrame(f amqp091.Frame) error {
	return amqp091.NewError(amqp091.UnexpectedFrame, "%s", amqp091.FrameOctets(f.Type, f.Payload))
}

// channelResult turns a channel-level error into channel.close, and passes
// connection-level errors up.
func (c *connection) channelResult(ch *channel, err error) error {
	if err == nil {
		return nil
	}
	var ae *amqp091.Error
	if !errors.As(err, &ae) {
		c.log.Error("channel failed", "channel", ch.id, "err", err)
		return amqp091.NewError(amqp091.InternalError, "%v", err)
	}
	if ae.Hard() {
		return ae
	}
	c.logChannelError(ch.id, ae)
	ch.fail(ae)
	return nil
}

func (c *connection) handleConnectionMethod(payload []byte) (bool, error) {
	m, err := amqp091.DecodeMethod(payload)
	if err != nil {
		return false, err
	}
	switch m := m.(type) {
	case *amqp091.ConnectionClose:
		c.closeChannels()
		c.out.sendMethod(0, &amqp091.ConnectionCloseOk{})
		c.peerCloses = true
		return true, nil
	case *amqp091.ConnectionCloseOk:
		return true, nil
	case *amqp091.ConnectionBlocked, *amqp091.ConnectionUnblocked:
		return false, nil
	case *amqp091.ConnectionUpdateSecret:
		c.out.sendMethod(0, &amqp091.ConnectionUpdateSecretOk{})
		return false, nil
	default:
		return false, withMethod(amqp091.NewError(amqp091.ChannelError, "unexpected method in connection state running"), m)
	}
}

func (c *connection) openChannel(id uint16, payload []byte) error {
	m, err := amqp091.DecodeMethod(payload)
	if err != nil {
		return err
	}
	if _, ok := m.(*amqp091.ChannelOpen); !ok {
		return withMethod(amqp091.NewError(amqp091.ChannelError, "expected 'channel.open'"), m)
	}
	// As in RabbitMQ, channel_max bounds how many channels are open, not their numbers.
	if n := len(c.channels); n >= int(c.channelMax) {
		return amqp091.NewError(amqp091.NotAllowed, "number of channels opened (%d) has reached the negotiated channel_max (%d)", n, c.channelMax)
	}
	if err := c.srv.openChannelCounted(c); err != nil {
		return withMethod(err, m)
	}
	ch := newChannel(c, id)
	c.channels[id] = ch
	c.srv.broker.CountChannel(true)
	c.publishChannels()
	c.out.sendMethod(id, &amqp091.ChannelOpenOk{})
	return nil
}

// sendClose sends connection.close for err.
func (c *connection) sendClose(err *amqp091.Error) {
	c.sess.state.Store(stateClosing)
	if err.Code != amqp091.AccessRefused { // a refused login is logged as such
		c.logConnectionError(err)
	} else {
		c.endWith(slog.LevelInfo, err.Text)
	}
	c.out.sendMethod(0, &amqp091.ConnectionClose{ReplyCode: err.Code, ReplyText: err.Text, FailingClassID: err.ClassID, FailingMethodID: err.MethodID})
}

// forceClose is called from another goroutine (server shutdown).
func (c *connection) forceClose(reason string) {
	if c.forced.Swap(true) {
		return
	}
	close(c.forcedCh)
	// c.log is the reader's; c.name is set for good before any goroutine starts.
	c.srv.log.Warn(fmt.Sprintf("Error on AMQP connection (%s): operation none caused a connection exception connection_forced: %q", c.name, reason),
		"connection", c.name, "reason", reason)
	c.sess.state.Store(stateClosing)
	c.out.sendMethod(0, &amqp091.ConnectionClose{ReplyCode: amqp091.ConnectionForced, ReplyText: "CONNECTION_FORCED - " + reason})
	time.AfterFunc(closeOkTimeout, func() { c.nc.Close() })
}

// closeChannels releases every channel: consumers cancelled, unacked messages requeued.
func (c *connection) closeChannels() {
	for id, ch := range c.channels {
		ch.release()
		c.dropChannel(id)
	}
}

// teardown ends the connection: channels released, exclusive queues deleted,
// outbox flushed, socket closed.
func (c *connection) teardown() {
	c.logClosed()
	if c.sess.unregister != nil {
		c.sess.unregister()
	}
	c.closeChannels()
	c.srv.uncount(c)
	if c.vhost != nil {
		c.vhost.OwnerClosed(c)
	}
	c.out.close()
	select {
	case <-c.writerDone:
	case <-time.After(closeOkTimeout):
	}
	if c.peerCloses {
		// The client closes the socket once it has read close-ok; closing first
		// could make it see EOF before close-ok. Wait a bounded time for that.
		_ = c.nc.SetReadDeadline(time.Now().Add(closeOkTimeout))
		_, _ = io.Copy(io.Discard, c.nc)
	}
	c.nc.Close()
}

// flushAcks hands every channel's collected acks to their queues.
func (c *connection) flushAcks() {
	for _, ch := range c.ackPending {
		ch.acksQueued = false
		ch.flushAcks()
	}
	clear(c.ackPending)
	c.ackPending = c.ackPending[:0]
}

// channel returns the open channel id, or nil.
func (c *connection) channel(id uint16) *channel {
	if ch := c.lastCh; ch != nil && ch.id == id {
		return ch
	}
	ch := c.channels[id]
	if ch != nil {
		c.lastCh = ch
	}
	return ch
}

// dropChannel forgets a closed channel.
func (c *connection) dropChannel(id uint16) {
	if ch, ok := c.channels[id]; ok {
		c.srv.closeChannelCounted(c)
		c.srv.broker.CountChannel(false)
		c.retireStats(ch)
	}
	delete(c.channels, id)
	c.publishChannels()
	if c.lastCh != nil && c.lastCh.id == id {
		c.lastCh = nil
	}
}

// confirmsDue notes that ch has confirms to send. The reader flushes them when
// it has handled what it read, so confirms coalesce; from any other goroutine
// (the store's) the writer is woken to flush them.
func (c *connection) confirmsDue(ch *channel, onReader bool) {
	c.confirmMu.Lock()
	if !ch.confirmDue {
		ch.confirmDue = true
		c.confirmDirty = append(c.confirmDirty, ch)
	}
	c.confirmMu.Unlock()
	if !onReader {
		c.out.wake()
	}
}

// flushConfirms sends the due publisher confirms of every channel.
func (c *connection) flushConfirms() {
	c.confirmMu.Lock()
	defer c.confirmMu.Unlock()
	for _, ch := range c.confirmDirty {
		ch.confirmDue = false
		ch.confirms.flush(ch.id, c.out)
	}
	clear(c.confirmDirty)
	c.confirmDirty = c.confirmDirty[:0]
}

func (c *connection) serverProperties() amqp091.Table {
	return amqp091.Table{
		"product":      "Warren",
		"version":      Version,
		"platform":     "Go " + runtime.Version(),
		"copyright":    "Warren authors",
		"information":  "Warren, an AMQP 0-9-1 message broker",
		"cluster_name": "warren",
		"capabilities": amqp091.Table{
			"publisher_confirms":           true,
			"exchange_exchange_bindings":   true,
			"basic.nack":                   true,
			"consumer_cancel_notify":       true,
			"connection.blocked":           true,
			"per_consumer_qos":             true,
			"authentication_failure_close": true,
			"consumer_priorities":          true,
			"direct_reply_to":              true,
		},
	}
}

func (c *connection) clientCap(name string) bool {
	caps, _ := c.clientCaps["capabilities"].(amqp091.Table)
	v, _ := caps[name].(bool)
	return v
}

func (c *connection) String() string { return fmt.Sprintf("connection %s", c.name) }
