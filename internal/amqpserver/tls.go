package amqpserver

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warren-mq/warren/internal/broker"
	"github.com/warren-mq/warren/internal/netserve"
)

// TLSConfig configures an AMQPS listener, with RabbitMQ's ssl_options names
// in the comments.
type TLSConfig struct {
	// CertFile and KeyFile are the PEM server certificate chain and its
	// unencrypted key (certfile, keyfile).
	CertFile, KeyFile string
	// CAFile is the PEM bundle of CAs client certificates are verified
	// against (cacertfile); required with VerifyPeer.
	CAFile string
	// VerifyPeer asks clients for a certificate and verifies one if sent
	// (verify = verify_peer); it also makes the listener offer SASL EXTERNAL.
	VerifyPeer bool
	// FailIfNoPeerCert refuses clients without a certificate (fail_if_no_peer_cert).
	FailIfNoPeerCert bool
	// LoginFrom is the certificate field that names the user for EXTERNAL:
	// "common_name" (the default) or "subject_alternative_name"
	// (RabbitMQ's ssl_cert_login_from).
	LoginFrom string
	// LoginSANType is the kind of subject alternative name used with
	// LoginFrom "subject_alternative_name": "dns" (default), "email", "uri"
	// or "ip"; the first of that kind is the user name.
	LoginSANType string
}

// TLS is an AMQPS listener's certificate state. The files are read by NewTLS
// and again by each Reload; handshakes read the current state through
// GetConfigForClient, so a reload affects new connections only and open ones
// keep their session.
type TLS struct {
	cfg    TLSConfig
	cur    atomic.Pointer[tls.Config]
	listen *tls.Config // handed to tls.Server; defers to cur
}

// NewTLS loads cfg's files.
func NewTLS(cfg TLSConfig) (*TLS, error) {
	switch cfg.LoginFrom {
	case "":
		cfg.LoginFrom = "common_name"
	case "common_name", "subject_alternative_name":
	default:
		return nil, fmt.Errorf("tls: login from %q: want common_name or subject_alternative_name", cfg.LoginFrom)
	}
	switch cfg.LoginSANType {
	case "":
		cfg.LoginSANType = "dns"
	case "dns", "email", "uri", "ip":
	default:
		return nil, fmt.Errorf("tls: SAN type %q: want dns, email, uri or ip", cfg.LoginSANType)
	}
	if cfg.VerifyPeer && cfg.CAFile == "" {
		return nil, errors.New("tls: verify_peer needs a CA bundle")
	}
	t := &TLS{cfg: cfg}
	t.listen = &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return t.cur.Load(), nil
		},
	}
	if err := t.Reload(); err != nil {
		return nil, err
	}
	return t, nil
}

// Reload reads the certificate, key and CA bundle again and uses them for new
// connections. On error nothing changes.
func (t *TLS) Reload() error {
	cert, err := tls.LoadX509KeyPair(t.cfg.CertFile, t.cfg.KeyFile)
	if err != nil {
		return fmt.Errorf("tls: certificate %s, key %s: %w", t.cfg.CertFile, t.cfg.KeyFile, err)
	}
	c := &tls.Config{
		MinVersion:   tls.VersionTLS12, // TLS 1.2 and 1.3 only
		MaxVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.NoClientCert,
	}
	if t.cfg.CAFile != "" {
		pem, err := os.ReadFile(t.cfg.CAFile)
		if err != nil {
			return fmt.Errorf("tls: CA bundle: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("tls: CA bundle %s: no PEM certificate in it", t.cfg.CAFile)
		}
		c.ClientCAs = pool
	}
	if t.cfg.VerifyPeer {
		c.ClientAuth = tls.VerifyClientCertIfGiven
		if t.cfg.FailIfNoPeerCert {
			c.ClientAuth = tls.RequireAndVerifyClientCert
		}
	}
	t.cur.Store(c)
	return nil
}

// ServerConfig is the listener configuration that follows reloads, for
// another protocol's TLS listener (Kafka's) to share the certificate.
func (t *TLS) ServerConfig() *tls.Config { return t.listen }

// Leaf is the server certificate new connections get, for logs.
func (t *TLS) Leaf() *x509.Certificate {
	return t.cur.Load().Certificates[0].Leaf // set by LoadX509KeyPair
}

// ServeTLS accepts AMQPS connections on l until Shutdown, as Serve does for
// plain ones.
func (s *Server) ServeTLS(l net.Listener, t *TLS) error {
	return s.Serve(&tlsListener{Listener: l, t: t, log: s.log, timeout: s.cfg.HandshakeTimeout})
}

type tlsListener struct {
	net.Listener
	t       *TLS
	log     *slog.Logger
	timeout time.Duration    // the handshake timeout, also for the TLS handshake's writes
	failLog netserve.RateLog // failed handshakes: a scanner must not flood the log
}

func (l *tlsListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &tlsConn{Conn: tls.Server(nc, l.t.listen), l: l}, nil
}

// tlsConn is an accepted TLS connection that logs why its handshake failed
// (the AMQP layer only sees a read error) and knows its listener's settings.
type tlsConn struct {
	*tls.Conn
	l    *tlsListener
	once sync.Once
}

func (c *tlsConn) Read(p []byte) (int, error) {
	var herr error
	c.once.Do(func() {
		// The caller has set the read deadline (the handshake deadline); the
		// handshake also writes, to a client that may not read.
		_ = c.Conn.SetWriteDeadline(time.Now().Add(c.l.timeout))
		herr = c.Conn.Handshake()
		_ = c.Conn.SetWriteDeadline(time.Time{})
		if herr != nil {
			if n, ok := c.l.failLog.Allow(); ok {
				c.l.log.Warn("TLS handshake failed", "connection", c.RemoteAddr().String()+" -> "+c.LocalAddr().String(),
					"err", herr, "failures_since_last_log", n)
			}
		}
	})
	if herr != nil {
		return 0, herr
	}
	return c.Conn.Read(p)
}

// mechanisms lists the SASL mechanisms offered in connection.start.
func (c *connection) mechanisms() string {
	if c.offersExternal() {
		return "AMQPLAIN EXTERNAL PLAIN"
	}
	return "AMQPLAIN PLAIN"
}

// offersExternal reports whether the connection came through a TLS listener
// that verifies client certificates: only there can EXTERNAL name a user.
func (c *connection) offersExternal() bool {
	tc, ok := c.nc.(*tlsConn)
	return ok && tc.l.t.cfg.VerifyPeer
}

// authenticateExternal logs in as the user the verified client certificate
// names (SASL EXTERNAL; the response is ignored, as RabbitMQ does).
func (c *connection) authenticateExternal() error {
	tc := c.nc.(*tlsConn)
	st := tc.ConnectionState()
	if len(st.VerifiedChains) == 0 || len(st.PeerCertificates) == 0 {
		c.log.Warn("login refused", "mechanism", "EXTERNAL", "reason", "no client certificate")
		return c.refuse("EXTERNAL")
	}
	name, err := tc.l.t.loginName(st.PeerCertificates[0])
	if err != nil {
		c.log.Warn("login refused", "mechanism", "EXTERNAL", "reason", err.Error())
		return c.refuse("EXTERNAL")
	}
	u, err := c.srv.broker.AuthenticateExternal(name, isLoopback(c.nc.RemoteAddr()))
	if err != nil {
		reason := err.Error()
		var ae *broker.AuthError
		if errors.As(err, &ae) {
			reason = ae.Reason
		}
		c.log.Warn("login refused", "user", name, "mechanism", "EXTERNAL", "reason", reason)
		return c.refuse("EXTERNAL")
	}
	c.user = u
	return nil
}

// loginName is the user name a client certificate stands for.
func (t *TLS) loginName(cert *x509.Certificate) (string, error) {
	if t.cfg.LoginFrom == "common_name" {
		if cert.Subject.CommonName == "" {
			return "", errors.New("client certificate has no common name")
		}
		return cert.Subject.CommonName, nil
	}
	var sans []string
	switch t.cfg.LoginSANType {
	case "dns":
		sans = cert.DNSNames
	case "email":
		sans = cert.EmailAddresses
	case "uri":
		for _, u := range cert.URIs {
			sans = append(sans, u.String())
		}
	case "ip":
		for _, ip := range cert.IPAddresses {
			sans = append(sans, ip.String())
		}
	}
	if len(sans) == 0 {
		return "", fmt.Errorf("client certificate has no %s subject alternative name", t.cfg.LoginSANType)
	}
	return sans[0], nil
}
