package kafka

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// createCompactedTopic creates a one-partition topic with
// cleanup.policy=compact and the smallest segments (4 KiB), so that a few
// dozen produce requests seal segments and compaction runs.
func createCompactedTopic(t *testing.T, tg target, topic string) {
	t.Helper()
	adm := kadm.NewClient(client(t, tg))
	resp, err := adm.CreateTopic(testCtx(t, 30*time.Second), 1, 1, map[string]*string{
		"cleanup.policy": kadm.StringPtr("compact"), "segment.bytes": kadm.StringPtr("4096")}, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
}

// readToEnd reads a one-partition topic from its start with a new consumer
// until the record at offset last has come, and returns what came.
func readToEnd(t *testing.T, tg target, topic string, last int64, opts ...kgo.Opt) []*kgo.Record {
	t.Helper()
	c := client(t, tg, append([]kgo.Opt{kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}, opts...)...)
	defer c.Close()
	ctx := testCtx(t, 60*time.Second)
	var got []*kgo.Record
	for len(got) == 0 || got[len(got)-1].Offset < last {
		fs := c.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d records, none at offset %d yet", len(got), last)
		}
		for _, fe := range fs.Errors() {
			if !errors.Is(fe.Err, context.DeadlineExceeded) {
				t.Fatalf("fetch %s/%d: %v", fe.Topic, fe.Partition, fe.Err)
			}
		}
		got = append(got, fs.Records()...)
	}
	return got
}

// TestKafkaCompactedSnappyTopic: a compacted topic produced by franz-go with
// snappy (its default codec) is compacted: a consumer from the start reads
// fewer records than were produced, each at the offset it was produced at,
// each key's latest value, and every record no later one overwrote. Warren
// only: Kafka compacts on a schedule of its own.
func TestKafkaCompactedSnappyTopic(t *testing.T) {
	tg := broker(t)
	if tg.kind != "warren" {
		t.Skipf("waits for compaction, which a %s broker does on its own schedule", tg.kind)
	}
	topic := uniqueName(t, "compacted")
	createCompactedTopic(t, tg, topic)
	p := client(t, tg, kgo.DefaultProduceTopic(topic), kgo.ProducerBatchCompression(kgo.SnappyCompression()),
		kgo.RequiredAcks(kgo.AllISRAcks()))
	// Each produce is one snappy batch: ten shared keys, which later
	// batches overwrite, and one of its own, which stays, so that
	// compaction rewrites batches rather than only dropping them.
	rng := rand.New(rand.NewPCG(1, 2))
	byOffset := map[int64]*kgo.Record{}
	latest := map[string]int64{}
	var last int64
	const rounds = 60
	for i := range rounds {
		var recs []*kgo.Record
		for k := range 10 {
			recs = append(recs, &kgo.Record{Key: fmt.Appendf(nil, "shared-%d", k), Value: fmt.Appendf(nil, "%d-%x", i, rng.Uint64())})
		}
		recs = append(recs, &kgo.Record{Key: fmt.Appendf(nil, "own-%d", i), Value: fmt.Appendf(nil, "%d-%x", i, rng.Uint64())})
		for _, r := range produceSync(t, p, recs...) {
			byOffset[r.Offset] = r
			latest[string(r.Key)] = r.Offset
			last = max(last, r.Offset)
		}
	}
	var got []*kgo.Record
	waitFor(t, 60*time.Second, func() error {
		got = readToEnd(t, tg, topic, last)
		if len(got) >= len(byOffset) {
			return fmt.Errorf("%d records read, %d produced: not compacted yet", len(got), len(byOffset))
		}
		return nil
	})
	seen := map[string]int64{}
	prev := int64(-1)
	for _, r := range got {
		want, ok := byOffset[r.Offset]
		if !ok || string(r.Key) != string(want.Key) || string(r.Value) != string(want.Value) {
			t.Fatalf("offset %d: %s=%s, produced %v", r.Offset, r.Key, r.Value, want)
		}
		if r.Offset <= prev {
			t.Fatalf("offset %d after %d", r.Offset, prev)
		}
		prev = r.Offset
		seen[string(r.Key)] = r.Offset
	}
	for k, off := range latest {
		if seen[k] != off {
			t.Errorf("key %s: last read at offset %d, latest produced at %d", k, seen[k], off)
		}
	}
	if len(seen) != 10+rounds {
		t.Errorf("%d keys read, %d produced", len(seen), 10+rounds)
	}
}

// TestKafkaCompactedTransactions: on a compacted topic written in
// transactions, some aborted, a read_committed consumer from the start
// reads, once compaction has run, each key's latest committed value and
// nothing of the aborted transactions; compaction dropped the aborted
// records of the sealed segments (read_uncommitted sees fewer of them)
// and kept their markers, which the consumer needs to stop skipping the
// producer's batches. Warren only.
func TestKafkaCompactedTransactions(t *testing.T) {
	tg := broker(t)
	if tg.kind != "warren" {
		t.Skipf("waits for compaction, which a %s broker does on its own schedule", tg.kind)
	}
	topic := uniqueName(t, "compacted-txn")
	createCompactedTopic(t, tg, topic)
	p := client(t, tg, kgo.DefaultProduceTopic(topic), kgo.TransactionalID(uniqueName(t, "txn")),
		kgo.ProducerBatchCompression(kgo.SnappyCompression()), kgo.RequiredAcks(kgo.AllISRAcks()))
	ctx := testCtx(t, 120*time.Second)
	rng := rand.New(rand.NewPCG(3, 4))
	byOffset := map[int64]*kgo.Record{}
	latest := map[string]int64{}
	aborted := map[int64]bool{}
	committed, last := 0, int64(0)
	const rounds = 45
	for i := range rounds {
		if err := p.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		var recs []*kgo.Record
		for k := range 10 {
			recs = append(recs, &kgo.Record{Key: fmt.Appendf(nil, "shared-%d", k), Value: fmt.Appendf(nil, "%d-%x", i, rng.Uint64())})
		}
		recs = append(recs, &kgo.Record{Key: fmt.Appendf(nil, "own-%d", i), Value: fmt.Appendf(nil, "%d-%x", i, rng.Uint64())})
		recs = produceSync(t, p, recs...)
		commit := i%3 != 1
		if err := p.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatalf("end transaction %d: %v", i, err)
		}
		if !commit {
			for _, r := range recs {
				aborted[r.Offset] = true
			}
			continue
		}
		committed += len(recs)
		for _, r := range recs {
			byOffset[r.Offset] = r
			latest[string(r.Key)] = r.Offset
			last = max(last, r.Offset)
		}
	}
	var got []*kgo.Record
	waitFor(t, 60*time.Second, func() error {
		got = readToEnd(t, tg, topic, last, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
		if len(got) >= committed {
			return fmt.Errorf("%d records read, %d committed: not compacted yet", len(got), committed)
		}
		return nil
	})
	seen := map[string]int64{}
	for _, r := range got {
		want, ok := byOffset[r.Offset]
		if !ok || string(r.Key) != string(want.Key) || string(r.Value) != string(want.Value) {
			t.Fatalf("offset %d: %s=%s, not a committed record (%v)", r.Offset, r.Key, r.Value, want)
		}
		seen[string(r.Key)] = r.Offset
	}
	for k, off := range latest {
		if seen[k] != off {
			t.Errorf("key %s: last read at offset %d, latest committed at %d", k, seen[k], off)
		}
	}
	if len(seen) != len(latest) {
		t.Errorf("%d keys read, %d committed", len(seen), len(latest))
	}
	n := 0
	for _, r := range readToEnd(t, tg, topic, last, kgo.FetchIsolationLevel(kgo.ReadUncommitted())) {
		if aborted[r.Offset] {
			n++
		}
	}
	if n >= len(aborted) {
		t.Errorf("read_uncommitted: %d aborted records of %d, none dropped", n, len(aborted))
	}
}
