package broker

import (
	"sync"
	"time"

	"github.com/warren-mq/warren/internal/recordbatch"
	"github.com/warren-mq/warren/internal/streamlog"
)

// Publishing into a stream: each routed message becomes a record (the AMQP
// mapping of package recordbatch) queued on the stream; a flusher takes
// everything queued at once and appends it as one record batch (split only
// where a batch would pass streamBatchTarget), and the log group-commits
// what is pending with one fdatasync. Confirms follow the log's done
// callback: a confirmed record is durable.

const (
	// streamBatchTarget is where the flusher cuts a batch: large enough to
	// carry a burst in one append, small enough for Kafka consumers'
	// default fetch sizes.
	streamBatchTarget = 1 << 20
	// streamMaxBatchBytes is the largest batch a stream's log accepts: an
	// AMQP message (up to the server's max message size) is one record of
	// a batch of its own when it is large.
	streamMaxBatchBytes = 16 << 20
	// recordOverhead approximates a record's framing beyond its key, value
	// and headers, for cutting batches.
	recordOverhead = 24
)

// streamPublishes are a stream's publishes waiting for the flusher.
type streamPublishes struct {
	mu      sync.Mutex
	recs    []recordbatch.Record
	waits   []*durableWait // one per record, nil when nobody waits
	running bool           // a flusher is running; it exits when it finds nothing queued
}

// enqueue implements Target: m becomes a record queued for the next batch.
// A stream refuses nothing; a failed append nacks the confirm.
func (s *Stream) enqueue(m *Message, w *durableWait) bool {
	body, err := m.Body() // just published or dead-lettered: in memory
	if err != nil {
		s.vhost.broker.log.Error("stream: cannot read a message body", "stream", s.name, "err", err)
		return false
	}
	rec, err := recordbatch.FromAMQPRaw(m.Exchange, m.RoutingKey, m.Props, body, time.Now().UnixMilli())
	if err != nil {
		return false // properties were checked at publish: never here
	}
	if w != nil {
		w.add()
	}
	p := &s.pub
	p.mu.Lock()
	p.recs = append(p.recs, rec)
	p.waits = append(p.waits, w)
	start := !p.running
	p.running = true
	p.mu.Unlock()
	if start {
		go s.flushPublishes()
	}
	return true
}

func (s *Stream) targetName() string { return s.name }

// flushPublishes appends what is queued, one batch per turn, until nothing is.
func (s *Stream) flushPublishes() {
	p := &s.pub
	for {
		p.mu.Lock()
		recs, waits := p.recs, p.waits
		p.recs, p.waits = nil, nil
		if len(recs) == 0 {
			p.running = false
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
		for len(recs) > 0 {
			n, size := 0, 0
			for n < len(recs) && (n == 0 || size+recordSize(&recs[n]) <= streamBatchTarget) {
				size += recordSize(&recs[n])
				n++
			}
			batch := recordbatch.Build(recs[:n], recordbatch.BuildOptions{})
			ws := waits[:n]
			s.log.Append(batch, func(_ streamlog.AppendResult, err error) {
				if err != nil {
					s.vhost.broker.log.Error("stream: append failed", "vhost", s.vhost.Name, "stream", s.name, "err", err)
				}
				for _, w := range ws {
					if w != nil {
						w.release(err)
					}
				}
			})
			recs, waits = recs[n:], waits[n:]
		}
	}
}

func recordSize(r *recordbatch.Record) int {
	n := recordOverhead + len(r.Key) + len(r.Value)
	for _, h := range r.Headers {
		n += 10 + len(h.Key) + len(h.Value)
	}
	return n
}
