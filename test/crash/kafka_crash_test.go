package crash

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// kafkaRounds is how many kills a Kafka crash test makes (WARREN_CRASH_ROUNDS,
// default def).
func kafkaRounds(t *testing.T, def int) int {
	t.Helper()
	if s := os.Getenv("WARREN_CRASH_ROUNDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("WARREN_CRASH_ROUNDS=%q", s)
		}
		return n
	}
	return def
}

var kafkaProduceAPIs = []string{"Metadata", "Produce", "Fetch", "ListOffsets"}

// acked is one record the broker acknowledged with acks=all.
type acked struct {
	partition int32
	offset    int64
	value     string
}

// TestCrashKafkaAcksAllProduce kills the broker with SIGKILL while a
// producer with acks=all writes to a 3-partition topic: after every restart
// each acknowledged record is at the offset it was acknowledged with, and
// each partition's offsets run contiguously from 0 to its end offset.
func TestCrashKafkaAcksAllProduce(t *testing.T) {
	s := seed(t)
	t.Logf("seed %d (WARREN_CRASH_SEED=%d repeats the kill times)", s, s)
	rng := rand.New(rand.NewPCG(s, 1))
	w := newKafkaWarren(t, kafkaProduceAPIs...)
	defer w.checkLogs()
	const topic = "crash-acks"
	parts := int32(3)
	if !w.canCreateTopics() {
		parts = 1 // an AMQP stream until CreateTopics is served
	}
	w.createTopic(topic, parts)
	var mu sync.Mutex
	var all []acked
	for round := 1; round <= kafkaRounds(t, 3); round++ {
		p := w.client(kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.DisableIdempotentWrite(),
			kgo.ProducerLinger(time.Millisecond), kgo.RecordDeliveryTimeout(10*time.Second))
		pctx, stop := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := 0; pctx.Err() == nil; i++ {
				v := fmt.Sprintf("r%d-%d", round, i)
				p.Produce(pctx, &kgo.Record{Key: []byte("k" + strconv.Itoa(i%11)), Value: []byte(v)}, func(r *kgo.Record, err error) {
					if err == nil {
						mu.Lock()
						all = append(all, acked{r.Partition, r.Offset, string(r.Value)})
						mu.Unlock()
					}
				})
				if i%64 == 63 {
					_ = p.Flush(pctx) // keep a bounded number in flight
				}
			}
		}()
		// Let some records be acknowledged, then kill at a random moment.
		mu.Lock()
		before := len(all)
		mu.Unlock()
		pollUntil(t, 30*time.Second, func() error {
			mu.Lock()
			defer mu.Unlock()
			if len(all) < before+100 {
				return fmt.Errorf("only %d records acknowledged in round %d", len(all)-before, round)
			}
			return nil
		})
		time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond) // a random kill moment, not synchronisation
		w.kill()
		stop()
		<-done
		closeBounded(p, 5*time.Second)
		mu.Lock()
		n := len(all)
		mu.Unlock()
		w.start()
		t.Logf("round %d: %d records acknowledged so far; restarted in %v", round, n, w.ready.Round(time.Millisecond))

		got := w.readAll(topic, kgo.ReadUncommitted())
		mu.Lock()
		for _, a := range all {
			v, ok := got[a.partition][a.offset]
			if !ok || v != a.value {
				t.Errorf("round %d: acknowledged %s at %d/%d, after the restart that offset holds %q (present %v)", round, a.value, a.partition, a.offset, v, ok)
			}
		}
		mu.Unlock()
		for part, recs := range got {
			for off := int64(0); off < int64(len(recs)); off++ {
				if !has(recs, off) {
					t.Fatalf("round %d: partition %d has %d records but no offset %d: offsets not contiguous", round, part, len(recs), off)
				}
			}
		}
		if t.Failed() {
			return
		}
	}
}

// TestCrashKafkaGroupOffsets kills the broker while a group member consumes
// and commits after every poll: after each restart the group's committed
// offset is at least the last commit the broker acknowledged (and no more
// than the last one attempted), and an offset committed once by another
// group before the first kill is still there after the last.
func TestCrashKafkaGroupOffsets(t *testing.T) {
	s := seed(t)
	t.Logf("seed %d (WARREN_CRASH_SEED=%d repeats the kill times)", s, s)
	rng := rand.New(rand.NewPCG(s, 2))
	w := newKafkaWarren(t, append(kafkaProduceAPIs, "FindCoordinator", "JoinGroup", "SyncGroup", "Heartbeat",
		"LeaveGroup", "OffsetCommit", "OffsetFetch")...)
	defer w.checkLogs()
	const topic, group, still = "crash-group", "crash-group-g", "crash-group-still"
	w.createTopic(topic, 1)
	const n = 5000
	p := w.client(kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.DisableIdempotentWrite())
	var recs []*kgo.Record
	for i := 0; i < n; i++ {
		recs = append(recs, &kgo.Record{Value: []byte(strconv.Itoa(i))})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := p.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	adm := kadm.NewClient(w.client())
	offs := kadm.Offsets{}
	offs.Add(kadm.Offset{Topic: topic, Partition: 0, At: 1234, LeaderEpoch: -1})
	if resp, err := adm.CommitOffsets(ctx, still, offs); err != nil || resp.Error() != nil {
		t.Fatalf("commit for %s: %v %v", still, err, resp.Error())
	}

	var lastAcked, lastTried int64 // next offsets, as committed
	for round := 1; round <= kafkaRounds(t, 3); round++ {
		var mu sync.Mutex
		commits := 0
		c := w.client(kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic), kgo.DisableAutoCommit(),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxBytes(4096))
		cctx, ccancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			for cctx.Err() == nil {
				fs := c.PollRecords(cctx, 20)
				rs := fs.Records()
				if len(rs) == 0 {
					continue
				}
				last := rs[len(rs)-1]
				mu.Lock()
				lastTried = max(lastTried, last.Offset+1)
				mu.Unlock()
				if err := c.CommitRecords(cctx, last); err == nil {
					mu.Lock()
					lastAcked = max(lastAcked, last.Offset+1)
					commits++
					mu.Unlock()
				}
			}
		}()
		pollUntil(t, 60*time.Second, func() error {
			mu.Lock()
			defer mu.Unlock()
			if commits < 5 {
				return fmt.Errorf("round %d: %d commits acknowledged", round, commits)
			}
			return nil
		})
		time.Sleep(time.Duration(rng.IntN(200)) * time.Millisecond) // a random kill moment, not synchronisation
		w.kill()
		ccancel()
		<-done
		closeBounded(c, 5*time.Second)
		w.start()
		mu.Lock()
		acked, tried := lastAcked, lastTried
		mu.Unlock()
		adm := kadm.NewClient(w.client())
		var got int64 = -2
		pollUntil(t, 30*time.Second, func() error {
			fo, err := adm.FetchOffsets(ctx, group)
			if err != nil {
				return err
			}
			o, ok := fo.Lookup(topic, 0)
			if !ok || o.Err != nil {
				return fmt.Errorf("OffsetFetch %s: %+v", group, o)
			}
			got = o.At
			return nil
		})
		t.Logf("round %d: committed offset %d after the restart (last acknowledged %d, last tried %d)", round, got, acked, tried)
		if got < acked || got > tried {
			t.Fatalf("round %d: committed offset %d after the restart, want between the last acknowledged %d and the last tried %d", round, got, acked, tried)
		}
		fo, err := adm.FetchOffsets(ctx, still)
		if err != nil {
			t.Fatal(err)
		}
		if o, _ := fo.Lookup(topic, 0); o.At != 1234 {
			t.Fatalf("round %d: group %s lost its committed offset: %+v, want 1234", round, still, o)
		}
		if got >= n {
			t.Logf("every record consumed after %d rounds", round)
			break
		}
	}
}

// TestCrashKafkaExactlyOnce runs consume-transform-produce with franz-go's
// GroupTransactSession (input read read_committed, output records and input
// offsets committed in one transaction) and kills the broker in the middle:
// a new session with the same transactional id finishes the work after the
// restart, and the output topic, read read_committed, holds every input
// record transformed exactly once.
func TestCrashKafkaExactlyOnce(t *testing.T) {
	s := seed(t)
	t.Logf("seed %d (WARREN_CRASH_SEED=%d repeats the kill times)", s, s)
	rng := rand.New(rand.NewPCG(s, 3))
	w := newKafkaWarren(t, append(kafkaProduceAPIs, "FindCoordinator", "JoinGroup", "SyncGroup", "Heartbeat", "LeaveGroup",
		"OffsetCommit", "OffsetFetch", "InitProducerID", "AddPartitionsToTxn", "AddOffsetsToTxn", "EndTxn", "TxnOffsetCommit")...)
	defer w.checkLogs()
	const in, out, group, txnID = "crash-eos-in", "crash-eos-out", "crash-eos-g", "crash-eos-txn"
	w.createTopic(in, 2)
	w.createTopic(out, 1)
	const n = 1500
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	p := w.client(kgo.DefaultProduceTopic(in), kgo.RequiredAcks(kgo.AllISRAcks()))
	var recs []*kgo.Record
	for i := 0; i < n; i++ {
		recs = append(recs, &kgo.Record{Key: []byte("k" + strconv.Itoa(i%7)), Value: []byte(strconv.Itoa(i))})
	}
	if err := p.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	committedTxns := 0
	// process runs one session until stop is closed or every input record's
	// offset is committed; it returns the session for closing.
	process := func(stop <-chan struct{}) (*kgo.GroupTransactSession, <-chan struct{}) {
		sess, err := kgo.NewGroupTransactSession(kgo.SeedBrokers(w.kafka), kgo.TransactionalID(txnID),
			kgo.ConsumerGroup(group), kgo.ConsumeTopics(in), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
			kgo.DefaultProduceTopic(out), kgo.TransactionTimeout(10*time.Second),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.RetryTimeout(20*time.Second),
			kgo.FetchMaxBytes(8192), kgo.SessionTimeout(10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		sctx, scancel := context.WithCancel(ctx)
		go func() { <-stop; scancel() }()
		done := make(chan struct{})
		go func() {
			defer close(done)
			for sctx.Err() == nil {
				fs := sess.PollRecords(sctx, 50)
				rs := fs.Records()
				if len(rs) == 0 {
					continue
				}
				if err := sess.Begin(); err != nil {
					return
				}
				for _, r := range rs {
					sess.Produce(sctx, &kgo.Record{Key: r.Key, Value: []byte("out-" + string(r.Value))}, nil)
				}
				if ok, err := sess.End(sctx, kgo.TryCommit); ok && err == nil {
					mu.Lock()
					committedTxns++
					mu.Unlock()
				}
			}
		}()
		return sess, done
	}

	stop1 := make(chan struct{})
	sess1, done1 := process(stop1)
	pollUntil(t, 60*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if committedTxns < 5 {
			return fmt.Errorf("%d transactions committed", committedTxns)
		}
		return nil
	})
	time.Sleep(time.Duration(rng.IntN(200)) * time.Millisecond) // a random kill moment, not synchronisation
	w.kill()
	close(stop1)
	<-done1
	w.start()
	mu.Lock()
	t.Logf("killed after %d committed transactions; restarted in %v", committedTxns, w.ready.Round(time.Millisecond))
	mu.Unlock()
	closeSession(t, sess1)

	stop2 := make(chan struct{})
	sess2, done2 := process(stop2)
	adm := kadm.NewClient(w.client())
	ends, err := adm.ListEndOffsets(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	pollUntil(t, 120*time.Second, func() error {
		fo, err := adm.FetchOffsets(ctx, group)
		if err != nil {
			return err
		}
		var behind []string
		ends.Each(func(e kadm.ListedOffset) {
			if o, _ := fo.Lookup(in, e.Partition); o.At < e.Offset {
				behind = append(behind, fmt.Sprintf("%d: %d of %d", e.Partition, o.At, e.Offset))
			}
		})
		if len(behind) > 0 {
			return fmt.Errorf("group %s has not committed every input record: %v", group, behind)
		}
		return nil
	})
	close(stop2)
	<-done2
	closeSession(t, sess2)

	// A plain record after everything: read_committed reads past every
	// decided transaction up to it.
	m := w.client(kgo.DefaultProduceTopic(out), kgo.DisableIdempotentWrite())
	if err := m.ProduceSync(ctx, &kgo.Record{Value: []byte("end")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	got := w.readAll(out, kgo.ReadCommitted())
	seen := map[string]int{}
	for _, v := range got[0] {
		seen[v]++
	}
	if seen["end"] != 1 {
		t.Fatalf("end marker read %d times", seen["end"])
	}
	for i := 0; i < n; i++ {
		if c := seen["out-"+strconv.Itoa(i)]; c != 1 {
			t.Errorf("output of input %d read %d times under read_committed, want exactly once", i, c)
		}
	}
	if len(seen) != n+1 {
		t.Errorf("output holds %d distinct values, want %d", len(seen), n+1)
	}
}

// closeSession closes a transact session (leaving its group), bounded.
func closeSession(t *testing.T, s *kgo.GroupTransactSession) {
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Log("transact session still closing after 30s; left to finish on its own")
	}
}
