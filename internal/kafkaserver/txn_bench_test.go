package kafkaserver

import (
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// BenchmarkKafkaTxnCommit: one transactional producer committing
// transactions of 10 records to one partition, on a file store that
// fsyncs. Each transaction costs three metadata commits (AddPartitionsToTxn,
// the decision, its completion) besides the records' and the marker's
// appends, all waited for in turn.
func BenchmarkKafkaTxnCommit(b *testing.B) {
	k := newTxnKafka(b)
	ctx := context.Background()
	v, _ := k.inst.Broker.VHost("/")
	if _, err := v.CreateTopic("bench", 1); err != nil {
		b.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.proxy.addr()), kgo.TransactionalID("bench"), kgo.DefaultProduceTopic("bench"))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	val := make([]byte, 100)
	b.ResetTimer()
	for range b.N {
		if err := cl.BeginTransaction(); err != nil {
			b.Fatal(err)
		}
		for range 10 {
			cl.Produce(ctx, &kgo.Record{Value: val}, nil)
		}
		if err := cl.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "txn/s")
	if s, _ := v.Stream("bench"); s.Log().NextOffset() != int64(11*b.N) {
		b.Fatalf("log ends at %d after %d transactions of 10 records and a marker", s.Log().NextOffset(), b.N)
	}
}
