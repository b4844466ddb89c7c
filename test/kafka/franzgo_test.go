package kafka

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
	"github.com/warren-mq/warren/internal/recordbatch"
)

// TestKafkaKeyedProduceOrderPerKey: records keyed to a 6-partition topic come
// back in the order produced for each key, every key in one partition, at
// contiguous offsets from 0 in each partition.
func TestKafkaKeyedProduceOrderPerKey(t *testing.T) {
	tg := broker(t)
	topic := uniqueName(t, "t")
	createTopic(t, tg, topic, 6)
	const keys, perKey = 24, 25
	p := client(t, tg, kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.DisableIdempotentWrite())
	var recs []*kgo.Record
	for i := 0; i < perKey; i++ {
		for k := 0; k < keys; k++ {
			recs = append(recs, &kgo.Record{Key: []byte("customer-" + strconv.Itoa(k)), Value: []byte(strconv.Itoa(i))})
		}
	}
	produced := produceSync(t, p, recs...)
	partOf := map[string]int32{}
	for _, r := range produced {
		if prev, ok := partOf[string(r.Key)]; ok && prev != r.Partition {
			t.Fatalf("key %s produced to partitions %d and %d", r.Key, prev, r.Partition)
		}
		partOf[string(r.Key)] = r.Partition
	}

	c := client(t, tg, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	got := consumeN(t, c, len(recs), 60*time.Second)
	if len(got) != len(recs) {
		t.Fatalf("consumed %d records, produced %d", len(got), len(recs))
	}
	next := map[string]int{}
	nextOffset := map[int32]int64{}
	for _, r := range got {
		if r.Partition != partOf[string(r.Key)] {
			t.Errorf("key %s consumed from partition %d, produced to %d", r.Key, r.Partition, partOf[string(r.Key)])
		}
		if want := strconv.Itoa(next[string(r.Key)]); string(r.Value) != want {
			t.Fatalf("key %s: got value %s, want %s (order per key broken)", r.Key, r.Value, want)
		}
		next[string(r.Key)]++
		if r.Offset != nextOffset[r.Partition] {
			t.Fatalf("partition %d: offset %d after %d", r.Partition, r.Offset, nextOffset[r.Partition]-1)
		}
		nextOffset[r.Partition]++
	}
	used := map[int32]bool{}
	for _, p := range partOf {
		used[p] = true
	}
	if len(used) < 2 {
		t.Errorf("%d keys all went to %d partition(s): the partitioner did not spread them", keys, len(used))
	}
}

// member is one group member's view of its assignment.
type member struct {
	mu       sync.Mutex
	assigned map[int32]bool
	seen     map[string]int // value -> times consumed
}

func (m *member) owned() []int32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var ps []int32
	for p := range m.assigned {
		ps = append(ps, p)
	}
	slices.Sort(ps)
	return ps
}

// joinGroup starts a member polling in its own goroutine; it commits what it
// consumed (autocommit) and stops when the test ends or stop is called.
func joinGroup(t *testing.T, tg target, group, topic string, opts ...kgo.Opt) (*member, func()) {
	m := &member{assigned: map[int32]bool{}, seen: map[string]int{}}
	cl := client(t, tg, append([]kgo.Opt{
		kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, a map[string][]int32) {
			m.mu.Lock()
			defer m.mu.Unlock()
			for _, p := range a[topic] {
				m.assigned[p] = true
			}
		}),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, r map[string][]int32) {
			m.mu.Lock()
			defer m.mu.Unlock()
			for _, p := range r[topic] {
				delete(m.assigned, p)
			}
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, r map[string][]int32) {
			m.mu.Lock()
			defer m.mu.Unlock()
			for _, p := range r[topic] {
				delete(m.assigned, p)
			}
		}),
	}, opts...)...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			m.mu.Lock()
			for _, r := range fs.Records() {
				m.seen[string(r.Value)]++
			}
			m.mu.Unlock()
		}
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			<-done
			cl.Close() // leaves the group (LeaveGroup) after committing
		})
	}
	t.Cleanup(stop)
	return m, stop
}

// TestKafkaGroupTwoMembersRebalance: a second member joining takes over part
// of the partitions, the two assignments split the topic, every record is
// consumed, and when one member leaves the other gets everything back. Run
// with the eager range balancer and with cooperative-sticky (incremental).
func TestKafkaGroupTwoMembersRebalance(t *testing.T) {
	for _, bal := range []struct {
		name string
		b    kgo.GroupBalancer
	}{{"range", kgo.RangeBalancer()}, {"cooperative-sticky", kgo.CooperativeStickyBalancer()}} {
		t.Run(bal.name, func(t *testing.T) {
			tg := broker(t)
			topic, group := uniqueName(t, "t"), uniqueName(t, "g")
			const parts = 6
			createTopic(t, tg, topic, parts)
			opts := []kgo.Opt{kgo.Balancers(bal.b), kgo.SessionTimeout(10 * time.Second), kgo.HeartbeatInterval(500 * time.Millisecond)}
			a, _ := joinGroup(t, tg, group, topic, opts...)
			waitFor(t, 60*time.Second, func() error {
				if got := a.owned(); len(got) != parts {
					return fmt.Errorf("first member owns %v, want all %d partitions", got, parts)
				}
				return nil
			})
			b, stopB := joinGroup(t, tg, group, topic, opts...)
			waitFor(t, 60*time.Second, func() error {
				pa, pb := a.owned(), b.owned()
				if len(pa) == 0 || len(pb) == 0 || len(pa)+len(pb) != parts {
					return fmt.Errorf("after the second join: first owns %v, second owns %v", pa, pb)
				}
				for _, p := range pa {
					if slices.Contains(pb, p) {
						return fmt.Errorf("partition %d owned by both: %v and %v", p, pa, pb)
					}
				}
				return nil
			})
			p := client(t, tg, kgo.DefaultProduceTopic(topic), kgo.DisableIdempotentWrite())
			const n = 300
			var recs []*kgo.Record
			for i := 0; i < n; i++ {
				recs = append(recs, &kgo.Record{Key: []byte("k" + strconv.Itoa(i%37)), Value: []byte(strconv.Itoa(i))})
			}
			produceSync(t, p, recs...)
			waitFor(t, 60*time.Second, func() error {
				missing := 0
				a.mu.Lock()
				b.mu.Lock()
				for i := 0; i < n; i++ {
					v := strconv.Itoa(i)
					if a.seen[v]+b.seen[v] == 0 {
						missing++
					}
				}
				na, nb := len(a.seen), len(b.seen)
				b.mu.Unlock()
				a.mu.Unlock()
				if missing > 0 {
					return fmt.Errorf("%d of %d records not consumed by either member (first saw %d, second %d)", missing, n, na, nb)
				}
				if na == 0 || nb == 0 {
					return fmt.Errorf("one member consumed nothing: first %d, second %d", na, nb)
				}
				return nil
			})
			stopB()
			waitFor(t, 60*time.Second, func() error {
				if got := a.owned(); len(got) != parts {
					return fmt.Errorf("after the second member left, the first owns %v, want all %d", got, parts)
				}
				return nil
			})
		})
	}
}

// TestKafkaCommittedOffsetsResume: a group commits an offset in the middle
// of a partition, OffsetFetch returns it, and a new client of the group
// resumes exactly there; a group that never committed fetches -1.
func TestKafkaCommittedOffsetsResume(t *testing.T) {
	tg := broker(t)
	topic, group := uniqueName(t, "t"), uniqueName(t, "g")
	createTopic(t, tg, topic, 1)
	p := client(t, tg, kgo.DefaultProduceTopic(topic), kgo.DisableIdempotentWrite())
	for i := 0; i < 10; i++ {
		produceSync(t, p, &kgo.Record{Value: []byte(strconv.Itoa(i))})
	}
	adm := kadm.NewClient(client(t, tg))
	ctx := testCtx(t, 60*time.Second)

	if tg.kind != "kfake" { // kfake answers GROUP_ID_NOT_FOUND where Kafka answers -1
		never, err := adm.FetchOffsets(ctx, uniqueName(t, "nogroup"))
		if err != nil {
			t.Fatalf("OffsetFetch of an unknown group: %v (Kafka answers offset -1, no error)", err)
		}
		if o, ok := never.Lookup(topic, 0); ok && (o.Err != nil || o.At != -1) {
			t.Errorf("unknown group: offset %d, err %v; want -1 and no error", o.At, o.Err)
		}
	}

	c1 := client(t, tg, kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())
	got := consumeN(t, c1, 6, 60*time.Second)
	for i, r := range got[:6] {
		if string(r.Value) != strconv.Itoa(i) || r.Offset != int64(i) {
			t.Fatalf("record %d: offset %d value %s", i, r.Offset, r.Value)
		}
	}
	// Commit "consumed up to and including offset 5": next offset 6.
	if err := c1.CommitRecords(ctx, got[5]); err != nil {
		t.Fatalf("commit: %v", err)
	}
	c1.Close()

	fetched, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	o, ok := fetched.Lookup(topic, 0)
	if !ok || o.Err != nil || o.At != 6 {
		t.Fatalf("OffsetFetch after commit: %+v (found %v), want offset 6", o, ok)
	}

	c2 := client(t, tg, kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())
	rest := consumeN(t, c2, 4, 60*time.Second)
	for i, r := range rest {
		if r.Offset != int64(6+i) || string(r.Value) != strconv.Itoa(6+i) {
			t.Fatalf("resumed record %d: offset %d value %s, want offset %d", i, r.Offset, r.Value, 6+i)
		}
	}
	if len(rest) != 4 {
		t.Fatalf("resumed with %d records, want 4", len(rest))
	}
}

// TestKafkaIdempotentProducer: franz-go's idempotent producer (its default)
// with several batches in flight: every record exactly once, in order, at
// contiguous offsets.
func TestKafkaIdempotentProducer(t *testing.T) {
	tg := broker(t)
	topic := uniqueName(t, "t")
	createTopic(t, tg, topic, 1)
	p := client(t, tg, kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(time.Millisecond), kgo.ProducerBatchMaxBytes(4096))
	const n = 2000
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		p.Produce(context.Background(), &kgo.Record{Value: []byte(strconv.Itoa(i))}, func(r *kgo.Record, err error) {
			defer wg.Done()
			if err != nil {
				errs <- fmt.Errorf("record %s: %w", r.Value, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	c := client(t, tg, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	got := consumeN(t, c, n, 60*time.Second)
	if len(got) != n {
		t.Fatalf("consumed %d records, produced %d", len(got), n)
	}
	for i, r := range got {
		if r.Offset != int64(i) || string(r.Value) != strconv.Itoa(i) {
			t.Fatalf("record %d: offset %d value %s", i, r.Offset, r.Value)
		}
		if r.ProducerID < 0 {
			t.Fatalf("record %d has producer id %d: not written by the idempotent producer", i, r.ProducerID)
		}
	}
	end := listEnd(t, tg, topic, 0)
	if end != n {
		t.Errorf("log end offset %d, want %d", end, n)
	}
}

// listEnd is a partition's log end offset (ListOffsets latest).
func listEnd(t *testing.T, tg target, topic string, partition int32) int64 {
	t.Helper()
	adm := kadm.NewClient(client(t, tg))
	ends, err := adm.ListEndOffsets(testCtx(t, 30*time.Second), topic)
	if err != nil {
		t.Fatal(err)
	}
	o, ok := ends.Lookup(topic, partition)
	if !ok || o.Err != nil {
		t.Fatalf("ListOffsets %s/%d: %+v", topic, partition, o)
	}
	return o.Offset
}

// TestKafkaTransactionsReadCommitted: committed transactions are visible to a
// read_committed consumer, aborted ones are not (but are to
// read_uncommitted), and an open transaction holds read_committed back at
// its first offset (the last stable offset).
func TestKafkaTransactionsReadCommitted(t *testing.T) {
	tg := broker(t)
	topic := uniqueName(t, "t")
	createTopic(t, tg, topic, 1)
	p := client(t, tg, kgo.DefaultProduceTopic(topic), kgo.TransactionalID(uniqueName(t, "txn")),
		kgo.RequiredAcks(kgo.AllISRAcks()))
	ctx := testCtx(t, 90*time.Second)
	txn := func(commit bool, values ...string) {
		t.Helper()
		if err := p.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for _, v := range values {
			produceSync(t, p, &kgo.Record{Value: []byte(v)})
		}
		if err := p.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatalf("end transaction (commit %v): %v", commit, err)
		}
	}
	txn(true, "c1", "c2", "c3")
	txn(false, "a1", "a2")
	txn(true, "c4")

	// An open transaction: its records are written but not decided.
	if err := p.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	produceSync(t, p, &kgo.Record{Value: []byte("open")})

	committed := client(t, tg, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	got := values(consumeN(t, committed, 4, 60*time.Second))
	if want := []string{"c1", "c2", "c3", "c4"}; !slices.Equal(got, want) {
		t.Fatalf("read_committed: %q, want %q", got, want)
	}
	adm := kadm.NewClient(client(t, tg))
	lso, err := adm.ListCommittedOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	end := listEnd(t, tg, topic, 0)
	if o, _ := lso.Lookup(topic, 0); o.Err != nil || o.Offset >= end {
		t.Errorf("last stable offset %d (%v) with a transaction open, log end %d: want it below the open record", o.Offset, o.Err, end)
	}

	uncommitted := client(t, tg, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadUncommitted()))
	got = values(consumeN(t, uncommitted, 7, 60*time.Second))
	if want := []string{"c1", "c2", "c3", "a1", "a2", "c4", "open"}; !slices.Equal(got, want) {
		t.Fatalf("read_uncommitted: %q, want %q", got, want)
	}

	if err := p.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	rest := values(consumeN(t, committed, 1, 60*time.Second))
	if !slices.Equal(rest, []string{"open"}) {
		t.Fatalf("read_committed after the last commit: %q, want [open]", rest)
	}
}

func values(recs []*kgo.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = string(r.Value)
	}
	return out
}

// TestKafkaIdempotentDuplicateAndGap sends idempotent batches by hand: a
// retried batch (same producer id, epoch and sequence) is acknowledged with
// its original offset and not written twice; a sequence gap is refused with
// OUT_OF_ORDER_SEQUENCE_NUMBER.
func TestKafkaIdempotentDuplicateAndGap(t *testing.T) {
	tg := broker(t)
	topic := uniqueName(t, "t")
	createTopic(t, tg, topic, 1)
	// Produce v13 names topics by id; v9 by name, which is what is built here.
	v := kversion.Stable()
	v.SetMaxKeyVersion(kmsg.Produce.Int16(), 9)
	cl := client(t, tg, kgo.MaxVersions(v))
	ctx := testCtx(t, 60*time.Second)
	init := kmsg.NewPtrInitProducerIDRequest()
	init.TransactionTimeoutMillis = 60000
	initResp, err := init.RequestWith(ctx, cl)
	if err != nil || initResp.ErrorCode != 0 {
		t.Fatalf("InitProducerId: %v, error code %d", err, initResp.ErrorCode)
	}
	pid, epoch := initResp.ProducerID, initResp.ProducerEpoch
	produce := func(seq int32, vals ...string) (int64, int16) {
		t.Helper()
		var recs []recordbatch.Record
		for _, v := range vals {
			recs = append(recs, recordbatch.Record{TimestampMs: time.Now().UnixMilli(), Value: []byte(v)})
		}
		batch := recordbatch.Build(recs, recordbatch.BuildOptions{Idempotent: true, ProducerID: pid, ProducerEpoch: epoch, BaseSequence: seq})
		req := kmsg.NewPtrProduceRequest()
		req.Acks, req.TimeoutMillis = -1, 10000
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Records = batch
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatalf("produce seq %d: %v", seq, err)
		}
		p := resp.Topics[0].Partitions[0]
		return p.BaseOffset, p.ErrorCode
	}
	if off, code := produce(0, "a", "b"); code != 0 || off != 0 {
		t.Fatalf("first batch: offset %d, error %d", off, code)
	}
	if off, code := produce(2, "c"); code != 0 || off != 2 {
		t.Fatalf("second batch: offset %d, error %d", off, code)
	}
	if off, code := produce(0, "a", "b"); code != 0 || off != 0 {
		t.Errorf("retried first batch: offset %d, error %d (%v); want its original offset 0, no error", off, code, kerr.ErrorForCode(code))
	}
	if _, code := produce(5, "gap"); code != kerr.OutOfOrderSequenceNumber.Code {
		t.Errorf("batch after a sequence gap: error %d (%v), want OUT_OF_ORDER_SEQUENCE_NUMBER", code, kerr.ErrorForCode(code))
	}
	if end := listEnd(t, tg, topic, 0); end != 3 {
		t.Errorf("log end offset %d, want 3 (the duplicate and the gap not written)", end)
	}
}

// TestKafkaFetchAtEndHasEmptyRecords: a fetch at the log end offset that
// times out answers an empty records field, as Kafka does, not a null one,
// which librdkafka (kcat) cannot parse and backs off from, so kcat -e never
// sees the end of a partition.
func TestKafkaFetchAtEndHasEmptyRecords(t *testing.T) {
	tg := broker(t)
	topic := uniqueName(t, "t")
	createTopic(t, tg, topic, 1)
	produceSync(t, client(t, tg, kgo.DefaultProduceTopic(topic), kgo.DisableIdempotentWrite()), &kgo.Record{Value: []byte("one")})
	v := kversion.Stable()
	v.SetMaxKeyVersion(kmsg.Fetch.Int16(), 11) // librdkafka 2.0.2's version; names topics
	cl := client(t, tg, kgo.MaxVersions(v))
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID, req.MaxWaitMillis, req.MinBytes, req.MaxBytes = -1, 10, 1, 1<<20
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.FetchOffset, rp.PartitionMaxBytes = 1, 1<<20
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(testCtx(t, 30*time.Second), cl)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		t.Fatalf("fetch response: %+v", resp)
	}
	p := resp.Topics[0].Partitions[0]
	if p.ErrorCode != 0 || p.HighWatermark != 1 {
		t.Fatalf("fetch at the end: error %d, high watermark %d", p.ErrorCode, p.HighWatermark)
	}
	if p.RecordBatches == nil || len(p.RecordBatches) != 0 {
		t.Errorf("fetch at the end: records %v (nil %v), want an empty field, not null", p.RecordBatches, p.RecordBatches == nil)
	}
}
