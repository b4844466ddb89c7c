package kafkaserver

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/warren-mq/warren/internal/broker"
	"github.com/warren-mq/warren/internal/recordbatch"
	"github.com/warren-mq/warren/internal/store"
	"github.com/warren-mq/warren/internal/streamlog"
)

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) advance(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
}

// txnRig is a coordinator over a real broker (file store, so it can be
// restarted), real partition logs and a fake clock; committed offsets land
// in a map.
type txnRig struct {
	t     *testing.T
	dir   string
	clock *fakeClock
	b     *broker.Broker
	c     *txnCoordinator
	logs  map[broker.TxnPartition]*streamlog.Log

	txnOf map[int64]string // producer id -> transactional id, for produce

	mu         sync.Mutex
	committed  map[offsetKey]int64
	offsetsErr error
}

func newTxnRig(t *testing.T) *txnRig {
	r := &txnRig{t: t, dir: t.TempDir(), clock: &fakeClock{now: time.UnixMilli(1_700_000_000_000)}, committed: map[offsetKey]int64{}, txnOf: map[int64]string{}}
	r.start()
	t.Cleanup(r.stop)
	return r
}

func (r *txnRig) start() {
	t := r.t
	quiet := slog.New(slog.DiscardHandler)
	st, err := store.Open(r.dir+"/meta", store.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if r.b, err = broker.New(broker.Config{Store: st, Logger: quiet}); err != nil {
		t.Fatal(err)
	}
	r.logs = map[broker.TxnPartition]*streamlog.Log{}
	for _, tp := range []broker.TxnPartition{{Topic: "in", Partition: 0}, {Topic: "out", Partition: 0}, {Topic: "out", Partition: 1}} {
		l, err := streamlog.Open(fmt.Sprintf("%s/%s-%d", r.dir, tp.Topic, tp.Partition), streamlog.Options{}, quiet)
		if err != nil {
			t.Fatal(err)
		}
		r.logs[tp] = l
	}
	r.c = newTxnCoordinator(txnDeps{b: r.b, vhost: "/", clock: r.clock, checkInterval: -1,
		partition: func(topic string, p int32) (*streamlog.Log, bool) {
			l, ok := r.logs[broker.TxnPartition{Topic: topic, Partition: p}]
			return l, ok
		},
		commitOffsets: func(group string, offs []broker.TxnOffset) error {
			r.mu.Lock()
			defer r.mu.Unlock()
			if r.offsetsErr != nil {
				return r.offsetsErr
			}
			for _, o := range offs {
				r.committed[offsetKey{group, o.Topic, o.Partition}] = o.Offset
			}
			return nil
		},
	})
}

func (r *txnRig) stop() {
	if r.c == nil {
		return
	}
	r.c.close()
	for _, l := range r.logs {
		l.Close()
	}
	r.b.Close()
	r.c = nil
}

func (r *txnRig) restart() {
	r.stop()
	r.start()
}

func (r *txnRig) init(txid string, version int16, pid int64, epoch int16) *kmsg.InitProducerIDResponse {
	req := kmsg.NewPtrInitProducerIDRequest()
	req.Version = version
	req.TransactionalID = &txid
	req.TransactionTimeoutMillis = 60_000
	req.ProducerID, req.ProducerEpoch = pid, epoch
	return r.c.initProducerID(req)
}

func (r *txnRig) mustInit(txid string) (int64, int16) {
	r.t.Helper()
	resp := r.init(txid, 4, -1, -1)
	if resp.ErrorCode != 0 {
		r.t.Fatalf("InitProducerId: %v", kerr.ErrorForCode(resp.ErrorCode))
	}
	r.txnOf[resp.ProducerID] = txid
	return resp.ProducerID, resp.ProducerEpoch
}

func (r *txnRig) add(txid string, pid int64, epoch int16, topic string, parts ...int32) int16 {
	req := kmsg.NewPtrAddPartitionsToTxnRequest()
	req.Version = 3
	req.TransactionalID, req.ProducerID, req.ProducerEpoch = txid, pid, epoch
	rt := kmsg.NewAddPartitionsToTxnRequestTopic()
	rt.Topic, rt.Partitions = topic, parts
	req.Topics = append(req.Topics, rt)
	resp := r.c.addPartitions(req, nil)
	return resp.Topics[0].Partitions[0].ErrorCode
}

func (r *txnRig) addOffsets(txid string, pid int64, epoch int16, group string) int16 {
	req := kmsg.NewPtrAddOffsetsToTxnRequest()
	req.Version = 3
	req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Group = txid, pid, epoch, group
	return r.c.addOffsets(req, nil).ErrorCode
}

func (r *txnRig) commitOffset(txid string, pid int64, epoch int16, group, topic string, p int32, off int64) int16 {
	req := kmsg.NewPtrTxnOffsetCommitRequest()
	req.Version = 3
	req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Group = txid, pid, epoch, group
	rt := kmsg.NewTxnOffsetCommitRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
	rp.Partition, rp.Offset = p, off
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return r.c.txnOffsetCommit(req, nil, nil).Topics[0].Partitions[0].ErrorCode
}

func (r *txnRig) end(txid string, version int16, pid int64, epoch int16, commit bool) int16 {
	req := kmsg.NewPtrEndTxnRequest()
	req.Version = version
	req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit = txid, pid, epoch, commit
	return r.c.endTxn(req).ErrorCode
}

// produce appends one transactional record through the produce hook, as
// the Produce handler does, and waits for the append.
func (r *txnRig) produce(pid int64, epoch int16, topic string, p int32, seq int32) int16 {
	l := r.logs[broker.TxnPartition{Topic: topic, Partition: p}]
	batch := recordbatch.Build([]recordbatch.Record{{Value: []byte("v")}},
		recordbatch.BuildOptions{Idempotent: true, Transactional: true, ProducerID: pid, ProducerEpoch: epoch, BaseSequence: seq})
	done := make(chan error, 1)
	h, err := recordbatch.PeekHeader(batch)
	if err != nil {
		r.t.Fatal(err)
	}
	code := r.c.produce(r.txnOf[pid], h, topic, p, func() {
		l.Append(batch, func(_ streamlog.AppendResult, err error) { done <- err })
	})
	if code == 0 {
		if err := <-done; err != nil {
			r.t.Fatalf("append: %v", err)
		}
	}
	return code
}

// markers lists the control markers in a partition: "commit@epoch" or "abort@epoch".
func (r *txnRig) markers(topic string, p int32) []string {
	r.t.Helper()
	l := r.logs[broker.TxnPartition{Topic: topic, Partition: p}]
	var out []string
	for off := l.StartOffset(); off < l.NextOffset(); {
		ch, err := l.Read(off, 1<<20)
		if err != nil {
			r.t.Fatal(err)
		}
		b, err := ch.Bytes()
		ch.Close()
		if err != nil {
			r.t.Fatal(err)
		}
		for len(b) > 0 {
			h, recs, err := recordbatch.Decode(b, 1<<20)
			if err != nil {
				r.t.Fatal(err)
			}
			if h.Control() {
				m, _, err := recordbatch.ParseControl(&recs[0])
				if err != nil {
					r.t.Fatal(err)
				}
				out = append(out, fmt.Sprintf("%s@%d", map[bool]string{true: "commit", false: "abort"}[m.Commit], h.ProducerEpoch))
			}
			off = h.LastOffset() + 1
			b = b[h.Size():]
		}
	}
	return out
}

func (r *txnRig) state(txid string) broker.TxnRecord {
	e := r.c.lookup(txid, false)
	e.mu.Lock()
	defer e.mu.Unlock()
	return cloneRecord(e.r)
}

func wantCode(t *testing.T, what string, got int16, want *kerr.Error) {
	t.Helper()
	var wantCode int16
	if want != nil {
		wantCode = want.Code
	}
	if got != wantCode {
		t.Fatalf("%s: got %v, want %v", what, kerr.ErrorForCode(got), want)
	}
}

func TestKafkaTxnInitProducerID(t *testing.T) {
	r := newTxnRig(t)
	idem := func() int64 {
		resp := r.c.initProducerID(kmsg.NewPtrInitProducerIDRequest())
		if resp.ErrorCode != 0 || resp.ProducerEpoch != 0 {
			t.Fatalf("idempotent init: %+v", resp)
		}
		return resp.ProducerID
	}
	a, b := idem(), idem()
	if a == b {
		t.Fatalf("two idempotent producers got id %d", a)
	}
	wantCode(t, "init", r.init("t", 4, -1, -1).ErrorCode, nil)
	req := kmsg.NewPtrInitProducerIDRequest()
	req.TransactionalID = new(string)
	req.TransactionTimeoutMillis = 1000
	wantCode(t, "empty transactional id", r.c.initProducerID(req).ErrorCode, kerr.InvalidRequest)
	over := kmsg.NewPtrInitProducerIDRequest()
	txid := "t"
	over.TransactionalID, over.TransactionTimeoutMillis = &txid, int32(defaultTxnMaxTimeout.Milliseconds()+1)
	wantCode(t, "timeout over the max", r.c.initProducerID(over).ErrorCode, kerr.InvalidTransactionTimeout)
	over.TransactionTimeoutMillis = 0
	wantCode(t, "timeout 0", r.c.initProducerID(over).ErrorCode, kerr.InvalidTransactionTimeout)

	pid, epoch := r.mustInit("tx")
	if pid == a || pid == b || epoch != 0 {
		t.Fatalf("first init: pid %d epoch %d", pid, epoch)
	}
	// A new producer for the id: same producer id, next epoch.
	pid2, epoch2 := r.mustInit("tx")
	if pid2 != pid || epoch2 != 1 {
		t.Fatalf("second init: pid %d epoch %d", pid2, epoch2)
	}
	// KIP-360: the producer at epoch 1 recovers (bump, remembering 1); a
	// retry naming epoch 1 again gets the same answer; epoch 0 is fenced,
	// PRODUCER_FENCED from v4, INVALID_PRODUCER_EPOCH before.
	for range 2 {
		resp := r.init("tx", 3, pid, 1)
		if resp.ErrorCode != 0 || resp.ProducerEpoch != 2 {
			t.Fatalf("recovering init: %v epoch %d", kerr.ErrorForCode(resp.ErrorCode), resp.ProducerEpoch)
		}
	}
	wantCode(t, "stale epoch v4", r.init("tx", 4, pid, 0).ErrorCode, kerr.ProducerFenced)
	wantCode(t, "stale epoch v3", r.init("tx", 3, pid, 0).ErrorCode, kerr.InvalidProducerEpoch)
	wantCode(t, "other producer id", r.init("tx", 4, pid+1, 2).ErrorCode, kerr.ProducerFenced)
}

// A committed transaction: markers in every partition it added, its
// offsets visible only after the commit, unstable for OffsetFetch until then.
func TestKafkaTxnCommit(t *testing.T) {
	r := newTxnRig(t)
	pid, epoch := r.mustInit("tx")
	wantCode(t, "produce before add", r.produce(pid, epoch, "out", 0, 0), kerr.InvalidTxnState)
	wantCode(t, "end of an empty transaction", r.end("tx", 3, pid, epoch, true), kerr.InvalidTxnState)
	wantCode(t, "add", r.add("tx", pid, epoch, "out", 0, 1), nil)
	wantCode(t, "produce to p0", r.produce(pid, epoch, "out", 0, 0), nil)
	wantCode(t, "produce to p1", r.produce(pid, epoch, "out", 1, 0), nil)
	wantCode(t, "produce to a partition not added", r.produce(pid, epoch, "in", 0, 0), kerr.InvalidTxnState)
	wantCode(t, "offsets before AddOffsetsToTxn", r.commitOffset("tx", pid, epoch, "g", "in", 0, 5), kerr.InvalidTxnState)
	wantCode(t, "add offsets", r.addOffsets("tx", pid, epoch, "g"), nil)
	wantCode(t, "offsets", r.commitOffset("tx", pid, epoch, "g", "in", 0, 5), nil)
	wantCode(t, "offsets of an unknown partition", r.commitOffset("tx", pid, epoch, "g", "nope", 0, 5), kerr.UnknownTopicOrPartition)
	if !r.c.unstableOffset("g", "in", 0) || r.c.unstableOffset("g", "in", 1) || r.c.unstableOffset("h", "in", 0) {
		t.Fatal("pending offset not (only) unstable")
	}
	if len(r.committed) != 0 {
		t.Fatalf("offsets visible before the commit: %v", r.committed)
	}
	wantCode(t, "commit", r.end("tx", 3, pid, epoch, true), nil)
	if got := r.markers("out", 0); !slices.Equal(got, []string{"commit@0"}) {
		t.Fatalf("markers p0 %v", got)
	}
	if got := r.markers("out", 1); !slices.Equal(got, []string{"commit@0"}) {
		t.Fatalf("markers p1 %v", got)
	}
	if got := r.markers("in", 0); len(got) != 0 {
		t.Fatalf("marker in a partition outside the transaction: %v", got)
	}
	if r.committed[offsetKey{"g", "in", 0}] != 5 || r.c.unstableOffset("g", "in", 0) {
		t.Fatalf("offsets after commit %v", r.committed)
	}
	wantCode(t, "produce after commit", r.produce(pid, epoch, "out", 0, 1), kerr.InvalidTxnState)
	wantCode(t, "commit retried", r.end("tx", 3, pid, epoch, true), nil)
	wantCode(t, "abort after commit", r.end("tx", 3, pid, epoch, false), kerr.InvalidTxnState)
	if st := r.state("tx"); st.State != txnCompleteCommit || len(st.Partitions) != 0 {
		t.Fatalf("state %+v", st)
	}
	// The next transaction, aborted: its offsets are dropped.
	wantCode(t, "add again", r.add("tx", pid, epoch, "out", 1), nil)
	wantCode(t, "produce again", r.produce(pid, epoch, "out", 1, 1), nil)
	wantCode(t, "add offsets again", r.addOffsets("tx", pid, epoch, "g"), nil)
	wantCode(t, "offsets again", r.commitOffset("tx", pid, epoch, "g", "in", 0, 9), nil)
	wantCode(t, "abort", r.end("tx", 3, pid, epoch, false), nil)
	if got := r.markers("out", 1); !slices.Equal(got, []string{"commit@0", "abort@0"}) {
		t.Fatalf("markers p1 %v", got)
	}
	if r.committed[offsetKey{"g", "in", 0}] != 5 || r.c.unstableOffset("g", "in", 0) {
		t.Fatalf("aborted offsets applied: %v", r.committed)
	}
}

func TestKafkaTxnAddPartitionsErrors(t *testing.T) {
	r := newTxnRig(t)
	pid, epoch := r.mustInit("tx")
	req := kmsg.NewPtrAddPartitionsToTxnRequest()
	req.Version = 3
	req.TransactionalID, req.ProducerID, req.ProducerEpoch = "tx", pid, epoch
	for _, tp := range []struct {
		topic string
		p     int32
	}{{"out", 0}, {"out", 7}} {
		rt := kmsg.NewAddPartitionsToTxnRequestTopic()
		rt.Topic, rt.Partitions = tp.topic, []int32{tp.p}
		req.Topics = append(req.Topics, rt)
	}
	resp := r.c.addPartitions(req, nil)
	wantCode(t, "known partition", resp.Topics[0].Partitions[0].ErrorCode, kerr.OperationNotAttempted)
	wantCode(t, "unknown partition", resp.Topics[1].Partitions[0].ErrorCode, kerr.UnknownTopicOrPartition)
	resp = r.c.addPartitions(req, func(topic string) bool { return topic != "out" })
	wantCode(t, "partition of a topic not writable", resp.Topics[0].Partitions[0].ErrorCode, kerr.TopicAuthorizationFailed)
	wantCode(t, "other partition of that topic", resp.Topics[1].Partitions[0].ErrorCode, kerr.TopicAuthorizationFailed)
	wantCode(t, "unknown transactional id", r.add("nope", pid, epoch, "out", 0), kerr.InvalidProducerIDMapping)
	wantCode(t, "wrong producer id", r.add("tx", pid+1, epoch, "out", 0), kerr.InvalidProducerIDMapping)
	wantCode(t, "wrong epoch", r.add("tx", pid, epoch+1, "out", 0), kerr.ProducerFenced)
	if st := r.state("tx"); st.State != txnEmpty {
		t.Fatalf("refused adds changed the state: %+v", st)
	}
}

// A second producer with the same transactional id aborts the first one's
// open transaction (markers with a bumped epoch) and fences it everywhere.
func TestKafkaTxnFencing(t *testing.T) {
	r := newTxnRig(t)
	pid, old := r.mustInit("tx")
	wantCode(t, "add", r.add("tx", pid, old, "out", 0), nil)
	wantCode(t, "produce", r.produce(pid, old, "out", 0, 0), nil)
	pid2, epoch := r.mustInit("tx")
	if pid2 != pid || epoch != old+2 {
		t.Fatalf("new producer: pid %d epoch %d, want %d %d", pid2, epoch, pid, old+2)
	}
	if got := r.markers("out", 0); !slices.Equal(got, []string{fmt.Sprintf("abort@%d", old+1)}) {
		t.Fatalf("markers %v", got)
	}
	wantCode(t, "old producer's produce", r.produce(pid, old, "out", 0, 1), kerr.InvalidProducerEpoch)
	wantCode(t, "old producer's add", r.add("tx", pid, old, "out", 1), kerr.ProducerFenced)
	wantCode(t, "old producer's end v1", r.end("tx", 1, pid, old, true), kerr.InvalidProducerEpoch)
	wantCode(t, "old producer's end v2", r.end("tx", 2, pid, old, true), kerr.ProducerFenced)
	wantCode(t, "old producer's offsets", r.addOffsets("tx", pid, old, "g"), kerr.ProducerFenced)
	wantCode(t, "new producer's add", r.add("tx", pid, epoch, "out", 0), nil)
	wantCode(t, "new producer's produce", r.produce(pid, epoch, "out", 0, 0), nil)
	wantCode(t, "new producer's commit", r.end("tx", 3, pid, epoch, true), nil)
}

// A transaction open past its timeout is aborted by the coordinator, which
// fences its producer; time is the fake clock's.
func TestKafkaTxnTimeout(t *testing.T) {
	r := newTxnRig(t)
	pid, epoch := r.mustInit("tx")
	wantCode(t, "add", r.add("tx", pid, epoch, "out", 1), nil)
	wantCode(t, "produce", r.produce(pid, epoch, "out", 1, 0), nil)
	r.clock.advance(59 * time.Second)
	r.c.tick()
	if st := r.state("tx"); st.State != txnOngoing {
		t.Fatalf("aborted before its timeout: %+v", st)
	}
	r.clock.advance(time.Second)
	r.c.tick()
	if st := r.state("tx"); st.State != txnCompleteAbort || st.ProducerEpoch != epoch+1 {
		t.Fatalf("after the timeout: %+v", st)
	}
	if got := r.markers("out", 1); !slices.Equal(got, []string{fmt.Sprintf("abort@%d", epoch+1)}) {
		t.Fatalf("markers %v", got)
	}
	wantCode(t, "produce after the timeout", r.produce(pid, epoch, "out", 1, 1), kerr.InvalidProducerEpoch)
	wantCode(t, "commit after the timeout", r.end("tx", 3, pid, epoch, true), kerr.ProducerFenced)
}

// The decision outlives the broker: a commit whose completion could not
// finish (here its offsets could not be applied) is completed after a
// restart; an open transaction keeps its partitions and still times out;
// producer ids are not reused.
func TestKafkaTxnRestartCompletesDecision(t *testing.T) {
	r := newTxnRig(t)
	pid, epoch := r.mustInit("tx")
	wantCode(t, "add", r.add("tx", pid, epoch, "out", 0), nil)
	wantCode(t, "produce", r.produce(pid, epoch, "out", 0, 0), nil)
	wantCode(t, "add offsets", r.addOffsets("tx", pid, epoch, "g"), nil)
	wantCode(t, "offsets", r.commitOffset("tx", pid, epoch, "g", "in", 0, 7), nil)
	r.offsetsErr = errors.New("groups unavailable")
	wantCode(t, "commit (decided, not completed)", r.end("tx", 3, pid, epoch, true), nil)
	if st := r.state("tx"); st.State != txnPrepareCommit {
		t.Fatalf("state %+v", st)
	}
	wantCode(t, "add while completing", r.add("tx", pid, epoch, "out", 1), kerr.ConcurrentTransactions)

	open, openEpoch := r.mustInit("open")
	wantCode(t, "add open", r.add("open", open, openEpoch, "out", 1), nil)
	wantCode(t, "produce open", r.produce(open, openEpoch, "out", 1, 0), nil)

	r.restart()
	r.offsetsErr = nil
	if st := r.state("open"); st.State != txnOngoing || len(st.Partitions) != 1 {
		t.Fatalf("open transaction after restart: %+v", st)
	}
	wantCode(t, "open producer still in its transaction", r.produce(open, openEpoch, "out", 1, 1), nil)
	if !r.c.unstableOffset("g", "in", 0) {
		t.Fatal("decided commit's offsets not unstable after restart")
	}
	r.c.tick()
	if st := r.state("tx"); st.State != txnCompleteCommit {
		t.Fatalf("decision not completed after restart: %+v", st)
	}
	if r.committed[offsetKey{"g", "in", 0}] != 7 {
		t.Fatalf("offsets %v", r.committed)
	}
	if got := r.markers("out", 0); len(got) == 0 || got[0] != "commit@0" {
		t.Fatalf("markers %v", got)
	}
	wantCode(t, "commit retried after restart", r.end("tx", 3, pid, epoch, true), nil)
	r.clock.advance(time.Minute)
	r.c.tick()
	if st := r.state("open"); st.State != txnCompleteAbort {
		t.Fatalf("open transaction not timed out after restart: %+v", st)
	}
	fresh, _ := r.mustInit("fresh")
	if fresh == pid || fresh == open || fresh < producerIDBlock {
		t.Fatalf("producer id %d after restart reuses the reserved block", fresh)
	}
}

// A transactional id unused for transactional.id.expiration.ms is
// forgotten, durably; one in use is not.
func TestKafkaTxnIDExpires(t *testing.T) {
	r := newTxnRig(t)
	pid, epoch := r.mustInit("idle")
	busy, busyEpoch := r.mustInit("busy")
	r.clock.advance(defaultTxnIDExpiry - time.Minute)
	wantCode(t, "add busy", r.add("busy", busy, busyEpoch, "out", 0), nil)
	wantCode(t, "commit busy", r.end("busy", 3, busy, busyEpoch, true), nil)
	r.clock.advance(time.Minute)
	r.c.tick()
	if r.c.lookup("idle", false) != nil || r.c.lookup("busy", false) == nil {
		t.Fatal("expiry took the wrong transactional ids")
	}
	wantCode(t, "expired id's add", r.add("idle", pid, epoch, "out", 0), kerr.InvalidProducerIDMapping)
	r.restart()
	if r.c.lookup("idle", false) != nil || r.c.lookup("busy", false) == nil {
		t.Fatal("expiry not durable")
	}
	if again, _ := r.mustInit("idle"); again == pid {
		t.Fatalf("expired id came back with its old producer id %d", pid)
	}
}
