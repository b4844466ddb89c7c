package policy

import (
	"strconv"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// A delivery left unacknowledged past the consumer timeout closes its
// channel with 406 (not the connection), and the channel's unacknowledged
// messages are requeued.
func TestPolicyConsumerTimeout(t *testing.T) {
	e := setup(t)
	other := e.channel()
	q := e.declare(other, "q", nil)
	publish(t, other, "", q, "m1", "m2")
	var conn *amqp.Connection
	var ch *amqp.Channel
	e.withConsumerTimeout(t, func() {
		conn = e.dial()
		var err error
		if ch, err = conn.Channel(); err != nil {
			t.Fatal(err)
		}
	})
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	ds, err := ch.Consume(q, "c", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		select {
		case <-ds:
		case <-time.After(waitTimeout):
			t.Fatal("no delivery")
		}
	}
	select {
	case err := <-closed:
		wantAMQPError(t, err, 406, "PRECONDITION_FAILED - delivery acknowledgement on channel 1 timed out. Timeout value used: "+strconv.Itoa(testConsumerTimeout)+" ms. This timeout value can be configured, see consumers doc guide to learn more")
	case <-time.After(3 * time.Minute):
		t.Fatal("channel not closed")
	}
	if conn.IsClosed() {
		t.Fatal("the timeout closed the connection")
	}
	got := getN(t, other, q, 2)
	wantBodies(t, "requeued", bodies(got), "m1", "m2")
	for _, d := range got {
		if !d.Redelivered {
			t.Fatalf("requeued %q not marked redelivered", d.Body)
		}
	}
}

// A consumer that acknowledges in time keeps its channel.
func TestPolicyConsumerTimeoutAcked(t *testing.T) {
	e := setup(t)
	other := e.channel()
	q := e.declare(other, "q", nil)
	var ch *amqp.Channel
	e.withConsumerTimeout(t, func() { ch = e.channel() })
	ds, err := ch.Consume(q, "c", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Each message is acknowledged at once; together they span several timeouts.
	deadline := time.Now().Add(3 * testConsumerTimeout * time.Millisecond)
	for i := 0; time.Now().Before(deadline); i++ {
		publish(t, other, "", q, "m"+strconv.Itoa(i))
		select {
		case d := <-ds:
			if err := d.Ack(false); err != nil {
				t.Fatal(err)
			}
		case <-time.After(waitTimeout):
			t.Fatalf("no delivery %d (channel closed: %v)", i, ch.IsClosed())
		}
	}
	if ch.IsClosed() {
		t.Fatal("channel closed although every delivery was acknowledged")
	}
}
