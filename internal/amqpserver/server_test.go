package amqpserver

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warren-mq/warren/internal/broker"
)

// startServer runs a server on 127.0.0.1:0 (or addr) for t and returns it with its address.
func startServer(t testing.TB, bcfg broker.Config, addr string) (*Server, *broker.Broker, string) {
	t.Helper()
	return startServerWith(t, bcfg, Config{}, addr)
}

// startServerWith is startServer with a server configuration.
func startServerWith(t testing.TB, bcfg broker.Config, cfg Config, addr string) (*Server, *broker.Broker, string) {
	t.Helper()
	b, err := broker.New(bcfg)
	if err != nil {
		t.Fatal(err)
	}
	s := New(b, cfg)
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
		<-done
	})
	return s, b, l.Addr().String()
}

func dial(t testing.TB, addr string) *amqp.Connection {
	t.Helper()
	c, err := amqp.Dial("amqp://guest:guest@" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func waitErr(t *testing.T, ch <-chan *amqp.Error) *amqp.Error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("no close notification within 10s")
		return nil
	}
}

func TestServerShutdownClosesConnectionsWith320(t *testing.T) {
	s, _, addr := startServer(t, broker.Config{}, "")
	c := dial(t, addr)
	closed := c.NotifyClose(make(chan *amqp.Error, 1))
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	err := waitErr(t, closed)
	if err == nil || err.Code != 320 || err.Reason != "CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'" {
		t.Fatalf("close = %v, want 320 CONNECTION_FORCED", err)
	}
	if _, err := amqp.Dial("amqp://guest:guest@" + addr + "/"); err == nil {
		t.Fatal("dial after shutdown succeeded")
	}
}

func TestServerPanicClosesOnlyThatConnectionWith541(t *testing.T) {
	s, _, addr := startServer(t, broker.Config{}, "")
	s.methodHook = func(name string) {
		if name == "queue.purge" {
			panic("injected fault")
		}
	}
	victim, bystander := dial(t, addr), dial(t, addr)
	closed := victim.NotifyClose(make(chan *amqp.Error, 1))
	ch, err := victim.Channel()
	if err != nil {
		t.Fatal(err)
	}
	q, err := ch.QueueDeclare("", false, true, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = ch.QueuePurge(q.Name, false)
	err2 := waitErr(t, closed)
	if err2 == nil || err2.Code != 541 || !strings.HasPrefix(err2.Reason, "INTERNAL_ERROR") {
		t.Fatalf("close = %v, want 541 INTERNAL_ERROR", err2)
	}
	// The broker and other connections carry on.
	bch, err := bystander.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bch.QueueDeclare("", false, true, true, false, nil); err != nil {
		t.Fatalf("bystander after panic: %v", err)
	}
	dial(t, addr)
}

func TestServerMemoryAlarmBlocksPublishers(t *testing.T) {
	_, b, addr := startServer(t, broker.Config{MemoryLimit: 64 << 10}, "")
	pub := dial(t, addr)
	blocked := pub.NotifyBlocked(make(chan amqp.Blocking, 4))
	ch, err := pub.Channel()
	if err != nil {
		t.Fatal(err)
	}
	q, err := ch.QueueDeclare("", false, true, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	body := make([]byte, 16<<10)
	for i := 0; i < 5; i++ { // 80 KiB > the 64 KiB limit
		if err := ch.Publish("", q.Name, false, false, amqp.Publishing{Body: body}); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case bl := <-blocked:
		if !bl.Active || bl.Reason != "low on memory" {
			t.Fatalf("blocking = %+v, want active, low on memory", bl)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no connection.blocked; broker holds %d bytes", b.MemoryUsed())
	}
	// Another connection drains the queue; the alarm clears and the publisher is unblocked.
	cch, err := dial(t, addr).Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cch.QueuePurge(q.Name, false); err != nil {
		t.Fatal(err)
	}
	select {
	case bl := <-blocked:
		if bl.Active {
			t.Fatalf("blocking = %+v, want unblocked", bl)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no connection.unblocked after the queue was purged")
	}
}

func TestServerGuestRefusedFromNonLoopback(t *testing.T) {
	ip := nonLoopbackIP()
	if ip == "" {
		t.Skip("no non-loopback IPv4 address on this machine")
	}
	_, b, addr := startServer(t, broker.Config{}, net.JoinHostPort(ip, "0"))
	// amqp091-go does not advertise authentication_failure_close, so Warren
	// closes the socket and the client reports its own 403.
	_, err := amqp.Dial("amqp://guest:guest@" + addr + "/")
	var ae *amqp.Error
	if !errors.As(err, &ae) || ae.Code != 403 {
		t.Fatalf("guest from %s: %v, want 403 ACCESS_REFUSED", ip, err)
	}
	// Another user may connect from anywhere.
	addUser(t, b, "app", "secret")
	c, err := amqp.Dial("amqp://app:secret@" + addr + "/")
	if err != nil {
		t.Fatalf("app from %s: %v", ip, err)
	}
	c.Close()
}

// addUser creates a user (no password if pass is "") with full permissions on "/".
func addUser(t *testing.T, b *broker.Broker, name, pass string) {
	t.Helper()
	if err := b.AddUser(name, pass); err != nil {
		t.Fatal(err)
	}
	if err := b.SetPermissions(name, "/", broker.Permission{Configure: ".*", Write: ".*", Read: ".*"}); err != nil {
		t.Fatal(err)
	}
}

func nonLoopbackIP() string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return ""
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			return n.IP.String()
		}
	}
	return ""
}

// startLowDiskServer runs a server whose disk alarm is set until the test
// stores more free space in the returned counter.
func startLowDiskServer(t *testing.T) (*Server, string, *atomic.Uint64) {
	t.Helper()
	free := new(atomic.Uint64)
	free.Store(10 << 20)
	s, _, addr := startServer(t, broker.Config{
		DiskFreeLimit: 50 << 20, DiskCheckInterval: 5 * time.Millisecond,
		FreeDisk: func() (uint64, error) { return free.Load(), nil },
	}, "")
	return s, addr, free
}

// publishBlocked publishes on pub while the disk alarm is set and waits for
// connection.blocked; the channel returned gets the later notifications.
func publishBlocked(t *testing.T, pub *amqp.Connection) <-chan amqp.Blocking {
	t.Helper()
	blocked := pub.NotifyBlocked(make(chan amqp.Blocking, 4))
	ch, err := pub.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Publish("", "nowhere", false, false, amqp.Publishing{Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	select {
	case bl := <-blocked:
		if !bl.Active || bl.Reason != "low on disk" {
			t.Fatalf("blocking = %+v, want active, low on disk", bl)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no connection.blocked while disk is low")
	}
	return blocked
}

func TestServerDiskAlarmBlocksPublishers(t *testing.T) {
	_, addr, free := startLowDiskServer(t)
	pub := dial(t, addr)
	blocked := publishBlocked(t, pub)
	free.Store(1 << 30)
	select {
	case bl := <-blocked:
		if bl.Active {
			t.Fatalf("blocking = %+v, want unblocked", bl)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no connection.unblocked after disk space returned")
	}
}
