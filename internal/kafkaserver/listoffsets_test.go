package kafkaserver

import (
	"fmt"
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

// listOffsetsAt asks partition 0 of topic for ts at request version v over
// a raw connection (the client would pick its own version).
func listOffsetsAt(t *testing.T, r *rawConn, topic string, ts int64, v int16, committed bool) kmsg.ListOffsetsResponseTopicPartition {
	t.Helper()
	req := kmsg.NewPtrListOffsetsRequest()
	req.Version, req.ReplicaID = v, -1
	if committed {
		req.IsolationLevel = 1
	}
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Timestamp = ts
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp := r.roundTrip(req).(*kmsg.ListOffsetsResponse)
	return resp.Topics[0].Partitions[0]
}

// ListOffsets -3 (max timestamp, v7+) answers the first record carrying the
// log's largest timestamp, also when that is not in the last batch or
// segment and when it is inside a batch; -4 is the log start and -5 -1 (no
// tiered storage); special values below their version are
// UNSUPPORTED_VERSION; under read_committed a record of an open transaction
// is no answer.
func TestKafkaListOffsetsMaxTimestamp(t *testing.T) {
	k := startKafka(t, Config{})
	ctx := ctxT(t)
	adm := k.admin(t)
	// Small segments, so the records span several.
	if _, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{"segment.bytes": ptr("200")}, "mt"); err != nil {
		t.Fatal(err)
	}
	r := k.raw(t)
	if p := listOffsetsAt(t, r, "mt", -3, 7, false); p.ErrorCode != 0 || p.Offset != -1 || p.Timestamp != -1 {
		t.Fatalf("empty log: %+v", p)
	}
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	at := func(min int) time.Time { return base.Add(time.Duration(min) * time.Minute) }
	pr := k.client(t, kgo.DefaultProduceTopic("mt"), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0))
	produce := func(mins ...int) {
		t.Helper()
		var recs []*kgo.Record
		for _, m := range mins {
			recs = append(recs, &kgo.Record{Value: []byte(fmt.Sprint(m)), Timestamp: at(m)})
		}
		if err := pr.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	maxTs := func(wantOff int64, wantMin int) {
		t.Helper()
		p := listOffsetsAt(t, r, "mt", -3, 10, false)
		if p.ErrorCode != 0 || p.Offset != wantOff || p.Timestamp != at(wantMin).UnixMilli() {
			t.Fatalf("max timestamp: offset %d timestamp %d error %d, want offset %d timestamp %d", p.Offset, p.Timestamp, p.ErrorCode, wantOff, at(wantMin).UnixMilli())
		}
	}
	produce(3)
	maxTs(0, 3)
	produce(7)
	maxTs(1, 7)
	produce(10, 12, 11) // one batch, offsets 2-4: the max is inside it
	maxTs(3, 12)
	for m := range 10 { // later, older records, in later segments
		produce(m)
	}
	maxTs(3, 12)
	produce(12) // a tie: the first record carrying the max wins
	maxTs(3, 12)
	produce(20)
	maxTs(16, 20)

	for _, c := range []struct {
		ts        int64
		v         int16
		code      int16
		offset    int64
		timestamp int64
	}{
		{-3, 6, kerr.UnsupportedVersion.Code, -1, -1},
		{-4, 7, kerr.UnsupportedVersion.Code, -1, -1},
		{-5, 8, kerr.UnsupportedVersion.Code, -1, -1},
		{-7, 10, kerr.UnsupportedVersion.Code, -1, -1},
		{-4, 8, 0, 0, -1},
		{-5, 9, 0, -1, -1},
		{-3, 7, 0, 16, at(20).UnixMilli()},
		{-2, 1, 0, 0, -1},
		{-1, 6, 0, 17, -1},
	} {
		if p := listOffsetsAt(t, r, "mt", c.ts, c.v, false); p.ErrorCode != c.code || p.Offset != c.offset || p.Timestamp != c.timestamp {
			t.Errorf("ts %d at v%d: %+v, want error %d offset %d timestamp %d", c.ts, c.v, p, c.code, c.offset, c.timestamp)
		}
	}

	// A record of an open transaction is past the last stable offset.
	tx := k.client(t, kgo.DefaultProduceTopic("mt"), kgo.TransactionalID("mt-tx"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err := tx.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := tx.ProduceSync(ctx, &kgo.Record{Value: []byte("tx"), Timestamp: at(30)}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if p := listOffsetsAt(t, r, "mt", -3, 7, false); p.Offset != 17 || p.Timestamp != at(30).UnixMilli() {
		t.Fatalf("read_uncommitted with an open transaction: %+v", p)
	}
	if p := listOffsetsAt(t, r, "mt", -3, 7, true); p.ErrorCode != 0 || p.Offset != -1 || p.Timestamp != -1 {
		t.Fatalf("read_committed with an open transaction: %+v", p)
	}
	if err := tx.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	// The commit marker (offset 18) carries the commit time, later than
	// every record: Kafka counts control batches in a segment's max
	// timestamp, so it is the answer now.
	if p := listOffsetsAt(t, r, "mt", -3, 7, true); p.Offset != 18 || p.Timestamp <= at(30).UnixMilli() {
		t.Fatalf("read_committed after the commit: %+v", p)
	}
}
