package amqpserver

import (
	"context"
	"net"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warren-mq/warren/internal/amqp091"
	"github.com/warren-mq/warren/internal/broker"
)

// TestFlowSlowConsumerBoundsOutbox: a no-ack consumer that stops reading must
// not make Warren buffer everything for it: deliveries stop at the outbox
// limit and the rest waits in the queue.
func TestFlowSlowConsumerBoundsOutbox(t *testing.T) {
	b, err := broker.New(broker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	const limit = 64 << 10
	s := New(b, Config{OutboxLimit: limit})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	addr := l.Addr().String()

	ch, err := dial(t, addr).Channel()
	if err != nil {
		t.Fatal(err)
	}
	q, err := ch.QueueDeclare("", false, true, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	stalled := rawConsumer(t, addr, q.Name) // consumes without acks, then never reads
	defer stalled.Close()
	pch, err := dial(t, addr).Channel()
	if err != nil {
		t.Fatal(err)
	}
	const n, size = 1500, 32 << 10 // 48 MiB, far beyond socket buffers and the outbox
	body := make([]byte, size)
	if err := pch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	confirms := pch.NotifyPublish(make(chan amqp.Confirmation, n))
	for i := 0; i < n; i++ {
		if err := pch.Publish("", q.Name, false, false, amqp.Publishing{Body: body}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < n; i++ {
		select {
		case c := <-confirms:
			if !c.Ack {
				t.Fatalf("publish %d nacked", c.DeliveryTag)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("only %d of %d publishes confirmed", i, n)
		}
	}
	v, _ := b.VHost("/")
	queue, _ := v.Queue(q.Name)
	ready, _ := queue.Counts()
	if ready == 0 {
		t.Fatal("every message left the queue although the consumer reads nothing")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if got := c.out.size.Load(); got > int64(c.out.hardCap) {
			t.Fatalf("outbox of %s holds %d bytes, over its hard cap %d", c.name, got, c.out.hardCap)
		}
	}
	t.Logf("%d of %d messages still queued", ready, n)
}

// rawConn is a minimal AMQP client over the codec, for tests and benchmarks
// that must control the socket (not read it, or not allocate).
type rawConn struct {
	t  testing.TB
	nc net.Conn
	fr *amqp091.FrameReader
}

func (c *rawConn) send(ch uint16, m amqp091.Method) {
	if _, err := c.nc.Write(amqp091.AppendMethodFrame(nil, ch, m)); err != nil {
		c.t.Fatal(err)
	}
}

func (c *rawConn) expect(name string) {
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			c.t.Fatalf("waiting for %s: %v", name, err)
		}
		if f.Type != amqp091.FrameMethod {
			continue
		}
		m, err := amqp091.DecodeMethod(f.Payload)
		if err != nil || m.Name() != name {
			c.t.Fatalf("got %v (%v), want %s", m, err, name)
		}
		return
	}
}

// dialRaw opens a connection and channel 1; readBuf, if not 0, shrinks the
// socket's receive buffer.
func dialRaw(t testing.TB, addr string, readBuf int) *rawConn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if readBuf > 0 {
		_ = nc.(*net.TCPConn).SetReadBuffer(readBuf)
	}
	c := &rawConn{t: t, nc: nc, fr: amqp091.NewFrameReader(nc, 0)}
	if _, err := nc.Write(amqp091.ProtocolHeader); err != nil {
		t.Fatal(err)
	}
	c.expect("connection.start")
	c.send(0, &amqp091.ConnectionStartOk{Mechanism: "PLAIN", Response: "\x00guest\x00guest", Locale: "en_US"})
	c.expect("connection.tune")
	c.send(0, &amqp091.ConnectionTuneOk{ChannelMax: 2047, FrameMax: 131072})
	c.send(0, &amqp091.ConnectionOpen{VirtualHost: "/"})
	c.expect("connection.open-ok")
	c.send(1, &amqp091.ChannelOpen{})
	c.expect("channel.open-ok")
	return c
}

// rawConsumer opens a connection with a tiny receive buffer, starts a no-ack
// consumer on queue and returns the socket, which the caller never reads.
func rawConsumer(t *testing.T, addr, queue string) net.Conn {
	t.Helper()
	c := dialRaw(t, addr, 4096)
	c.send(1, &amqp091.BasicConsume{Queue: queue, NoAck: true})
	c.expect("basic.consume-ok")
	return c.nc
}
