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

// compactedTopic creates a one-partition topic with cleanup.policy=compact
// and the smallest segments (4 KiB), so that a few dozen produce requests
// seal segments and compaction runs. Warren only: Kafka compacts on a
// schedule of its own, which the tests cannot wait for.
func compactedTopic(t *testing.T, what string) (target, string) {
	t.Helper()
	tg := broker(t)
	if tg.kind != "warren" {
		t.Skipf("waits for compaction, which a %s broker does on its own schedule", tg.kind)
	}
	topic := uniqueName(t, what)
	adm := kadm.NewClient(client(t, tg))
	resp, err := adm.CreateTopic(testCtx(t, 30*time.Second), 1, 1, map[string]*string{
		"cleanup.policy": kadm.StringPtr("compact"), "segment.bytes": kadm.StringPtr("4096")}, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
	return tg, topic
}

// roundRecords are the records of one produce: ten shared keys, which
// later rounds overwrite, and one of the round's own, which stays, so that
// compaction rewrites batches rather than only dropping them.
func roundRecords(i int, rng *rand.Rand) []*kgo.Record {
	var recs []*kgo.Record
	for k := range 10 {
		recs = append(recs, &kgo.Record{Key: fmt.Appendf(nil, "shared-%d", k), Value: fmt.Appendf(nil, "%d-%x", i, rng.Uint64())})
	}
	return append(recs, &kgo.Record{Key: fmt.Appendf(nil, "own-%d", i), Value: fmt.Appendf(nil, "%d-%x", i, rng.Uint64())})
}

// visible is what a consumer should read of a compacted topic: every
// record by offset, each key's latest offset, the last offset.
type visible struct {
	byOffset map[int64]*kgo.Record
	latest   map[string]int64
	last     int64
}

func (v *visible) add(recs []*kgo.Record) {
	if v.byOffset == nil {
		v.byOffset, v.latest = map[int64]*kgo.Record{}, map[string]int64{}
	}
	for _, r := range recs {
		v.byOffset[r.Offset] = r
		v.latest[string(r.Key)] = r.Offset
		v.last = max(v.last, r.Offset)
	}
}

// readCompacted reads the topic from its start until fewer records than
// visible come back (compaction has run), and checks them: each as it was
// produced at its offset, offsets increasing, each key's latest there.
func (v *visible) readCompacted(t *testing.T, tg target, topic string, opts ...kgo.Opt) {
	t.Helper()
	var got []*kgo.Record
	waitFor(t, 60*time.Second, func() error {
		got = readToEnd(t, tg, topic, v.last, opts...)
		if len(got) >= len(v.byOffset) {
			return fmt.Errorf("%d records read, %d produced: not compacted yet", len(got), len(v.byOffset))
		}
		return nil
	})
	seen := map[string]int64{}
	prev := int64(-1)
	for _, r := range got {
		want, ok := v.byOffset[r.Offset]
		if !ok || string(r.Key) != string(want.Key) || string(r.Value) != string(want.Value) || r.Offset <= prev {
			t.Fatalf("offset %d (after %d): %s=%s, produced %v", r.Offset, prev, r.Key, r.Value, want)
		}
		prev = r.Offset
		seen[string(r.Key)] = r.Offset
	}
	for k, off := range v.latest {
		if seen[k] != off {
			t.Errorf("key %s: last read at offset %d, latest produced at %d", k, seen[k], off)
		}
	}
	if len(seen) != len(v.latest) {
		t.Errorf("%d keys read, %d produced", len(seen), len(v.latest))
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
// each key's latest value, and every record no later one overwrote.
func TestKafkaCompactedSnappyTopic(t *testing.T) {
	tg, topic := compactedTopic(t, "compacted")
	p := client(t, tg, kgo.DefaultProduceTopic(topic), kgo.ProducerBatchCompression(kgo.SnappyCompression()),
		kgo.RequiredAcks(kgo.AllISRAcks()))
	rng := rand.New(rand.NewPCG(1, 2))
	var v visible
	for i := range 60 {
		v.add(produceSync(t, p, roundRecords(i, rng)...)) // one snappy batch
	}
	v.readCompacted(t, tg, topic)
}

// TestKafkaCompactedTransactions: on a compacted topic written in
// transactions, some aborted, a read_committed consumer from the start
// reads, once compaction has run, each key's latest committed value and
// nothing of the aborted transactions; compaction dropped the aborted
// records of the sealed segments (read_uncommitted sees fewer of them)
// and kept their markers, which the consumer needs to stop skipping the
// producer's batches.
func TestKafkaCompactedTransactions(t *testing.T) {
	tg, topic := compactedTopic(t, "compacted-txn")
	p := client(t, tg, kgo.DefaultProduceTopic(topic), kgo.TransactionalID(uniqueName(t, "txn")),
		kgo.ProducerBatchCompression(kgo.SnappyCompression()), kgo.RequiredAcks(kgo.AllISRAcks()))
	ctx := testCtx(t, 120*time.Second)
	rng := rand.New(rand.NewPCG(3, 4))
	var v visible
	aborted := map[int64]bool{}
	for i := range 45 {
		if err := p.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		recs := produceSync(t, p, roundRecords(i, rng)...)
		commit := i%3 != 1
		if err := p.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatalf("end transaction %d: %v", i, err)
		}
		if commit {
			v.add(recs)
			continue
		}
		for _, r := range recs {
			aborted[r.Offset] = true
		}
	}
	v.readCompacted(t, tg, topic, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	n := 0
	for _, r := range readToEnd(t, tg, topic, v.last, kgo.FetchIsolationLevel(kgo.ReadUncommitted())) {
		if aborted[r.Offset] {
			n++
		}
	}
	if n >= len(aborted) {
		t.Errorf("read_uncommitted: %d aborted records of %d, none dropped", n, len(aborted))
	}
}
