package kafkaserver

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/warren-mq/warren/internal/recordbatch"
)

func (k *txnKafka) createTopic(_ context.Context, topic string, partitions int32) {
	k.t.Helper()
	v, _ := k.inst.Broker.VHost("/")
	if _, err := v.CreateTopic(topic, int(partitions)); err != nil {
		k.t.Fatalf("create topic %s: %v", topic, err)
	}
}

// partitions is a topic's partition count.
func (k *txnKafka) partitions(topic string) int {
	v, _ := k.inst.Broker.VHost("/")
	t, _ := v.Topic(topic)
	return len(t.Partitions)
}

// readUntil consumes topic from the start at an isolation level until a
// record with value last arrived in every partition, and returns the other
// values.
func (k *txnKafka) readUntil(ctx context.Context, topic string, level kgo.IsolationLevel, last string) []string {
	k.t.Helper()
	cl := k.client(kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(level), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	defer cl.Close()
	var got []string
	for ends := k.partitions(topic); ; {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			k.t.Fatalf("reading %s: %v; got %v", topic, ctx.Err(), got)
		}
		for _, e := range fs.Errors() {
			k.t.Logf("fetch %s: %v", topic, e.Err)
		}
		for _, r := range fs.Records() {
			if string(r.Value) == last {
				if ends--; ends == 0 {
					return got
				}
				continue
			}
			got = append(got, string(r.Value))
		}
	}
}

// endMarker appends a plain record to every partition: read_committed
// readers reaching them have seen every transaction that ended before.
func (k *txnKafka) endMarker(ctx context.Context, topic string) {
	k.t.Helper()
	cl := k.client(kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for p := range k.partitions(topic) {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: int32(p), Value: []byte("end")}).FirstErr(); err != nil {
			k.t.Fatal(err)
		}
	}
}

// A produce whose response is lost is retried by the client with the same
// sequence number; the broker answers with the original offset and writes
// the records once.
func TestKafkaIdempotentRetryKeepsOffsets(t *testing.T) {
	k := newTxnKafka(t)
	ctx := testCtx(t)
	k.createTopic(ctx, "idem", 1)
	// After the cut, kgo refreshes metadata before retrying: not 5 s later.
	cl := k.client(kgo.DefaultProduceTopic("idem"), kgo.MetadataMinAge(50*time.Millisecond))
	k.proxy.swallowProduce(1)
	r, err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("one")}).First()
	if err != nil || r.Offset != 0 {
		t.Fatalf("first record: offset %v, %v", r, err)
	}
	if k.proxy.droppedCount() != 1 {
		t.Fatal("the proxy did not drop the response")
	}
	r, err = cl.ProduceSync(ctx, &kgo.Record{Value: []byte("two")}).First()
	if err != nil || r.Offset != 1 {
		t.Fatalf("second record: %+v, %v", r, err)
	}
	k.endMarker(ctx, "idem")
	if got := k.readUntil(ctx, "idem", kgo.ReadUncommitted(), "end"); !slices.Equal(got, []string{"one", "two"}) {
		t.Fatalf("log holds %v", got)
	}
}

// Hand-made idempotent batches: a duplicate of a recent batch gets its
// original offsets, a gap in the sequence OUT_OF_ORDER_SEQUENCE_NUMBER;
// with acks=1 (answered before the sync) as with acks=-1.
func TestKafkaIdempotentDuplicateAndGap(t *testing.T) {
	for _, acks := range []int16{-1, 1} {
		t.Run(fmt.Sprint("acks=", acks), func(t *testing.T) { testIdempotentDuplicateAndGap(t, acks) })
	}
}

func testIdempotentDuplicateAndGap(t *testing.T, acks int16) {
	k := newTxnKafka(t)
	ctx := testCtx(t)
	k.createTopic(ctx, "dup", 1)
	cl := k.client()
	init, err := kmsg.NewPtrInitProducerIDRequest().RequestWith(ctx, cl)
	if err != nil || init.ErrorCode != 0 {
		t.Fatalf("InitProducerId: %v %v", init, err)
	}
	produce := func(seq int32, n int) (int64, int16) {
		recs := make([]recordbatch.Record, n)
		for i := range recs {
			recs[i] = recordbatch.Record{OffsetDelta: int32(i), Value: []byte(fmt.Sprint(seq + int32(i)))}
		}
		req := kmsg.NewPtrProduceRequest()
		req.Acks, req.TimeoutMillis = acks, 10000
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = "dup"
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Records = recordbatch.Build(recs, recordbatch.BuildOptions{Idempotent: true, ProducerID: init.ProducerID, ProducerEpoch: init.ProducerEpoch, BaseSequence: seq})
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		p := resp.Topics[0].Partitions[0]
		return p.BaseOffset, p.ErrorCode
	}
	if off, code := produce(0, 2); off != 0 || code != 0 {
		t.Fatalf("first batch at %d, %v", off, kerr.ErrorForCode(code))
	}
	if off, code := produce(2, 3); off != 2 || code != 0 {
		t.Fatalf("second batch at %d, %v", off, kerr.ErrorForCode(code))
	}
	if off, code := produce(0, 2); off != 0 || code != 0 {
		t.Fatalf("duplicate of the first batch: %d, %v", off, kerr.ErrorForCode(code))
	}
	if _, code := produce(9, 1); code != kerr.OutOfOrderSequenceNumber.Code {
		t.Fatalf("gap: %v", kerr.ErrorForCode(code))
	}
	if off, code := produce(5, 1); off != 5 || code != 0 {
		t.Fatalf("next batch at %d, %v", off, kerr.ErrorForCode(code))
	}
	k.endMarker(ctx, "dup")
	if got := k.readUntil(ctx, "dup", kgo.ReadUncommitted(), "end"); !slices.Equal(got, []string{"0", "1", "2", "3", "4", "5"}) {
		t.Fatalf("log holds %v", got)
	}
}

// Committed transactions are visible to read_committed consumers, aborted
// ones only to read_uncommitted; an open one holds read_committed back at
// its first offset (the last stable offset).
func TestKafkaTxnReadCommitted(t *testing.T) {
	k := newTxnKafka(t)
	ctx := testCtx(t)
	k.createTopic(ctx, "rc", 2)
	cl := k.client(kgo.TransactionalID("rc-tx"), kgo.DefaultProduceTopic("rc"))
	txn := func(commit bool, vals ...string) {
		t.Helper()
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for _, v := range vals {
			if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte(v), Value: []byte(v)}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatal(err)
		}
	}
	txn(true, "c1", "c2", "c3")
	txn(false, "a1", "a2")
	txn(true, "c4")

	// An open transaction: its records are not stable yet.
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	r, err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte("o1"), Value: []byte("o1")}).First()
	if err != nil {
		t.Fatal(err)
	}
	adm := kadm.NewClient(k.client())
	stable, err := adm.ListCommittedOffsets(ctx, "rc")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := stable.Lookup("rc", r.Partition); o.Offset != r.Offset {
		t.Fatalf("last stable offset %d with a transaction open at %d", o.Offset, r.Offset)
	}
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	k.endMarker(ctx, "rc")
	sorted := func(v []string) []string { slices.Sort(v); return v }
	if got := sorted(k.readUntil(ctx, "rc", kgo.ReadCommitted(), "end")); !slices.Equal(got, []string{"c1", "c2", "c3", "c4", "o1"}) {
		t.Fatalf("read_committed sees %v", got)
	}
	if got := sorted(k.readUntil(ctx, "rc", kgo.ReadUncommitted(), "end")); !slices.Equal(got, []string{"a1", "a2", "c1", "c2", "c3", "c4", "o1"}) {
		t.Fatalf("read_uncommitted sees %v", got)
	}
}

// A second producer with the same transactional id fences the first: the
// first's open transaction is aborted and its commit refused.
func TestKafkaTxnFencedBySecondProducer(t *testing.T) {
	k := newTxnKafka(t)
	ctx := testCtx(t)
	k.createTopic(ctx, "fence", 1)
	first := k.client(kgo.TransactionalID("fence-tx"), kgo.DefaultProduceTopic("fence"))
	if err := first.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := first.ProduceSync(ctx, &kgo.Record{Value: []byte("zombie")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	second := k.client(kgo.TransactionalID("fence-tx"), kgo.DefaultProduceTopic("fence"))
	if err := second.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := second.ProduceSync(ctx, &kgo.Record{Value: []byte("live")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	err := first.EndTransaction(ctx, kgo.TryCommit)
	if !errors.Is(err, kerr.ProducerFenced) && !errors.Is(err, kerr.InvalidProducerEpoch) {
		t.Fatalf("the fenced producer's commit: %v", err)
	}
	if err := second.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	k.endMarker(ctx, "fence")
	if got := k.readUntil(ctx, "fence", kgo.ReadCommitted(), "end"); !slices.Equal(got, []string{"live"}) {
		t.Fatalf("read_committed sees %v", got)
	}
}

// Offsets committed in a transaction: OffsetFetch with RequireStable
// answers UNSTABLE_OFFSET_COMMIT while it is open (also for a group that
// never committed), and the offset once it commits.
func TestKafkaTxnOffsetsStableAfterCommit(t *testing.T) {
	k := newTxnKafka(t)
	ctx := testCtx(t)
	k.createTopic(ctx, "src", 1)
	cl := k.client()
	txid := "offs-tx"
	init := kmsg.NewPtrInitProducerIDRequest()
	init.TransactionalID, init.TransactionTimeoutMillis = &txid, 60000
	ir, err := init.RequestWith(ctx, cl)
	if err != nil || ir.ErrorCode != 0 {
		t.Fatalf("InitProducerId %+v %v", ir, err)
	}
	add := kmsg.NewPtrAddOffsetsToTxnRequest()
	add.TransactionalID, add.ProducerID, add.ProducerEpoch, add.Group = txid, ir.ProducerID, ir.ProducerEpoch, "offs-g"
	if ar, err := add.RequestWith(ctx, cl); err != nil || ar.ErrorCode != 0 {
		t.Fatalf("AddOffsetsToTxn %+v %v", ar, err)
	}
	commit := kmsg.NewPtrTxnOffsetCommitRequest()
	commit.TransactionalID, commit.Group, commit.ProducerID, commit.ProducerEpoch = txid, "offs-g", ir.ProducerID, ir.ProducerEpoch
	rt := kmsg.NewTxnOffsetCommitRequestTopic()
	rt.Topic = "src"
	rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
	rp.Offset = 3
	rt.Partitions = append(rt.Partitions, rp)
	commit.Topics = append(commit.Topics, rt)
	if cr, err := commit.RequestWith(ctx, cl); err != nil || cr.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("TxnOffsetCommit %+v %v", cr, err)
	}
	fetch := func() (int64, int16) {
		t.Helper()
		req := kmsg.NewPtrOffsetFetchRequest()
		req.Version, req.Group, req.RequireStable = 7, "offs-g", true
		ft := kmsg.NewOffsetFetchRequestTopic()
		ft.Topic, ft.Partitions = "src", []int32{0}
		req.Topics = append(req.Topics, ft)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		p := resp.Topics[0].Partitions[0]
		return p.Offset, p.ErrorCode
	}
	if _, code := fetch(); code != kerr.UnstableOffsetCommit.Code {
		t.Fatalf("open transaction's offset: %v, want UNSTABLE_OFFSET_COMMIT", kerr.ErrorForCode(code))
	}
	end := kmsg.NewPtrEndTxnRequest()
	end.TransactionalID, end.ProducerID, end.ProducerEpoch, end.Commit = txid, ir.ProducerID, ir.ProducerEpoch, true
	if er, err := end.RequestWith(ctx, cl); err != nil || er.ErrorCode != 0 {
		t.Fatalf("EndTxn %+v %v", er, err)
	}
	if off, code := fetch(); code != 0 || off != 3 {
		t.Fatalf("after commit: offset %d, %v", off, kerr.ErrorForCode(code))
	}
}
