// Command streamperf is the load generator of bench/streams.sh: Kafka
// produce and consume throughput with franz-go, many Kafka consumers at once
// (for the broker's fetch memory per consumer), and AMQP stream publish and
// consume throughput with amqp091-go. It prints one JSON object, the run's
// summary, on stdout.
//
//	streamperf -mode kafka-produce -kafka 127.0.0.1:9092 -topic T -size 100 -acks all -duration 10s
//	streamperf -mode kafka-produce -kafka 127.0.0.1:9092 -topic T -size 100 -acks 1 -serial -duration 5s
//	streamperf -mode kafka-consume -kafka 127.0.0.1:9092 -topic T
//	streamperf -mode kafka-fetchers -kafka 127.0.0.1:9092 -topic T -consumers 50
//	streamperf -mode amqp-publish -amqp amqp://guest:guest@127.0.0.1:5672/ -queue S -size 1024 -duration 10s
//	streamperf -mode amqp-consume -amqp amqp://guest:guest@127.0.0.1:5672/ -queue S -count N
//
// The consume modes read from the first offset to the end offset the topic
// or stream had when they started, so they measure reading a backlog.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

type options struct {
	mode, kafka, amqpURL, topic, queue, acks string
	size, consumers, window, prefetch        int
	count                                    int64
	duration                                 time.Duration
	serial                                   bool
}

// summary is what a run prints.
type summary struct {
	Mode       string  `json:"mode"`
	Records    int64   `json:"records"`
	Bytes      int64   `json:"bytes"`
	Seconds    float64 `json:"seconds"`
	RecordsPS  float64 `json:"records_per_s"`
	MiBPS      float64 `json:"mib_per_s"`
	LatencyP50 float64 `json:"latency_p50_ms,omitempty"`
	LatencyP99 float64 `json:"latency_p99_ms,omitempty"`
	Consumers  int     `json:"consumers,omitempty"`
}

func main() {
	var o options
	flag.StringVar(&o.mode, "mode", "kafka-produce", "kafka-produce, kafka-consume, kafka-fetchers, amqp-publish or amqp-consume")
	flag.StringVar(&o.kafka, "kafka", "127.0.0.1:9092", "Kafka bootstrap address")
	flag.StringVar(&o.amqpURL, "amqp", "amqp://guest:guest@127.0.0.1:5672/", "AMQP URL")
	flag.StringVar(&o.topic, "topic", "streamperf", "Kafka topic (created with one partition if missing)")
	flag.StringVar(&o.queue, "queue", "streamperf", "AMQP stream (declared if missing)")
	flag.StringVar(&o.acks, "acks", "all", "Kafka acks: 1 or all")
	flag.IntVar(&o.size, "size", 100, "record / message body size in bytes")
	flag.IntVar(&o.consumers, "consumers", 10, "kafka-fetchers: consumers reading the topic at once")
	flag.IntVar(&o.window, "window", 1000, "amqp-publish: unconfirmed messages in flight")
	flag.IntVar(&o.prefetch, "prefetch", 2000, "amqp-consume: prefetch count")
	flag.Int64Var(&o.count, "count", 0, "amqp-consume: messages to read (the stream's length; AMQP does not report it for streams)")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "publish/produce run time")
	flag.BoolVar(&o.serial, "serial", false, "kafka-produce: one record at a time, each sent once the last is acknowledged (the acks path's latency, no queueing)")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), o.duration+10*time.Minute)
	defer cancel()
	var s summary
	var err error
	switch o.mode {
	case "kafka-produce":
		s, err = kafkaProduce(ctx, o)
	case "kafka-consume":
		s, err = kafkaConsume(ctx, o, 1)
	case "kafka-fetchers":
		s, err = kafkaConsume(ctx, o, o.consumers)
	case "amqp-publish":
		s, err = amqpPublish(ctx, o)
	case "amqp-consume":
		s, err = amqpConsume(ctx, o)
	default:
		err = fmt.Errorf("unknown -mode %q", o.mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "streamperf:", err)
		os.Exit(1)
	}
	s.Mode = o.mode
	if s.Seconds > 0 {
		s.RecordsPS = float64(s.Records) / s.Seconds
		s.MiBPS = float64(s.Bytes) / s.Seconds / (1 << 20)
	}
	_ = json.NewEncoder(os.Stdout).Encode(s)
}

// payload is a record value of n bytes that does not compress to nothing.
func payload(n int) []byte {
	b := make([]byte, n)
	x := uint32(2463534242)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = 'a' + byte(x%26)
	}
	return b
}

func kafkaProduce(ctx context.Context, o options) (summary, error) {
	acks := kgo.AllISRAcks()
	opts := []kgo.Opt{kgo.SeedBrokers(o.kafka), kgo.DefaultProduceTopic(o.topic), kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.AllowAutoTopicCreation(), kgo.MaxBufferedRecords(10_000), kgo.ProducerLinger(time.Millisecond)}
	switch o.acks {
	case "all", "-1":
	case "1":
		acks = kgo.LeaderAck()
		opts = append(opts, kgo.DisableIdempotentWrite())
	default:
		return summary{}, fmt.Errorf("-acks %q: want 1 or all", o.acks)
	}
	if o.serial {
		opts = append(opts, kgo.ProducerLinger(0)) // nothing to wait for: one record is in flight
	}
	cl, err := kgo.NewClient(append(opts, kgo.RequiredAcks(acks))...)
	if err != nil {
		return summary{}, err
	}
	defer cl.Close()
	value := payload(o.size)
	var (
		mu      sync.Mutex
		lat     []float64
		n, errs atomic.Int64
		first   atomic.Value
	)
	start := time.Now()
	deadline := start.Add(o.duration)
	if o.serial {
		for time.Now().Before(deadline) {
			sent := time.Now()
			if err := cl.ProduceSync(ctx, &kgo.Record{Value: value}).FirstErr(); err != nil {
				return summary{}, err
			}
			n.Add(1)
			lat = append(lat, float64(time.Since(sent).Microseconds())/1000)
		}
	}
	for i := 0; !o.serial && time.Now().Before(deadline); i++ {
		sent := time.Now()
		cl.Produce(ctx, &kgo.Record{Value: value}, func(_ *kgo.Record, err error) {
			if err != nil {
				errs.Add(1)
				first.CompareAndSwap(nil, err)
				return
			}
			n.Add(1)
			if i%64 == 0 {
				mu.Lock()
				lat = append(lat, float64(time.Since(sent).Microseconds())/1000)
				mu.Unlock()
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return summary{}, err
	}
	elapsed := time.Since(start).Seconds()
	if e := errs.Load(); e > 0 {
		return summary{}, fmt.Errorf("%d records failed, first: %v", e, first.Load())
	}
	s := summary{Records: n.Load(), Bytes: n.Load() * int64(o.size), Seconds: elapsed}
	s.LatencyP50, s.LatencyP99 = percentile(lat, 50), percentile(lat, 99)
	return s, nil
}

func percentile(v []float64, p int) float64 {
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	return v[min(len(v)-1, len(v)*p/100)]
}

// kafkaConsume runs consumers clients, each reading every partition of the
// topic from the start to the end offsets it had at the start.
func kafkaConsume(ctx context.Context, o options, consumers int) (summary, error) {
	admCl, err := kgo.NewClient(kgo.SeedBrokers(o.kafka))
	if err != nil {
		return summary{}, err
	}
	defer admCl.Close()
	ends, err := kadm.NewClient(admCl).ListEndOffsets(ctx, o.topic)
	if err != nil {
		return summary{}, err
	}
	want := map[int32]int64{}
	var total int64
	ends.Each(func(e kadm.ListedOffset) {
		if e.Offset > 0 {
			want[e.Partition] = e.Offset
			total += e.Offset
		}
	})
	if total == 0 {
		return summary{}, fmt.Errorf("topic %s is empty", o.topic)
	}
	var recs, bytes atomic.Int64
	errc := make(chan error, consumers)
	start := time.Now()
	for c := 0; c < consumers; c++ {
		go func() {
			cl, err := kgo.NewClient(kgo.SeedBrokers(o.kafka), kgo.ConsumeTopics(o.topic),
				kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
			if err != nil {
				errc <- err
				return
			}
			defer cl.Close()
			next := map[int32]int64{}
			left := len(want)
			for left > 0 {
				fs := cl.PollFetches(ctx)
				if ctx.Err() != nil {
					errc <- ctx.Err()
					return
				}
				if es := fs.Errors(); len(es) > 0 {
					errc <- es[0].Err
					return
				}
				fs.EachRecord(func(r *kgo.Record) {
					recs.Add(1)
					bytes.Add(int64(len(r.Value)))
					if next[r.Partition] < want[r.Partition] && r.Offset+1 >= want[r.Partition] {
						left--
					}
					next[r.Partition] = r.Offset + 1
				})
			}
			errc <- nil
		}()
	}
	for c := 0; c < consumers; c++ {
		if err := <-errc; err != nil {
			return summary{}, err
		}
	}
	return summary{Records: recs.Load(), Bytes: bytes.Load(), Seconds: time.Since(start).Seconds(), Consumers: consumers}, nil
}

func amqpChannel(o options) (*amqp.Connection, *amqp.Channel, error) {
	conn, err := amqp.Dial(o.amqpURL)
	if err != nil {
		return nil, nil, err
	}
	ch, err := conn.Channel()
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	if _, err := ch.QueueDeclare(o.queue, true, false, false, false, amqp.Table{"x-queue-type": "stream"}); err != nil {
		conn.Close()
		return nil, nil, err
	}
	return conn, ch, nil
}

// amqpPublish publishes persistent messages with confirms, at most window
// unconfirmed.
func amqpPublish(ctx context.Context, o options) (summary, error) {
	conn, ch, err := amqpChannel(o)
	if err != nil {
		return summary{}, err
	}
	defer conn.Close()
	if err := ch.Confirm(false); err != nil {
		return summary{}, err
	}
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, o.window))
	body := payload(o.size)
	var sent, acked int64
	var lat []float64
	sentAt := map[uint64]time.Time{}
	await := func() error {
		c, ok := <-confirms
		if !ok {
			return errors.New("channel closed while waiting for confirms")
		}
		if !c.Ack {
			return fmt.Errorf("message %d nacked", c.DeliveryTag)
		}
		if t, ok := sentAt[c.DeliveryTag]; ok {
			lat = append(lat, float64(time.Since(t).Microseconds())/1000)
			delete(sentAt, c.DeliveryTag)
		}
		acked++
		return nil
	}
	start := time.Now()
	deadline := start.Add(o.duration)
	for time.Now().Before(deadline) {
		for sent-acked >= int64(o.window) {
			if err := await(); err != nil {
				return summary{}, err
			}
		}
		if err := ch.PublishWithContext(ctx, "", o.queue, false, false, amqp.Publishing{DeliveryMode: amqp.Persistent, Body: body}); err != nil {
			return summary{}, err
		}
		sent++
		if sent%64 == 0 {
			sentAt[uint64(sent)] = time.Now()
		}
	}
	for acked < sent {
		if err := await(); err != nil {
			return summary{}, err
		}
	}
	s := summary{Records: acked, Bytes: acked * int64(o.size), Seconds: time.Since(start).Seconds()}
	s.LatencyP50, s.LatencyP99 = percentile(lat, 50), percentile(lat, 99)
	return s, nil
}

// amqpConsume reads -count messages of the stream from its first offset,
// acknowledging in batches (multiple).
func amqpConsume(ctx context.Context, o options) (summary, error) {
	want := o.count
	if want <= 0 {
		return summary{}, errors.New("amqp-consume needs -count")
	}
	conn, ch, err := amqpChannel(o)
	if err != nil {
		return summary{}, err
	}
	defer conn.Close()
	if err := ch.Qos(o.prefetch, 0, false); err != nil {
		return summary{}, err
	}
	ds, err := ch.Consume(o.queue, "", false, false, false, false, amqp.Table{"x-stream-offset": "first"})
	if err != nil {
		return summary{}, err
	}
	var n, bytes int64
	start := time.Now()
	for n < want {
		select {
		case d, ok := <-ds:
			if !ok {
				return summary{}, fmt.Errorf("consumer closed after %d of %d", n, want)
			}
			n++
			bytes += int64(len(d.Body))
			if n%int64(max(1, o.prefetch/4)) == 0 || n == want {
				if err := d.Ack(true); err != nil {
					return summary{}, err
				}
			}
		case <-ctx.Done():
			return summary{}, ctx.Err()
		}
	}
	return summary{Records: n, Bytes: bytes, Seconds: time.Since(start).Seconds()}, nil
}
