package limits

import (
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warren-mq/warren/internal/broker"
	"github.com/warren-mq/warren/internal/testbroker"
)

// TestLimitsMemoryAlarmHysteresis keeps a broker at its memory limit: a
// publisher never stops, a consumer takes messages one at a time. Without
// hysteresis every message consumed would unblock the publisher and the next
// one published block it again (connection.blocked/unblocked once per
// message). With it the alarm clears only once 10% of the limit is free, so
// the publisher is blocked at most once per 10% of the limit consumed.
func TestLimitsMemoryAlarmHysteresis(t *testing.T) {
	const limit = 4 << 20
	const size = 16 << 10
	const consume = 600 // 600 × 16 KiB: 2.3 times the limit
	inst := testbroker.Start(t, testbroker.Options{Broker: broker.Config{MemoryLimit: limit}})
	// Closing a blocked client's connection waits for a close-ok the broker
	// does not send while it holds the publisher: the broker's shutdown
	// (Stop, also run as a cleanup) ends the connections.
	pub, err := amqp.Dial(inst.URL)
	if err != nil {
		t.Fatal(err)
	}
	blocked, unblocked := countBlocks(pub)
	pch, err := pub.Channel()
	if err != nil {
		t.Fatal(err)
	}
	q, err := pch.QueueDeclare("hysteresis", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		body := make([]byte, size)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if pch.Publish("", q.Name, false, false, amqp.Publishing{Body: body}) != nil {
				return
			}
		}
	}()
	testbroker.CheckFor(t, 30*time.Second, func() bool { return blocked.Load() > 0 })

	con, err := amqp.Dial(inst.URL)
	if err != nil {
		t.Fatal(err)
	}
	cch, err := con.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := cch.Qos(1, 0, false); err != nil {
		t.Fatal(err)
	}
	ds, err := cch.Consume(q.Name, "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < consume; i++ {
		select {
		case d := <-ds:
			if err := d.Ack(false); err != nil {
				t.Fatal(err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("only %d of %d messages consumed", i, consume)
		}
	}
	b, u := blocked.Load(), unblocked.Load()
	close(stop)
	t.Logf("%d messages of %d KiB consumed at a %d MiB limit: blocked %d, unblocked %d times; alarm changes in the broker: %d",
		consume, size>>10, limit>>20, b, u, inst.Broker.AlarmChanges())
	// Each block after the first needs 10% of the limit consumed first.
	if most := int64(consume*size/(limit/10)) + 2; b > most {
		t.Errorf("blocked %d times while %d messages were consumed; hysteresis allows at most %d", b, consume, most)
	}
	if b == 0 || u == 0 {
		t.Errorf("blocked %d and unblocked %d times: the test did not cycle the alarm", b, u)
	}
	inst.Stop()
	<-pubDone
}
