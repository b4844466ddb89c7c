package messaging

import (
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

// delivered is one delivery and the consumer it went to; merging them lets a
// test wait for a total without caring which consumer is served first.
type delivered struct {
	consumer string
	d        amqp.Delivery
}

// merge forwards deliveries from each consumer channel, tagged with its name.
func merge(named map[string]<-chan amqp.Delivery) <-chan delivered {
	out := make(chan delivered, 100)
	for name, ds := range named {
		go func() {
			for d := range ds {
				out <- delivered{name, d}
			}
		}()
	}
	return out
}

// countPerConsumer waits for n deliveries on merged and counts them per
// consumer.
func countPerConsumer(t *testing.T, merged <-chan delivered, n int) map[string]int {
	t.Helper()
	counts := map[string]int{}
	for range n {
		select {
		case d := <-merged:
			counts[d.consumer]++
		case <-timeAfterWait():
			t.Fatalf("only %v delivered, want %d in total", counts, n)
		}
	}
	return counts
}

// setupQos publishes total messages, then starts one consumer per prefetch
// entry on a single channel, applying each qos call before its consumer.
func setupQos(t *testing.T, total int, steps []qosStep) (*amqp.Connection, string, <-chan delivered) {
	t.Helper()
	conn, ch := dialChannel(t)
	q := declareQueue(t, ch, nil)
	fill(t, conn, ch, q, total)
	cch := openChannel(t, conn)
	named := map[string]<-chan amqp.Delivery{}
	for _, s := range steps {
		if s.qos != nil {
			if err := cch.Qos(s.qos.count, 0, s.qos.global); err != nil {
				t.Fatal(err)
			}
		}
		if s.consumer != "" {
			named[s.consumer] = consume(t, cch, q, s.consumer)
		}
	}
	return conn, q, merge(named)
}

// qosStep is a basic.qos call and/or a basic.consume on the channel.
type qosStep struct {
	qos      *qosArgs
	consumer string
}

type qosArgs struct {
	count  int
	global bool
}

// TestBasicQosPerConsumer: global=false limits each consumer separately, so
// two consumers on one channel hold 2+2 messages.
func TestBasicQosPerConsumer(t *testing.T) {
	t.Parallel()
	conn, q, merged := setupQos(t, 10, []qosStep{
		{qos: &qosArgs{2, false}}, {consumer: "c1"}, {consumer: "c2"},
	})
	got := countPerConsumer(t, merged, 4)
	// 6 ready proves nothing more is on its way to the consumers.
	waitReady(t, conn, q, 6)
	if got["c1"] != 2 || got["c2"] != 2 {
		t.Fatalf("per consumer %v, want 2 each", got)
	}
}

// TestBasicQosGlobal: global=true limits the whole channel (RabbitMQ's
// reinterpretation), so the same two consumers share 2.
func TestBasicQosGlobal(t *testing.T) {
	t.Parallel()
	conn, q, merged := setupQos(t, 10, []qosStep{
		{qos: &qosArgs{2, true}}, {consumer: "c1"}, {consumer: "c2"},
	})
	got := countPerConsumer(t, merged, 2)
	waitReady(t, conn, q, 8)
	if got["c1"]+got["c2"] != 2 {
		t.Fatalf("per consumer %v, want 2 in total", got)
	}
}

// TestBasicQosGlobalAndPerConsumer: both limits apply at once when the
// global one is set last: each consumer at most 2, the channel at most 3. The
// consumers start after the messages are queued, so c1 fills its 2 first.
func TestBasicQosGlobalAndPerConsumer(t *testing.T) {
	t.Parallel()
	conn, q, merged := setupQos(t, 10, []qosStep{
		{qos: &qosArgs{2, false}}, {qos: &qosArgs{3, true}}, {consumer: "c1"}, {consumer: "c2"},
	})
	got := countPerConsumer(t, merged, 3)
	waitReady(t, conn, q, 7)
	if got["c1"] != 2 || got["c2"] != 1 {
		t.Fatalf("per consumer %v, want c1:2 c2:1", got)
	}
}

// TestBasicQosPerConsumerClearsGlobal: a RabbitMQ quirk: basic.qos with
// global=false switches off an earlier global limit on the channel, so qos(3,
// global) followed by qos(2, per consumer) lets two consumers hold 2+2.
func TestBasicQosPerConsumerClearsGlobal(t *testing.T) {
	t.Parallel()
	conn, q, merged := setupQos(t, 10, []qosStep{
		{qos: &qosArgs{3, true}}, {qos: &qosArgs{2, false}}, {consumer: "c1"}, {consumer: "c2"},
	})
	got := countPerConsumer(t, merged, 4)
	waitReady(t, conn, q, 6)
	if got["c1"] != 2 || got["c2"] != 2 {
		t.Fatalf("per consumer %v, want 2 each", got)
	}
}

// TestBasicQosFixedAtConsume: a consumer keeps the per-consumer prefetch that
// was in force when it started; a later basic.qos only affects later consumers.
func TestBasicQosFixedAtConsume(t *testing.T) {
	t.Parallel()
	conn, q, merged := setupQos(t, 10, []qosStep{
		{qos: &qosArgs{1, false}}, {consumer: "c1"}, {qos: &qosArgs{3, false}}, {consumer: "c2"},
	})
	got := countPerConsumer(t, merged, 4)
	waitReady(t, conn, q, 6)
	if got["c1"] != 1 || got["c2"] != 3 {
		t.Fatalf("per consumer %v, want c1:1 c2:3", got)
	}
}

// TestBasicQosAckReleasesCredit: with prefetch 1 the next message only comes
// after the previous one is acked.
func TestBasicQosAckReleasesCredit(t *testing.T) {
	t.Parallel()
	conn, ch := dialChannel(t)
	q := declareQueue(t, ch, nil)
	fill(t, conn, ch, q, 3)
	cch := openChannel(t, conn)
	if err := cch.Qos(1, 0, false); err != nil {
		t.Fatal(err)
	}
	ds := consume(t, cch, q, "")
	for i, want := range []string{"m-1", "m-2", "m-3"} {
		d := next(t, ds)
		if string(d.Body) != want {
			t.Fatalf("delivery %d: %q, want %q", i, d.Body, want)
		}
		waitReady(t, conn, q, 2-i)
		if err := d.Ack(false); err != nil {
			t.Fatal(err)
		}
	}
}

// TestBasicQosNackRequeueRedeliversToSameConsumer: with prefetch 1 and one
// consumer, a nack with requeue hands the message straight back.
func TestBasicQosNackRequeueRedeliversToSameConsumer(t *testing.T) {
	t.Parallel()
	conn, ch := dialChannel(t)
	q := declareQueue(t, ch, nil)
	fill(t, conn, ch, q, 2)
	cch := openChannel(t, conn)
	if err := cch.Qos(1, 0, false); err != nil {
		t.Fatal(err)
	}
	ds := consume(t, cch, q, "")
	d := next(t, ds)
	if err := d.Nack(false, true); err != nil {
		t.Fatal(err)
	}
	again := next(t, ds)
	if string(again.Body) != "m-1" || !again.Redelivered || again.DeliveryTag != 2 {
		t.Fatalf("after nack: %q redelivered %v tag %d; want m-1 redelivered tag 2", again.Body, again.Redelivered, again.DeliveryTag)
	}
}

// TestBasicQosIgnoredByNoAck: prefetch does not limit a no-ack consumer.
func TestBasicQosIgnoredByNoAck(t *testing.T) {
	t.Parallel()
	conn, ch := dialChannel(t)
	q := declareQueue(t, ch, nil)
	want := fill(t, conn, ch, q, 5)
	cch := openChannel(t, conn)
	if err := cch.Qos(1, 0, false); err != nil {
		t.Fatal(err)
	}
	ds, err := cch.Consume(q, "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	equalStrings(t, "no-ack deliveries", bodies(nextN(t, ds, 5)), want)
}

// TestBasicQosIgnoredByGet: prefetch does not limit basic.get either.
func TestBasicQosIgnoredByGet(t *testing.T) {
	t.Parallel()
	conn, ch := dialChannel(t)
	q := declareQueue(t, ch, nil)
	fill(t, conn, ch, q, 3)
	for _, global := range []bool{false, true} {
		if err := ch.Qos(1, 0, global); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		if _, ok, err := ch.Get(q, false); err != nil || !ok {
			t.Fatalf("get %d with prefetch 1 and nothing acked: ok %v err %v", i, ok, err)
		}
	}
}

// TestBasicQosPrefetchSizeNotImplemented: RabbitMQ refuses prefetch_size != 0
// with a connection-level 540 that names the size.
func TestBasicQosPrefetchSizeNotImplemented(t *testing.T) {
	t.Parallel()
	conn, ch := dialChannel(t)
	closes := notifyConnClose(conn)
	err := ch.Qos(0, 1000, false)
	expectError(t, err, 540, "NOT_IMPLEMENTED - prefetch_size!=0 (1000)")
	expectClosed(t, closes, 540, "NOT_IMPLEMENTED - prefetch_size!=0 (1000)")
}
