package kafka

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// target is the broker the tests talk to.
type target struct {
	kind  string // "warren", "kfake" or "external"
	kafka string // HOST:PORT of the Kafka listener
	amqp  string // AMQP URL of the same broker; empty when there is none
	log   string // the broker's log file (warren only)
}

var (
	targetOnce sync.Once
	theTarget  target
	targetSkip string // why every test is skipped
	targetErr  error
	shutdown   []func() // run by TestMain after the tests
)

func TestMain(m *testing.M) {
	code := m.Run()
	for i := len(shutdown) - 1; i >= 0; i-- {
		shutdown[i]()
	}
	os.Exit(code)
}

// broker returns the target, started on first use, or skips the test.
func broker(t *testing.T) target {
	t.Helper()
	targetOnce.Do(func() { theTarget, targetSkip, targetErr = startTarget() })
	if targetSkip != "" {
		t.Skip(targetSkip)
	}
	if targetErr != nil {
		t.Fatal(targetErr)
	}
	tg := theTarget
	if tg.log != "" {
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("broker log (%s), last lines:\n%s", tg.log, logTail(tg.log, 40))
			}
		})
	}
	return tg
}

// TestKafkaAPIsAdvertised: the broker advertises (ApiVersions) every API of
// ServedAPIs, so a missing one fails here by name, not as some client's
// error in a later test.
func TestKafkaAPIsAdvertised(t *testing.T) {
	tg := broker(t)
	missing, err := MissingAPIs(testCtx(t, 30*time.Second), tg.kafka, ServedAPIs...)
	if err != nil {
		t.Fatal(err)
	}
	if len(missing) > 0 {
		t.Fatalf("the %s broker at %s does not advertise %s (ApiVersions); Warren serves all of %s",
			tg.kind, tg.kafka, strings.Join(missing, ", "), strings.Join(ServedAPIs, ", "))
	}
}

// amqpURL returns the target's AMQP URL or skips a cross-protocol test.
func (tg target) amqpURL(t *testing.T) string {
	t.Helper()
	if tg.amqp == "" {
		t.Skipf("needs the broker's AMQP side: %s target has none (set WARREN_AMQP_URL with WARREN_KAFKA_ADDR)", tg.kind)
	}
	return tg.amqp
}

func startTarget() (target, string, error) {
	switch addr := os.Getenv("WARREN_KAFKA_ADDR"); addr {
	case "":
		return startWarren()
	case "kfake":
		c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(1))
		if err != nil {
			return target{}, "", fmt.Errorf("kfake: %w", err)
		}
		shutdown = append(shutdown, c.Close)
		return target{kind: "kfake", kafka: c.ListenAddrs()[0], amqp: os.Getenv("WARREN_AMQP_URL")}, "", nil
	default:
		return target{kind: "external", kafka: addr, amqp: os.Getenv("WARREN_AMQP_URL")}, "", nil
	}
}

// startWarren builds cmd/warren and runs it for the whole package, as
// test/crash does but once: every test works in topics of its own.
func startWarren() (target, string, error) {
	if testing.Short() {
		return target{}, "builds and runs the broker binary; skipped with -short (set WARREN_KAFKA_ADDR to test a running broker)", nil
	}
	dir, err := os.MkdirTemp("", "warren-kafka-test-")
	if err != nil {
		return target{}, "", err
	}
	shutdown = append(shutdown, func() { os.RemoveAll(dir) })
	bin := os.Getenv("WARREN_KAFKA_BIN")
	if bin == "" {
		goBin, err := exec.LookPath("go")
		if err != nil {
			return target{}, "", fmt.Errorf("go not on PATH: %v", err)
		}
		bin = filepath.Join(dir, "warren")
		out, err := exec.Command(goBin, "build", "-o", bin, "github.com/warren-mq/warren/cmd/warren").CombinedOutput()
		if err != nil {
			return target{}, "", fmt.Errorf("go build ./cmd/warren: %v\n%s", err, out)
		}
	}
	if !hasKafkaListener(bin) {
		return target{}, "", fmt.Errorf("the warren binary %s has no Kafka listener (no --kafka-addr flag in --help)", bin)
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		tg, stop, err := launchWarren(bin, dir, attempt)
		if err == nil {
			shutdown = append(shutdown, stop)
			return tg, "", nil
		}
		lastErr = err
		if !strings.Contains(logTail(tg.log, 100), "address already in use") {
			break
		}
	}
	return target{}, "", lastErr
}

// hasKafkaListener reports whether the binary's help lists --kafka-addr.
func hasKafkaListener(bin string) bool {
	out, _ := exec.Command(bin, "--help").CombinedOutput()
	return bytes.Contains(out, []byte("--kafka-addr"))
}

// launchWarren starts the binary and waits until it is ready; stop kills it.
func launchWarren(bin, dir string, attempt int) (tg target, stop func(), err error) {
	amqpAddr, kafkaAddr := freePort(), freePort()
	tg = target{kind: "warren", kafka: kafkaAddr, amqp: "amqp://guest:guest@" + amqpAddr + "/",
		log: filepath.Join(dir, fmt.Sprintf("warren-%d.log", attempt))}
	lf, err := os.Create(tg.log)
	if err != nil {
		return tg, nil, err
	}
	data := filepath.Join(dir, fmt.Sprintf("data-%d", attempt))
	cmd := exec.Command(bin, "--amqp-addr", amqpAddr, "--kafka-addr", kafkaAddr, "--data-dir", data,
		"--mgmt-addr", "", "--prometheus-addr", "", "--log-level", "debug")
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		lf.Close()
		return tg, nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); lf.Close() }()
	stop = func() {
		_ = cmd.Process.Kill()
		<-exited
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := ready(tg)
		if err == nil {
			return tg, stop, nil
		}
		select {
		case werr := <-exited:
			return tg, nil, fmt.Errorf("warren exited before accepting connections (%v): %v\n%s", werr, err, logTail(tg.log, 40))
		default:
		}
		if time.Now().After(deadline) {
			stop()
			return tg, nil, fmt.Errorf("warren not ready after 60s: %v\n%s", err, logTail(tg.log, 40))
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not synchronisation
	}
}

// ready checks once that both listeners accept connections.
func ready(tg target) error {
	c, err := amqp.DialConfig(tg.amqp, amqp.Config{Dial: amqp.DefaultDial(time.Second)})
	if err != nil {
		return err
	}
	c.Close()
	// Only the listener: which Kafka requests work is what the tests check.
	k, err := net.DialTimeout("tcp", tg.kafka, time.Second)
	if err != nil {
		return err
	}
	return k.Close()
}

func freePort() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func logTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

var nameSeq atomic.Int64

// uniqueName is a topic, group or queue name for this test and run: legal
// in Kafka (letters, digits, . _ -) and in AMQP.
func uniqueName(t *testing.T, what string) string {
	clean := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			return r
		}
		return '.'
	}, strings.TrimPrefix(t.Name(), "TestKafka"))
	return fmt.Sprintf("%s.%s.%d.%d", clean, what, time.Now().UnixNano()%1e9, nameSeq.Add(1))
}

// testCtx is a context bounded well inside go test's own timeout.
func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// client is a kgo client of the target, closed when the test ends.
func client(t *testing.T, tg target, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(tg.kafka)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// createTopic creates a topic with n partitions and waits until its leaders
// are known.
func createTopic(t *testing.T, tg target, topic string, partitions int32) {
	t.Helper()
	adm := kadm.NewClient(client(t, tg))
	ctx := testCtx(t, 30*time.Second)
	resp, err := adm.CreateTopic(ctx, partitions, 1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("create topic %s with %d partitions: %v", topic, partitions, err)
	}
	waitFor(t, 30*time.Second, func() error {
		md, err := adm.Metadata(ctx, topic)
		if err != nil {
			return err
		}
		td, ok := md.Topics[topic]
		if !ok || td.Err != nil {
			return fmt.Errorf("topic %s not in metadata yet: %v", topic, td.Err)
		}
		if len(td.Partitions) != int(partitions) {
			return fmt.Errorf("topic %s has %d partitions in metadata, want %d", topic, len(td.Partitions), partitions)
		}
		for _, p := range td.Partitions {
			if p.Leader < 0 || p.Err != nil {
				return fmt.Errorf("partition %d: leader %d, %v", p.Partition, p.Leader, p.Err)
			}
		}
		return nil
	})
}

// waitFor polls fn until it returns nil or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, fn func() error) {
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

// produceSync produces records and fails the test on any error.
func produceSync(t *testing.T, cl *kgo.Client, recs ...*kgo.Record) []*kgo.Record {
	t.Helper()
	ctx := testCtx(t, 60*time.Second)
	res := cl.ProduceSync(ctx, recs...)
	if err := res.FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	out := make([]*kgo.Record, len(res))
	for i, r := range res {
		out[i] = r.Record
	}
	return out
}

// consumeN polls until n records arrived and returns them; fewer fail the
// test after the timeout. Extra records in the last fetch are returned too.
func consumeN(t *testing.T, cl *kgo.Client, n int, timeout time.Duration) []*kgo.Record {
	t.Helper()
	ctx := testCtx(t, timeout)
	var got []*kgo.Record
	for len(got) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("got %d of %d records within %v", len(got), n, timeout)
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
