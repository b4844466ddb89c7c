package kafkaserver

import (
	"errors"
	"fmt"

	"github.com/warren-mq/warren/internal/broker"
)

// Authentication. Warren serves SASL and plain clients on one listener: a
// client that starts with SaslHandshake authenticates as a Warren user
// (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512); one that does not acts as the
// configured anonymous user (Config.AnonymousUser, guest by default), which
// the broker's loopback rule restricts, so by default only local clients may
// skip SASL. A client the anonymous user is refused to must authenticate:
// until it has, it may send only ApiVersions and the SASL APIs, requests are
// limited to MaxUnauthRequestSize, and anything else closes the connection,
// as Kafka's SASL listener does.

// saslState is where a connection is in SASL.
type saslState struct {
	mechanism string // chosen by SaslHandshake; "" before
	raw       bool   // handshake v0: tokens come as bare frames
	done      bool   // authenticated by SASL
	scram     *scramState
}

// anonymous logs the connection in as the anonymous user when that user may
// connect from the client's address; otherwise it waits for SASL.
func (c *conn) anonymous() {
	name := c.srv.cfg.AnonymousUser
	if name == "none" {
		return
	}
	u, err := c.srv.broker.AuthenticateAnonymous(name, c.loopback)
	if err != nil {
		c.log.Debug("anonymous Kafka login not allowed, SASL required", "user", name, "reason", authReason(err))
		return
	}
	if err := c.login(u, "ANONYMOUS"); err != nil {
		c.log.Debug("anonymous Kafka login not allowed, SASL required", "user", name, "reason", err)
	}
}

func authReason(err error) string {
	var ae *broker.AuthError
	if errors.As(err, &ae) {
		return ae.Reason
	}
	return err.Error()
}

// login makes u the connection's user if u may use the Kafka vhost, and
// registers the session.
func (c *conn) login(u *broker.User, mechanism string) error {
	v, ok := c.srv.broker.VHost(c.srv.cfg.VHost)
	if !ok {
		return fmt.Errorf("vhost '%s' does not exist", c.srv.cfg.VHost)
	}
	acc := c.srv.broker.Access(u.Name, v.Name)
	if !acc.VHostAllowed() {
		return fmt.Errorf("access to vhost '%s' refused for user '%s'", v.Name, u.Name)
	}
	if c.unregister != nil {
		c.unregister()
		c.unregister = nil
	}
	c.vhost, c.access = v, acc
	c.infoMu.Lock()
	c.mechanism = mechanism
	c.infoMu.Unlock()
	c.user.Store(u)
	c.log = c.srv.log.With("connection", c.name, "protocol", "kafka", "vhost", v.Name, "user", u.Name)
	c.unregister = c.srv.broker.RegisterSession(c)
	if mechanism != "ANONYMOUS" {
		c.log.Info(fmt.Sprintf("Kafka connection (%s): user '%s' authenticated and granted access to vhost '%s'", c.name, u.Name, v.Name), "mechanism", mechanism)
	}
	return nil
}
