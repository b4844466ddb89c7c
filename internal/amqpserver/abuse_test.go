package amqpserver

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warren-mq/warren/internal/amqp091"
	"github.com/warren-mq/warren/internal/broker"
)

// logBuffer collects a server's log lines for a test to search.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuffer) logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

// checkFor polls fn until it holds or the timeout passes.
func checkFor(t *testing.T, timeout time.Duration, what string, fn func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !fn() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, timeout)
		}
		time.Sleep(5 * time.Millisecond) // polling interval
	}
}

func (s *Server) connCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// emfileListener fails its first fails accepts with EMFILE, as accept4 does
// when the process is out of file descriptors.
type emfileListener struct {
	net.Listener
	fails atomic.Int32
}

func (l *emfileListener) Accept() (net.Conn, error) {
	if l.fails.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

func TestServerAcceptErrorsRetried(t *testing.T) {
	b, err := broker.New(broker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	var logs logBuffer
	s := New(b, Config{Logger: logs.logger()})
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &emfileListener{Listener: tl}
	l.fails.Store(5)
	served := make(chan error, 1)
	go func() { served <- s.Serve(l) }()
	defer func() {
		_ = s.Shutdown(t.Context())
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve = %v, want ErrServerClosed", err)
		}
	}()
	c, err := amqp.Dial("amqp://guest:guest@" + tl.Addr().String() + "/")
	if err != nil {
		t.Fatalf("dial after EMFILE accepts: %v", err)
	}
	c.Close()
	if n := strings.Count(logs.String(), "accepting connections failed"); n != 1 {
		t.Errorf("accept failures logged %d times, want once (rate-limited):\n%s", n, logs.String())
	}
	select {
	case err := <-served:
		t.Fatalf("Serve ended: %v", err)
	default:
	}
}

func TestServerMaxConnectionsRefusesExtra(t *testing.T) {
	s, _, addr := startServerWith(t, broker.Config{}, Config{MaxConnections: 2}, "")
	a, _ := dial(t, addr), dial(t, addr)
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := nc.Write([]byte("AMQP\x00\x00\x09\x01")); err != nil && !isClosedErr(err) && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatal(err)
	}
	if n, err := nc.Read(make([]byte, 64)); n != 0 || !(isClosedErr(err) || errors.Is(err, syscall.ECONNRESET)) {
		t.Fatalf("third connection read %d bytes, %v: want it closed at once", n, err)
	}
	a.Close()
	checkFor(t, 10*time.Second, "a slot is free again", func() bool { return s.connCount() < 2 })
	dial(t, addr)
}

// TestServerHandshakeDeadlineWholeHandshake: a client that sends a byte now
// and then is dropped at the handshake deadline, not kept while it trickles.
func TestServerHandshakeDeadlineWholeHandshake(t *testing.T) {
	_, _, addr := startServerWith(t, broker.Config{}, Config{HandshakeTimeout: 300 * time.Millisecond}, "")
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	closed := make(chan struct{})
	go func() { defer close(closed); _, _ = io.Copy(io.Discard, nc) }()
	// The header, then a start-ok one byte at a time: 200 bytes at one per
	// 20 ms would take 4 s, far past the deadline, if each byte restarted it.
	msg := append([]byte("AMQP\x00\x00\x09\x01"), bytes.Repeat([]byte{1}, 200)...)
	for i, c := range msg {
		select {
		case <-closed:
			if i < len(msg)/2 {
				return
			}
			t.Fatalf("closed only after %d of %d bytes", i, len(msg))
		case <-time.After(20 * time.Millisecond): // the client's pace
		}
		if _, err := nc.Write([]byte{c}); err != nil {
			<-closed
			return
		}
	}
	t.Fatalf("still open after %d bytes sent one by one", len(msg))
}

// TestServerEarlyFailuresCloseAtOnce: connections that fail before the
// protocol header is accepted are closed without waiting for a writer that
// never started (which took closeOkTimeout, 3 s).
func TestServerEarlyFailuresCloseAtOnce(t *testing.T) {
	_, _, addr := startServerWith(t, broker.Config{}, Config{HandshakeTimeout: 200 * time.Millisecond}, "")
	for name, send := range map[string]string{"bad header": "HTTP/1.1", "silent": "", "partial header": "AMQP"} {
		t.Run(name, func(t *testing.T) {
			nc, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			if _, err := nc.Write([]byte(send)); err != nil {
				t.Fatal(err)
			}
			// Well under the handshake timeout plus closeOkTimeout.
			_ = nc.SetReadDeadline(time.Now().Add(closeOkTimeout - 500*time.Millisecond))
			got, err := io.ReadAll(nc)
			if err != nil {
				t.Fatalf("after %q: %v, want the socket closed", got, err)
			}
			if want := map[bool]string{true: "AMQP\x00\x00\x09\x01", false: ""}[name == "bad header"]; string(got) != want {
				t.Fatalf("server wrote %q, want %q", got, want)
			}
		})
	}
}

// plainAuth is SASL PLAIN with an authorization identity.
type plainAuth struct{ authzid, user, pass string }

func (a plainAuth) Mechanism() string { return "PLAIN" }
func (a plainAuth) Response() string  { return a.authzid + "\x00" + a.user + "\x00" + a.pass }

func TestServerAuthzidRefused(t *testing.T) {
	var logs logBuffer
	_, _, addr := startServerWith(t, broker.Config{}, Config{Logger: logs.logger()}, "")
	for _, authzid := range []string{"admin", "guest"} {
		cfg := amqp.Config{SASL: []amqp.Authentication{plainAuth{authzid, "guest", "guest"}}}
		if c, err := amqp.DialConfig("amqp://"+addr+"/", cfg); err == nil {
			c.Close()
			t.Fatalf("PLAIN with authzid %q logged in", authzid)
		}
	}
	if n := strings.Count(logs.String(), "PLAIN authorization identity given"); n != 2 {
		t.Fatalf("%d refusals logged with the reason, want 2:\n%s", n, logs.String())
	}
	cfg := amqp.Config{SASL: []amqp.Authentication{plainAuth{"", "guest", "guest"}}}
	c, err := amqp.DialConfig("amqp://"+addr+"/", cfg)
	if err != nil {
		t.Fatalf("PLAIN without authzid: %v", err)
	}
	c.Close()
}

func TestServerLoginRefusalReasonLogged(t *testing.T) {
	var logs logBuffer
	_, _, addr := startServerWith(t, broker.Config{}, Config{Logger: logs.logger()}, "")
	for _, u := range []string{"guest:wrong", "nobody:x"} {
		if c, err := amqp.Dial("amqp://" + u + "@" + addr + "/"); err == nil {
			c.Close()
			t.Fatalf("%s logged in", u)
		}
	}
	for _, want := range []string{`user=guest mechanism=PLAIN reason="bad password"`, `user=nobody mechanism=PLAIN reason="unknown user"`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
}

func TestServerAuthThrottlePerAddress(t *testing.T) {
	a := newAuthThrottle()
	now := time.Unix(1000, 0)
	a.now = func() time.Time { return now }
	one := &net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 1}
	for i := 0; i < authBurst; i++ {
		if d := a.refused(one); d != 0 {
			t.Fatalf("refusal %d delayed %v within the burst", i+1, d)
		}
	}
	var last time.Duration
	for i := 0; i < 20; i++ {
		d := a.refused(&net.TCPAddr{IP: net.ParseIP("::ffff:10.0.0.1"), Port: 2 + i})
		if d <= last && d != authMaxWait {
			t.Fatalf("refusal %d after the burst delayed %v, want more than %v", i, d, last)
		}
		if d > authMaxWait {
			t.Fatalf("delay %v over the cap %v", d, authMaxWait)
		}
		last = d
	}
	if d := a.refused(&net.TCPAddr{IP: net.IPv4(10, 0, 0, 2)}); d != 0 {
		t.Fatalf("another address delayed %v", d)
	}
	now = now.Add(time.Minute) // the bucket refills
	if d := a.refused(one); d != 0 {
		t.Fatalf("delayed %v after a quiet minute", d)
	}
	for i := 0; i < 3*authMaxAddrs; i++ {
		a.refused(&net.TCPAddr{IP: net.IPv4(11, byte(i>>16), byte(i>>8), byte(i))})
	}
	if n := len(a.addrs); n > authMaxAddrs {
		t.Fatalf("%d addresses tracked, want at most %d", n, authMaxAddrs)
	}
}

// TestServerBlockedPublisherGoneEndsConnection: a publisher parked by an
// alarm whose client goes away ends at once, alarm or not: after a FIN, also
// with more of its frames still unread in the socket, and after a RST.
func TestServerBlockedPublisherGoneEndsConnection(t *testing.T) {
	for name, unread := range map[string]int{"FIN": 0, "FIN behind unread frames": 32 << 10, "RST": -1} {
		t.Run(name, func(t *testing.T) {
			s, addr, _ := startLowDiskServer(t)
			var raw *net.TCPConn
			pub, err := amqp.DialConfig("amqp://guest:guest@"+addr+"/", amqp.Config{Dial: func(network, a string) (net.Conn, error) {
				c, err := net.Dial(network, a)
				raw, _ = c.(*net.TCPConn)
				return c, err
			}})
			if err != nil {
				t.Fatal(err)
			}
			defer pub.Close()
			publishBlocked(t, pub)
			if n := s.connCount(); n != 1 {
				t.Fatalf("%d connections, want 1", n)
			}
			switch {
			case unread > 0:
				// Heartbeat frames the parked reader does not read.
				if _, err := raw.Write(bytes.Repeat(amqp091.AppendHeartbeat(nil), unread/8)); err != nil {
					t.Fatal(err)
				}
			case unread < 0:
				_ = raw.SetLinger(0) // close sends RST
			}
			raw.Close()
			checkFor(t, 10*time.Second, "the blocked connection ends", func() bool { return s.connCount() == 0 })
		})
	}
}

// TestServerReadRechecksPassedDeadline: a read whose deadline passed while
// the process was stopped still gets the bytes that wait in the socket.
func TestServerReadRechecksPassedDeadline(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	client, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	if _, err := client.Write(amqp091.AppendHeartbeat(nil)); err != nil {
		t.Fatal(err)
	}
	// A 1 ns timeout has passed before the read starts, as a 2-heartbeat
	// timeout has when the process is resumed after a long SIGSTOP.
	d := &deadlineReader{nc: server}
	d.timeout.Store(1)
	var got []byte
	buf := make([]byte, 16)
	checkFor(t, 10*time.Second, "the heartbeat is read", func() bool {
		n, err := d.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil && !isTimeout(err) {
			t.Fatal(err)
		}
		return len(got) == len(amqp091.AppendHeartbeat(nil))
	})
	// With nothing in the socket the read still times out.
	if n, err := d.Read(buf); n != 0 || !isTimeout(err) {
		t.Fatalf("read %d, %v; want a timeout", n, err)
	}
}
