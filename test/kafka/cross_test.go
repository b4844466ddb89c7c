package kafka

import (
	"bytes"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// amqpChannel opens a connection and channel to the target's AMQP side,
// closed when the test ends.
func amqpChannel(t *testing.T, tg target) *amqp.Channel {
	t.Helper()
	conn, err := amqp.Dial(tg.amqpURL(t))
	if err != nil {
		t.Fatalf("AMQP dial: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// declareStream declares a durable stream queue over AMQP and deletes it
// when the test ends; then it must be the Kafka topic of the same name with
// one partition.
func declareStream(t *testing.T, tg target, name string) {
	t.Helper()
	ch := amqpChannel(t, tg)
	if _, err := ch.QueueDeclare(name, true, false, false, false, amqp.Table{"x-queue-type": "stream"}); err != nil {
		t.Fatalf("declare stream %s: %v", name, err)
	}
	t.Cleanup(func() {
		if ch, err := amqpCleanupChannel(tg); err == nil {
			_, _ = ch.QueueDelete(name, false, false, false)
			ch.Close()
		}
	})
	waitTopic(t, tg, name, 1)
}

func amqpCleanupChannel(tg target) (*amqp.Channel, error) {
	conn, err := amqp.Dial(tg.amqp)
	if err != nil {
		return nil, err
	}
	ch, err := conn.Channel()
	if err != nil {
		conn.Close()
		return nil, err
	}
	go func() { <-ch.NotifyClose(make(chan *amqp.Error, 1)); conn.Close() }()
	return ch, nil
}

// waitTopic waits until Kafka metadata shows topic with n partitions.
func waitTopic(t *testing.T, tg target, topic string, n int) {
	t.Helper()
	cl := client(t, tg)
	waitFor(t, 30*time.Second, func() error {
		ctx := testCtx(t, 5*time.Second)
		md, err := kadm.NewClient(cl).Metadata(ctx, topic)
		if err != nil {
			return err
		}
		td := md.Topics[topic]
		if td.Err != nil || len(td.Partitions) != n {
			return fmt.Errorf("topic %s over Kafka: %d partitions (%v), want %d", topic, len(td.Partitions), td.Err, n)
		}
		return nil
	})
}

// publishConfirmed publishes over AMQP in confirm mode and waits for every
// confirm.
func publishConfirmed(t *testing.T, ch *amqp.Channel, exchange string, msgs map[string][]amqp.Publishing) {
	t.Helper()
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	var confs []*amqp.DeferredConfirmation
	keys := make([]string, 0, len(msgs))
	for k := range msgs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, rk := range keys {
		for _, m := range msgs[rk] {
			c, err := ch.PublishWithDeferredConfirm(exchange, rk, true, false, m)
			if err != nil {
				t.Fatalf("publish: %v", err)
			}
			confs = append(confs, c)
		}
	}
	ctx := testCtx(t, 30*time.Second)
	for i, c := range confs {
		ok, err := c.WaitContext(ctx)
		if err != nil || !ok {
			t.Fatalf("confirm %d: acked %v, %v", i, ok, err)
		}
	}
}

func header(r *kgo.Record, key string) (string, bool) {
	v, ok := "", false
	for _, h := range r.Headers {
		if h.Key == key {
			v, ok = string(h.Value), true // the last one wins, as in the mapping
		}
	}
	return v, ok
}

// TestKafkaCrossAMQPToKafka: messages an AMQP publisher sends to stream S
// are records of topic S for a Kafka consumer: value = body, key = the
// x-kafka-key header or else the routing key, AMQP headers as Kafka headers.
func TestKafkaCrossAMQPToKafka(t *testing.T) {
	tg := broker(t)
	s := uniqueName(t, "s")
	declareStream(t, tg, s)
	ch := amqpChannel(t, tg)
	publishConfirmed(t, ch, "", map[string][]amqp.Publishing{s: {
		{Body: []byte("first"), Headers: amqp.Table{"x-kafka-key": "customer-42", "event": "new-order", "n": int32(7)}},
		{Body: []byte("second"), Headers: amqp.Table{"x-kafka-key": "customer-42", "event": "order-validated"}},
		{Body: []byte("third")},
	}})
	c := client(t, tg, kgo.ConsumeTopics(s), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	got := consumeN(t, c, 3, 60*time.Second)
	if len(got) != 3 {
		t.Fatalf("got %d records, want 3", len(got))
	}
	want := []struct{ key, value, event, n string }{
		{"customer-42", "first", "new-order", "7"},
		{"customer-42", "second", "order-validated", ""},
		{s, "third", "", ""},
	}
	for i, r := range got {
		w := want[i]
		if r.Offset != int64(i) || string(r.Key) != w.key || string(r.Value) != w.value {
			t.Errorf("record %d: offset %d key %q value %q, want offset %d key %q value %q", i, r.Offset, r.Key, r.Value, i, w.key, w.value)
		}
		if ev, _ := header(r, "event"); ev != w.event {
			t.Errorf("record %d: header event %q, want %q (headers %v)", i, ev, w.event, r.Headers)
		}
		if n, _ := header(r, "n"); n != w.n {
			t.Errorf("record %d: header n %q, want %q", i, n, w.n)
		}
		if _, ok := header(r, "x-kafka-key"); ok {
			t.Errorf("record %d: x-kafka-key copied into the Kafka headers", i)
		}
	}
}

// amqpStreamConsume reads n deliveries from stream s from its first offset.
func amqpStreamConsume(t *testing.T, tg target, s string, n int) []amqp.Delivery {
	t.Helper()
	ch := amqpChannel(t, tg)
	if err := ch.Qos(n+10, 0, false); err != nil {
		t.Fatal(err)
	}
	ds, err := ch.Consume(s, "", false, false, false, false, amqp.Table{"x-stream-offset": "first"})
	if err != nil {
		t.Fatalf("consume stream %s: %v", s, err)
	}
	var got []amqp.Delivery
	timeout := time.After(60 * time.Second)
	for len(got) < n {
		select {
		case d, ok := <-ds:
			if !ok {
				t.Fatalf("consumer closed after %d of %d deliveries", len(got), n)
			}
			got = append(got, d)
			if err := d.Ack(false); err != nil {
				t.Fatal(err)
			}
		case <-timeout:
			t.Fatalf("got %d of %d deliveries within 60s", len(got), n)
		}
	}
	return got
}

// checkKafkaRecordsOverAMQP checks deliveries of records produced as
// key-i/value-i with header h=hv-i.
func checkKafkaRecordsOverAMQP(t *testing.T, got []amqp.Delivery, values []string) {
	t.Helper()
	for i, d := range got {
		if string(d.Body) != values[i] {
			t.Errorf("delivery %d: body %.40q, want %.40q", i, d.Body, values[i])
		}
		if want := "key-" + strconv.Itoa(i); d.RoutingKey != want {
			t.Errorf("delivery %d: routing key %q, want the record key %q", i, d.RoutingKey, want)
		}
		if h := fmt.Sprint(d.Headers["h"]); h != "hv-"+strconv.Itoa(i) {
			t.Errorf("delivery %d: header h = %v (%T), want hv-%d", i, d.Headers["h"], d.Headers["h"], i)
		}
		off, ok := d.Headers["x-stream-offset"].(int64)
		if !ok || off != int64(i) {
			t.Errorf("delivery %d: x-stream-offset %v (%T), want int64 %d", i, d.Headers["x-stream-offset"], d.Headers["x-stream-offset"], i)
		}
	}
}

// compressible values, so every codec really compresses the batch.
func compressibleValues(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("value-%d:%s", i, strings.Repeat("order-validated ", 20))
	}
	return out
}

// TestKafkaCrossKafkaToAMQP: records franz-go produces (snappy, its default
// codec) to topic S reach an AMQP stream consumer with x-stream-offset first:
// body = value, routing key = key, headers intact, offsets in x-stream-offset.
func TestKafkaCrossKafkaToAMQP(t *testing.T) {
	tg := broker(t)
	s := uniqueName(t, "s")
	declareStream(t, tg, s)
	p := client(t, tg, kgo.DefaultProduceTopic(s), kgo.ProducerBatchCompression(kgo.SnappyCompression()), kgo.DisableIdempotentWrite(),
		kgo.ProducerLinger(50*time.Millisecond))
	values := compressibleValues(5)
	var recs []*kgo.Record
	for i, v := range values {
		recs = append(recs, &kgo.Record{Key: []byte("key-" + strconv.Itoa(i)), Value: []byte(v),
			Headers: []kgo.RecordHeader{{Key: "h", Value: []byte("hv-" + strconv.Itoa(i))}}})
	}
	produceSync(t, p, recs...)
	checkKafkaRecordsOverAMQP(t, amqpStreamConsume(t, tg, s, len(values)), values)
}

// TestKafkaCrossKcatLZ4ToAMQP: kcat (librdkafka) producing lz4-compressed
// batches with keys and headers; an AMQP stream consumer reads them.
func TestKafkaCrossKcatLZ4ToAMQP(t *testing.T) {
	kcat := kcatPath(t)
	tg := broker(t)
	s := uniqueName(t, "s")
	declareStream(t, tg, s)
	values := compressibleValues(4)
	// One kcat per record: -H applies to every message of a run.
	for i, v := range values {
		cmd := exec.Command(kcat, "-P", "-b", tg.kafka, "-t", s, "-z", "lz4", "-K", ":",
			"-H", "h=hv-"+strconv.Itoa(i), "-X", "linger.ms=5")
		cmd.Stdin = strings.NewReader("key-" + strconv.Itoa(i) + ":" + v + "\n")
		if out, err := runBounded(cmd, 30*time.Second); err != nil {
			t.Fatalf("kcat -P -z lz4: %v\n%s", err, out)
		}
	}
	checkKafkaRecordsOverAMQP(t, amqpStreamConsume(t, tg, s, len(values)), values)
}

// kcatPath finds kcat (Debian's package; .ci/run installs it) or skips.
func kcatPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"kcat", "kafkacat"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("kcat not installed (apt-get install kcat)")
	return ""
}

// runBounded runs cmd, killing it after d.
func runBounded(cmd *exec.Cmd, d time.Duration) ([]byte, error) {
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.Bytes(), err
	case <-time.After(d):
		_ = cmd.Process.Kill()
		<-done
		return out.Bytes(), fmt.Errorf("%s did not finish within %v", cmd.Path, d)
	}
}

// TestKafkaCrossSameKeySamePartition: a Kafka topic T of 3 partitions is the
// super stream T; an AMQP publish to exchange T with routing key K and a
// Kafka produce with key K land in the same partition, for many keys.
func TestKafkaCrossSameKeySamePartition(t *testing.T) {
	tg := broker(t)
	tg.amqpURL(t)
	topic := uniqueName(t, "super")
	createTopic(t, tg, topic, 3)
	keys := make([]string, 30)
	for i := range keys {
		keys[i] = "customer-" + strconv.Itoa(i)
	}
	msgs := map[string][]amqp.Publishing{}
	for _, k := range keys {
		msgs[k] = []amqp.Publishing{{Body: []byte("amqp:" + k)}}
	}
	publishConfirmed(t, amqpChannel(t, tg), topic, msgs)
	p := client(t, tg, kgo.DefaultProduceTopic(topic), kgo.DisableIdempotentWrite())
	var recs []*kgo.Record
	for _, k := range keys {
		recs = append(recs, &kgo.Record{Key: []byte(k), Value: []byte("kafka:" + k)})
	}
	produceSync(t, p, recs...)

	c := client(t, tg, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	got := consumeN(t, c, 2*len(keys), 60*time.Second)
	part := map[string]int32{}
	used := map[int32]bool{}
	for _, r := range got {
		k := string(r.Key)
		used[r.Partition] = true
		if prev, ok := part[k]; ok && prev != r.Partition {
			t.Errorf("key %s: in partitions %d and %d (%s)", k, prev, r.Partition, r.Value)
		}
		part[k] = r.Partition
	}
	if len(part) != len(keys) {
		t.Errorf("records carry %d distinct keys, want %d (AMQP routing key -> Kafka key)", len(part), len(keys))
	}
	if len(used) < 2 {
		t.Errorf("%d keys all in %d partition(s)", len(keys), len(used))
	}
}
