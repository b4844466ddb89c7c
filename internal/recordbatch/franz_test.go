package recordbatch

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
)

// TestRecordbatchDecodeFranzProduced decodes batches as franz-go's producer
// compresses them (its codecs are the ones Kafka clients use), fetched raw
// from franz-go's fake cluster, and builds batches franz-go's consumer reads.
func TestRecordbatchDecodeFranzProduced(t *testing.T) {
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "none", "gzip", "snappy", "lz4", "zstd", "built"))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kgoCodecs := map[Compression]kgo.CompressionCodec{None: kgo.NoCompression(), Gzip: kgo.GzipCompression(),
		Snappy: kgo.SnappyCompression(), LZ4: kgo.Lz4Compression(), Zstd: kgo.ZstdCompression()}
	for _, c := range codecs {
		cl, err := kgo.NewClient(kgo.SeedBrokers(kc.ListenAddrs()...), kgo.ProducerBatchCompression(kgoCodecs[c]),
			kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.MaxVersions(kversion.V2_8_0())) // fetch topics by name
		if err != nil {
			t.Fatal(err)
		}
		var sent []*kgo.Record
		for i := range 50 {
			sent = append(sent, &kgo.Record{Topic: c.String(), Key: fmt.Appendf(nil, "key-%d", i),
				Value:   []byte(fmt.Sprintf("value %d of a record long enough to compress well", i)),
				Headers: []kgo.RecordHeader{{Key: "h", Value: []byte("v")}}, Timestamp: time.UnixMilli(int64(1_700_000_000_000 + i))})
		}
		if err := cl.ProduceSync(ctx, sent...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		req := kmsg.NewPtrFetchRequest()
		req.MaxWaitMillis, req.MaxBytes = 0, 10<<20
		ft := kmsg.NewFetchRequestTopic()
		ft.Topic = c.String()
		fp := kmsg.NewFetchRequestTopicPartition()
		fp.PartitionMaxBytes = 10 << 20
		ft.Partitions = append(ft.Partitions, fp)
		req.Topics = append(req.Topics, ft)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 || resp.Topics[0].Partitions[0].ErrorCode != 0 {
			t.Fatalf("%s: fetch response %+v", c, resp)
		}
		raw := resp.Topics[0].Partitions[0].RecordBatches
		var got []Record
		for len(raw) > 0 {
			h, recs, err := Decode(raw, 1<<20)
			if err != nil {
				t.Fatalf("%s: %v", c, err)
			}
			if h.Compression() != c {
				t.Errorf("%s: batch compressed with %s", c, h.Compression())
			}
			got = append(got, recs...)
			raw = raw[h.Size():]
		}
		if len(got) != len(sent) {
			t.Fatalf("%s: %d records, sent %d", c, len(got), len(sent))
		}
		for i, r := range got {
			if string(r.Key) != string(sent[i].Key) || string(r.Value) != string(sent[i].Value) ||
				r.TimestampMs != sent[i].Timestamp.UnixMilli() || len(r.Headers) != 1 || r.Headers[0].Key != "h" {
				t.Errorf("%s record %d: %+v", c, i, r)
			}
		}
		cl.Close()
	}

	// The other way: batches Build writes, produced raw, read by franz-go's consumer.
	cl, err := kgo.NewClient(kgo.SeedBrokers(kc.ListenAddrs()...), kgo.ConsumeTopics("built"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.MaxVersions(kversion.V2_8_0()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	want := 0
	for _, c := range codecs {
		batch := Build(sampleRecords(), BuildOptions{Compression: c})
		want += 4
		preq := kmsg.NewPtrProduceRequest()
		preq.Acks, preq.TimeoutMillis = -1, 10000
		pt := kmsg.NewProduceRequestTopic()
		pt.Topic = "built"
		pp := kmsg.NewProduceRequestTopicPartition()
		pp.Records = batch
		pt.Partitions = append(pt.Partitions, pp)
		preq.Topics = append(preq.Topics, pt)
		presp, err := preq.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		if code := presp.Topics[0].Partitions[0].ErrorCode; code != 0 {
			t.Fatalf("%s: produce error %d", c, code)
		}
	}
	var consumed []*kgo.Record
	for len(consumed) < want {
		fs := cl.PollFetches(ctx)
		if errs := fs.Errors(); len(errs) > 0 {
			t.Fatal(errs)
		}
		consumed = append(consumed, fs.Records()...)
	}
	for i, r := range consumed {
		w := sampleRecords()[i%4]
		if string(r.Key) != string(w.Key) || len(r.Value) != len(w.Value) || r.Timestamp.UnixMilli() != w.TimestampMs || len(r.Headers) != len(w.Headers) {
			t.Errorf("record %d read by franz-go: key %q value %d ts %v", i, r.Key, len(r.Value), r.Timestamp)
		}
	}
}

// TestRecordbatchPartitionMatchesFranz: Partition picks what franz-go's
// Kafka-compatible key partitioner picks.
func TestRecordbatchPartitionMatchesFranz(t *testing.T) {
	for _, n := range []int{1, 3, 7, 12, 100} {
		p := kgo.StickyKeyPartitioner(nil).ForTopic("t")
		for i := range 1000 {
			key := fmt.Appendf(nil, "customer-%d", i)
			if got, want := Partition(key, n), p.Partition(&kgo.Record{Key: key}, n); got != want {
				t.Fatalf("Partition(%q, %d) = %d, franz-go %d", key, n, got, want)
			}
		}
	}
}
