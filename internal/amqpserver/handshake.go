package amqpserver

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"time"

	"github.com/warren-mq/warren/internal/amqp091"
	"github.com/warren-mq/warren/internal/broker"
)

// nextHandshakeMethod reads frames until a method frame on channel 0.
func (c *connection) nextHandshakeMethod() (amqp091.Method, error) {
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			return nil, err
		}
		switch {
		case f.Type == amqp091.FrameHeartbeat && f.Channel == 0:
			continue
		case f.Type != amqp091.FrameMethod || f.Channel != 0:
			return nil, amqp091.NewError(amqp091.UnexpectedFrame, "%s", amqp091.FrameOctets(f.Type, f.Payload))
		}
		return amqp091.DecodeMethod(f.Payload)
	}
}

// handshake runs connection.start ... connection.open-ok.
func (c *connection) handshake() error {
	cfg := c.srv.cfg
	c.out.sendMethod(0, &amqp091.ConnectionStart{
		VersionMajor: 0, VersionMinor: 9,
		ServerProperties: c.serverProperties(),
		Mechanisms:       c.mechanisms(),
		Locales:          "en_US",
	})
	m, err := c.nextHandshakeMethod()
	if err != nil {
		return err
	}
	startOk, ok := m.(*amqp091.ConnectionStartOk)
	if !ok {
		return amqp091.NewError(amqp091.CommandInvalid, "expected 'connection.start_ok', got '%s'", m.Name())
	}
	c.clientCaps = startOk.ClientProperties
	if name, ok := startOk.ClientProperties["connection_name"].(string); ok && name != "" {
		c.log = c.log.With("client_name", name)
	}
	if err := c.authenticate(startOk); err != nil {
		return err
	}

	c.out.sendMethod(0, &amqp091.ConnectionTune{ChannelMax: cfg.ChannelMax, FrameMax: cfg.FrameMax, Heartbeat: cfg.Heartbeat})
	if m, err = c.nextHandshakeMethod(); err != nil {
		return err
	}
	tuneOk, ok := m.(*amqp091.ConnectionTuneOk)
	if !ok {
		return amqp091.NewError(amqp091.CommandInvalid, "expected 'connection.tune_ok', got '%s'", m.Name())
	}
	if err := c.applyTune(tuneOk); err != nil {
		return err
	}
	c.tuned = true

	if m, err = c.nextHandshakeMethod(); err != nil {
		return err
	}
	open, ok := m.(*amqp091.ConnectionOpen)
	if !ok {
		return withMethod(amqp091.NewError(amqp091.CommandInvalid, "expected 'connection.open', got '%s'", m.Name()), m)
	}
	v, ok := c.srv.broker.VHost(open.VirtualHost)
	if !ok {
		return withMethod(amqp091.NewError(amqp091.NotAllowed, "vhost %s not found", open.VirtualHost), m)
	}
	c.access = c.srv.broker.Access(c.user.Name, v.Name)
	if !c.access.VHostAllowed() {
		c.log.Warn("login refused", "user", c.user.Name, "vhost", v.Name, "reason", "no permissions on the vhost")
		return withMethod(amqp091.NewError(amqp091.NotAllowed, "access to vhost '%s' refused for user '%s'", v.Name, c.user.Name), m)
	}
	if err := c.srv.admit(c, c.user.Name, v.Name); err != nil {
		c.log.Warn("login refused", "user", c.user.Name, "vhost", v.Name, "reason", err.Text)
		return withMethod(err, m)
	}
	if _, ok := c.srv.broker.VHost(v.Name); !ok { // deleted while we looked
		return withMethod(amqp091.NewError(amqp091.NotAllowed, "vhost %s not found", open.VirtualHost), m)
	}
	if _, ok := c.srv.broker.User(c.user.Name); !ok {
		return withMethod(amqp091.NewError(amqp091.ConnectionForced, "user '%s' is deleted", c.user.Name), m)
	}
	c.vhost = v
	c.log = c.log.With("vhost", v.Name, "user", c.user.Name)
	c.out.sendMethod(0, &amqp091.ConnectionOpenOk{})
	c.register(startOk.Mechanism)
	c.logOpened(startOk.Mechanism)
	// From now on the deadline is per read: two heartbeat intervals of silence.
	hb := time.Duration(c.heartbeat.Load())
	c.rd.timeout.Store(int64(2 * hb)) // 0 when heartbeats are off
	if hb == 0 {
		_ = c.nc.SetReadDeadline(time.Time{})
	}
	return nil
}

func (c *connection) applyTune(t *amqp091.ConnectionTuneOk) error {
	cfg := c.srv.cfg
	frameMax := t.FrameMax
	if frameMax < amqp091.FrameMinSize {
		return amqp091.NewError(amqp091.NotAllowed, "frame_max=%d < %d min size", frameMax, amqp091.FrameMinSize)
	}
	if frameMax > cfg.FrameMax {
		return amqp091.NewError(amqp091.NotAllowed, "frame_max=%d > %d max size", frameMax, cfg.FrameMax)
	}
	channelMax := t.ChannelMax
	// RabbitMQ refuses 0 ("no limit") and anything above what it proposed.
	if channelMax == 0 || channelMax > cfg.ChannelMax {
		return amqp091.NewError(amqp091.NotAllowed, "channel_max=%d out of range 1..%d", channelMax, cfg.ChannelMax)
	}
	c.frameMax, c.channelMax = frameMax, channelMax
	c.fr.SetMaxFrameSize(frameMax)
	c.heartbeat.Store(int64(time.Duration(t.Heartbeat) * time.Second))
	return nil
}

// authenticate checks SASL PLAIN or AMQPLAIN credentials.
func (c *connection) authenticate(s *amqp091.ConnectionStartOk) error {
	var user, pass string
	switch s.Mechanism {
	case "PLAIN":
		parts := bytes.SplitN([]byte(s.Response), []byte{0}, 3)
		if len(parts) != 3 {
			return errors.New("malformed PLAIN response")
		}
		if len(parts[0]) != 0 {
			// An authorization identity asks to act as another user. RabbitMQ
			// 3.10 takes the response as invalid, even when it names the user
			// itself, and so does Warren: nobody logs in as guest to be admin.
			c.log.Warn("login refused", "user", string(parts[1]), "mechanism", s.Mechanism, "reason", "PLAIN authorization identity given", "authzid", string(parts[0]))
			return errors.New("PLAIN response with an authorization identity")
		}
		user, pass = string(parts[1]), string(parts[2])
	case "AMQPLAIN":
		// The response is a field table without its length prefix.
		b := binary.BigEndian.AppendUint32(nil, uint32(len(s.Response)))
		t, _, err := amqp091.DecodeTable(append(b, s.Response...))
		if err != nil {
			return errors.New("malformed AMQPLAIN response")
		}
		user, _ = t["LOGIN"].(string)
		pass, _ = t["PASSWORD"].(string)
	case "EXTERNAL":
		if c.offersExternal() {
			return c.authenticateExternal()
		}
		fallthrough
	default:
		return amqp091.NewError(amqp091.CommandInvalid, "unknown authentication mechanism '%s'", s.Mechanism)
	}
	u, err := c.srv.broker.Authenticate(user, pass, isLoopback(c.nc.RemoteAddr()))
	if err != nil {
		reason := err.Error()
		var ae *broker.AuthError
		if errors.As(err, &ae) {
			reason = ae.Reason
		}
		wait := c.srv.auth.refused(c.nc.RemoteAddr())
		c.log.Warn("login refused", "user", user, "mechanism", s.Mechanism, "reason", reason, "delay", wait.Round(time.Millisecond))
		c.pause(wait)
		return c.refuse(s.Mechanism)
	}
	c.user = u
	return nil
}

// pause waits d, but no longer than the handshake may last, and not through
// a shutdown.
func (c *connection) pause(d time.Duration) {
	if d = min(d, time.Until(c.handshakeDeadline)); d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-c.forcedCh:
	}
}

// refuse answers a failed login as RabbitMQ does: connection.close 403 to
// clients that advertise authentication_failure_close, a plain close otherwise.
func (c *connection) refuse(mechanism string) error {
	if c.clientCap("authentication_failure_close") {
		return loginRefused{err: amqp091.NewError(amqp091.AccessRefused, "Login was refused using authentication mechanism %s. For details see the broker logfile.", mechanism)}
	}
	return errLoginRefused
}

// loginRefused is the one handshake error answered before tuning.
type loginRefused struct{ err *amqp091.Error }

func (e loginRefused) Error() string { return e.err.Error() }

var errLoginRefused = errors.New("login refused")

// withMethod records the method that caused err, for connection.close and channel.close.
func withMethod(err *amqp091.Error, m amqp091.Method) *amqp091.Error {
	err.ClassID, err.MethodID = m.ClassID(), m.MethodID()
	return err
}

func isLoopback(a net.Addr) bool {
	tcp, ok := a.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}
