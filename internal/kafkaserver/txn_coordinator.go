package kafkaserver

import (
	"log/slog"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/warren-mq/warren/internal/broker"
	"github.com/warren-mq/warren/internal/streamlog"
)

// The transaction coordinator (KIP-98), for every transactional id of the
// listener's vhost: its producer id and epoch, its state, the partitions and
// groups in its open transaction and the offsets it will commit. Each
// transition is recorded (broker.PutTxn, a metadata command) before it is
// answered, so a restarted broker knows every open transaction's partitions
// and finishes a decided one. Warren does "transaction version 1" (Kafka
// before KIP-890 part 2): EndTxn does not bump the epoch and partitions are
// added by AddPartitionsToTxn only.
//
// Locking: c.mu guards the maps and the unstable-offset index; each entry's
// mu is held through a whole request on it, including its commits and
// marker writes, so transitions of one transactional id are serial and a
// produce check (see produce) cannot interleave with an EndTxn. Order:
// entry.mu before c.mu; c.mu is never held while waiting.

// Transaction states, as Kafka names them (the names are stored).
const (
	txnEmpty          = "Empty"
	txnOngoing        = "Ongoing"
	txnPrepareCommit  = "PrepareCommit"
	txnPrepareAbort   = "PrepareAbort"
	txnCompleteCommit = "CompleteCommit"
	txnCompleteAbort  = "CompleteAbort"
)

// Defaults as Kafka's.
const (
	defaultTxnMaxTimeout  = 15 * time.Minute   // transaction.max.timeout.ms
	defaultTxnIDExpiry    = 7 * 24 * time.Hour // transactional.id.expiration.ms
	txnCheckInterval      = time.Second        // how often timeouts and unfinished completions are looked at
	maxOffsetMetadataSize = 4096               // offset.metadata.max.bytes
)

// txnClock is the coordinator's time, faked in tests.
type txnClock interface{ Now() time.Time }

type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }

// txnDeps is what the coordinator needs from the rest of the server.
type txnDeps struct {
	b     *broker.Broker
	vhost string
	log   *slog.Logger
	clock txnClock
	// maxTimeout is transaction.max.timeout.ms (0 = Kafka's 15 minutes).
	maxTimeout time.Duration
	// idExpiry is transactional.id.expiration.ms (0 = Kafka's 7 days): a
	// transactional id with no transaction open, unused that long, is
	// forgotten.
	idExpiry time.Duration
	// partition returns a topic partition's log, false if it does not exist.
	partition func(topic string, partition int32) (*streamlog.Log, bool)
	// commitOffsets makes a committed transaction's offsets for one group
	// durable and visible (the groups' committed offsets).
	commitOffsets func(group string, offsets []broker.TxnOffset) error
	// memberCheck checks TxnOffsetCommit v3+'s member and generation
	// against the group (a Kafka error code, 0 if fine); nil checks nothing.
	memberCheck func(group, memberID string, instanceID *string, generation int32) int16
	// afterDecision, if set, runs once a decision is durable, before its
	// markers are written (the crash-test hook).
	afterDecision func()
	// checkInterval overrides txnCheckInterval; negative: no background
	// checks (tests call tick).
	checkInterval time.Duration
}

// txnEntry is one transactional id.
type txnEntry struct {
	id string
	mu sync.Mutex
	r  broker.TxnRecord // what was last recorded
	in map[broker.TxnPartition]bool
	// gone: expired and forgotten; a request that found the entry before
	// looks it up again.
	gone bool
}

type offsetKey struct {
	group, topic string
	partition    int32
}

type txnCoordinator struct {
	d    txnDeps
	pids producerIDs

	mu       sync.Mutex
	byID     map[string]*txnEntry
	unstable map[offsetKey]int // pending offsets held by open transactions

	stop chan struct{}
	done chan struct{}
}

func newTxnCoordinator(d txnDeps) *txnCoordinator {
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	if d.clock == nil {
		d.clock = wallClock{}
	}
	if d.maxTimeout <= 0 {
		d.maxTimeout = defaultTxnMaxTimeout
	}
	if d.idExpiry <= 0 {
		d.idExpiry = defaultTxnIDExpiry
	}
	if d.checkInterval == 0 {
		d.checkInterval = txnCheckInterval
	}
	c := &txnCoordinator{d: d, pids: producerIDs{b: d.b}, byID: map[string]*txnEntry{},
		unstable: map[offsetKey]int{}, stop: make(chan struct{}), done: make(chan struct{})}
	for _, r := range d.b.Txns(d.vhost) {
		e := &txnEntry{id: r.TransactionalID}
		if r.UpdatedMs == 0 {
			r.UpdatedMs = d.clock.Now().UnixMilli()
		}
		c.set(e, r)
		c.byID[e.id] = e
	}
	go c.run()
	return c
}

// close stops the background checks. Unfinished transactions stay as
// recorded; the next start resumes them.
func (c *txnCoordinator) close() {
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	<-c.done
}

// run finishes what a previous run decided but did not complete, then
// aborts timed-out transactions and retries unfinished completions.
func (c *txnCoordinator) run() {
	defer close(c.done)
	if c.d.checkInterval < 0 {
		return
	}
	c.tick()
	t := time.NewTicker(c.d.checkInterval)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			c.tick()
		}
	}
}

// tick aborts every transaction past its timeout (fencing its producer, as
// Kafka does), completes every decided one not yet completed and forgets
// transactional ids unused for longer than their expiry.
func (c *txnCoordinator) tick() {
	c.mu.Lock()
	entries := make([]*txnEntry, 0, len(c.byID))
	for _, e := range c.byID {
		entries = append(entries, e)
	}
	c.mu.Unlock()
	now := c.d.clock.Now().UnixMilli()
	for _, e := range entries {
		e.mu.Lock()
		switch e.r.State {
		case txnOngoing:
			if now >= e.r.StartMs+int64(e.r.TimeoutMs) {
				c.d.log.Info("kafka transaction timed out, aborting", "transactional_id", e.id,
					"producer_id", e.r.ProducerID, "timeout_ms", e.r.TimeoutMs)
				c.end(e, false, true)
			}
		case txnPrepareCommit, txnPrepareAbort:
			c.finishLocked(e)
		default:
			if !e.gone && now-e.r.UpdatedMs >= c.d.idExpiry.Milliseconds() {
				c.expire(e)
			}
		}
		e.mu.Unlock()
	}
}

// expire forgets an idle transactional id (e.mu held).
func (c *txnCoordinator) expire(e *txnEntry) {
	if err := c.d.b.DeleteTxn(c.d.vhost, e.id); err != nil {
		c.d.log.Warn("cannot forget an expired kafka transactional id", "transactional_id", e.id, "err", err)
		return
	}
	c.set(e, broker.TxnRecord{ProducerID: -1})
	e.gone = true
	c.mu.Lock()
	if c.byID[e.id] == e {
		delete(c.byID, e.id)
	}
	c.mu.Unlock()
}

// set installs r as e's state, with e.mu held (or e not yet shared), and
// keeps the indexes.
func (c *txnCoordinator) set(e *txnEntry, r broker.TxnRecord) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, o := range e.r.Offsets {
		k := offsetKey{o.Group, o.Topic, o.Partition}
		if c.unstable[k]--; c.unstable[k] <= 0 {
			delete(c.unstable, k)
		}
	}
	for _, o := range r.Offsets {
		c.unstable[offsetKey{o.Group, o.Topic, o.Partition}]++
	}
	e.r = r
	e.in = make(map[broker.TxnPartition]bool, len(r.Partitions))
	for _, p := range r.Partitions {
		e.in[p] = true
	}
}

// record makes r durable and then e's state.
func (c *txnCoordinator) record(e *txnEntry, r broker.TxnRecord) error {
	r.VHost, r.TransactionalID, r.UpdatedMs = c.d.vhost, e.id, c.d.clock.Now().UnixMilli()
	if err := c.d.b.PutTxn(r); err != nil {
		c.d.log.Error("cannot record kafka transaction state", "transactional_id", e.id, "err", err)
		return err
	}
	c.set(e, r)
	return nil
}

func cloneRecord(r broker.TxnRecord) broker.TxnRecord {
	r.Partitions = slices.Clone(r.Partitions)
	r.Groups = slices.Clone(r.Groups)
	r.Offsets = slices.Clone(r.Offsets)
	return r
}

// lookup returns the entry of a transactional id; create makes a new one
// (no producer id yet) if there is none.
func (c *txnCoordinator) lookup(id string, create bool) *txnEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.byID[id]
	if e == nil && create {
		e = &txnEntry{id: id, r: broker.TxnRecord{ProducerID: -1, ProducerEpoch: -1, LastProducerEpoch: -1, State: txnEmpty}}
		c.byID[id] = e
	}
	return e
}

// fenced is PRODUCER_FENCED from the version that knows it (KIP-588),
// INVALID_PRODUCER_EPOCH before.
func fenced(version, since int16) int16 {
	if version >= since {
		return kerr.ProducerFenced.Code
	}
	return kerr.InvalidProducerEpoch.Code
}

// epochExhausted: the epoch cannot be bumped again; a new producer id is due.
func epochExhausted(epoch int16) bool { return epoch >= math.MaxInt16-1 }

func (c *txnCoordinator) initProducerID(req *kmsg.InitProducerIDRequest) *kmsg.InitProducerIDResponse {
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	fail := func(code int16) *kmsg.InitProducerIDResponse {
		resp.ErrorCode, resp.ProducerID, resp.ProducerEpoch = code, -1, -1
		return resp
	}
	if req.TransactionalID == nil { // idempotent only: always a new id
		id, err := c.pids.allocate()
		if err != nil {
			return fail(kerr.CoordinatorNotAvailable.Code)
		}
		resp.ProducerID, resp.ProducerEpoch = id, 0
		return resp
	}
	id := *req.TransactionalID
	if id == "" {
		return fail(kerr.InvalidRequest.Code)
	}
	if req.TransactionTimeoutMillis <= 0 || int64(req.TransactionTimeoutMillis) > c.d.maxTimeout.Milliseconds() {
		return fail(kerr.InvalidTransactionTimeout.Code)
	}
	// KIP-360 (v3+): a producer recovering names the id and epoch it had.
	expected := req.Version >= 3 && (req.ProducerID != -1 || req.ProducerEpoch != -1)
	if expected && (req.ProducerID < 0 || req.ProducerEpoch < 0) {
		return fail(kerr.InvalidRequest.Code)
	}
	var e *txnEntry
	for e == nil || e.gone {
		if e != nil {
			e.mu.Unlock()
		}
		e = c.lookup(id, true)
		e.mu.Lock()
	}
	defer e.mu.Unlock()
	if expected && e.r.ProducerEpoch >= 0 && req.ProducerID != e.r.ProducerID {
		return fail(fenced(req.Version, 4))
	}
	switch e.r.State {
	case txnPrepareCommit, txnPrepareAbort:
		if !c.finishLocked(e) {
			return fail(kerr.ConcurrentTransactions.Code)
		}
	case txnOngoing:
		// A new producer for this id: abort what the old one left open,
		// with a bumped epoch so the old one is fenced in every partition.
		if code := c.end(e, false, true); code != 0 {
			return fail(code)
		}
		if e.r.State != txnCompleteAbort {
			return fail(kerr.ConcurrentTransactions.Code)
		}
	}
	r := cloneRecord(e.r)
	switch {
	case r.ProducerID < 0 || epochExhausted(r.ProducerEpoch) && (!expected || req.ProducerEpoch == r.ProducerEpoch):
		pid, err := c.pids.allocate()
		if err != nil {
			return fail(kerr.CoordinatorNotAvailable.Code)
		}
		r.ProducerID, r.ProducerEpoch, r.LastProducerEpoch = pid, 0, -1
	case !expected:
		r.ProducerEpoch, r.LastProducerEpoch = r.ProducerEpoch+1, -1
	case req.ProducerEpoch == r.ProducerEpoch:
		r.ProducerEpoch, r.LastProducerEpoch = r.ProducerEpoch+1, r.ProducerEpoch
	case req.ProducerEpoch == r.LastProducerEpoch:
		// A retry of a bump whose answer was lost: answer the same.
	default:
		return fail(fenced(req.Version, 4))
	}
	r.TimeoutMs, r.State, r.StartMs = req.TransactionTimeoutMillis, txnEmpty, 0
	r.Partitions, r.Groups, r.Offsets = nil, nil, nil
	if err := c.record(e, r); err != nil {
		return fail(kerr.CoordinatorNotAvailable.Code)
	}
	resp.ProducerID, resp.ProducerEpoch = r.ProducerID, r.ProducerEpoch
	return resp
}

// locked returns a transactional id's entry, locked, once the request's
// producer id and epoch match it and a decided but unfinished transaction
// is settled; or the code to answer with (nothing locked).
func (c *txnCoordinator) locked(id string, pid int64, epoch, version, fencedSince int16) (*txnEntry, int16) {
	if id == "" {
		return nil, kerr.InvalidRequest.Code
	}
	e := c.lookup(id, false)
	if e == nil {
		return nil, kerr.InvalidProducerIDMapping.Code
	}
	e.mu.Lock()
	code := int16(0)
	switch {
	case e.gone || e.r.ProducerID != pid:
		code = kerr.InvalidProducerIDMapping.Code
	case e.r.ProducerEpoch != epoch:
		code = fenced(version, fencedSince)
	case e.r.State == txnPrepareCommit || e.r.State == txnPrepareAbort:
		if !c.finishLocked(e) {
			code = kerr.ConcurrentTransactions.Code
		}
	}
	if code != 0 {
		e.mu.Unlock()
		return nil, code
	}
	return e, 0
}

// begin returns r moved to Ongoing (a new transaction starts now if it was
// not ongoing).
func (c *txnCoordinator) begin(r broker.TxnRecord) broker.TxnRecord {
	if r.State != txnOngoing {
		r.State, r.StartMs = txnOngoing, c.d.clock.Now().UnixMilli()
		r.Partitions, r.Groups, r.Offsets = nil, nil, nil
	}
	return r
}

// addPartitions answers AddPartitionsToTxn; mayWrite (nil: all) says which
// topics the client may write, as Kafka's Write on each topic.
func (c *txnCoordinator) addPartitions(req *kmsg.AddPartitionsToTxnRequest, mayWrite func(topic string) bool) *kmsg.AddPartitionsToTxnResponse {
	resp := req.ResponseKind().(*kmsg.AddPartitionsToTxnResponse)
	codes := map[broker.TxnPartition]int16{}
	var unknown bool
	for _, t := range req.Topics {
		denied := mayWrite != nil && !mayWrite(t.Topic)
		for _, p := range t.Partitions {
			tp := broker.TxnPartition{Topic: t.Topic, Partition: p}
			if denied {
				codes[tp], unknown = kerr.TopicAuthorizationFailed.Code, true
			} else if _, ok := c.d.partition(t.Topic, p); !ok {
				codes[tp], unknown = kerr.UnknownTopicOrPartition.Code, true
			}
		}
	}
	all := func(code int16) *kmsg.AddPartitionsToTxnResponse {
		for _, t := range req.Topics {
			rt := kmsg.NewAddPartitionsToTxnResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewAddPartitionsToTxnResponseTopicPartition()
				rp.Partition = p
				rp.ErrorCode = code
				if c, ok := codes[broker.TxnPartition{Topic: t.Topic, Partition: p}]; ok {
					rp.ErrorCode = c
				}
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp
	}
	if unknown {
		return all(kerr.OperationNotAttempted.Code)
	}
	e, code := c.locked(req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Version, 2)
	if code != 0 {
		return all(code)
	}
	defer e.mu.Unlock()
	r := c.begin(cloneRecord(e.r))
	added := r.State != e.r.State
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			tp := broker.TxnPartition{Topic: t.Topic, Partition: p}
			if !slices.Contains(r.Partitions, tp) {
				r.Partitions, added = append(r.Partitions, tp), true
			}
		}
	}
	if added {
		if err := c.record(e, r); err != nil {
			return all(kerr.CoordinatorNotAvailable.Code)
		}
	}
	return all(0)
}

// addOffsets answers AddOffsetsToTxn; mayGroup (nil: all) says whether the
// client may use the group.
func (c *txnCoordinator) addOffsets(req *kmsg.AddOffsetsToTxnRequest, mayGroup func(string) bool) *kmsg.AddOffsetsToTxnResponse {
	resp := req.ResponseKind().(*kmsg.AddOffsetsToTxnResponse)
	if req.Group == "" {
		resp.ErrorCode = kerr.InvalidRequest.Code
		return resp
	}
	if mayGroup != nil && !mayGroup(req.Group) {
		resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
		return resp
	}
	e, code := c.locked(req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Version, 2)
	if resp.ErrorCode = code; code != 0 {
		return resp
	}
	defer e.mu.Unlock()
	r := c.begin(cloneRecord(e.r))
	if r.State == e.r.State && slices.Contains(r.Groups, req.Group) {
		return resp
	}
	if !slices.Contains(r.Groups, req.Group) {
		r.Groups = append(r.Groups, req.Group)
	}
	if err := c.record(e, r); err != nil {
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
	}
	return resp
}

// txnOffsetCommit answers TxnOffsetCommit; mayGroup and mayRead (nil: all)
// say whether the client may use the group and read each topic.
func (c *txnCoordinator) txnOffsetCommit(req *kmsg.TxnOffsetCommitRequest, mayGroup, mayRead func(string) bool) *kmsg.TxnOffsetCommitResponse {
	resp := req.ResponseKind().(*kmsg.TxnOffsetCommitResponse)
	codes := map[broker.TxnPartition]int16{}
	all := func(code int16) *kmsg.TxnOffsetCommitResponse {
		for _, t := range req.Topics {
			rt := kmsg.NewTxnOffsetCommitResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewTxnOffsetCommitResponseTopicPartition()
				rp.Partition = p.Partition
				rp.ErrorCode = code
				if c, ok := codes[broker.TxnPartition{Topic: t.Topic, Partition: p.Partition}]; ok && code == 0 {
					rp.ErrorCode = c
				}
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp
	}
	if req.Group == "" {
		return all(kerr.InvalidRequest.Code)
	}
	if mayGroup != nil && !mayGroup(req.Group) {
		return all(kerr.GroupAuthorizationFailed.Code)
	}
	e, code := c.locked(req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Version, 3)
	if code != 0 {
		return all(code)
	}
	defer e.mu.Unlock()
	if e.r.State != txnOngoing || !slices.Contains(e.r.Groups, req.Group) {
		return all(kerr.InvalidTxnState.Code) // AddOffsetsToTxn first
	}
	if c.d.memberCheck != nil && req.Version >= 3 && (req.MemberID != "" || req.Generation != -1) {
		if code := c.d.memberCheck(req.Group, req.MemberID, req.InstanceID, req.Generation); code != 0 {
			return all(code)
		}
	}
	r := cloneRecord(e.r)
	changed := false
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			tp := broker.TxnPartition{Topic: t.Topic, Partition: p.Partition}
			if mayRead != nil && !mayRead(t.Topic) {
				codes[tp] = kerr.TopicAuthorizationFailed.Code
				continue
			}
			if _, ok := c.d.partition(t.Topic, p.Partition); !ok {
				codes[tp] = kerr.UnknownTopicOrPartition.Code
				continue
			}
			if p.Metadata != nil && len(*p.Metadata) > maxOffsetMetadataSize {
				codes[tp] = kerr.OffsetMetadataTooLarge.Code
				continue
			}
			o := broker.TxnOffset{Group: req.Group, Topic: t.Topic, Partition: p.Partition, Offset: p.Offset, LeaderEpoch: p.LeaderEpoch}
			if req.Version < 2 {
				o.LeaderEpoch = -1
			}
			if p.Metadata != nil {
				o.Metadata = *p.Metadata
			}
			i := slices.IndexFunc(r.Offsets, func(x broker.TxnOffset) bool {
				return x.Group == o.Group && x.Topic == o.Topic && x.Partition == o.Partition
			})
			if i < 0 {
				r.Offsets = append(r.Offsets, o)
			} else {
				r.Offsets[i] = o
			}
			changed = true
		}
	}
	if changed {
		if err := c.record(e, r); err != nil {
			return all(kerr.CoordinatorNotAvailable.Code)
		}
	}
	return all(0)
}

func (c *txnCoordinator) endTxn(req *kmsg.EndTxnRequest) *kmsg.EndTxnResponse {
	resp := req.ResponseKind().(*kmsg.EndTxnResponse)
	e, code := c.locked(req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Version, 2)
	if resp.ErrorCode = code; code != 0 {
		return resp
	}
	defer e.mu.Unlock()
	switch e.r.State {
	case txnOngoing:
		resp.ErrorCode = c.end(e, req.Commit, false)
	case txnCompleteCommit:
		if !req.Commit {
			resp.ErrorCode = kerr.InvalidTxnState.Code
		}
	case txnCompleteAbort:
		if req.Commit {
			resp.ErrorCode = kerr.InvalidTxnState.Code
		}
	default: // Empty: nothing to end
		resp.ErrorCode = kerr.InvalidTxnState.Code
	}
	return resp
}
