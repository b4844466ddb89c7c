package kafkaserver

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// End-to-end group tests with franz-go's consumer against the in-process
// broker (txnKafka: restartable on its data directory behind a proxy).

// noInitialDelay lets the tests' groups form without Kafka's 3 s wait for
// more members; called before any client uses the server.
func noInitialDelay(s *Server) {
	s.groups.mu.Lock()
	s.groups.cfg.InitialRebalanceDelay = 0
	s.groups.mu.Unlock()
}

// produceValues produces one record per value, keyed so they spread over
// the partitions, and waits for all acks.
func produceValues(t *testing.T, k *txnKafka, topic string, from, to int) {
	t.Helper()
	cl := k.client()
	defer cl.Close()
	var recs []*kgo.Record
	for i := from; i < to; i++ {
		recs = append(recs, &kgo.Record{Topic: topic, Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, "v%d", i)})
	}
	if err := cl.ProduceSync(testCtx(t), recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

// groupMember is a kgo group consumer and the partitions it owns.
type groupMember struct {
	cl    *kgo.Client
	mu    sync.Mutex
	owned map[int32]bool
}

func (k *txnKafka) groupMember(t *testing.T, group, topic string, opts ...kgo.Opt) *groupMember {
	m := &groupMember{owned: map[int32]bool{}}
	opts = append([]kgo.Opt{
		kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic), kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.HeartbeatInterval(100 * time.Millisecond),
		kgo.FetchMaxWait(200 * time.Millisecond),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, a map[string][]int32) { m.set(a[topic], true) }),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, r map[string][]int32) { m.set(r[topic], false) }),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, r map[string][]int32) { m.set(r[topic], false) }),
	}, opts...)
	m.cl = k.client(opts...)
	return m
}

func (m *groupMember) set(ps []int32, own bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range ps {
		if own {
			m.owned[p] = true
		} else {
			delete(m.owned, p)
		}
	}
}

func (m *groupMember) partitions() []int32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []int32
	for p := range m.owned {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// pollUntil polls the members (each a little at a time) until done says
// the values seen are enough, and returns them.
func pollUntil(t *testing.T, done func(seen map[string]int) bool, ms ...*groupMember) map[string]int {
	t.Helper()
	seen := map[string]int{}
	deadline := time.Now().Add(60 * time.Second)
	for !done(seen) {
		if time.Now().After(deadline) {
			t.Fatalf("gave up polling; seen %d values: %v", len(seen), seen)
		}
		for _, m := range ms {
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			fs := m.cl.PollFetches(ctx)
			cancel()
			fs.EachRecord(func(r *kgo.Record) { seen[string(r.Value)]++ })
		}
	}
	return seen
}

func haveValues(from, to int) func(map[string]int) bool {
	return func(seen map[string]int) bool {
		for i := from; i < to; i++ {
			if seen[fmt.Sprint("v", i)] == 0 {
				return false
			}
		}
		return true
	}
}

// Two consumers share a topic's partitions after a rebalance, with the
// eager range balancer and with cooperative-sticky (whose second rebalance
// hands over what the first member revoked).
func TestKafkaGroupKgoTwoConsumersRebalance(t *testing.T) {
	for _, tc := range []struct {
		name string
		bal  kgo.GroupBalancer
	}{{"range", kgo.RangeBalancer()}, {"cooperative-sticky", kgo.CooperativeStickyBalancer()}} {
		t.Run(tc.name, func(t *testing.T) {
			k := newTxnKafka(t)
			noInitialDelay(k.srv)
			k.createTopic(testCtx(t), "orders", 4)
			produceValues(t, k, "orders", 0, 40)
			a := k.groupMember(t, "g", "orders", kgo.Balancers(tc.bal))
			pollUntil(t, haveValues(0, 40), a)
			if got := a.partitions(); len(got) != 4 {
				t.Fatalf("first member owns %v", got)
			}
			if err := a.cl.CommitUncommittedOffsets(testCtx(t)); err != nil {
				t.Fatal(err)
			}
			b := k.groupMember(t, "g", "orders", kgo.Balancers(tc.bal))
			pollUntil(t, func(map[string]int) bool {
				pa, pb := a.partitions(), b.partitions()
				return len(pa) == 2 && len(pb) == 2 && !slices.ContainsFunc(pa, func(p int32) bool { return slices.Contains(pb, p) })
			}, a, b)
			produceValues(t, k, "orders", 40, 80)
			seen := pollUntil(t, haveValues(40, 80), a, b)
			for v, n := range seen {
				var i int
				fmt.Sscanf(v, "v%d", &i)
				if i < 40 {
					t.Fatalf("record %s before the commit delivered again", v)
				}
				if n != 1 {
					t.Fatalf("record %s delivered %d times", v, n)
				}
			}
			desc, err := kadm.NewClient(a.cl).DescribeGroups(testCtx(t), "g")
			if err != nil {
				t.Fatal(err)
			}
			if d := desc["g"]; d.State != "Stable" || len(d.Members) != 2 || d.Protocol != tc.bal.ProtocolName() {
				t.Fatalf("group: %+v", d)
			}
		})
	}
}

// Committed offsets let a restarted consumer, and a consumer after a
// broker restart, resume where the group had got to.
func TestKafkaGroupKgoCommittedOffsetsResume(t *testing.T) {
	k := newTxnKafka(t)
	noInitialDelay(k.srv)
	k.createTopic(testCtx(t), "events", 2)
	produceValues(t, k, "events", 0, 20)
	step := func(from, to int) {
		t.Helper()
		m := k.groupMember(t, "resume", "events")
		seen := pollUntil(t, haveValues(from, to), m)
		if len(seen) != to-from {
			t.Fatalf("consumed %d records, want %d (from %d): %v", len(seen), to-from, from, seen)
		}
		if err := m.cl.CommitUncommittedOffsets(testCtx(t)); err != nil {
			t.Fatal(err)
		}
		m.cl.Close()
	}
	step(0, 20)
	produceValues(t, k, "events", 20, 30)
	step(20, 30) // a new consumer of the group
	k.restart()
	noInitialDelay(k.srv)
	produceValues(t, k, "events", 30, 35)
	step(30, 35) // after a broker restart
	offs, err := kadm.NewClient(k.client()).FetchOffsets(testCtx(t), "resume")
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	offs.Each(func(o kadm.OffsetResponse) { total += o.At })
	if total != 35 {
		t.Fatalf("committed offsets sum to %d, want 35: %+v", total, offs)
	}
}

// A static member that restarts gets its member slot back without a
// rebalance (KIP-345) and resumes from its commits.
func TestKafkaGroupKgoStaticMemberRejoin(t *testing.T) {
	k := newTxnKafka(t)
	noInitialDelay(k.srv)
	k.createTopic(testCtx(t), "s", 2)
	produceValues(t, k, "s", 0, 10)
	m := k.groupMember(t, "static", "s", kgo.InstanceID("instance-1"))
	pollUntil(t, haveValues(0, 10), m)
	if err := m.cl.CommitUncommittedOffsets(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	adm := kadm.NewClient(k.client())
	before, err := adm.DescribeGroups(testCtx(t), "static")
	if err != nil {
		t.Fatal(err)
	}
	m.cl.Close() // a static member does not leave
	produceValues(t, k, "s", 10, 15)
	m = k.groupMember(t, "static", "s", kgo.InstanceID("instance-1"))
	seen := pollUntil(t, haveValues(10, 15), m)
	if len(seen) != 5 {
		t.Fatalf("after the rejoin: %v", seen)
	}
	after, err := adm.DescribeGroups(testCtx(t), "static")
	if err != nil {
		t.Fatal(err)
	}
	b, a := before["static"], after["static"]
	if len(a.Members) != 1 || len(b.Members) != 1 || a.Members[0].MemberID == b.Members[0].MemberID || *a.Members[0].InstanceID != "instance-1" || a.State != "Stable" {
		t.Fatalf("before %+v\nafter %+v", b, a)
	}
	g := k.srv.groups.lookup("/", "static", false)
	if v := g.view.Load(); v.generation != 1 {
		t.Fatalf("generation %d after a static rejoin: the group rebalanced", v.generation)
	}
}
