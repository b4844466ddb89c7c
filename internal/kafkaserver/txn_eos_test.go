package kafkaserver

import (
	"slices"
	"strconv"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Exactly-once consume-transform-produce: a GroupTransactSession reads
// topic in, writes one record per input to out and commits its offsets in
// the same transaction; out ends with every input exactly once.
func TestKafkaTxnExactlyOnce(t *testing.T) {
	testExactlyOnce(t, false)
}

// The same across broker restarts: one between transactions, one with a
// transaction open (records produced, not yet ended).
func TestKafkaTxnExactlyOnceRestart(t *testing.T) {
	testExactlyOnce(t, true)
}

func testExactlyOnce(t *testing.T, restarts bool) {
	const n = 60
	k := newTxnKafka(t)
	ctx := testCtx(t)
	k.createTopic(ctx, "eos-in", 2)
	k.createTopic(ctx, "eos-out", 2)
	in := k.client(kgo.DefaultProduceTopic("eos-in"))
	for i := range n {
		in.Produce(ctx, &kgo.Record{Key: []byte(strconv.Itoa(i)), Value: []byte(strconv.Itoa(i))}, nil)
	}
	if err := in.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	sess, err := kgo.NewGroupTransactSession(
		kgo.SeedBrokers(k.proxy.addr()),
		kgo.TransactionalID("eos-tx"),
		kgo.DefaultProduceTopic("eos-out"),
		kgo.ConsumerGroup("eos-group"),
		kgo.ConsumeTopics("eos-in"),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	done, txns := 0, 0
	for done < n {
		fs := sess.PollRecords(ctx, 7) // several transactions
		if ctx.Err() != nil {
			t.Fatalf("%d of %d done: %v", done, n, ctx.Err())
		}
		recs := fs.Records()
		if len(recs) == 0 {
			continue
		}
		if err := sess.Begin(); err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			sess.Produce(ctx, &kgo.Record{Key: r.Key, Value: append([]byte("t"), r.Value...)}, nil)
		}
		txns++
		if restarts && txns == 2 {
			k.restart()
		}
		if restarts && txns == 4 {
			if err := sess.Client().Flush(ctx); err != nil {
				t.Fatal(err)
			}
			k.restart()
		}
		committed, err := sess.End(ctx, kgo.TryCommit)
		if err != nil {
			t.Logf("transaction %d: %v (retried)", txns, err)
		}
		if committed {
			done += len(recs)
		}
		t.Logf("transaction %d: %d records, committed %v", txns, len(recs), committed)
	}
	k.endMarker(ctx, "eos-out")
	got := k.readUntil(ctx, "eos-out", kgo.ReadCommitted(), "end")
	slices.Sort(got)
	var want []string
	for i := range n {
		want = append(want, "t"+strconv.Itoa(i))
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("out holds %d records %v, want each of %d inputs once", len(got), got, n)
	}
	offs, err := kadm.NewClient(k.client()).FetchOffsets(ctx, "eos-group")
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	offs.Each(func(o kadm.OffsetResponse) { total += o.At })
	if total != n {
		t.Fatalf("committed offsets sum to %d, want %d", total, n)
	}
}
