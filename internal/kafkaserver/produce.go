package kafkaserver

import (
	"errors"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/warren-mq/warren/internal/broker"
	"github.com/warren-mq/warren/internal/recordbatch"
	"github.com/warren-mq/warren/internal/streamlog"
)

// Produce appends each partition's record batches to its stream's log as
// they came (compressed batches stay compressed; the log checks length,
// magic and CRC). acks=-1 (all in-sync replicas: Warren has one) is answered
// after the fdatasync of the log's group commit; acks=1 (the leader's log)
// once the batches are written to the segment file, before that sync, as
// Kafka's leader answers from its page cache: such records survive a
// broker crash but not a machine crash (see streamlog's doc), and consumers
// still see them only after the sync. acks=0 gets no answer at all, its
// appends still run. Idempotence is the log's: sequences are checked as the
// writer appends, so a duplicate gets its original offsets whatever acks
// says. Versions up to 11: 12 adds
// partitions to transactions implicitly (KIP-890 part 2, which Warren's
// transactions do not do), 13 names topics by ID.

func init() {
	registerAsync(kmsg.Produce, 0, 11, handleProduce)
}

// produceWait collects one request's appends.
type produceWait struct {
	mu      sync.Mutex
	pending int
	resp    *kmsg.ProduceResponse
	done    func(kmsg.Response, error)
	acks0   bool
}

// finish records one partition's outcome; the last one answers.
func (w *produceWait) finish(p *kmsg.ProduceResponseTopicPartition, res streamlog.AppendResult, err error) {
	w.mu.Lock()
	if err != nil {
		p.ErrorCode = appendErrorCode(err)
	} else {
		p.BaseOffset = res.BaseOffset
	}
	w.pending--
	last := w.pending == 0
	w.mu.Unlock()
	if last {
		if w.acks0 {
			w.done(nil, nil)
		} else {
			w.done(w.resp, nil)
		}
	}
}

// appendErrorCode maps a log's refusal to Kafka's code.
func appendErrorCode(err error) int16 {
	switch {
	case errors.Is(err, streamlog.ErrCorrupt):
		return kerr.CorruptMessage.Code
	case errors.Is(err, streamlog.ErrBatchTooLarge):
		return kerr.MessageTooLarge.Code
	case errors.Is(err, streamlog.ErrOutOfOrderSequence):
		return kerr.OutOfOrderSequenceNumber.Code
	case errors.Is(err, streamlog.ErrInvalidProducerEpoch):
		return kerr.InvalidProducerEpoch.Code
	case errors.Is(err, streamlog.ErrClosed):
		// Deleted meanwhile: the client refreshes its metadata and learns.
		return kerr.NotLeaderForPartition.Code
	}
	return kerr.KafkaStorageError.Code
}

func handleProduce(c *conn, req kmsg.Request, done func(kmsg.Response, error)) {
	r := req.(*kmsg.ProduceRequest)
	w := &produceWait{resp: kmsg.NewPtrProduceResponse(), done: done, acks0: r.Acks == 0}
	type pendingAppend struct {
		log       *streamlog.Log
		data      []byte
		p         *kmsg.ProduceResponseTopicPartition
		topic     string
		partition int32
	}
	var appends []pendingAppend
	txnID := ""
	if r.TransactionID != nil {
		txnID = *r.TransactionID
	}
	for _, rt := range r.Topics {
		t, found := c.vhost.Topic(rt.Topic)
		writable := found && c.allowed(t, broker.Write)
		st := kmsg.NewProduceResponseTopic()
		st.Topic = rt.Topic
		st.Partitions = make([]kmsg.ProduceResponseTopicPartition, len(rt.Partitions))
		for i, rp := range rt.Partitions {
			p := &st.Partitions[i]
			*p = kmsg.NewProduceResponseTopicPartition()
			p.Partition, p.BaseOffset, p.LogAppendTime, p.LogStartOffset = rp.Partition, -1, -1, -1
			var s *broker.Stream
			switch {
			case !found:
				p.ErrorCode = kerr.UnknownTopicOrPartition.Code
			case !writable:
				p.ErrorCode = kerr.TopicAuthorizationFailed.Code
			case r.Acks != 0 && r.Acks != 1 && r.Acks != -1:
				p.ErrorCode = kerr.InvalidRequiredAcks.Code
			case rp.Partition < 0 || int(rp.Partition) >= len(t.Partitions) || t.Partitions[rp.Partition] == nil:
				p.ErrorCode = kerr.UnknownTopicOrPartition.Code
			default:
				s = t.Partitions[rp.Partition]
			}
			if s == nil {
				continue
			}
			if code := c.vetBatches(txnID, rt.Topic, rp.Partition, rp.Records); code != 0 {
				p.ErrorCode = code
				continue
			}
			p.LogStartOffset = s.Log().StartOffset()
			appends = append(appends, pendingAppend{s.Log(), rp.Records, p, rt.Topic, rp.Partition})
		}
		w.resp.Topics = append(w.resp.Topics, st)
	}
	w.pending = len(appends) + 1 // +1 until every append is issued
	for _, a := range appends {
		p := a.p
		finish := func(res streamlog.AppendResult, err error) { w.finish(p, res, err) }
		appendFn := func() { a.log.Append(a.data, finish) }
		if r.Acks == 1 {
			appendFn = func() { appendLeaderAck(a.log, a.data, finish) }
		}
		if h, _ := recordbatch.PeekHeader(a.data); !h.Transactional() {
			appendFn()
		} else if code := c.srv.txn.produce(txnID, h, a.topic, a.partition, appendFn); code != 0 {
			// The transaction coordinator appends it under the transaction's
			// lock, so no EndTxn marker comes between its check and the append.
			p.ErrorCode = code
			w.finish(p, streamlog.AppendResult{BaseOffset: -1}, nil)
		}
	}
	w.finish(&kmsg.ProduceResponseTopicPartition{}, streamlog.AppendResult{}, nil)
}

// appendLeaderAck appends for acks=1: finish runs once, when the log has
// written the batches (before its sync), or with the error if it refused
// them or could not write them. A sync error after that is the log's sticky
// error, which the next produce gets.
func appendLeaderAck(l *streamlog.Log, data []byte, finish func(streamlog.AppendResult, error)) {
	answered := false // both callbacks run on the log's writer goroutine, in turn
	l.AppendWritten(data, func(res streamlog.AppendResult) {
		answered = true
		finish(res, nil)
	}, func(res streamlog.AppendResult, err error) {
		if !answered {
			finish(res, err)
		}
	})
}

// vetBatches checks what the log does not: a produce carries at least one
// batch, an idempotent or transactional batch comes alone (Kafka's
// INVALID_RECORD) and a transactional one names its transactional id (the
// transaction coordinator checks the rest as it appends). The log checks
// lengths, magic and CRCs itself.
func (c *conn) vetBatches(txnID, topic string, partition int32, records []byte) int16 {
	h, err := recordbatch.PeekHeader(records)
	if err != nil {
		return kerr.CorruptMessage.Code
	}
	if h.Magic != 2 {
		return kerr.CorruptMessage.Code
	}
	if (h.Idempotent() || h.Transactional()) && len(records) != h.Size() {
		return kerr.InvalidRecord.Code
	}
	if h.Transactional() {
		if txnID == "" {
			return kerr.InvalidRecord.Code
		}
	}
	return 0
}
