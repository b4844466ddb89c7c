package access

import (
	"fmt"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

func TestAccessVHostMaxConnections(t *testing.T) {
	f := setup(t)
	u := f.user([]string{".*", ".*", ".*"})
	f.must(f.adm.setVHostLimits(f.vhost, jsonLimits(map[string]int{"max-connections": 1})))
	f.dial(u)
	want := fmt.Sprintf("NOT_ALLOWED - access to vhost '%s' refused for user '%s': connection limit (1) is reached", f.vhost, u)
	if cl := openRaw(t, f.addr, u, "pw", f.vhost); cl == nil || cl.ReplyCode != amqp.NotAllowed || cl.ReplyText != want {
		t.Fatalf("second connection: %+v, want 530 %q", cl, want)
	}
	f.must(f.adm.setVHostLimits(f.vhost, jsonLimits(map[string]int{"max-connections": 0})))
	want = fmt.Sprintf("NOT_ALLOWED - access to vhost '%s' refused for user '%s': connection limit (0) is reached", f.vhost, u)
	if cl := openRaw(t, f.addr, u, "pw", f.vhost); cl == nil || cl.ReplyText != want {
		t.Fatalf("limit 0: %+v, want %q", cl, want)
	}
	f.must(f.adm.setVHostLimits(f.vhost, jsonLimits(map[string]int{"max-connections": -1})))
	if cl := openRaw(t, f.addr, u, "pw", f.vhost); cl != nil {
		t.Fatalf("limit -1 (none): %+v", cl)
	}
}

func TestAccessVHostMaxQueues(t *testing.T) {
	f := setup(t)
	f.must(f.adm.setVHostLimits(f.vhost, jsonLimits(map[string]int{"max-queues": 1})))
	c := f.dial("guest")
	declare := func(name string) func(*amqp.Channel) error {
		return func(ch *amqp.Channel) error {
			_, err := ch.QueueDeclare(name, false, false, false, false, nil)
			return err
		}
	}
	if err := op(f, c, declare("rd-q")); err != nil {
		t.Fatal(err)
	}
	if err := op(f, c, declare("rd-q")); err != nil {
		t.Fatalf("redeclaring at the limit: %v", err)
	}
	f.expect("second queue", op(f, c, declare("q2")), amqp.PreconditionFailed,
		fmt.Sprintf("PRECONDITION_FAILED - cannot declare queue 'q2': queue limit in vhost '%s' (1) is reached", f.vhost))
}

func TestAccessUserMaxConnections(t *testing.T) {
	f := setup(t)
	u := f.user([]string{".*", ".*", ".*"})
	f.must(f.adm.setUserLimits(u, jsonLimits(map[string]int{"max-connections": 1})))
	f.dial(u)
	want := fmt.Sprintf("NOT_ALLOWED - connection refused for user '%s': user connection limit (1) is reached", u)
	if cl := openRaw(t, f.addr, u, "pw", f.vhost); cl == nil || cl.ReplyCode != amqp.NotAllowed || cl.ReplyText != want {
		t.Fatalf("second connection: %+v, want 530 %q", cl, want)
	}
}

func TestAccessUserMaxChannels(t *testing.T) {
	f := setup(t)
	u := f.user([]string{".*", ".*", ".*"})
	f.must(f.adm.setUserLimits(u, jsonLimits(map[string]int{"max-channels": 2})))
	c1, c2 := f.dial(u), f.dial(u)
	closed := c2.NotifyClose(make(chan *amqp.Error, 1))
	f.channel(c1)
	f.channel(c2)
	_, _ = c2.Channel()
	e := closeErr(t, closed)
	want := fmt.Sprintf("NOT_ALLOWED - number of channels opened for user '%s' has reached the maximum allowed user limit of (2)", u)
	if e == nil || e.Code != amqp.NotAllowed || e.Reason != want {
		t.Fatalf("third channel: %v, want 530 %q", e, want)
	}
	// The closed connection's channel no longer counts (RabbitMQ forgets it
	// a moment later, Warren at once): a new connection gets one again.
	deadline := time.Now().Add(waitTimeout)
	for {
		c, err := amqp.Dial(f.url(u, f.vhost))
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Channel()
		c.Close()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no channel after the other connection closed: %v", err)
		}
		time.Sleep(50 * time.Millisecond) // polling RabbitMQ's asynchronous tracking, bounded by the deadline
	}
}

// Deleting a user closes its connections; the broker serves everyone else.
func TestAccessUserDeletedWhileConnected(t *testing.T) {
	f := setup(t)
	u := f.user([]string{".*", ".*", ".*"})
	c := f.dial(u)
	closed := c.NotifyClose(make(chan *amqp.Error, 1))
	f.must(f.adm.deleteUser(u))
	e := closeErr(t, closed)
	if e == nil || e.Code != amqp.ConnectionForced || e.Reason != "CONNECTION_FORCED - user '"+u+"' is deleted" {
		t.Fatalf("user deleted: %v", e)
	}
	if cl := openRaw(t, f.addr, "guest", "guest", f.vhost); cl != nil {
		t.Fatalf("guest after the deletion: %+v", cl)
	}
}

// Deleting a vhost whose queues have consumers closes its connections and
// deletes its queues; the broker stays up.
func TestAccessVHostDeletedWithQueuesInUse(t *testing.T) {
	f := setup(t)
	u := f.user([]string{".*", ".*", ".*"})
	c := f.dial(u)
	closed := c.NotifyClose(make(chan *amqp.Error, 1))
	ch := f.channel(c)
	if _, err := ch.QueueDeclare("busy", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.Publish("", "busy", false, false, amqp.Publishing{DeliveryMode: 2, Body: []byte("m")}); err != nil {
		t.Fatal(err)
	}
	deliveries, err := ch.Consume("busy", "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	<-deliveries
	f.must(f.adm.deleteVHost(f.vhost))
	e := closeErr(t, closed)
	if e == nil || e.Code != amqp.ConnectionForced || e.Reason != "CONNECTION_FORCED - vhost '"+f.vhost+"' is deleted" {
		t.Fatalf("vhost deleted: %v", e)
	}
	if cl := openRaw(t, f.addr, "guest", "guest", "/"); cl != nil {
		t.Fatalf("another vhost after the deletion: %+v", cl)
	}
	// Created again, the vhost is empty.
	f.must(f.adm.addVHost(f.vhost))
	f.must(f.adm.setPermissions("guest", f.vhost, ".*", ".*", ".*"))
	_, err = f.channel(f.dial("guest")).QueueDeclarePassive("busy", true, false, false, false, nil)
	f.expect("queue after the vhost came back", err, amqp.NotFound, "NOT_FOUND - no queue 'busy' in vhost '"+f.vhost+"'")
}
