package kafka

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	segkafka "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kadm"
)

// kgoWriter is a segmentio/kafka-go writer with Kafka's key partitioner
// (murmur2), acks=all, closed when the test ends.
func kgoWriter(t *testing.T, tg target, topic string) *segkafka.Writer {
	// A transport of its own: kafka-go's shared one caches the metadata it
	// fetched before this test's topic existed.
	tr := &segkafka.Transport{}
	w := &segkafka.Writer{Addr: segkafka.TCP(tg.kafka), Topic: topic, Balancer: &segkafka.Murmur2Balancer{},
		RequiredAcks: segkafka.RequireAll, BatchTimeout: 5 * time.Millisecond, Transport: tr}
	t.Cleanup(func() { w.Close(); tr.CloseIdleConnections() })
	return w
}

// TestKafkaGoAdminTopics: kafka-go's client creates a 6-partition topic,
// sees it in metadata, deletes it, and it is gone.
func TestKafkaGoAdminTopics(t *testing.T) {
	tg := broker(t)
	topic := uniqueName(t, "t")
	tr := &segkafka.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	c := &segkafka.Client{Addr: segkafka.TCP(tg.kafka), Timeout: 20 * time.Second, Transport: tr}
	ctx := testCtx(t, 60*time.Second)
	cr, err := c.CreateTopics(ctx, &segkafka.CreateTopicsRequest{Topics: []segkafka.TopicConfig{{Topic: topic, NumPartitions: 6, ReplicationFactor: 1}}})
	if err != nil || cr.Errors[topic] != nil {
		t.Fatalf("CreateTopics: %v %v", err, cr)
	}
	waitFor(t, 30*time.Second, func() error {
		md, err := c.Metadata(ctx, &segkafka.MetadataRequest{Topics: []string{topic}})
		if err != nil {
			return err
		}
		if len(md.Topics) != 1 || md.Topics[0].Error != nil || len(md.Topics[0].Partitions) != 6 {
			return fmt.Errorf("metadata of %s: %+v", topic, md.Topics)
		}
		return nil
	})
	again, err := c.CreateTopics(ctx, &segkafka.CreateTopicsRequest{Topics: []segkafka.TopicConfig{{Topic: topic, NumPartitions: 6, ReplicationFactor: 1}}})
	if err != nil || !errors.Is(again.Errors[topic], segkafka.TopicAlreadyExists) {
		t.Errorf("creating %s again: %v %v, want TOPIC_ALREADY_EXISTS", topic, err, again)
	}
	dr, err := c.DeleteTopics(ctx, &segkafka.DeleteTopicsRequest{Topics: []string{topic}})
	if err != nil || dr.Errors[topic] != nil {
		t.Fatalf("DeleteTopics: %v %v", err, dr)
	}
	adm := kadm.NewClient(client(t, tg))
	waitFor(t, 30*time.Second, func() error {
		md, err := adm.Metadata(ctx, topic)
		if err != nil {
			return err
		}
		if td, ok := md.Topics[topic]; ok && td.Err == nil {
			return fmt.Errorf("topic %s still listed after delete", topic)
		}
		return nil
	})
}

// TestKafkaGoKeyedOrderPerKey: kafka-go's writer with the murmur2 balancer
// into 6 partitions, read back partition by partition: each key in one
// partition, in produce order.
func TestKafkaGoKeyedOrderPerKey(t *testing.T) {
	tg := broker(t)
	topic := uniqueName(t, "t")
	createTopic(t, tg, topic, 6)
	w := kgoWriter(t, tg, topic)
	ctx := testCtx(t, 90*time.Second)
	const keys, perKey = 12, 20
	var msgs []segkafka.Message
	for i := 0; i < perKey; i++ {
		for k := 0; k < keys; k++ {
			msgs = append(msgs, segkafka.Message{Key: []byte("customer-" + strconv.Itoa(k)), Value: []byte(strconv.Itoa(i))})
		}
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatalf("WriteMessages: %v", err)
	}
	part := map[string]int{}
	next := map[string]int{}
	total := 0
	for p := 0; p < 6; p++ {
		end := listEnd(t, tg, topic, int32(p))
		if end == 0 {
			continue
		}
		r := segkafka.NewReader(segkafka.ReaderConfig{Brokers: []string{tg.kafka}, Topic: topic, Partition: p,
			MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 200 * time.Millisecond})
		if err := r.SetOffset(segkafka.FirstOffset); err != nil {
			t.Fatal(err)
		}
		for off := int64(0); off < end; off++ {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				t.Fatalf("partition %d offset %d: %v", p, off, err)
			}
			k := string(m.Key)
			if prev, ok := part[k]; ok && prev != p {
				t.Fatalf("key %s in partitions %d and %d", k, prev, p)
			}
			part[k] = p
			if want := strconv.Itoa(next[k]); string(m.Value) != want {
				t.Fatalf("key %s: value %s, want %s", k, m.Value, want)
			}
			next[k]++
			total++
		}
		r.Close()
	}
	if total != len(msgs) {
		t.Fatalf("read %d messages, wrote %d", total, len(msgs))
	}
}

// groupReader is a kafka-go group member reading and committing (sync) in
// its own goroutine.
type groupReader struct {
	mu   sync.Mutex
	seen map[string]int // value -> partition
	stop func()
}

func startGroupReader(t *testing.T, tg target, group, topic string) *groupReader {
	r := segkafka.NewReader(segkafka.ReaderConfig{Brokers: []string{tg.kafka}, GroupID: group, Topic: topic,
		MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 200 * time.Millisecond, StartOffset: segkafka.FirstOffset,
		HeartbeatInterval: 500 * time.Millisecond, SessionTimeout: 10 * time.Second, RebalanceTimeout: 10 * time.Second,
		ReadBackoffMin: 50 * time.Millisecond, ReadBackoffMax: 200 * time.Millisecond})
	g := &groupReader{seen: map[string]int{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			m, err := r.FetchMessage(ctx)
			if err != nil {
				return
			}
			g.mu.Lock()
			g.seen[string(m.Value)] = m.Partition
			g.mu.Unlock()
			if err := r.CommitMessages(ctx, m); err != nil {
				return
			}
		}
	}()
	var once sync.Once
	g.stop = func() {
		once.Do(func() {
			cancel()
			<-done
			r.Close()
		})
	}
	t.Cleanup(g.stop)
	return g
}

func (g *groupReader) has(v string) (int, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	p, ok := g.seen[v]
	return p, ok
}

// stableMembers waits until the group is Stable with n members that all
// hold partitions.
func stableMembers(t *testing.T, tg target, group string, n int) {
	t.Helper()
	adm := kadm.NewClient(client(t, tg))
	waitFor(t, 60*time.Second, func() error {
		ctx := testCtx(t, 5*time.Second)
		gs, err := adm.DescribeGroups(ctx, group)
		if err != nil {
			return err
		}
		d := gs[group]
		if d.Err != nil || d.State != "Stable" || len(d.Members) != n {
			return fmt.Errorf("group %s: state %q, %d members (%v), want Stable with %d", group, d.State, len(d.Members), d.Err, n)
		}
		for _, m := range d.Members {
			ca, ok := m.Assigned.AsConsumer()
			if !ok || len(ca.Topics) == 0 {
				return fmt.Errorf("member %s holds no partitions yet", m.MemberID)
			}
		}
		return nil
	})
}

// TestKafkaGoGroupRebalanceAndResume: two kafka-go readers in one group
// split a 6-partition topic (each partition read by one of them); when one
// leaves, the other takes everything; a later reader of the group resumes
// after the committed offsets, reading only what is new.
func TestKafkaGoGroupRebalanceAndResume(t *testing.T) {
	tg := broker(t)
	topic, group := uniqueName(t, "t"), uniqueName(t, "g")
	createTopic(t, tg, topic, 6)
	w := kgoWriter(t, tg, topic)
	ctx := testCtx(t, 120*time.Second)
	write := func(from, to int) {
		t.Helper()
		var msgs []segkafka.Message
		for i := from; i < to; i++ {
			msgs = append(msgs, segkafka.Message{Key: []byte("k" + strconv.Itoa(i)), Value: []byte(strconv.Itoa(i))})
		}
		if err := w.WriteMessages(ctx, msgs...); err != nil {
			t.Fatalf("WriteMessages: %v", err)
		}
	}
	a := startGroupReader(t, tg, group, topic)
	stableMembers(t, tg, group, 1)
	b := startGroupReader(t, tg, group, topic)
	stableMembers(t, tg, group, 2)
	write(0, 120)
	owner := map[int]string{}
	waitFor(t, 60*time.Second, func() error {
		for i := 0; i < 120; i++ {
			pa, inA := a.has(strconv.Itoa(i))
			pb, inB := b.has(strconv.Itoa(i))
			switch {
			case !inA && !inB:
				return fmt.Errorf("message %d not read by either member yet", i)
			case inA:
				owner[pa] += "a"
			case inB:
				owner[pb] += "b"
			}
		}
		return nil
	})
	var sawA, sawB bool
	for p, who := range owner {
		for _, c := range who {
			sawA, sawB = sawA || c == 'a', sawB || c == 'b'
			if c != rune(who[0]) {
				t.Errorf("partition %d read by both members", p)
				break
			}
		}
	}
	if !sawA || !sawB {
		t.Errorf("one member read nothing: partitions by member %v", owner)
	}

	b.stop()
	stableMembers(t, tg, group, 1)
	write(120, 180)
	waitFor(t, 60*time.Second, func() error {
		for i := 120; i < 180; i++ {
			if _, ok := a.has(strconv.Itoa(i)); !ok {
				return fmt.Errorf("message %d not read by the remaining member", i)
			}
		}
		return nil
	})
	a.stop()

	write(180, 200)
	c := startGroupReader(t, tg, group, topic)
	waitFor(t, 60*time.Second, func() error {
		for i := 180; i < 200; i++ {
			if _, ok := c.has(strconv.Itoa(i)); !ok {
				return fmt.Errorf("message %d not read after resuming", i)
			}
		}
		return nil
	})
	c.stop()
	c.mu.Lock()
	defer c.mu.Unlock()
	for v := range c.seen {
		if n, _ := strconv.Atoi(v); n < 180 {
			t.Errorf("resumed reader read message %d again: committed offsets not used", n)
		}
	}
}
