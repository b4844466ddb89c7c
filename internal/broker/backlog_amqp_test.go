package broker_test

import (
	"encoding/binary"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warren-mq/warren/internal/testbroker"
)

// TestQueueBacklogAMQP takes a backlog through a client: persistent messages
// published with confirms into window and tail, a restart on the same data,
// then basic.get and a consumer with prefetch see every message once, in
// order, redelivered only if delivered before the restart.
func TestQueueBacklogAMQP(t *testing.T) {
	dir := t.TempDir()
	const total = 20_000
	inst := testbroker.Start(t, testbroker.Options{DataDir: dir})
	conn, ch := dial(t, inst.URL)
	if _, err := ch.QueueDeclare("backlog", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, total))
	for i := range total {
		body := binary.BigEndian.AppendUint64(nil, uint64(i))
		if err := ch.Publish("", "backlog", false, false, amqp.Publishing{DeliveryMode: amqp.Persistent, Body: body}); err != nil {
			t.Fatal(err)
		}
	}
	for range total {
		if c := <-confirms; !c.Ack {
			t.Fatalf("nack for %d", c.DeliveryTag)
		}
	}
	// The first 10 are delivered and left unacked when the broker stops.
	for i := range 10 {
		if m, ok, err := ch.Get("backlog", false); err != nil || !ok || binary.BigEndian.Uint64(m.Body) != uint64(i) {
			t.Fatalf("get %d: %v %v", i, ok, err)
		}
	}
	conn.Close()
	inst.Stop()

	inst = testbroker.Start(t, testbroker.Options{DataDir: dir})
	conn, ch = dial(t, inst.URL)
	defer conn.Close()
	q, err := ch.QueueDeclarePassive("backlog", true, false, false, false, nil)
	if err != nil || q.Messages != total {
		t.Fatalf("after the restart: %d messages, %v", q.Messages, err)
	}
	next := 0
	check := func(d amqp.Delivery) {
		t.Helper()
		if got := binary.BigEndian.Uint64(d.Body); got != uint64(next) || d.Redelivered != (next < 10) {
			t.Fatalf("got #%d (redelivered %v), want #%d", got, d.Redelivered, next)
		}
		next++
	}
	for range 100 {
		m, ok, err := ch.Get("backlog", true)
		if err != nil || !ok {
			t.Fatalf("get: %v %v", ok, err)
		}
		check(m)
	}
	if err := ch.Qos(500, 0, false); err != nil {
		t.Fatal(err)
	}
	ds, err := ch.Consume("backlog", "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	timeout := time.After(60 * time.Second)
	for next < total {
		select {
		case d := <-ds:
			check(d)
			if next%100 == 0 {
				if err := d.Ack(true); err != nil {
					t.Fatal(err)
				}
			}
		case <-timeout:
			t.Fatalf("consumed %d of %d", next, total)
		}
	}
}

func dial(t *testing.T, url string) (*amqp.Connection, *amqp.Channel) {
	t.Helper()
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	return conn, ch
}
