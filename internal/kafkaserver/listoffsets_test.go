package kafkaserver

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestKafkaListOffsets(t *testing.T) {
	k := startKafka(t, Config{})
	ctx := ctxT(t)
	pr := k.client(t, kgo.DefaultProduceTopic("lo"), kgo.AllowAutoTopicCreation())
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	for i := range 10 {
		r := &kgo.Record{Value: []byte{byte(i)}, Timestamp: base.Add(time.Duration(i) * time.Minute)}
		if err := pr.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	adm := k.admin(t)
	start, err := adm.ListStartOffsets(ctx, "lo")
	if err != nil {
		t.Fatal(err)
	}
	end, err := adm.ListEndOffsets(ctx, "lo")
	if err != nil {
		t.Fatal(err)
	}
	at, err := adm.ListOffsetsAfterMilli(ctx, base.Add(4*time.Minute+time.Second).UnixMilli(), "lo")
	if err != nil {
		t.Fatal(err)
	}
	s, _ := start.Lookup("lo", 0)
	e, _ := end.Lookup("lo", 0)
	a, _ := at.Lookup("lo", 0)
	if s.Offset != 0 || e.Offset != 10 || a.Offset != 5 || a.Err != nil {
		t.Fatalf("start %+v end %+v after %+v", s, e, a)
	}
	after, err := adm.ListOffsetsAfterMilli(ctx, time.Now().Add(time.Hour).UnixMilli(), "lo")
	if err != nil {
		t.Fatal(err)
	}
	// Kafka answers -1 for a time past every record; kadm then gives the end.
	if o, _ := after.Lookup("lo", 0); o.Err != nil || (o.Offset != 10 && o.Offset != -1) {
		t.Fatalf("past the end: %+v", o)
	}
}

// A fetch outside the log gets OFFSET_OUT_OF_RANGE with the log's bounds.
func TestKafkaFetchOffsetOutOfRange(t *testing.T) {
	k := startKafka(t, Config{})
	ctx := ctxT(t)
	pr := k.client(t, kgo.DefaultProduceTopic("oor"), kgo.AllowAutoTopicCreation())
	if err := pr.ProduceSync(ctx, &kgo.Record{Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	r := k.raw(t)
	req := kmsg.NewPtrFetchRequest()
	req.Version, req.MaxWaitMillis, req.MaxBytes = 11, 100, 1<<20
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = "oor"
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.FetchOffset, rp.PartitionMaxBytes = 42, 1<<20
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp := r.roundTrip(req).(*kmsg.FetchResponse)
	p := resp.Topics[0].Partitions[0]
	if p.ErrorCode != kerr.OffsetOutOfRange.Code || p.HighWatermark != 1 || p.LogStartOffset != 0 {
		t.Fatalf("%+v", p)
	}
}
