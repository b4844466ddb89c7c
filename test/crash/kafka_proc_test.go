package crash

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/warren-mq/warren/test/kafka"
)

// kafkaWarren is the broker binary with a Kafka listener on one loopback
// port kept across its restarts, so clients reconnect to the same address.
type kafkaWarren struct {
	*warren
	kafka string // HOST:PORT
}

// newKafkaWarren builds the binary (or takes WARREN_CRASH_KAFKA_BIN, any
// program taking warren's flags, e.g. a stand-in used to check these tests)
// and skips the test if it has no Kafka listener or does not advertise the
// APIs named.
func newKafkaWarren(t *testing.T, apis ...string) *kafkaWarren {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and kills the broker binary; skipped with -short")
	}
	bin := os.Getenv("WARREN_CRASH_KAFKA_BIN")
	if bin == "" {
		bin = buildWarren(t)
	}
	if out, _ := exec.Command(bin, "--help").CombinedOutput(); !strings.Contains(string(out), "--kafka-addr") {
		t.Skip("the warren binary has no Kafka listener yet (no --kafka-addr in --help)")
	}
	addr, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	w := &kafkaWarren{warren: newWarren(t, bin, dataDir(t), "--kafka-addr", addr, "--mgmt-addr", "", "--prometheus-addr", "",
		"--sync", "always", "--log-level", "debug"), kafka: addr}
	w.start()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	missing, err := kafka.MissingAPIs(ctx, addr, apis...)
	if err != nil {
		t.Fatalf("ApiVersions: %v\n%s", err, w.logTail(40))
	}
	if len(missing) > 0 {
		t.Skipf("the broker does not advertise %s (ApiVersions) yet", strings.Join(missing, ", "))
	}
	return w
}

// start runs the process and waits until both listeners accept connections.
func (w *kafkaWarren) start() {
	w.t.Helper()
	w.warren.start()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", w.kafka, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("Kafka listener %s not accepting connections: %v\n%s", w.kafka, err, w.logTail(40))
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not synchronisation
	}
}

// client is a kgo client of the broker, closed when the test ends.
func (w *kafkaWarren) client(opts ...kgo.Opt) *kgo.Client {
	w.t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(w.kafka), kgo.RetryTimeout(20 * time.Second)}, opts...)...)
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(cl.Close)
	return cl
}

// canCreateTopics reports whether the broker advertises CreateTopics.
func (w *kafkaWarren) canCreateTopics() bool {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	missing, err := kafka.MissingAPIs(ctx, w.kafka, "CreateTopics")
	if err != nil {
		w.t.Fatal(err)
	}
	return len(missing) == 0
}

// createTopic creates a topic of n partitions and waits for its leaders.
// Without CreateTopics a topic of one partition is declared as an AMQP
// stream, which is the Kafka topic of the same name; more partitions skip
// the test.
func (w *kafkaWarren) createTopic(topic string, n int32) {
	w.t.Helper()
	adm := kadm.NewClient(w.client())
	defer adm.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	switch {
	case w.canCreateTopics():
		resp, err := adm.CreateTopic(ctx, n, 1, nil, topic)
		if err == nil {
			err = resp.Err
		}
		if err != nil {
			w.t.Fatalf("create topic %s: %v", topic, err)
		}
	case n == 1:
		w.declareStream(topic)
	default:
		w.t.Skipf("the broker does not advertise CreateTopics yet (needed for %d partitions)", n)
	}
	pollUntil(w.t, 30*time.Second, func() error {
		md, err := adm.Metadata(ctx, topic)
		if err != nil {
			return err
		}
		if td := md.Topics[topic]; td.Err != nil || len(td.Partitions) != int(n) {
			return fmt.Errorf("topic %s: %d partitions, %v", topic, len(td.Partitions), td.Err)
		}
		return nil
	})
}

// declareStream declares a durable stream queue over AMQP.
func (w *kafkaWarren) declareStream(name string) {
	w.t.Helper()
	c, err := amqp.Dial(w.URL())
	if err != nil {
		w.t.Fatal(err)
	}
	defer c.Close()
	ch, err := c.Channel()
	if err != nil {
		w.t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(name, true, false, false, false, amqp.Table{"x-queue-type": "stream"}); err != nil {
		w.t.Fatalf("declare stream %s: %v", name, err)
	}
}

// readAll consumes every partition of topic from offset 0 to its end offset
// (as ListOffsets says after the restart) and returns the values by
// partition and offset.
func (w *kafkaWarren) readAll(topic string, isolation kgo.IsolationLevel) map[int32]map[int64]string {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	adm := kadm.NewClient(w.client())
	defer adm.Close()
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		w.t.Fatalf("ListOffsets: %v", err)
	}
	want := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			w.t.Fatalf("end offset of %s/%d: %v", o.Topic, o.Partition, o.Err)
		}
		want[o.Partition] = o.Offset
	})
	got := map[int32]map[int64]string{}
	for p := range want {
		got[p] = map[int64]string{}
	}
	cl := w.client(kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(isolation))
	defer cl.Close()
	done := func() bool {
		for p, end := range want {
			if end > 0 && !has(got[p], end-1) {
				return false
			}
		}
		return true
	}
	for !done() {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			w.t.Fatalf("reading %s back: %v (have %d partitions, ends %v)", topic, ctx.Err(), len(got), want)
		}
		fs.EachError(func(t string, p int32, err error) { w.t.Fatalf("fetch %s/%d: %v", t, p, err) })
		fs.EachRecord(func(r *kgo.Record) { got[r.Partition][r.Offset] = string(r.Value) })
	}
	return got
}

func has(m map[int64]string, k int64) bool {
	_, ok := m[k]
	return ok
}

// pollUntil polls fn until it returns nil or the timeout passes.
func pollUntil(t *testing.T, timeout time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", timeout, err)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not synchronisation
	}
}

// closeBounded closes a client that may be waiting on a dead broker; it
// gives up waiting after d (the client's goroutines then end on their own).
func closeBounded(cl *kgo.Client, d time.Duration) {
	done := make(chan struct{})
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		_ = cl.AbortBufferedRecords(ctx)
		cl.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(d + time.Second):
	}
}
