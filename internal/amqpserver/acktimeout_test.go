package amqpserver

import (
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warren-mq/warren/internal/broker"
)

// A queue's x-consumer-timeout, or a consumer-timeout policy (RabbitMQ
// 3.13), overrides the server's timeout; the lower of the two applies.
func TestAckTimeoutPerQueue(t *testing.T) {
	_, b, addr := startServerWith(t, broker.Config{}, Config{ConsumerTimeout: -1}, "")
	conn := dial(t, addr)
	for _, c := range []struct {
		name   string
		args   amqp.Table
		policy string
		want   string
	}{
		{name: "arg", args: amqp.Table{"x-consumer-timeout": int32(300)}, want: "Timeout value used: 300 ms."},
		{name: "policy", policy: `{"consumer-timeout":200}`, want: "Timeout value used: 200 ms."},
		{name: "both", args: amqp.Table{"x-consumer-timeout": int32(900)}, policy: `{"consumer-timeout":250}`, want: "Timeout value used: 250 ms."},
	} {
		ch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		q := "ack-timeout-" + c.name
		if _, err := ch.QueueDeclare(q, false, false, false, false, c.args); err != nil {
			t.Fatal(err)
		}
		if c.policy != "" {
			if err := b.SetPolicy(broker.Policy{VHost: "/", Name: q, Pattern: "^" + q + "$", Definition: json.RawMessage(c.policy)}); err != nil {
				t.Fatal(err)
			}
		}
		if err := ch.Publish("", q, false, false, amqp.Publishing{Body: []byte("m")}); err != nil {
			t.Fatal(err)
		}
		closed := ch.NotifyClose(make(chan *amqp.Error, 1))
		if _, err := ch.Consume(q, "", false, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
		select {
		case e := <-closed:
			if e == nil || e.Code != 406 || !strings.Contains(e.Reason, c.want) {
				t.Fatalf("%s: closed with %v, want 406 ... %s", c.name, e, c.want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: channel not closed", c.name)
		}
	}
	if conn.IsClosed() {
		t.Fatal("connection closed")
	}
}

// Ticks wake a read without ending it, and without pushing back the
// heartbeat deadline: a silent peer still times out, data still arrives.
func TestAckTimeoutTicksKeepHeartbeatDeadline(t *testing.T) {
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
	d := &deadlineReader{nc: server}
	ticks := 0
	d.tick = func() {
		ticks++
		d.tickAt = time.Now().Add(5 * time.Millisecond).UnixNano()
	}
	d.tickAt = time.Now().UnixNano()
	d.timeout.Store(int64(300 * time.Millisecond))
	buf := make([]byte, 8)
	if _, err := d.Read(buf); !isTimeout(err) {
		t.Fatalf("read from a silent peer: %v, want a timeout", err)
	}
	if ticks < 2 {
		t.Fatalf("%d ticks during the read", ticks)
	}
	// With the heartbeat off, ticks alone never end a read; data does.
	d.timeout.Store(0)
	go func() { _, _ = client.Write([]byte("x")) }()
	if n, err := d.Read(buf); n != 1 || err != nil {
		t.Fatalf("read: %d %v", n, err)
	}
}
