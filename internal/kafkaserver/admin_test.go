package kafkaserver

import (
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/warren-mq/warren/internal/broker"
	"github.com/warren-mq/warren/internal/recordbatch"
)

func ptr(s string) *string { return &s }

func TestKafkaCreateTopicsErrors(t *testing.T) {
	k := startKafka(t, Config{})
	ctx := ctxT(t)
	adm := k.admin(t)
	if _, err := adm.CreateTopic(ctx, 1, -1, map[string]*string{"retention.ms": ptr("60000"), "cleanup.policy": ptr("compact")}, "one"); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name       string
		partitions int32
		rf         int16
		cfg        map[string]*string
		want       error
	}{
		{"one", 1, -1, nil, kerr.TopicAlreadyExists},
		{"zero", 0, -1, nil, kerr.InvalidPartitions},
		{"bad name!", 1, -1, nil, kerr.InvalidTopicException},
		{"rf3", 1, 3, nil, kerr.InvalidReplicationFactor},
		{"badcfg", 1, -1, map[string]*string{"no.such.config": ptr("1")}, kerr.InvalidConfig},
		{"badval", 1, -1, map[string]*string{"retention.ms": ptr("soon")}, kerr.InvalidConfig},
	}
	for _, c := range cases {
		resp, err := adm.CreateTopic(ctx, c.partitions, c.rf, c.cfg, c.name)
		if err == nil {
			err = resp.Err
		}
		if !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
	// validate_only creates nothing.
	if _, err := adm.ValidateCreateTopics(ctx, 1, -1, nil, "dry"); err != nil {
		t.Fatal(err)
	}
	if _, ok := k.vhost(t).Topic("dry"); ok {
		t.Fatal("validate_only created the topic")
	}
}

func (k *kafkaBroker) vhost(t testing.TB) *broker.VHost {
	v, ok := k.Broker.VHost("/")
	if !ok {
		t.Fatal("no vhost /")
	}
	return v
}

// A partitioned topic is a super stream; keyed records land in Kafka's
// partition for the key and are consumed in order per key; the topic grows,
// lists and deletes.
func TestKafkaPartitionedTopic(t *testing.T) {
	k := startKafka(t, Config{})
	ctx := ctxT(t)
	adm := k.admin(t)
	if _, err := adm.CreateTopic(ctx, 6, 1, nil, "events"); err != nil {
		t.Fatal(err)
	}
	tp, ok := k.vhost(t).Topic("events")
	if !ok || !tp.Super || len(tp.Partitions) != 6 || tp.Partitions[5].Name() != "events-5" {
		t.Fatalf("topic %+v", tp)
	}
	pr := k.client(t, kgo.DefaultProduceTopic("events"))
	const customers, per = 20, 25
	for i := range per {
		for cu := range customers {
			r := &kgo.Record{Key: []byte(fmt.Sprint("customer-", cu)), Value: []byte(fmt.Sprint(i))}
			pr.Produce(ctx, r, func(r *kgo.Record, err error) {
				if err != nil {
					t.Error(err)
				} else if want := recordbatch.Partition(r.Key, 6); int(r.Partition) != want {
					t.Errorf("key %s in partition %d, want %d", r.Key, r.Partition, want)
				}
			})
		}
	}
	if err := pr.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	co := k.client(t, kgo.ConsumeTopics("events"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	next := map[string]int{}
	for _, r := range consume(t, ctx, co, customers*per) {
		if got := string(r.Value); got != fmt.Sprint(next[string(r.Key)]) {
			t.Fatalf("key %s: record %s, want %d", r.Key, got, next[string(r.Key)])
		}
		next[string(r.Key)]++
	}
	if _, err := adm.CreatePartitions(ctx, 2, "events"); err != nil {
		t.Fatal(err)
	}
	td, err := adm.ListTopics(ctx, "events")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(td["events"].Partitions); n != 8 {
		t.Fatalf("%d partitions after growing, want 8", n)
	}
	if cp, err := adm.CreatePartitions(ctx, 0, "events"); err != nil || !errors.Is(cp["events"].Err, kerr.InvalidPartitions) {
		t.Fatalf("growing by 0: %v %v", err, cp)
	}
	resp, err := adm.DeleteTopics(ctx, "events")
	if err != nil || resp["events"].Err != nil {
		t.Fatal(err, resp)
	}
	if _, ok := k.vhost(t).Topic("events"); ok {
		t.Fatal("topic still there")
	}
	if _, ok := k.vhost(t).Stream("events-3"); ok {
		t.Fatal("partition stream still there")
	}
}

func TestKafkaTopicConfigs(t *testing.T) {
	k := startKafka(t, Config{})
	ctx := ctxT(t)
	adm := k.admin(t)
	if _, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{"retention.ms": ptr("3600000")}, "cfg"); err != nil {
		t.Fatal(err)
	}
	value := func(name string) (string, kmsg.ConfigSource) {
		t.Helper()
		rcs, err := adm.DescribeTopicConfigs(ctx, "cfg")
		if err != nil {
			t.Fatal(err)
		}
		rc, err := rcs.On("cfg", nil)
		if err != nil || rc.Err != nil {
			t.Fatal(err, rc.Err)
		}
		for _, c := range rc.Configs {
			if c.Key == name {
				return c.MaybeValue(), c.Source
			}
		}
		t.Fatalf("no config %s", name)
		return "", 0
	}
	if v, src := value("retention.ms"); v != "3600000" || src != 1 {
		t.Fatalf("retention.ms %s source %v", v, src)
	}
	if v, src := value("cleanup.policy"); v != "delete" || src != 5 {
		t.Fatalf("cleanup.policy %s source %v", v, src)
	}
	alter := []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.bytes", Value: ptr("1000000")}, {Op: kadm.DeleteConfig, Name: "retention.ms"}, {Op: kadm.AppendConfig, Name: "cleanup.policy", Value: ptr("compact")}}
	if resp, err := adm.AlterTopicConfigs(ctx, alter, "cfg"); err != nil || resp[0].Err != nil {
		t.Fatal(err, resp)
	}
	if v, _ := value("retention.bytes"); v != "1000000" {
		t.Fatalf("retention.bytes %s", v)
	}
	if v, _ := value("retention.ms"); v != "-1" {
		t.Fatalf("retention.ms %s after delete", v)
	}
	if v, _ := value("cleanup.policy"); v != "delete,compact" {
		t.Fatalf("cleanup.policy %s", v)
	}
	bad := []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "segment.bytes", Value: ptr("1")}}
	if resp, err := adm.AlterTopicConfigs(ctx, bad, "cfg"); err != nil || !errors.Is(resp[0].Err, kerr.InvalidConfig) {
		t.Fatal(err, resp)
	}
	// Legacy AlterConfigs replaces the whole set.
	if resp, err := adm.AlterTopicConfigsState(ctx, []kadm.AlterConfig{{Name: "max.message.bytes", Value: ptr("2000000")}}, "cfg"); err != nil || resp[0].Err != nil {
		t.Fatal(err, resp)
	}
	if v, _ := value("retention.bytes"); v != "-1" {
		t.Fatalf("retention.bytes %s after a full replace", v)
	}
	if v, _ := value("max.message.bytes"); v != "2000000" {
		t.Fatalf("max.message.bytes %s", v)
	}
	s, _ := k.vhost(t).Stream("cfg")
	if o := s.LogOptions(); o.MaxBatchBytes != 2000000 || o.Compact {
		t.Fatalf("log options %+v", o)
	}
}

// Topic configs are durable: they survive a restart, also after the
// metadata log was compacted into a snapshot.
func TestKafkaTopicConfigsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	k := startKafkaIn(t, dir, Config{})
	ctx := ctxT(t)
	adm := k.admin(t)
	if _, err := adm.CreateTopic(ctx, 3, 1, map[string]*string{"retention.bytes": ptr("123456")}, "durable"); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, "single"); err != nil {
		t.Fatal(err)
	}
	s, _ := k.vhost(t).Stream("single")
	for i := range 300 { // past the log's compaction threshold
		if err := s.SetTopicConfig(map[string]string{"retention.ms": fmt.Sprint(1000 + i)}); err != nil {
			t.Fatal(err)
		}
	}
	k.Stop()
	k = startKafkaIn(t, dir, Config{})
	v := k.vhost(t)
	tp, ok := v.Topic("durable")
	if !ok || len(tp.Partitions) != 3 {
		t.Fatalf("topic after restart: %+v", tp)
	}
	for _, p := range tp.Partitions {
		if cfg := p.TopicConfig(); cfg["retention.bytes"] != "123456" {
			t.Fatalf("%s config %v", p.Name(), cfg)
		}
		if o := p.LogOptions(); o.MaxBytes != 123456 {
			t.Fatalf("%s options %+v", p.Name(), o)
		}
	}
	s, _ = v.Stream("single")
	if cfg := s.TopicConfig(); cfg["retention.ms"] != "1299" {
		t.Fatalf("single config %v", cfg)
	}
}

// A topic's configs win over the stream's policies, like explicit queue
// arguments over policies in RabbitMQ: a policy set, changed or cleared
// after AlterConfigs leaves the topic configs in effect in the log (the
// produce limit is the log's own check), and the policy governs only what
// the topic config leaves unset.
func TestKafkaTopicConfigsWinOverPolicyChanges(t *testing.T) {
	k := startKafka(t, Config{})
	ctx := ctxT(t)
	adm := k.admin(t)
	if _, err := adm.CreateTopic(ctx, 2, 1, nil, "pol"); err != nil {
		t.Fatal(err)
	}
	alter := []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "max.message.bytes", Value: ptr("1000")}, {Op: kadm.SetConfig, Name: "retention.ms", Value: ptr("60000")}}
	if resp, err := adm.AlterTopicConfigs(ctx, alter, "pol"); err != nil || resp[0].Err != nil {
		t.Fatal(err, resp)
	}
	p := k.client(t, kgo.DefaultProduceTopic("pol"), kgo.RecordRetries(0), kgo.ProducerBatchMaxBytes(1<<20), kgo.ProducerBatchCompression(kgo.NoCompression()))
	tooLarge := func(when string) {
		t.Helper()
		for part := range int32(2) {
			err := p.ProduceSync(ctx, &kgo.Record{Partition: part, Value: make([]byte, 2000)}).FirstErr()
			if !errors.Is(err, kerr.MessageTooLarge) {
				t.Fatalf("%s: a 2000-byte record to partition %d over max.message.bytes=1000: %v, want MESSAGE_TOO_LARGE", when, part, err)
			}
		}
	}
	p = k.client(t, kgo.DefaultProduceTopic("pol"), kgo.RecordRetries(0), kgo.ProducerBatchMaxBytes(1<<20),
		kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	tooLarge("after AlterConfigs")
	pol := broker.Policy{VHost: "/", Name: "ret", Pattern: "^pol", ApplyTo: "queues",
		Definition: []byte(`{"max-age":"1h","stream-max-segment-size-bytes":65536}`)}
	check := func(when string, segBytes int64, segSource string) {
		t.Helper()
		tooLarge(when)
		tp, _ := k.vhost(t).Topic("pol")
		for _, s := range tp.Partitions {
			if o := s.LogOptions(); o.MaxAge != time.Minute || o.MaxBatchBytes != 1000 || o.SegmentBytes != segBytes {
				t.Fatalf("%s: %s log options %+v", when, s.Name(), o)
			}
		}
		rcs, err := adm.DescribeTopicConfigs(ctx, "pol")
		if err != nil {
			t.Fatal(err)
		}
		rc, _ := rcs.On("pol", nil)
		for _, c := range rc.Configs {
			switch c.Key {
			case "retention.ms":
				if c.MaybeValue() != "60000" || c.Source != kmsg.ConfigSourceDynamicTopicConfig {
					t.Fatalf("%s: retention.ms %s from %v", when, c.MaybeValue(), c.Source)
				}
			case "segment.bytes":
				if (segSource == "policy") != (c.Source != kmsg.ConfigSourceDefaultConfig) || (segSource == "policy" && c.MaybeValue() != strconv.FormatInt(segBytes, 10)) {
					t.Fatalf("%s: segment.bytes %s from %v", when, c.MaybeValue(), c.Source)
				}
			}
		}
	}
	if err := k.Broker.SetPolicy(pol); err != nil {
		t.Fatal(err)
	}
	check("after a policy was set", 65536, "policy")
	pol.Definition = []byte(`{"max-age":"2h","stream-max-segment-size-bytes":131072,"max-length-bytes":1000000}`)
	if err := k.Broker.SetPolicy(pol); err != nil {
		t.Fatal(err)
	}
	check("after the policy changed", 131072, "policy")
	if err := k.Broker.ClearPolicy("/", "ret", false); err != nil {
		t.Fatal(err)
	}
	check("after the policy was cleared", 0, "default")
}
