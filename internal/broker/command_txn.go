package broker

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Kafka producer ids and transaction coordinator state, durable as metadata
// commands so that neither outlives a kill -9 wrongly: a producer id is
// never handed out twice (ids are reserved in blocks, and a block reserved
// before a crash is skipped, not reused), and a transaction's decision
// (prepare commit/abort) and its partitions survive, so a restarted broker
// finishes or aborts it. The broker keeps the records opaque: the Kafka
// front end owns the state machine; this file only makes its transitions
// durable and replays them. Field tags are part of the on-disk format (see
// command.go): never reuse one.
//
// Cost: one metadata commit (a group-committed fsync of the metadata log)
// per transition the coordinator records: a transaction's first
// AddPartitionsToTxn and every one adding new partitions, AddOffsetsToTxn
// of a new group, TxnOffsetCommit, EndTxn's prepare and its completion;
// InitProducerId with a transactional id one more, and one per block of
// ProducerIDBlock idempotent producers.

func init() {
	registerCommand(cmdReserveProducerIDs, func() command { return &reserveProducerIDsCmd{} })
	registerCommand(cmdPutTxn, func() command { return &putTxnCmd{} })
	registerCommand(cmdDeleteTxn, func() command { return &deleteTxnCmd{} })
}

// TxnPartition is a topic partition in a transaction.
type TxnPartition struct {
	Topic     string
	Partition int32
}

// TxnOffset is a consumer group offset committed inside a transaction,
// visible to the group only once the transaction commits.
type TxnOffset struct {
	Group       string `json:"g"`
	Topic       string `json:"t"`
	Partition   int32  `json:"p"`
	Offset      int64  `json:"o"`
	LeaderEpoch int32  `json:"e"`
	Metadata    string `json:"m,omitempty"`
}

// TxnRecord is the durable state of one transactional id, as the Kafka
// transaction coordinator last recorded it.
type TxnRecord struct {
	VHost, TransactionalID string
	ProducerID             int64
	ProducerEpoch          int16
	// LastProducerEpoch is the epoch before the last bump by InitProducerId
	// (-1 if none), so a retried InitProducerId is recognised (KIP-360).
	LastProducerEpoch int16
	TimeoutMs         int32
	State             string // the coordinator's state name (Empty, Ongoing, PrepareCommit, ...)
	StartMs           int64  // when the ongoing transaction started, unix milliseconds
	UpdatedMs         int64  // when this was recorded, unix milliseconds (for transactional.id.expiration.ms)
	Partitions        []TxnPartition
	Groups            []string
	Offsets           []TxnOffset
}

// txnStore is the broker's copy of the durable producer/transaction state:
// what replay rebuilt and what the snapshot writes.
type txnStore struct {
	reserveMu sync.Mutex // one reservation at a time: validate (read next) + commit
	mu        sync.Mutex
	nextPID   int64 // first producer id not yet reserved
	recs      map[[2]string]TxnRecord
}

// ReserveProducerIDs durably reserves n producer ids and returns the first:
// the ids [first, first+n) are the caller's, whatever happens after.
func (b *Broker) ReserveProducerIDs(n int64) (int64, error) {
	if n <= 0 {
		return 0, fmt.Errorf("broker: reserve %d producer ids", n)
	}
	s := &b.txn
	s.reserveMu.Lock()
	defer s.reserveMu.Unlock()
	s.mu.Lock()
	first := s.nextPID
	s.mu.Unlock()
	if _, _, err := b.commit(&reserveProducerIDsCmd{Next: first + n}, true); err != nil {
		return 0, err
	}
	return first, nil
}

// PutTxn durably records a transactional id's state, replacing what was
// recorded for it.
func (b *Broker) PutTxn(r TxnRecord) error {
	_, _, err := b.commit(newPutTxnCmd(r), true)
	return err
}

// DeleteTxn durably forgets a transactional id.
func (b *Broker) DeleteTxn(vhost, transactionalID string) error {
	_, _, err := b.commit(&deleteTxnCmd{VHost: vhost, ID: transactionalID}, true)
	return err
}

// Txns returns the recorded transactional ids of a vhost, sorted by id:
// what a starting coordinator loads.
func (b *Broker) Txns(vhost string) []TxnRecord {
	s := &b.txn
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []TxnRecord
	for k, r := range s.recs {
		if k[0] == vhost {
			out = append(out, cloneTxnRecord(r))
		}
	}
	slices.SortFunc(out, func(a, b TxnRecord) int { return cmp.Compare(a.TransactionalID, b.TransactionalID) })
	return out
}

func cloneTxnRecord(r TxnRecord) TxnRecord {
	r.Partitions = slices.Clone(r.Partitions)
	r.Groups = slices.Clone(r.Groups)
	r.Offsets = slices.Clone(r.Offsets)
	return r
}

// snapshotTxns adds the producer id reservation and every transactional id.
func (b *Broker) snapshotTxns(add func(command)) {
	s := &b.txn
	s.mu.Lock()
	next := s.nextPID
	recs := make([]TxnRecord, 0, len(s.recs))
	for _, r := range s.recs {
		recs = append(recs, r)
	}
	s.mu.Unlock()
	if next > 0 {
		add(&reserveProducerIDsCmd{Next: next})
	}
	slices.SortFunc(recs, func(a, b TxnRecord) int {
		return cmp.Or(cmp.Compare(a.VHost, b.VHost), cmp.Compare(a.TransactionalID, b.TransactionalID))
	})
	for _, r := range recs {
		add(newPutTxnCmd(r))
	}
}

// reserveProducerIDsCmd moves the first unreserved producer id to Next.
type reserveProducerIDsCmd struct{ Next int64 }

func (c *reserveProducerIDsCmd) typ() cmdType    { return cmdReserveProducerIDs }
func (c *reserveProducerIDsCmd) fields() []field { return []field{{2, &c.Next}} }
func (c *reserveProducerIDsCmd) apply(a *applier) (any, error) {
	s := &a.b.txn
	s.mu.Lock()
	s.nextPID = max(s.nextPID, c.Next)
	s.mu.Unlock()
	return nil, nil
}

// putTxnCmd records a transactional id's whole state. Partitions are
// "partition topic" strings (a topic name may hold any character but the
// partition number holds no space); offsets are JSON.
type putTxnCmd struct {
	VHost, ID                               string
	ProducerID, Epoch, LastEpoch, TimeoutMs int64
	State                                   string
	StartMs, UpdatedMs                      int64
	Partitions, Groups                      []string
	Offsets                                 string
}

func newPutTxnCmd(r TxnRecord) *putTxnCmd {
	c := &putTxnCmd{VHost: r.VHost, ID: r.TransactionalID, ProducerID: r.ProducerID, Epoch: int64(r.ProducerEpoch),
		LastEpoch: int64(r.LastProducerEpoch), TimeoutMs: int64(r.TimeoutMs), State: r.State, StartMs: r.StartMs,
		UpdatedMs: r.UpdatedMs, Groups: slices.Clone(r.Groups)}
	for _, p := range r.Partitions {
		c.Partitions = append(c.Partitions, strconv.Itoa(int(p.Partition))+" "+p.Topic)
	}
	if len(r.Offsets) > 0 {
		js, _ := json.Marshal(r.Offsets) // plain structs: cannot fail
		c.Offsets = string(js)
	}
	return c
}

func (c *putTxnCmd) typ() cmdType { return cmdPutTxn }

func (c *putTxnCmd) fields() []field {
	return []field{{2, &c.VHost}, {4, &c.ID}, {6, &c.ProducerID}, {8, &c.Epoch}, {10, &c.LastEpoch},
		{12, &c.TimeoutMs}, {14, &c.State}, {16, &c.StartMs}, {18, &c.Partitions}, {20, &c.Groups}, {22, &c.Offsets}, {24, &c.UpdatedMs}}
}

// record decodes the command; a malformed one is a deterministic error.
func (c *putTxnCmd) record() (TxnRecord, error) {
	r := TxnRecord{VHost: c.VHost, TransactionalID: c.ID, ProducerID: c.ProducerID, ProducerEpoch: int16(c.Epoch),
		LastProducerEpoch: int16(c.LastEpoch), TimeoutMs: int32(c.TimeoutMs), State: c.State, StartMs: c.StartMs,
		UpdatedMs: c.UpdatedMs, Groups: slices.Clone(c.Groups)}
	for _, s := range c.Partitions {
		ps, topic, ok := strings.Cut(s, " ")
		p, err := strconv.ParseInt(ps, 10, 32)
		if !ok || err != nil {
			return r, fmt.Errorf("transaction %q: bad partition %q", c.ID, s)
		}
		r.Partitions = append(r.Partitions, TxnPartition{Topic: topic, Partition: int32(p)})
	}
	if c.Offsets != "" {
		if err := json.Unmarshal([]byte(c.Offsets), &r.Offsets); err != nil {
			return r, fmt.Errorf("transaction %q: bad offsets: %v", c.ID, err)
		}
	}
	return r, nil
}

func (c *putTxnCmd) apply(a *applier) (any, error) {
	r, err := c.record()
	if err != nil {
		return nil, err
	}
	s := &a.b.txn
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.recs == nil {
		s.recs = map[[2]string]TxnRecord{}
	}
	s.recs[[2]string{c.VHost, c.ID}] = r
	return nil, nil
}

// deleteTxnCmd forgets a transactional id.
type deleteTxnCmd struct{ VHost, ID string }

func (c *deleteTxnCmd) typ() cmdType    { return cmdDeleteTxn }
func (c *deleteTxnCmd) fields() []field { return []field{{2, &c.VHost}, {4, &c.ID}} }
func (c *deleteTxnCmd) apply(a *applier) (any, error) {
	s := &a.b.txn
	s.mu.Lock()
	delete(s.recs, [2]string{c.VHost, c.ID})
	s.mu.Unlock()
	return nil, nil
}
