package amqpserver

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warren-mq/warren/internal/amqp091"
	"github.com/warren-mq/warren/internal/broker"
	"github.com/warren-mq/warren/internal/testcerts"
)

// tlsFixture is a broker with an AMQPS listener and a CA for its certificates.
type tlsFixture struct {
	ca     *testcerts.CA
	server *testcerts.Issued
	tls    *TLS
	broker *broker.Broker
	addr   string // AMQPS
	plain  string // plain AMQP on the same server
}

func startTLS(t *testing.T, cfg TLSConfig) *tlsFixture {
	t.Helper()
	return startTLSServer(t, cfg, Config{})
}

func startTLSServer(t testing.TB, cfg TLSConfig, scfg Config) *tlsFixture {
	t.Helper()
	dir := t.TempDir()
	ca, err := testcerts.NewCA(dir, "Warren test CA")
	if err != nil {
		t.Fatal(err)
	}
	srvCert, err := ca.Server("server", "server-1")
	if err != nil {
		t.Fatal(err)
	}
	cfg.CertFile, cfg.KeyFile = srvCert.CertFile, srvCert.KeyFile
	if cfg.VerifyPeer {
		cfg.CAFile = ca.CertFile
	}
	tc, err := NewTLS(cfg)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("WARREN_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	b, err := broker.New(broker.Config{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	s := New(b, scfg)
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{}, 2)
	go func() { _ = s.ServeTLS(tl, tc); done <- struct{}{} }()
	go func() { _ = s.Serve(pl); done <- struct{}{} }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
		<-done
		<-done
		_ = b.Close()
	})
	return &tlsFixture{ca: ca, server: srvCert, tls: tc, broker: b, addr: tl.Addr().String(), plain: pl.Addr().String()}
}

// clientTLS trusts the fixture's CA and presents certs.
func (f *tlsFixture) clientTLS(certs ...tls.Certificate) *tls.Config {
	return &tls.Config{RootCAs: f.ca.Pool, ServerName: "localhost", Certificates: certs}
}

func (f *tlsFixture) client(t *testing.T, cn string, sans ...string) tls.Certificate {
	t.Helper()
	c, err := f.ca.Client("client-"+cn, cn, sans...)
	if err != nil {
		t.Fatal(err)
	}
	return c.Cert
}

// roundTrip declares a queue, publishes to it and gets the message back.
func roundTrip(t *testing.T, c *amqp.Connection, body string) {
	t.Helper()
	ch, err := c.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.PublishWithContext(context.Background(), "", q.Name, false, false, amqp.Publishing{Body: []byte(body)}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		m, ok, err := ch.Get(q.Name, true)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			if string(m.Body) != body {
				t.Fatalf("got %q, want %q", m.Body, body)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("message not delivered within 10 s")
		}
		time.Sleep(time.Millisecond)
	}
}

func dialTLS(t *testing.T, addr string, cfg amqp.Config, url string) (*amqp.Connection, error) {
	t.Helper()
	c, err := amqp.DialConfig(url, cfg)
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, err
}

func TestTLSPlainLoginWithoutClientCert(t *testing.T) {
	f := startTLS(t, TLSConfig{})
	c, err := dialTLS(t, f.addr, amqp.Config{TLSClientConfig: f.clientTLS()}, "amqps://guest:guest@"+f.addr+"/")
	if err != nil {
		t.Fatal(err)
	}
	if v := c.ConnectionState().Version; v != tls.VersionTLS13 {
		t.Errorf("TLS version %x, want TLS 1.3", v)
	}
	roundTrip(t, c, "over tls")
}

func TestTLSVersionsBelow12Refused(t *testing.T) {
	f := startTLS(t, TLSConfig{})
	for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11} {
		cfg := f.clientTLS()
		cfg.MinVersion, cfg.MaxVersion = v, v
		conn, err := tls.Dial("tcp", f.addr, cfg)
		if err == nil {
			conn.Close()
			t.Errorf("TLS version %x accepted", v)
		}
	}
	cfg := f.clientTLS()
	cfg.MaxVersion = tls.VersionTLS12
	conn, err := tls.Dial("tcp", f.addr, cfg)
	if err != nil {
		t.Fatalf("TLS 1.2: %v", err)
	}
	conn.Close()
}

// startMechanisms reads connection.start's mechanisms from addr.
func startMechanisms(t *testing.T, addr string, cfg *tls.Config) string {
	t.Helper()
	var nc net.Conn
	var err error
	if cfg != nil {
		nc, err = tls.Dial("tcp", addr, cfg)
	} else {
		nc, err = net.Dial("tcp", addr)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := nc.Write(amqp091.ProtocolHeader); err != nil {
		t.Fatal(err)
	}
	f, err := amqp091.NewFrameReader(nc, amqp091.FrameMinSize).ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	m, err := amqp091.DecodeMethod(f.Payload)
	if err != nil {
		t.Fatal(err)
	}
	start, ok := m.(*amqp091.ConnectionStart)
	if !ok {
		t.Fatalf("got %s, want connection.start", m.Name())
	}
	return start.Mechanisms
}

func TestTLSExternalAdvertisedOnlyWhenVerifyingPeers(t *testing.T) {
	f := startTLS(t, TLSConfig{VerifyPeer: true})
	if got := startMechanisms(t, f.addr, f.clientTLS()); !strings.Contains(got, "EXTERNAL") {
		t.Errorf("verify_peer listener offers %q, want EXTERNAL among them", got)
	}
	if got := startMechanisms(t, f.plain, nil); got != "AMQPLAIN PLAIN" {
		t.Errorf("plain listener offers %q, want AMQPLAIN PLAIN", got)
	}
	n := startTLS(t, TLSConfig{})
	if got := startMechanisms(t, n.addr, n.clientTLS()); got != "AMQPLAIN PLAIN" {
		t.Errorf("verify_none listener offers %q, want AMQPLAIN PLAIN", got)
	}
	// EXTERNAL where it is not offered is an unknown mechanism, as in RabbitMQ.
	_, err := dialTLS(t, n.addr, amqp.Config{TLSClientConfig: n.clientTLS(n.client(t, "guest")), SASL: []amqp.Authentication{&amqp.ExternalAuth{}}}, "amqps://"+n.addr+"/")
	if err == nil {
		t.Fatal("EXTERNAL login accepted on a verify_none listener")
	}
}

func TestTLSExternalLoginAsCommonName(t *testing.T) {
	f := startTLS(t, TLSConfig{VerifyPeer: true})
	// A user without a password: EXTERNAL is its only way in.
	addUser(t, f.broker, "cert-user", "")
	ext := []amqp.Authentication{&amqp.ExternalAuth{}}
	c, err := dialTLS(t, f.addr, amqp.Config{TLSClientConfig: f.clientTLS(f.client(t, "cert-user")), SASL: ext}, "amqps://"+f.addr+"/")
	if err != nil {
		t.Fatalf("EXTERNAL login as cert-user: %v", err)
	}
	roundTrip(t, c, "external")

	// A certificate naming no user is refused with RabbitMQ's 403.
	_, err = dialTLS(t, f.addr, amqp.Config{TLSClientConfig: f.clientTLS(f.client(t, "nobody-here")), SASL: ext}, "amqps://"+f.addr+"/")
	var ae *amqp.Error
	if !errors.As(err, &ae) || ae.Code != amqp.AccessRefused {
		t.Fatalf("unknown CN: got %v, want 403 ACCESS_REFUSED for EXTERNAL", err)
	}
	// Without a certificate there is nothing to log in as.
	_, err = dialTLS(t, f.addr, amqp.Config{TLSClientConfig: f.clientTLS(), SASL: ext}, "amqps://"+f.addr+"/")
	if !errors.As(err, &ae) || ae.Code != amqp.AccessRefused {
		t.Fatalf("no certificate: got %v, want 403 ACCESS_REFUSED", err)
	}
	// PLAIN still works on the same listener, with or without a certificate.
	c, err = dialTLS(t, f.addr, amqp.Config{TLSClientConfig: f.clientTLS(f.client(t, "cert-user"))}, "amqps://guest:guest@"+f.addr+"/")
	if err != nil {
		t.Fatalf("PLAIN with a client certificate: %v", err)
	}
	roundTrip(t, c, "plain")
	// cert-user has no password: PLAIN cannot log in as it, even with its certificate.
	_, err = dialTLS(t, f.addr, amqp.Config{TLSClientConfig: f.clientTLS(f.client(t, "cert-user"))}, "amqps://cert-user:@"+f.addr+"/")
	if !errors.As(err, &ae) || ae.Code != amqp.AccessRefused {
		t.Fatalf("PLAIN as a password-less user: got %v, want 403 ACCESS_REFUSED", err)
	}
}

func TestTLSExternalLoginFromSubjectAlternativeName(t *testing.T) {
	f := startTLS(t, TLSConfig{VerifyPeer: true, LoginFrom: "subject_alternative_name"})
	addUser(t, f.broker, "san-user", "")
	ext := []amqp.Authentication{&amqp.ExternalAuth{}}
	c, err := dialTLS(t, f.addr, amqp.Config{TLSClientConfig: f.clientTLS(f.client(t, "not-a-user", "san-user", "second-san")), SASL: ext}, "amqps://"+f.addr+"/")
	if err != nil {
		t.Fatalf("EXTERNAL login from SAN: %v", err)
	}
	roundTrip(t, c, "san")
	if _, err := dialTLS(t, f.addr, amqp.Config{TLSClientConfig: f.clientTLS(f.client(t, "san-user")), SASL: ext}, "amqps://"+f.addr+"/"); err == nil {
		t.Fatal("a certificate without a SAN logged in by its CN")
	}
}

func TestTLSFailIfNoPeerCert(t *testing.T) {
	f := startTLS(t, TLSConfig{VerifyPeer: true, FailIfNoPeerCert: true})
	if _, err := dialTLS(t, f.addr, amqp.Config{TLSClientConfig: f.clientTLS()}, "amqps://guest:guest@"+f.addr+"/"); err == nil {
		t.Fatal("client without a certificate accepted with fail_if_no_peer_cert")
	}
	// A certificate from another CA is refused as well.
	other, err := testcerts.NewCA(t.TempDir(), "Other CA")
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := other.Client("stranger", "guest")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dialTLS(t, f.addr, amqp.Config{TLSClientConfig: f.clientTLS(stranger.Cert)}, "amqps://guest:guest@"+f.addr+"/"); err == nil {
		t.Fatal("certificate from an unknown CA accepted")
	}
	c, err := dialTLS(t, f.addr, amqp.Config{TLSClientConfig: f.clientTLS(f.client(t, "guest"))}, "amqps://guest:guest@"+f.addr+"/")
	if err != nil {
		t.Fatalf("client with a certificate: %v", err)
	}
	roundTrip(t, c, "mutual tls")
}

func TestTLSReloadServesNewCertificateKeepsConnections(t *testing.T) {
	f := startTLS(t, TLSConfig{})
	old, err := dialTLS(t, f.addr, amqp.Config{TLSClientConfig: f.clientTLS()}, "amqps://guest:guest@"+f.addr+"/")
	if err != nil {
		t.Fatal(err)
	}
	if cn := old.ConnectionState().PeerCertificates[0].Subject.CommonName; cn != "server-1" {
		t.Fatalf("server certificate %q, want server-1", cn)
	}
	// The same files, rewritten with a new certificate and key.
	if _, err := f.ca.Server("server", "server-2"); err != nil {
		t.Fatal(err)
	}
	if err := f.tls.Reload(); err != nil {
		t.Fatal(err)
	}
	c, err := dialTLS(t, f.addr, amqp.Config{TLSClientConfig: f.clientTLS()}, "amqps://guest:guest@"+f.addr+"/")
	if err != nil {
		t.Fatal(err)
	}
	if cn := c.ConnectionState().PeerCertificates[0].Subject.CommonName; cn != "server-2" {
		t.Fatalf("after reload the server presents %q, want server-2", cn)
	}
	roundTrip(t, old, "still here")

	// A broken file is refused and the current certificate stays.
	if err := os.WriteFile(f.server.KeyFile, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := f.tls.Reload(); err == nil {
		t.Fatal("reload with a broken key succeeded")
	}
	c, err = dialTLS(t, f.addr, amqp.Config{TLSClientConfig: f.clientTLS()}, "amqps://guest:guest@"+f.addr+"/")
	if err != nil {
		t.Fatal(err)
	}
	if cn := c.ConnectionState().PeerCertificates[0].Subject.CommonName; cn != "server-2" {
		t.Fatalf("after a failed reload the server presents %q, want server-2", cn)
	}
	roundTrip(t, old, "and still")
}

func TestTLSConfigErrors(t *testing.T) {
	dir := t.TempDir()
	ca, err := testcerts.NewCA(dir, "CA")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ca.Server("server", "s")
	if err != nil {
		t.Fatal(err)
	}
	for name, cfg := range map[string]TLSConfig{
		"missing cert":       {CertFile: dir + "/nope.pem", KeyFile: srv.KeyFile},
		"verify without CA":  {CertFile: srv.CertFile, KeyFile: srv.KeyFile, VerifyPeer: true},
		"CA file not PEM":    {CertFile: srv.CertFile, KeyFile: srv.KeyFile, CAFile: srv.KeyFile + "x", VerifyPeer: true},
		"bad login-from":     {CertFile: srv.CertFile, KeyFile: srv.KeyFile, LoginFrom: "distinguished_name"},
		"key of another one": {CertFile: ca.CertFile, KeyFile: srv.KeyFile},
	} {
		if _, err := NewTLS(cfg); err == nil {
			t.Errorf("%s: NewTLS succeeded", name)
		}
	}
}

func TestTLSSilentClientDroppedAtHandshakeDeadline(t *testing.T) {
	for _, hello := range []bool{false, true} {
		// The deadline covers the TLS handshake too: give a client that does
		// the TLS handshake time for it on a loaded machine.
		timeout := 100 * time.Millisecond
		if hello {
			timeout = 2 * time.Second
		}
		f := startTLSServer(t, TLSConfig{}, Config{HandshakeTimeout: timeout})
		nc, err := net.Dial("tcp", f.addr)
		if err != nil {
			t.Fatal(err)
		}
		if hello {
			// A TLS connection that never sends the AMQP protocol header.
			tc := tls.Client(nc, f.clientTLS())
			if err := tc.Handshake(); err != nil {
				t.Fatal(err)
			}
			nc = tc
		}
		_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		var b [1]byte
		_, err = nc.Read(b[:])
		var ne net.Error
		if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
			t.Fatalf("hello=%v: silent client still connected 10 s after a %v handshake deadline (read: %v)", hello, timeout, err)
		}
		nc.Close()
	}
}

// BenchmarkTLSPublishConsume compares one amqp091-go publisher and no-ack
// consumer over plain TCP and over TLS 1.3 (1 KiB bodies), to show what
// encryption costs per message on the same server.
func BenchmarkTLSPublishConsume(b *testing.B) {
	for _, mode := range []string{"plain", "tls"} {
		b.Run(mode, func(b *testing.B) {
			f := startTLSServer(b, TLSConfig{}, Config{})
			url, cfg := "amqp://guest:guest@"+f.plain+"/", amqp.Config{}
			if mode == "tls" {
				url, cfg = "amqps://guest:guest@"+f.addr+"/", amqp.Config{TLSClientConfig: f.clientTLS()}
			}
			c, err := amqp.DialConfig(url, cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			ch, err := c.Channel()
			if err != nil {
				b.Fatal(err)
			}
			q, err := ch.QueueDeclare("", false, true, true, false, nil)
			if err != nil {
				b.Fatal(err)
			}
			cch, err := c.Channel()
			if err != nil {
				b.Fatal(err)
			}
			ds, err := cch.Consume(q.Name, "", true, false, false, false, nil)
			if err != nil {
				b.Fatal(err)
			}
			body := make([]byte, 1024)
			b.SetBytes(int64(len(body)))
			b.ResetTimer()
			done := make(chan struct{})
			go func() {
				defer close(done)
				for range b.N {
					<-ds
				}
			}()
			for range b.N {
				if err := ch.PublishWithContext(context.Background(), "", q.Name, false, false, amqp.Publishing{Body: body}); err != nil {
					b.Fatal(err)
				}
			}
			<-done
		})
	}
}
