package amqpserver_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warren-mq/warren/internal/broker"
	"github.com/warren-mq/warren/internal/testbroker"
)

// The AMQP front end registers each connection with the broker's session
// registry: management lists it with RabbitMQ's names and counters and can
// close it.
func TestServerSessionRegistry(t *testing.T) {
	inst := testbroker.Start(t, testbroker.Options{})
	b := inst.Broker
	conn, err := amqp.DialConfig(inst.URL, amqp.Config{Properties: amqp.Table{"connection_name": "order-service"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	ch2, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	if err := ch2.Qos(7, 0, false); err != nil {
		t.Fatal(err)
	}
	q, err := ch.QueueDeclare("", false, false, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, key := range []string{q.Name, q.Name, q.Name, "nowhere"} {
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", key, true, false, amqp.Publishing{Body: []byte("x")})
		if err != nil {
			t.Fatal(err)
		}
		dc.Wait()
	}
	if _, ok, err := ch2.Get(q.Name, false); err != nil || !ok {
		t.Fatalf("get: %v %v", ok, err)
	}
	msgs, err := ch2.Consume(q.Name, "c1", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		d := <-msgs
		if err := d.Ack(false); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok, _ := ch.Get(q.Name, true); ok {
		t.Fatal("queue not empty")
	}

	var info broker.SessionInfo
	var chans []broker.ChannelInfo
	testbroker.CheckFor(t, 5*time.Second, func() bool {
		ss := b.Sessions()
		if len(ss) != 1 {
			return false
		}
		info, chans = ss[0].Info, ss[0].Session.Channels()
		return info.MessagesPublished == 4 && info.MessagesAcknowledged == 2 && info.MessagesGetEmpty == 1 && info.MessagesConfirmed == 4
	})
	if want := conn.LocalAddr().String() + " -> " + inst.Addr; info.Name != want {
		t.Errorf("name %q, want %q", info.Name, want)
	}
	if info.User != "guest" || info.VHost != "/" || info.UserProvidedName != "order-service" || info.Protocol != "AMQP 0-9-1" || info.AuthMechanism != "PLAIN" || info.State != "running" {
		t.Errorf("info %+v", info)
	}
	if info.Channels != 2 || info.MessagesUnroutable != 1 || info.MessagesDelivered != 2 || info.MessagesGet != 1 || info.RecvOct == 0 || info.SendOct == 0 || info.SendCnt < 10 || info.FrameMax != 131072 || info.Heartbeat != 10 {
		t.Errorf("counters %+v", info)
	}
	if len(chans) != 2 {
		t.Fatalf("channels %+v", chans)
	}
	for _, c := range chans {
		if !strings.HasPrefix(c.Name, info.Name+" (") {
			t.Errorf("channel name %q", c.Name)
		}
		switch c.Number {
		case 1:
			if !c.Confirm || c.Stats.Publish != 4 || c.Stats.ReturnUnroutable != 1 || c.Stats.Confirm != 4 || c.Stats.GetEmpty != 1 {
				t.Errorf("channel 1 %+v", c)
			}
		case 2:
			if c.PrefetchCount != 7 || c.Consumers != 1 || c.Stats.Deliver != 2 || c.Stats.Get != 1 || c.Stats.Ack != 2 {
				t.Errorf("channel 2 %+v", c)
			}
		}
	}
	qs, _ := b.VHost("/")
	queue, ok := qs.Queue(q.Name)
	if !ok {
		t.Fatal("queue gone")
	}
	// The queue hears of acks once the connection has handled what it read.
	testbroker.CheckFor(t, 5*time.Second, func() bool { return queue.Info().Stats.Ack == 2 })
	if qi := queue.Info(); qi.Stats.Publish != 3 || qi.Stats.Deliver != 2 || qi.Stats.Get != 1 || qi.Consumers != 1 || qi.MessagesUnacked != 1 || qi.MessageBytesUnacked != 1 || qi.Memory <= 2048 {
		t.Errorf("queue info %+v", qi)
	}

	if cl := queueConsumers(qs, q.Name); len(cl) != 1 || cl[0].Channel != info.Name+" (2)" || cl[0].PrefetchCount != 7 || !cl[0].AckRequired || cl[0].Tag != "c1" {
		t.Errorf("consumers %+v", cl)
	}
	if x, _ := qs.Exchange(""); x == nil {
		t.Fatal("no default exchange")
	} else if in, out := x.PublishStats(); in != 4 || out != 3 {
		t.Errorf("default exchange published in %d, out %d; want 4, 3", in, out)
	}

	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	b.Sessions()[0].Session.Close("Closed via management plugin")
	select {
	case e := <-closed:
		var ae *amqp.Error
		if !errors.As(e, &ae) || ae.Code != 320 || ae.Reason != "CONNECTION_FORCED - Closed via management plugin" {
			t.Fatalf("closed with %v", e)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("connection not closed")
	}
	testbroker.CheckFor(t, 5*time.Second, func() bool { return len(b.Sessions()) == 0 })
}

func queueConsumers(v *broker.VHost, name string) []broker.ConsumerInfo {
	q, ok := v.Queue(name)
	if !ok {
		return nil
	}
	return q.ConsumerList()
}
