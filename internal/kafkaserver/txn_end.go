package kafkaserver

import (
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/warren-mq/warren/internal/broker"
	"github.com/warren-mq/warren/internal/recordbatch"
	"github.com/warren-mq/warren/internal/streamlog"
)

// Ending a transaction: the decision (PrepareCommit/PrepareAbort) is
// recorded first, so that once a client has been told, a crash cannot
// change it; then a control batch (the marker) goes to every partition of
// the transaction, then a commit's offsets go to their groups, then
// Complete is recorded. A restart, or the next check, redoes an unfinished
// completion from the recorded decision: a marker written twice is harmless
// (the second finds no open transaction of the producer in its partition)
// and offsets applied twice are the same offsets.

// end decides e's ongoing transaction (e.mu held) and completes it; fence
// bumps the epoch first (a timeout or a new producer for the id), so the
// markers fence the old producer in every partition. It returns the code
// for the client: 0 once the decision is durable, even if completing it
// has to be retried later.
func (c *txnCoordinator) end(e *txnEntry, commit, fence bool) int16 {
	r := cloneRecord(e.r)
	r.State = txnPrepareAbort
	if commit {
		r.State = txnPrepareCommit
	}
	if fence {
		r.LastProducerEpoch = -1
		if r.ProducerEpoch < 1<<15-1 {
			r.ProducerEpoch++
		}
	}
	if err := c.record(e, r); err != nil {
		return kerr.CoordinatorNotAvailable.Code
	}
	if c.d.afterDecision != nil {
		c.d.afterDecision()
	}
	c.finishLocked(e)
	return 0
}

// finishLocked completes e's decided transaction (e.mu held) and reports
// whether it is complete; if not, the next check retries.
func (c *txnCoordinator) finishLocked(e *txnEntry) bool {
	commit := e.r.State == txnPrepareCommit
	if err := c.writeMarkers(e.r, commit); err != nil {
		c.d.log.Warn("kafka transaction markers not written yet, will retry", "transactional_id", e.id, "err", err)
		return false
	}
	if commit {
		byGroup := map[string][]broker.TxnOffset{}
		var groups []string
		for _, o := range e.r.Offsets {
			if _, ok := byGroup[o.Group]; !ok {
				groups = append(groups, o.Group)
			}
			byGroup[o.Group] = append(byGroup[o.Group], o)
		}
		for _, g := range groups {
			if err := c.d.commitOffsets(g, byGroup[g]); err != nil {
				c.d.log.Warn("kafka transaction offsets not committed yet, will retry", "transactional_id", e.id, "group", g, "err", err)
				return false
			}
		}
	}
	r := cloneRecord(e.r)
	r.State = txnCompleteAbort
	if commit {
		r.State = txnCompleteCommit
	}
	r.Partitions, r.Groups, r.Offsets, r.StartMs = nil, nil, nil, 0
	return c.record(e, r) == nil
}

// writeMarkers appends the commit or abort marker of r's producer to each
// of its partitions, all at once, and waits until they are durable. A
// partition that no longer exists (its topic was deleted) needs none.
func (c *txnCoordinator) writeMarkers(r broker.TxnRecord, commit bool) error {
	ts := c.d.clock.Now().UnixMilli()
	errc := make(chan error, len(r.Partitions))
	n := 0
	for _, p := range r.Partitions {
		l, ok := c.d.partition(p.Topic, p.Partition)
		if !ok {
			continue
		}
		n++
		tp := p
		l.Append(recordbatch.BuildControl(r.ProducerID, r.ProducerEpoch, commit, ts), func(_ streamlog.AppendResult, err error) {
			if errors.Is(err, streamlog.ErrClosed) {
				err = nil // deleted meanwhile
			}
			if err != nil {
				err = fmt.Errorf("%s-%d: %w", tp.Topic, tp.Partition, err)
			}
			errc <- err
		})
	}
	var errs []error
	for range n {
		errs = append(errs, <-errc)
	}
	return errors.Join(errs...)
}

// produce is the Produce handler's hook for a transactional batch (header
// h) of transactional id txnID to a topic partition: it checks that the
// partition is in the producer's ongoing transaction and then calls
// appendFn (which appends the batch to the partition's log), holding the
// transaction's lock, so that no EndTxn can write its marker between the
// check and the append. It returns a Kafka error code, without calling
// appendFn, if the batch is not part of an ongoing transaction:
// INVALID_PRODUCER_EPOCH for an epoch other than the coordinator's (an
// older one was fenced), INVALID_PRODUCER_ID_MAPPING for a producer id
// that is not the transactional id's, INVALID_TXN_STATE for a partition
// not added (KIP-890's check) or no transaction ongoing.
func (c *txnCoordinator) produce(txnID string, h recordbatch.BatchHeader, topic string, partition int32, appendFn func()) int16 {
	e := c.lookup(txnID, false)
	if e == nil {
		return kerr.InvalidProducerIDMapping.Code
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case e.r.ProducerID != h.ProducerID:
		return kerr.InvalidProducerIDMapping.Code
	case e.r.ProducerEpoch != h.ProducerEpoch:
		return kerr.InvalidProducerEpoch.Code
	case e.r.State != txnOngoing || !e.in[broker.TxnPartition{Topic: topic, Partition: partition}]:
		return kerr.InvalidTxnState.Code
	}
	appendFn()
	return 0
}

// unstableOffset reports whether an open transaction holds a pending
// offset of group for the partition: OffsetFetch with RequireStable
// answers UNSTABLE_OFFSET_COMMIT then (KIP-447), so a new group member
// waits for the transaction instead of reading an offset about to move.
func (c *txnCoordinator) unstableOffset(group, topic string, partition int32) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.unstable[offsetKey{group, topic, partition}] > 0
}
