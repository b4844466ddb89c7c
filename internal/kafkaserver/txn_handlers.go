package kafkaserver

import (
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/warren-mq/warren/internal/broker"
	"github.com/warren-mq/warren/internal/streamlog"
)

// The transaction APIs, answered by the server's transaction coordinator
// (txn_coordinator.go). Versions stop before KIP-890 part 2 ("transaction
// version 2": EndTxn v5 bumping the epoch, Produce v12 adding partitions
// implicitly): InitProducerId v4, AddPartitionsToTxn v3 (v4+ is for
// brokers), AddOffsetsToTxn, EndTxn and TxnOffsetCommit v3, so clients use
// AddPartitionsToTxn and the epoch stays across transactions. They answer
// on the reader goroutine (Kafka serves one request per connection at a
// time): a transition waits for its metadata commit, EndTxn also for its
// markers.

func init() {
	registerVersions(kmsg.InitProducerID, 0, 4, func(c *conn, req kmsg.Request) (kmsg.Response, error) {
		return c.srv.txn.initProducerID(req.(*kmsg.InitProducerIDRequest)), nil
	})
	registerVersions(kmsg.AddPartitionsToTxn, 0, 3, func(c *conn, req kmsg.Request) (kmsg.Response, error) {
		return c.srv.txn.addPartitions(req.(*kmsg.AddPartitionsToTxnRequest), c.mayTopic(broker.Write)), nil
	})
	registerVersions(kmsg.AddOffsetsToTxn, 0, 3, func(c *conn, req kmsg.Request) (kmsg.Response, error) {
		return c.srv.txn.addOffsets(req.(*kmsg.AddOffsetsToTxnRequest), c.mayGroup), nil
	})
	registerVersions(kmsg.EndTxn, 0, 3, func(c *conn, req kmsg.Request) (kmsg.Response, error) {
		return c.srv.txn.endTxn(req.(*kmsg.EndTxnRequest)), nil
	})
	registerVersions(kmsg.TxnOffsetCommit, 0, 3, func(c *conn, req kmsg.Request) (kmsg.Response, error) {
		return c.srv.txn.txnOffsetCommit(req.(*kmsg.TxnOffsetCommitRequest), c.mayGroup, c.mayTopic(broker.Read)), nil
	})
}

// mayTopic says whether the connection's user has perm on a topic; a topic
// that does not exist passes (the coordinator answers for it).
func (c *conn) mayTopic(perm broker.Perm) func(topic string) bool {
	return func(topic string) bool {
		t, ok := c.vhost.Topic(topic)
		return !ok || c.allowed(t, perm)
	}
}

// mayGroup says whether the connection's user may use a consumer group
// (read on the resource "group"/name, as the group APIs check it).
func (c *conn) mayGroup(group string) bool { return c.access.Check("group", group, broker.Read) == nil }

// newServerTxn is the server's transaction coordinator: its state in the
// broker's metadata, markers through the topics' logs, committed offsets
// through the broker's durable group offsets.
func newServerTxn(s *Server) *txnCoordinator {
	vhost := s.cfg.VHost
	return newTxnCoordinator(txnDeps{
		b: s.broker, vhost: vhost, log: s.log.With("vhost", vhost), maxTimeout: s.cfg.TxnMaxTimeout,
		partition: s.txnPartition, memberCheck: s.txnMemberCheck, afterDecision: crashAfter(s.cfg.CrashAfterTxnDecisions, s.log),
		commitOffsets: func(group string, offs []broker.TxnOffset) error {
			out := make([]broker.CommittedOffset, 0, len(offs))
			for _, o := range offs {
				out = append(out, broker.CommittedOffset{StreamPartition: broker.StreamPartition{Stream: o.Topic, Partition: o.Partition},
					Offset: o.Offset, LeaderEpoch: o.LeaderEpoch, Metadata: o.Metadata, CommitTime: time.Now()})
			}
			return s.broker.CommitOffsets(vhost, group, out)
		},
	})
}

// txnPartition is a topic partition's log.
func (s *Server) txnPartition(topic string, partition int32) (*streamlog.Log, bool) {
	v, ok := s.broker.VHost(s.cfg.VHost)
	if !ok {
		return nil, false
	}
	t, ok := v.Topic(topic)
	if !ok || partition < 0 || int(partition) >= len(t.Partitions) || t.Partitions[partition] == nil {
		return nil, false
	}
	return t.Partitions[partition].Log(), true
}

// crashAfter returns the crash-test hook of Config.CrashAfterTxnDecisions:
// it kills the process at its n-th call; nil if n is 0.
func crashAfter(n int, log *slog.Logger) func() {
	if n <= 0 {
		return nil
	}
	var calls atomic.Int64
	return func() {
		if calls.Add(1) == int64(n) {
			log.Warn("crash-test hook: killing the process after a transaction decision", "decisions", n)
			if p, err := os.FindProcess(os.Getpid()); err == nil {
				_ = p.Kill()
			}
			select {} // the signal is on its way
		}
	}
}

// txnMemberCheck checks a TxnOffsetCommit's member and generation as the
// group checks an OffsetCommit's.
func (s *Server) txnMemberCheck(group, memberID string, instanceID *string, generation int32) int16 {
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Group, req.MemberID, req.InstanceID, req.Generation = group, memberID, instanceID, generation
	return s.groups.commitAllowed(s.cfg.VHost, req)
}
