package kafkaserver

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/warren-mq/warren/internal/recordbatch"
	"github.com/warren-mq/warren/internal/testbroker"
)

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// consume polls cl until n records came or the context ends.
func consume(t testing.TB, ctx context.Context, cl *kgo.Client, n int) []*kgo.Record {
	t.Helper()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d records: %v", len(out), n, err)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		out = append(out, fs.Records()...)
	}
	return out
}

func TestKafkaProduceConsume(t *testing.T) {
	k := startKafka(t, Config{})
	ctx := ctxT(t)
	topic := "orders"
	pr := k.client(t, kgo.DefaultProduceTopic(topic), kgo.AllowAutoTopicCreation())
	const n = 100
	for i := range n {
		r := &kgo.Record{Key: []byte(fmt.Sprint("k", i%7)), Value: []byte(fmt.Sprint("v", i)), Headers: []kgo.RecordHeader{{Key: "h", Value: []byte("x")}}}
		pr.Produce(ctx, r, func(r *kgo.Record, err error) {
			if err != nil {
				t.Errorf("produce: %v", err)
			}
		})
	}
	if err := pr.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := k.Broker.VHost("/"); !ok {
		t.Fatal("no vhost")
	}
	co := k.client(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	recs := consume(t, ctx, co, n)
	for i, r := range recs {
		if string(r.Value) != fmt.Sprint("v", i) || r.Offset != int64(i) || string(r.Key) != fmt.Sprint("k", i%7) {
			t.Fatalf("record %d: offset %d key %q value %q", i, r.Offset, r.Key, r.Value)
		}
		if len(r.Headers) != 1 || r.Headers[0].Key != "h" {
			t.Fatalf("record %d headers %v", i, r.Headers)
		}
	}
}

// Every codec and acks setting: the log stores the batches as produced and
// consumers decode them.
func TestKafkaProduceCodecsAndAcks(t *testing.T) {
	k := startKafka(t, Config{})
	ctx := ctxT(t)
	codecs := map[string]kgo.CompressionCodec{"none": kgo.NoCompression(), "gzip": kgo.GzipCompression(), "snappy": kgo.SnappyCompression(), "lz4": kgo.Lz4Compression(), "zstd": kgo.ZstdCompression()}
	acks := map[string]kgo.Acks{"0": kgo.NoAck(), "1": kgo.LeaderAck(), "all": kgo.AllISRAcks()}
	for cname, codec := range codecs {
		for aname, ack := range acks {
			topic := "codec-" + cname + "-acks-" + aname
			opts := []kgo.Opt{kgo.DefaultProduceTopic(topic), kgo.AllowAutoTopicCreation(), kgo.ProducerBatchCompression(codec), kgo.RequiredAcks(ack)}
			if aname != "all" {
				opts = append(opts, kgo.DisableIdempotentWrite())
			}
			pr := k.client(t, opts...)
			const n = 20
			for i := range n {
				if err := pr.ProduceSync(ctx, &kgo.Record{Value: []byte(fmt.Sprintf("%s-%d-%0100d", topic, i, i))}).FirstErr(); err != nil {
					t.Fatalf("%s: %v", topic, err)
				}
			}
			co := k.client(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
			for i, r := range consume(t, ctx, co, n) {
				if want := fmt.Sprintf("%s-%d-%0100d", topic, i, i); string(r.Value) != want {
					t.Fatalf("%s record %d: %q", topic, i, r.Value)
				}
			}
		}
	}
}

// acks=1 is answered once the log has written the batches, before their
// sync, with their offsets; consumers see a record only once the log's high
// watermark (its synced end) is past it, and every record is there once it
// has advanced over them.
func TestKafkaProduceLeaderAck(t *testing.T) {
	k := startKafka(t, Config{})
	ctx := ctxT(t)
	const topic, n = "leader-ack", 3000
	if _, err := k.admin(t).CreateTopic(ctx, 1, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	v, _ := k.Broker.VHost("/")
	s, ok := v.Stream(topic)
	if !ok {
		t.Fatal("no stream")
	}
	lg := s.Log()
	value := func(i int) string { return fmt.Sprintf("r%d-%060d", i, i) }

	// The consumer runs alongside the producer.
	co := k.client(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	got := make(chan []*kgo.Record, 1)
	go func() {
		var out []*kgo.Record
		for len(out) < n && ctx.Err() == nil {
			fs := co.PollFetches(ctx)
			for _, r := range fs.Records() {
				if hw := lg.NextOffset(); r.Offset >= hw {
					t.Errorf("consumer got offset %d past the synced end %d", r.Offset, hw)
				}
			}
			out = append(out, fs.Records()...)
		}
		got <- out
	}()

	pr := k.client(t, kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
	offsets := make([]int64, n)
	for i := range n {
		pr.Produce(ctx, &kgo.Record{Value: []byte(value(i))}, func(r *kgo.Record, err error) {
			if err != nil {
				t.Errorf("produce %d: %v", i, err)
			}
			offsets[i] = r.Offset
		})
	}
	if err := pr.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for i, off := range offsets {
		if off != int64(i) {
			t.Fatalf("record %d acknowledged at offset %d", i, off)
		}
	}
	testbroker.CheckFor(t, 10*time.Second, func() bool { return lg.NextOffset() >= n })
	var recs []*kgo.Record
	select {
	case recs = <-got:
	case <-ctx.Done():
		t.Fatal("consumer did not finish")
	}
	if len(recs) != n {
		t.Fatalf("consumed %d of %d", len(recs), n)
	}
	for i, r := range recs {
		if r.Offset != int64(i) || string(r.Value) != value(i) {
			t.Fatalf("record %d: offset %d value %q", i, r.Offset, r.Value)
		}
	}
}

// A consumer waiting at the end of the log gets a record produced later
// (the fetch long-polls on the log).
func TestKafkaFetchLongPoll(t *testing.T) {
	k := startKafka(t, Config{})
	ctx := ctxT(t)
	pr := k.client(t, kgo.DefaultProduceTopic("poll"), kgo.AllowAutoTopicCreation())
	if err := pr.ProduceSync(ctx, &kgo.Record{Value: []byte("first")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	co := k.client(t, kgo.ConsumeTopics("poll"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(5*time.Second))
	consume(t, ctx, co, 1)
	got := make(chan []*kgo.Record, 1)
	go func() {
		fs := co.PollFetches(ctx)
		got <- fs.Records()
	}()
	if err := pr.ProduceSync(ctx, &kgo.Record{Value: []byte("second")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	select {
	case recs := <-got:
		if len(recs) != 1 || string(recs[0].Value) != "second" {
			t.Fatalf("got %v", recs)
		}
	case <-ctx.Done():
		t.Fatal("no record")
	}
}

// A corrupt CRC, a wrong magic and a batch over max.message.bytes get
// Kafka's codes; the connection stays usable.
func TestKafkaProduceBadBatches(t *testing.T) {
	k := startKafka(t, Config{})
	ctx := ctxT(t)
	adm := k.admin(t)
	if _, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{"max.message.bytes": ptr("1000")}, "bad"); err != nil {
		t.Fatal(err)
	}
	good := recordbatch.Build([]recordbatch.Record{{Value: []byte("hello")}}, recordbatch.BuildOptions{})
	crc := bytes.Clone(good)
	crc[len(crc)-1] ^= 0xff
	magic := bytes.Clone(good)
	magic[16] = 1
	large := recordbatch.Build([]recordbatch.Record{{Value: make([]byte, 5000)}}, recordbatch.BuildOptions{})
	r := k.raw(t)
	for _, c := range []struct {
		name  string
		batch []byte
		want  int16
	}{
		{"crc", crc, kerr.CorruptMessage.Code},
		{"magic", magic, kerr.CorruptMessage.Code},
		{"truncated", good[:len(good)-3], kerr.CorruptMessage.Code},
		{"too large", large, kerr.MessageTooLarge.Code},
		{"good", good, 0},
	} {
		req := kmsg.NewPtrProduceRequest()
		req.Version, req.Acks, req.TimeoutMillis = 9, -1, 1000
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = "bad"
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Records = c.batch
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		p := r.roundTrip(req).(*kmsg.ProduceResponse).Topics[0].Partitions[0]
		if p.ErrorCode != c.want {
			t.Errorf("%s: error %d, want %d", c.name, p.ErrorCode, c.want)
		}
		if c.want == 0 && p.BaseOffset != 0 {
			t.Errorf("good batch at offset %d", p.BaseOffset)
		}
	}
}
