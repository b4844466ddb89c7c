package prom_test

import (
	"testing"

	"github.com/warren-mq/warren/internal/broker"
	"github.com/warren-mq/warren/internal/recordbatch"
	"github.com/warren-mq/warren/internal/streamlog"
)

func TestPromStreamsAndKafka(t *testing.T) {
	f := start(t)
	b := f.inst.Broker
	v, _ := b.VHost("/")
	st, err := v.DeclareStream("events", nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	recs := []recordbatch.Record{{Value: []byte("a")}, {Value: []byte("b")}, {Value: []byte("c")}, {Value: []byte("d")}}
	st.Log().Append(recordbatch.Build(recs, recordbatch.BuildOptions{}), func(_ streamlog.AppendResult, err error) { done <- err })
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := b.CommitOffsets("/", "g", []broker.CommittedOffset{
		{StreamPartition: broker.StreamPartition{Stream: "events", Partition: 0}, Offset: 1}}); err != nil {
		t.Fatal(err)
	}

	agg := f.scrape("/metrics")
	for name, want := range map[string]float64{
		"rabbitmq_queue_messages": 4, "rabbitmq_queue_messages_ready": 4, "rabbitmq_queues": 1,
		"warren_streams": 1, "warren_stream_messages": 4, "warren_kafka_topics": 1, "warren_kafka_consumergroups": 1,
		"warren_kafka_consumergroup_lag": 3, "warren_kafka_connections": 0,
	} {
		if got, ok := value(agg, name); !ok || got != want {
			t.Errorf("/metrics %s = %v (%v), want %v", name, got, ok, want)
		}
	}
	po := f.scrape("/metrics/per-object")
	for _, c := range []struct {
		name   string
		want   float64
		labels []string
	}{
		{"rabbitmq_queue_messages", 4, []string{"vhost", "/", "queue", "events"}},
		{"warren_stream_next_offset", 4, []string{"vhost", "/", "stream", "events"}},
		{"warren_stream_first_offset", 0, []string{"vhost", "/", "stream", "events"}},
		{"warren_kafka_topic_partitions", 1, []string{"vhost", "/", "topic", "events"}},
		{"warren_kafka_topic_partition_current_offset", 4, []string{"topic", "events", "partition", "0"}},
		{"warren_kafka_consumergroup_current_offset", 1, []string{"consumergroup", "g", "topic", "events", "partition", "0"}},
		{"warren_kafka_consumergroup_lag", 3, []string{"consumergroup", "g", "topic", "events", "partition", "0"}},
		{"warren_kafka_consumergroup_members", 0, []string{"consumergroup", "g"}},
	} {
		if got, ok := value(po, c.name, c.labels...); !ok || got != c.want {
			t.Errorf("per-object %s%v = %v (%v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	det := f.scrape("/metrics/detailed?family=kafka_metrics")
	if got, ok := value(det, "warren_detailed_kafka_consumergroup_lag", "consumergroup", "g"); !ok || got != 3 {
		t.Errorf("detailed lag %v %v", got, ok)
	}
	if _, ok := det["warren_detailed_stream_next_offset"]; ok {
		t.Error("detailed endpoint shows a family not asked for")
	}
}
