package broker_test

import (
	"encoding/binary"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warren-mq/warren/internal/broker"
	"github.com/warren-mq/warren/internal/testbroker"
)

// publishConfirmed publishes n persistent messages to queue key, message i
// with body i and expiration exp(i), and waits for their confirms.
func publishConfirmed(t *testing.T, ch *amqp.Channel, key string, n int, exp func(i int) string, priority func(i int) uint8) {
	t.Helper()
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, n))
	for i := range n {
		p := amqp.Publishing{DeliveryMode: amqp.Persistent, Body: binary.BigEndian.AppendUint64(nil, uint64(i))}
		if exp != nil {
			p.Expiration = exp(i)
		}
		if priority != nil {
			p.Priority = priority(i)
		}
		if err := ch.Publish("", key, false, false, p); err != nil {
			t.Fatal(err)
		}
	}
	for range n {
		if c := <-confirms; !c.Ack {
			t.Fatalf("nack for %d", c.DeliveryTag)
		}
	}
}

// consumeBodies takes n messages from queue key with a consumer (prefetch
// 500, acking each) and returns their body numbers and redelivered flags.
func consumeBodies(t *testing.T, ch *amqp.Channel, key string, n int) (got []int, redelivered []bool) {
	t.Helper()
	if err := ch.Qos(500, 0, false); err != nil {
		t.Fatal(err)
	}
	ds, err := ch.Consume(key, "c-"+key, false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	timeout := time.After(60 * time.Second)
	for len(got) < n {
		select {
		case d := <-ds:
			got = append(got, int(binary.BigEndian.Uint64(d.Body)))
			redelivered = append(redelivered, d.Redelivered)
			if err := d.Ack(false); err != nil {
				t.Fatal(err)
			}
		case <-timeout:
			t.Fatalf("consumed %d of %d from %s", len(got), n, key)
		}
	}
	if err := ch.Cancel("c-"+key, false); err != nil {
		t.Fatal(err)
	}
	return got, redelivered
}

// TestQueueTTLRestartAMQP takes TTLs across a restart through a client:
// a queue with x-message-ttl and a dead-letter exchange, and messages with
// an expiration, in window and tail; the clock moved past the TTLs while
// the broker was down leaves none to get or consume, dead-letters those of
// the first queue in order (x-death reason expired), and delivers the
// messages not yet due.
func TestQueueTTLRestartAMQP(t *testing.T) {
	dir := t.TempDir()
	const total, short = 6000, 5000
	inst := testbroker.Start(t, testbroker.Options{DataDir: dir})
	conn, ch := dial(t, inst.URL)
	for _, d := range []struct {
		name string
		args amqp.Table
	}{
		{"dlq", nil},
		{"ttl", amqp.Table{"x-message-ttl": int32(60_000), "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "dlq"}},
		{"exp", nil},
	} {
		if _, err := ch.QueueDeclare(d.name, true, false, false, false, d.args); err != nil {
			t.Fatal(err)
		}
	}
	publishConfirmed(t, ch, "ttl", total, nil, nil)
	publishConfirmed(t, ch, "exp", total, func(i int) string {
		if i < short {
			return "60000"
		}
		return "7200000"
	}, nil)
	conn.Close()
	inst.Stop()

	broker.SkewClock(2 * time.Minute)
	defer broker.SkewClock(-2 * time.Minute)
	inst = testbroker.Start(t, testbroker.Options{DataDir: dir})
	conn, ch = dial(t, inst.URL)
	defer conn.Close()
	count := func(name string) int {
		q, err := ch.QueueDeclarePassive(name, true, false, false, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		return q.Messages
	}
	testbroker.CheckFor(t, 30*time.Second, func() bool { return count("ttl") == 0 && count("dlq") == total })
	if m, ok, err := ch.Get("ttl", true); err != nil || ok {
		t.Fatalf("got %x from an expired queue (%v)", m.Body, err)
	}
	m, ok, err := ch.Get("dlq", false)
	if err != nil || !ok {
		t.Fatalf("get dlq: %v %v", ok, err)
	}
	if deaths, _ := m.Headers["x-death"].([]any); len(deaths) != 1 || deaths[0].(amqp.Table)["reason"] != "expired" {
		t.Fatalf("x-death %v", m.Headers["x-death"])
	}
	if err := m.Nack(false, true); err != nil {
		t.Fatal(err)
	}
	got, _ := consumeBodies(t, ch, "dlq", total)
	for i, k := range got {
		if k != i {
			t.Fatalf("dead letter %d is #%d", i, k)
		}
	}
	got, _ = consumeBodies(t, ch, "exp", total-short)
	for i, k := range got {
		if k != short+i {
			t.Fatalf("message %d of exp is #%d, want #%d", i, k, short+i)
		}
	}
	if n := count("exp"); n != 0 {
		t.Fatalf("exp holds %d", n)
	}
}
