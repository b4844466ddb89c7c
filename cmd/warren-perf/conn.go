package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/warren-mq/warren/internal/amqp091"
)

// defaultFrameMax is what warren-perf asks for when the broker sets no limit.
const defaultFrameMax = 131072

// conn is one AMQP connection of the load generator. Setup (handshake,
// channel.open, declarations, qos, consume) runs synchronously through call.
// Afterwards a producer or consumer owns it: one goroutine reads frames through
// fr, and writes go straight to the socket in large batches, so there is no
// goroutine hop or lock per message.
type conn struct {
	nc       net.Conn
	src      *socketReader
	fr       *amqp091.FrameReader
	frameMax uint32
	wbuf     []byte // encodes setup methods
	name     string
	events   *events
	blocked  atomic.Bool // the broker sent connection.blocked and not yet unblocked
}

// socketReader is what the FrameReader reads from. It runs a hook before each
// socket read, which is when the reader has handled everything it had, so a
// consumer flushes its batched acks there; and it notes when the data arrived,
// so every message in one read gets the same receive timestamp without a clock
// call per message.
type socketReader struct {
	nc     net.Conn
	before func() error
	now    int64 // UnixNano after the last read returned
}

func (r *socketReader) Read(p []byte) (int, error) {
	if r.before != nil {
		if err := r.before(); err != nil {
			return 0, err
		}
	}
	n, err := r.nc.Read(p)
	r.now = time.Now().UnixNano()
	return n, err
}

// brokerClosed is a channel.close or connection.close sent by the broker.
type brokerClosed struct {
	channel bool
	err     *amqp091.Error
}

func (e *brokerClosed) Error() string {
	what := "connection"
	if e.channel {
		what = "channel"
	}
	s := what + " closed by broker: " + e.err.Error()
	if e.err.ClassID != 0 {
		s += fmt.Sprintf(" (class %d, method %d)", e.err.ClassID, e.err.MethodID)
	}
	return s
}

// errCloseOk ends a reader after the connection.close it sent was answered.
var errCloseOk = errors.New("connection closed")

// dial connects and runs the handshake: PLAIN authentication, the broker's
// frame_max, heartbeats off (the load generator never stays silent long and a
// heartbeat timer per connection would be noise), then connection.open.
func dial(u amqpURI, name string, ev *events, timeout time.Duration) (*conn, error) {
	nc, err := net.DialTimeout("tcp", u.addr, timeout)
	if err != nil {
		return nil, err
	}
	c := &conn{nc: nc, name: name, events: ev, src: &socketReader{nc: nc}}
	c.fr = amqp091.NewFrameReader(c.src, 0)
	if timeout > 0 {
		_ = nc.SetDeadline(time.Now().Add(timeout))
	}
	if err := c.handshake(u); err != nil {
		nc.Close()
		return nil, fmt.Errorf("%s: %w", u.addr, err)
	}
	_ = nc.SetDeadline(time.Time{})
	return c, nil
}

func (c *conn) handshake(u amqpURI) error {
	if _, err := c.nc.Write(amqp091.ProtocolHeader); err != nil {
		return err
	}
	m, err := c.readMethod(0)
	if err != nil {
		return fmt.Errorf("waiting for connection.start: %w", err)
	}
	start, ok := m.(*amqp091.ConnectionStart)
	if !ok {
		return fmt.Errorf("expected connection.start, got %s", m.Name())
	}
	if !slices.Contains(strings.Fields(start.Mechanisms), "PLAIN") {
		return fmt.Errorf("broker does not offer PLAIN authentication (offers %q)", start.Mechanisms)
	}
	if err := c.send(0, &amqp091.ConnectionStartOk{
		ClientProperties: clientProperties(c.name),
		Mechanism:        "PLAIN",
		Response:         "\x00" + u.user + "\x00" + u.password,
		Locale:           "en_US",
	}); err != nil {
		return err
	}
	if m, err = c.readMethod(0); err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("broker closed the connection after start-ok: login refused?")
		}
		return err
	}
	tune, ok := m.(*amqp091.ConnectionTune)
	if !ok {
		return fmt.Errorf("expected connection.tune, got %s", m.Name())
	}
	c.frameMax = tune.FrameMax
	if c.frameMax == 0 {
		c.frameMax = defaultFrameMax
	}
	if err := c.send(0, &amqp091.ConnectionTuneOk{ChannelMax: tune.ChannelMax, FrameMax: c.frameMax, Heartbeat: 0}); err != nil {
		return err
	}
	c.fr.SetMaxFrameSize(c.frameMax)
	if err := c.send(0, &amqp091.ConnectionOpen{VirtualHost: u.vhost}); err != nil {
		return err
	}
	if m, err = c.readMethod(0); err != nil {
		return err
	}
	if _, ok := m.(*amqp091.ConnectionOpenOk); !ok {
		return fmt.Errorf("expected connection.open-ok, got %s", m.Name())
	}
	return nil
}

func clientProperties(name string) amqp091.Table {
	return amqp091.Table{
		"product":         "warren-perf",
		"platform":        "Go",
		"connection_name": name,
		"capabilities": amqp091.Table{
			"publisher_confirms":           true,
			"basic.nack":                   true,
			"consumer_cancel_notify":       true,
			"connection.blocked":           true,
			"authentication_failure_close": true,
		},
	}
}

// send writes one method frame.
func (c *conn) send(channel uint16, m amqp091.Method) error {
	c.wbuf = amqp091.AppendMethodFrame(c.wbuf[:0], channel, m)
	_, err := c.nc.Write(c.wbuf)
	return err
}

// call sends a synchronous method and returns the broker's reply on the same
// channel. Only for setup: it decodes into freshly allocated structs.
func (c *conn) call(channel uint16, m amqp091.Method) (amqp091.Method, error) {
	if err := c.send(channel, m); err != nil {
		return nil, err
	}
	reply, err := c.readMethod(channel)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", m.Name(), err)
	}
	return reply, nil
}

// readMethod reads until a method frame for channel arrives. A connection.close,
// or a channel.close on channel, is answered and returned as *brokerClosed.
func (c *conn) readMethod(channel uint16) (amqp091.Method, error) {
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			return nil, err
		}
		if f.Type != amqp091.FrameMethod {
			continue // heartbeats; content is not expected during setup
		}
		if f.Channel == 0 {
			m, err := amqp091.DecodeMethod(f.Payload)
			if err != nil {
				return nil, err
			}
			if err := c.connectionMethod(m); err != nil {
				return nil, err
			}
			if channel == 0 {
				return m, nil
			}
			continue
		}
		if f.Channel != channel {
			continue
		}
		m, err := amqp091.DecodeMethod(f.Payload)
		if err != nil {
			return nil, err
		}
		if cl, ok := m.(*amqp091.ChannelClose); ok {
			_ = c.send(channel, &amqp091.ChannelCloseOk{})
			return nil, &brokerClosed{channel: true, err: &amqp091.Error{Code: cl.ReplyCode, Text: cl.ReplyText, ClassID: cl.FailingClassID, MethodID: cl.FailingMethodID}}
		}
		return m, nil
	}
}

// connectionMethod handles what the broker may send on channel 0 at any time.
func (c *conn) connectionMethod(m amqp091.Method) error {
	switch m := m.(type) {
	case *amqp091.ConnectionClose:
		_ = c.send(0, &amqp091.ConnectionCloseOk{})
		return &brokerClosed{err: &amqp091.Error{Code: m.ReplyCode, Text: m.ReplyText, ClassID: m.FailingClassID, MethodID: m.FailingMethodID}}
	case *amqp091.ConnectionCloseOk:
		return errCloseOk
	case *amqp091.ConnectionBlocked:
		if !c.blocked.Swap(true) {
			c.events.blocked.Add(1)
			c.events.notice("%s: connection blocked by broker: %s", c.name, m.Reason)
		}
	case *amqp091.ConnectionUnblocked:
		if c.blocked.Swap(false) {
			c.events.notice("%s: connection unblocked", c.name)
		}
	}
	return nil
}

// openChannel opens channel id.
func (c *conn) openChannel(id uint16) error {
	m, err := c.call(id, &amqp091.ChannelOpen{})
	if err != nil {
		return err
	}
	if _, ok := m.(*amqp091.ChannelOpenOk); !ok {
		return fmt.Errorf("expected channel.open-ok, got %s", m.Name())
	}
	return nil
}

// expect runs call and checks the reply's type.
func expect[T amqp091.Method](c *conn, channel uint16, m amqp091.Method) (T, error) {
	var zero T
	reply, err := c.call(channel, m)
	if err != nil {
		return zero, err
	}
	r, ok := reply.(T)
	if !ok {
		return zero, fmt.Errorf("%s: unexpected reply %s", m.Name(), reply.Name())
	}
	return r, nil
}

// closeSync closes a connection nobody else reads from: connection.close,
// wait (bounded) for close-ok, then the socket.
func (c *conn) closeSync(timeout time.Duration) {
	_ = c.nc.SetDeadline(time.Now().Add(timeout))
	if c.send(0, &amqp091.ConnectionClose{ReplyCode: amqp091.ReplySuccess, ReplyText: "bye"}) == nil {
		for {
			if _, err := c.readMethod(0); err != nil {
				break
			}
		}
	}
	c.nc.Close()
}

// closeAsync sends connection.close while the owner's reader keeps reading;
// that reader ends with errCloseOk when the broker answers. The caller waits
// for the reader (bounded) and then closes the socket.
func (c *conn) closeAsync() {
	var b []byte
	b = amqp091.AppendMethodFrame(b, 0, &amqp091.ConnectionClose{ReplyCode: amqp091.ReplySuccess, ReplyText: "bye"})
	_ = c.nc.SetWriteDeadline(time.Now().Add(2 * time.Second))
	_, _ = c.nc.Write(b)
}
