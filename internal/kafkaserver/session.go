package kafkaserver

import (
	"crypto/tls"
	"net"

	"github.com/warren-mq/warren/internal/broker"
)

// A connection registers in the broker's session registry once it has a
// user (SASL done, or the anonymous user), so management lists Kafka
// connections beside AMQP ones. A Kafka connection has no channels; its
// "frames" are requests and responses.

// Info implements broker.Session.
func (c *conn) Info() broker.SessionInfo {
	info := broker.SessionInfo{
		Name: c.name, Protocol: "kafka",
		ConnectedAt: c.connectedAt, State: "running",
		RecvOct: c.recvBytes.Load(), SendOct: c.sendBytes.Load(),
		RecvCnt: c.recvReqs.Load(), SendCnt: c.sendResps.Load(),
		VHost: c.srv.cfg.VHost, User: c.userName(),
	}
	c.infoMu.Lock()
	info.AuthMechanism = c.mechanism
	props := map[string]any{}
	if c.clientID != "" {
		props["client_id"] = c.clientID
		info.UserProvidedName = c.clientID
	}
	if c.clientSoftware != "" {
		props["client_software"] = c.clientSoftware
	}
	c.infoMu.Unlock()
	info.ClientProperties = props
	info.PeerHost, info.PeerPort = hostPort(c.nc.RemoteAddr())
	info.Host, info.Port = hostPort(c.nc.LocalAddr())
	if tc, ok := c.nc.(*tls.Conn); ok {
		cs := tc.ConnectionState()
		info.TLS, info.TLSVersion, info.TLSCipher = true, tls.VersionName(cs.Version), tls.CipherSuiteName(cs.CipherSuite)
		if len(cs.PeerCertificates) > 0 {
			info.PeerCertSubject = cs.PeerCertificates[0].Subject.String()
		}
	}
	return info
}

// Channels implements broker.Session: Kafka has none.
func (c *conn) Channels() []broker.ChannelInfo { return nil }

func hostPort(a net.Addr) (string, int) {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.IP.String(), t.Port
	}
	return a.String(), 0
}
