package kafkaserver

import (
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/warren-mq/warren/internal/broker"
	"github.com/warren-mq/warren/internal/recordbatch"
	"github.com/warren-mq/warren/internal/streamlog"
)

// Fetch reads whole record batches from the logs, as stored (compressed
// batches stay compressed), and sends them from the segment files with
// sendfile on plain TCP (fetchAnswer writes the frame around them). It
// waits up to MaxWaitMillis for MinBytes, waking on the logs' Wait. Limits
// are Kafka's: PartitionMaxBytes per partition, MaxBytes per response, but
// the first batch of the first partition with data is sent even when larger
// (KIP-74). read_committed stops at the last stable offset and lists the
// aborted transactions in range. Fetch sessions (KIP-227) are declined by
// answering session id 0, so clients send full fetches. Versions 4 (the
// first with record batches v2 and isolation levels) to 12: 13 names topics
// by ID.

func init() {
	registerAsync(kmsg.Fetch, 4, 12, handleFetch)
}

// defaultFetchMax bounds a response whose request has no MaxBytes (v < 3
// has none; Warren serves v4+, so only a client sending 0 gets it).
const defaultFetchMax = 50 << 20

// fetchPart is one requested partition and what was read for it.
type fetchPart struct {
	resp     *kmsg.FetchResponseTopicPartition
	log      *streamlog.Log
	offset   int64
	maxBytes int
	data     fetchData
	waitLSO  bool // read_committed and nothing stable past offset: poll, Wait would not help
}

// fetchData is a partition's record batches: a chunk of a segment file, or
// bytes in memory (read_committed cut at the last stable offset).
type fetchData struct {
	chunk streamlog.Chunk
	bytes []byte
}

func (d fetchData) len() int {
	if d.chunk != nil {
		return d.chunk.Len()
	}
	return len(d.bytes)
}

func (d *fetchData) release() {
	if d.chunk != nil {
		d.chunk.Close()
		d.chunk = nil
	}
	d.bytes = nil
}

// fetch is one Fetch request in progress.
type fetch struct {
	c         *conn
	resp      *kmsg.FetchResponse
	parts     []*fetchPart
	committed bool
	maxBytes  int
	minBytes  int
	total     int
}

func handleFetch(c *conn, req kmsg.Request, done func(kmsg.Response, error)) {
	r := req.(*kmsg.FetchRequest)
	resp := kmsg.NewPtrFetchResponse()
	if r.SessionID != 0 {
		// Warren never hands out a session id, so none can be valid.
		resp.ErrorCode = kerr.FetchSessionIDNotFound.Code
		done(resp, nil)
		return
	}
	f := &fetch{c: c, resp: resp, committed: r.IsolationLevel == 1, maxBytes: int(r.MaxBytes), minBytes: int(r.MinBytes)}
	if f.maxBytes <= 0 {
		f.maxBytes = defaultFetchMax
	}
	failed := false
	for _, rt := range r.Topics {
		t, found := c.vhost.Topic(rt.Topic)
		readable := found && c.allowed(t, broker.Read)
		st := kmsg.NewFetchResponseTopic()
		st.Topic = rt.Topic
		st.Partitions = make([]kmsg.FetchResponseTopicPartition, len(rt.Partitions))
		for i, rp := range rt.Partitions {
			p := &st.Partitions[i]
			*p = kmsg.NewFetchResponseTopicPartition()
			p.Partition, p.HighWatermark, p.LastStableOffset, p.LogStartOffset = rp.Partition, -1, -1, -1
			// No records is an empty records field, as Kafka sends it: librdkafka
			// fails to parse a null one (length -1) and backs off.
			p.RecordBatches = []byte{}
			switch {
			case !found:
				p.ErrorCode = kerr.UnknownTopicOrPartition.Code
			case !readable:
				p.ErrorCode = kerr.TopicAuthorizationFailed.Code
			case rp.Partition < 0 || int(rp.Partition) >= len(t.Partitions) || t.Partitions[rp.Partition] == nil:
				p.ErrorCode = kerr.UnknownTopicOrPartition.Code
			default:
				p.ErrorCode = leaderEpochCode(rp.CurrentLeaderEpoch)
			}
			if p.ErrorCode != 0 {
				failed = true
				continue
			}
			f.parts = append(f.parts, &fetchPart{resp: p, log: t.Partitions[rp.Partition].Log(), offset: rp.FetchOffset, maxBytes: int(rp.PartitionMaxBytes)})
		}
		resp.Topics = append(resp.Topics, st)
	}
	f.read()
	if f.total >= f.minBytes || r.MaxWaitMillis <= 0 || failed {
		done(f.answer(), nil)
		return
	}
	go f.wait(time.Duration(r.MaxWaitMillis)*time.Millisecond, done)
}

// leaderEpochCode checks a client's idea of the leader epoch, always 0 here
// (-1: the client does not say).
func leaderEpochCode(epoch int32) int16 {
	switch {
	case epoch > 0:
		return kerr.UnknownLeaderEpoch.Code
	case epoch < -1:
		return kerr.FencedLeaderEpoch.Code
	}
	return 0
}

// read reads every partition that has nothing yet, within the limits.
func (f *fetch) read() {
	for _, p := range f.parts {
		if p.data.len() > 0 || p.resp.ErrorCode != 0 {
			continue
		}
		budget := min(p.maxBytes, f.maxBytes-f.total)
		if budget <= 0 && f.total > 0 {
			f.note(p)
			continue
		}
		f.readPart(p, max(budget, 1))
	}
}

// note fills a partition's offsets without data.
func (f *fetch) note(p *fetchPart) {
	p.resp.HighWatermark = p.log.NextOffset()
	p.resp.LastStableOffset = p.log.LastStableOffset()
	p.resp.LogStartOffset = p.log.StartOffset()
}

func (f *fetch) readPart(p *fetchPart, budget int) {
	ch, err := p.log.Read(p.offset, budget)
	lso, hw := p.log.LastStableOffset(), p.log.NextOffset()
	p.resp.HighWatermark, p.resp.LastStableOffset, p.resp.LogStartOffset = hw, lso, p.log.StartOffset()
	switch {
	case errors.Is(err, streamlog.ErrOffsetOutOfRange):
		p.resp.ErrorCode = kerr.OffsetOutOfRange.Code
		return
	case errors.Is(err, streamlog.ErrClosed):
		p.resp.ErrorCode = kerr.NotLeaderForPartition.Code
		return
	case err != nil:
		f.c.log.Warn("Kafka fetch: reading a stream failed", "err", err)
		p.resp.ErrorCode = kerr.KafkaStorageError.Code
		return
	}
	if ch.Len() == 0 || (f.total > 0 && ch.Len() > budget) {
		ch.Close()
		return
	}
	d := fetchData{chunk: ch}
	if f.committed && lso < hw {
		// Open transactions: only what lies below the last stable offset
		// goes out. (lso == hw read after the chunk means all of it is
		// stable: the chunk ends at or below that hw.)
		b, err := ch.Bytes()
		ch.Close()
		if err != nil {
			p.resp.ErrorCode = kerr.KafkaStorageError.Code
			return
		}
		d = fetchData{bytes: cutAt(b, lso)}
		if len(d.bytes) == 0 {
			p.waitLSO = true
			return
		}
	}
	p.data = d
	f.total += d.len()
	if f.committed {
		for _, a := range p.log.AbortedTxns(p.offset, lso) {
			p.resp.AbortedTransactions = append(p.resp.AbortedTransactions, kmsg.FetchResponseTopicPartitionAbortedTransaction{ProducerID: a.ProducerID, FirstOffset: a.FirstOffset})
		}
	}
}

// cutAt keeps the whole batches of b that start below offset.
func cutAt(b []byte, offset int64) []byte {
	n := 0
	for n < len(b) {
		h, err := recordbatch.PeekHeader(b[n:])
		if err != nil || h.BaseOffset >= offset || n+h.Size() > len(b) {
			break
		}
		n += h.Size()
	}
	return b[:n]
}

// lsoPoll is how often a read_committed fetch blocked by an open
// transaction looks again (the log has no signal for its stable offset).
const lsoPoll = 20 * time.Millisecond

// wait long-polls: until MinBytes are there, maxWait passes or the
// connection ends, waking when a log gets records past what was read.
func (f *fetch) wait(maxWait time.Duration, done func(kmsg.Response, error)) {
	deadline := time.NewTimer(maxWait)
	defer deadline.Stop()
	for f.total < f.minBytes {
		stop := make(chan struct{})
		wake := make(chan struct{}, 1)
		var poll <-chan time.Time
		for _, p := range f.parts {
			if p.data.len() > 0 || p.resp.ErrorCode != 0 {
				continue
			}
			if p.waitLSO {
				poll = time.After(lsoPoll)
				continue
			}
			go func(ch <-chan struct{}) {
				select {
				case <-ch:
					select {
					case wake <- struct{}{}:
					default:
					}
				case <-stop:
				}
			}(p.log.Wait(p.offset))
		}
		var timedOut bool
		select {
		case <-wake:
		case <-poll:
		case <-deadline.C:
			timedOut = true
		case <-f.c.done:
			close(stop)
			f.release()
			done(nil, errors.New("connection closed"))
			return
		}
		close(stop)
		f.read()
		if timedOut {
			break
		}
	}
	done(f.answer(), nil)
}

// release drops what was read (the answer will not be sent).
func (f *fetch) release() {
	for _, p := range f.parts {
		p.data.release()
	}
}
