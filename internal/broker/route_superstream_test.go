package broker

import (
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/warren-mq/warren/internal/amqp091"
	"github.com/warren-mq/warren/internal/recordbatch"
)

// publishTo publishes one persistent message through the exchange and waits
// until it is durable.
func publishTo(t *testing.T, v *VHost, exchange, key string, headers amqp091.Table) PublishResult {
	t.Helper()
	e, ok := v.Exchange(exchange)
	if !ok {
		t.Fatalf("no exchange %s", exchange)
	}
	p := amqp091.Properties{DeliveryMode: 2, Headers: headers}
	m, err := NewMessage(exchange, key, p.Append(nil), []byte("body-"+key))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan bool, 1)
	var r Router
	res := v.Publish(&r, e, m, func(ok bool) { done <- ok })
	if !<-done {
		t.Fatal("publish not confirmed")
	}
	return res
}

// A publish to a super stream lands in exactly one partition: the one
// franz-go's default partitioner picks for the same key (murmur2), from the
// routing key or the x-partition-key header; partitions are ordered by
// their partition-order argument, not by when they were bound.
func TestStreamSuperStreamPartitionsLikeKafka(t *testing.T) {
	n := newStreamNode(t)
	v := n.vhost()
	const parts = 5
	topic, err := v.CreateTopic("orders", parts)
	if err != nil {
		t.Fatal(err)
	}
	if len(topic.Partitions) != parts {
		t.Fatalf("partitions %d", len(topic.Partitions))
	}
	kafka := kgo.StickyKeyPartitioner(nil).ForTopic("orders")
	counts := make([]int64, parts)
	for i := range 200 {
		key := fmt.Sprintf("customer-%d", i)
		want := kafka.Partition(&kgo.Record{Key: []byte(key)}, parts)
		if got := recordbatch.Partition([]byte(key), parts); got != want {
			t.Fatalf("key %s: recordbatch.Partition %d, franz-go %d", key, got, want)
		}
		var res PublishResult
		if i%2 == 0 {
			res = publishTo(t, v, "orders", key, nil)
		} else {
			res = publishTo(t, v, "orders", "ignored", amqp091.Table{PartitionKeyHeader: key})
		}
		if !res.Routed || res.Queues != 1 {
			t.Fatalf("key %s: %+v", key, res)
		}
		counts[want]++
		for p, s := range topic.Partitions {
			if got := s.Log().NextOffset(); got != counts[p] {
				t.Fatalf("after key %s (partition %d): partition %d holds %d records, want %d", key, want, p, got, counts[p])
			}
		}
	}
	// Binding order does not matter: a super stream bound last-partition-first
	// routes the same.
	for i := parts - 1; i >= 0; i-- {
		if _, err := v.DeclareStream(fmt.Sprintf("rev-%d", i), nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := v.DeclareExchange(ExchangeDecl{Name: "rev", Kind: SuperStreamKind, Durable: true}); err != nil {
		t.Fatal(err)
	}
	for i := parts - 1; i >= 0; i-- {
		d := BindingDecl{Source: "rev", Destination: fmt.Sprintf("rev-%d", i), Key: fmt.Sprint(i), Args: amqp091.Table{PartitionOrderArg: int64(i)}}
		if err := v.Bind(d, nil); err != nil {
			t.Fatal(err)
		}
	}
	publishTo(t, v, "rev", "customer-7", nil)
	want := recordbatch.Partition([]byte("customer-7"), parts)
	s, _ := v.Stream(fmt.Sprintf("rev-%d", want))
	if s.Log().NextOffset() != 1 {
		t.Fatalf("customer-7 not in rev-%d", want)
	}
	// The exchange type survives a restart with its bindings.
	n.restart()
	v = n.vhost()
	if e, ok := v.Exchange("orders"); !ok || e.Kind != SuperStreamKind || e.routes().len() != parts {
		t.Fatalf("super stream after restart: %v %v", e, ok)
	}
	publishTo(t, v, "orders", "customer-0", nil)
	p0 := recordbatch.Partition([]byte("customer-0"), parts)
	s, _ = v.Stream(PartitionName("orders", p0))
	if got := s.Log().NextOffset(); got != counts[p0]+1 {
		t.Fatalf("after restart partition %d holds %d, want %d", p0, got, counts[p0]+1)
	}
}
