package streams

import (
	"fmt"
	"strconv"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warren-mq/warren/internal/recordbatch"
	"github.com/warren-mq/warren/internal/testbroker"
)

// A super stream over AMQP: exchange T of type x-super-stream bound to
// streams T-0..T-(N-1) with their partition order; a publish lands in the
// partition Kafka's default partitioner picks for its routing key (or its
// x-partition-key header). RabbitMQ 3.10 has no such exchange type (its
// super streams are partitioned by the client), so this runs on Warren only.
func TestStreamSuperStreamOverAMQP(t *testing.T) {
	t.Parallel()
	if testbroker.External() {
		t.Skip("RabbitMQ 3.10 has no x-super-stream exchange type")
	}
	f := setup(t)
	ch := f.channel()
	x := f.exchangeName("ss")
	const n = 3
	for i := range n {
		p := x + "-" + strconv.Itoa(i)
		f.queues = append(f.queues, p)
		if _, err := ch.QueueDeclare(p, true, false, false, false, streamArgs()); err != nil {
			t.Fatal(err)
		}
	}
	if err := ch.ExchangeDeclare(x, "x-super-stream", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	for i := n - 1; i >= 0; i-- {
		if err := ch.QueueBind(x+"-"+strconv.Itoa(i), strconv.Itoa(i), x, false, amqp.Table{"x-stream-partition-order": int32(i)}); err != nil {
			t.Fatal(err)
		}
	}
	want := make([][]string, n)
	for i := range 30 {
		key := fmt.Sprintf("customer-%d", i)
		p := recordbatch.Partition([]byte(key), n)
		want[p] = append(want[p], key)
		if i%3 == 0 {
			publish(t, ch, x, "", amqp.Table{"x-partition-key": key}, key)
		} else {
			publish(t, ch, x, key, nil, key)
		}
	}
	for p := range n {
		_, ds := f.consume(x+"-"+strconv.Itoa(p), 50, amqp.Table{"x-stream-offset": "first"})
		var got []string
		for range want[p] {
			got = append(got, string(recv(t, ds).Body))
		}
		wantStrings(t, got, want[p]...)
	}
}
