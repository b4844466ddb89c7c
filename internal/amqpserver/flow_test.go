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

// rawConsumer opens a connection with a tiny receive buffer, starts a no-ack
// consumer on queue and returns the socket, which the caller never reads.
func rawConsumer(t *testing.T, addr, queue string) net.Conn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = nc.(*net.TCPConn).SetReadBuffer(4096)
	fr := amqp091.NewFrameReader(nc, 0)
	send := func(ch uint16, m amqp091.Method) {
		if _, err := nc.Write(amqp091.AppendMethodFrame(nil, ch, m)); err != nil {
			t.Fatal(err)
		}
	}
	expect := func(name string) {
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				t.Fatalf("waiting for %s: %v", name, err)
			}
			if f.Type != amqp091.FrameMethod {
				continue
			}
			m, err := amqp091.DecodeMethod(f.Payload)
			if err != nil || m.Name() != name {
				t.Fatalf("got %v (%v), want %s", m, err, name)
			}
			return
		}
	}
	if _, err := nc.Write(amqp091.ProtocolHeader); err != nil {
		t.Fatal(err)
	}
	expect("connection.start")
	send(0, &amqp091.ConnectionStartOk{Mechanism: "PLAIN", Response: "\x00guest\x00guest", Locale: "en_US"})
	expect("connection.tune")
	send(0, &amqp091.ConnectionTuneOk{ChannelMax: 2047, FrameMax: 131072})
	send(0, &amqp091.ConnectionOpen{VirtualHost: "/"})
	expect("connection.open-ok")
	send(1, &amqp091.ChannelOpen{})
	expect("channel.open-ok")
	send(1, &amqp091.BasicConsume{Queue: queue, NoAck: true})
	expect("basic.consume-ok")
	return nc
}
