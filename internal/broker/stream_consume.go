package broker

import (
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warren-mq/warren/internal/amqp091"
	"github.com/warren-mq/warren/internal/recordbatch"
	"github.com/warren-mq/warren/internal/streamlog"
)

// Consuming a stream, as RabbitMQ 3.13 does it over AMQP 0-9-1: each
// consumer reads from its own offset (x-stream-offset), needs a prefetch,
// acknowledges to get credit back (acks delete nothing), and is handed every
// record as a message carrying its offset in the x-stream-offset header.
//
// A consumer's delivery runs on a goroutine of its own while it has records
// to deliver and credit to deliver them with, and stops when either runs
// out: a Kick (credit returned) starts it again, and a consumer that caught
// up waits on the log (Log.Wait), so records appended by any protocol wake
// it. It reads one chunk of batches at a time from the log, which takes no
// lock writers need, under its own lock only: publishers never wait for a
// reader. Compressed batches are decompressed, control batches and records
// of aborted transactions skipped, and nothing past the last stable offset
// is delivered (an open transaction's records may yet be aborted).

const (
	// streamReadBytes is how much of the log a consumer reads at a time:
	// what it holds in memory, whatever the stream's length.
	streamReadBytes = 256 << 10
	// streamMaxDecompressed bounds one batch's records once decompressed.
	streamMaxDecompressed = 32 << 20
)

// streamConsumer is one consumer's position in a stream and its reading state.
type streamConsumer struct {
	s *Stream
	c *Consumer

	tracker    *offsetTracker // x-stream-consumer-name, nil without
	filter     []string       // x-stream-filter: deliver records whose filter value is one of these
	unfiltered bool           // x-stream-match-unfiltered: and those without one

	// run state, under state
	state     sync.Mutex
	running   bool // the delivery goroutine runs
	again     bool // kicked while running: run once more
	cancelled bool
	stop      chan struct{} // closed at cancel: ends a wait on the log
	gone      atomic.Bool   // cancelled: a delivery loop under way stops at the next record

	// reading state, under mu, held while delivering
	mu      sync.Mutex
	next    int64  // offset of the next record to deliver
	chunk   []byte // batches read but not walked yet
	it      recordbatch.Iterator
	inBatch bool // it walks a batch
	base    int64
	aborted []streamlog.AbortedTxn
	rec     recordbatch.Record
	haveRec bool // rec (at recOff) awaits credit
	recOff  int64
	props   []byte // scratch for a delivery's property list
}

// Consume implements Source. It applies RabbitMQ's rules for stream
// consumers and places the consumer at its starting offset; delivery starts
// at the next Kick.
func (s *Stream) Consume(c *Consumer) error {
	what := "queue '" + s.name + "' in vhost '" + s.vhost.Name + "'"
	if c.NoAck {
		return amqp091.NewError(amqp091.NotImplemented, "automatic acknowledgement not supported by stream queues %s", what)
	}
	if c.PrefetchCount == 0 {
		return amqp091.NewError(amqp091.PreconditionFailed, "consumer prefetch count is not set for '%s'", what)
	}
	spec, explicit := c.Args["x-stream-offset"]
	name, tracked := c.Args[ConsumerNameArg].(string)
	tracked = tracked && name != ""
	start, resumed := int64(0), false
	if tracked && !explicit {
		start, resumed = s.trackedStart(name)
	}
	if !resumed {
		var err error
		if start, err = s.startOffset(spec); err != nil {
			return err
		}
	}
	sc := &streamConsumer{s: s, c: c, next: start, stop: make(chan struct{})}
	if tracked {
		sc.tracker = newOffsetTracker(s, name, start)
	}
	switch f := c.Args["x-stream-filter"].(type) {
	case string:
		sc.filter = []string{f}
	case []any:
		for _, x := range f {
			if v, ok := x.(string); ok {
				sc.filter = append(sc.filter, v)
			}
		}
	}
	sc.unfiltered, _ = c.Args["x-stream-match-unfiltered"].(bool)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.deleted {
		return s.vhost.errNoQueue(s.name)
	}
	s.consumers = append(s.consumers, c)
	s.readers[c] = sc
	return nil
}

// startOffset resolves an x-stream-offset argument, as RabbitMQ does: first,
// last (the start of the last batch), next (the default: only what comes),
// an offset (clamped to the log), a timestamp (the first batch from then on)
// or an interval back from now ("1h", "30m", "7D").
func (s *Stream) startOffset(spec any) (int64, error) {
	l := s.log
	first, next := l.StartOffset(), l.NextOffset()
	clamp := func(o int64) int64 { return min(max(o, first), next) }
	switch v := spec.(type) {
	case nil:
		return next, nil
	case string:
		switch v {
		case "first":
			return first, nil
		case "next":
			return next, nil
		case "last":
			return s.lastBatchOffset(), nil
		}
		if d, ok := parseRetentionAge(v); ok {
			return clamp(l.OffsetForTime(time.Now().Add(-d).UnixMilli())), nil
		}
	case time.Time:
		return clamp(l.OffsetForTime(v.UnixMilli())), nil
	default:
		if n, ok := TableInt(v); ok {
			return clamp(n), nil
		}
	}
	// RabbitMQ 3.10 fails the consumer's channel process on an offset it
	// cannot read: a bare internal error, which closes the connection.
	return 0, &amqp091.Error{Code: amqp091.InternalError, Text: "INTERNAL_ERROR"}
}

// lastBatchOffset is the base offset of the log's last batch (RabbitMQ's
// "last chunk"), the next offset if the log is empty.
func (s *Stream) lastBatchOffset() int64 {
	l := s.log
	next := l.NextOffset()
	if next == l.StartOffset() {
		return next
	}
	c, err := l.Read(next-1, recordbatch.HeaderSize)
	if err != nil {
		return next
	}
	defer c.Close()
	b, err := c.Bytes()
	if err != nil {
		return next
	}
	for len(b) >= recordbatch.HeaderSize {
		h, err := recordbatch.PeekHeader(b)
		if err != nil || h.Size() > len(b) {
			break
		}
		if h.LastOffset() >= next-1 {
			return h.BaseOffset
		}
		b = b[h.Size():]
	}
	return next
}

// Cancel implements Source.
func (s *Stream) Cancel(c *Consumer) {
	s.mu.Lock()
	sc := s.readers[c]
	delete(s.readers, c)
	for i, x := range s.consumers {
		if x == c {
			s.consumers = slices.Delete(s.consumers, i, i+1) // clears the vacated slot
			break
		}
	}
	s.mu.Unlock()
	if sc != nil {
		sc.cancel()
		if sc.tracker != nil {
			sc.tracker.close()
		}
	}
}

// Kick implements Source: every consumer that is not delivering or
// waiting for records runs again (one of them got credit back).
func (s *Stream) Kick() {
	s.mu.Lock()
	readers := make([]*streamConsumer, 0, len(s.readers))
	for _, sc := range s.readers {
		readers = append(readers, sc)
	}
	s.mu.Unlock()
	for _, sc := range readers {
		sc.kick()
	}
}

// Ack implements Source: acknowledgements of stream deliveries only return
// credit, which the sink accounts for, and move a named consumer's tracked
// offset on.
func (s *Stream) Ack(es []Entry) {
	for i := range es {
		if t := es[i].Msg.tracker; t != nil {
			t.ack(int64(es[i].Seq))
		}
	}
}

// Requeue implements Source: a stream keeps every record, so there is
// nothing to give back (RabbitMQ's streams ignore requeue too).
func (s *Stream) Requeue([]Entry) {}

// Reject implements Source, as Requeue: nothing leaves a stream.
func (s *Stream) Reject([]Entry) {}

// ConsumerTimeout implements Source: streams take no x-consumer-timeout.
func (s *Stream) ConsumerTimeout() int64 { return -1 }

// cancel stops the consumer: after it returns, it delivers nothing more.
func (sc *streamConsumer) cancel() {
	sc.state.Lock()
	if !sc.cancelled {
		sc.cancelled = true
		sc.gone.Store(true)
		close(sc.stop)
	}
	sc.state.Unlock()
	sc.mu.Lock() // a delivery under way ends first
	sc.chunk, sc.haveRec = nil, false
	sc.mu.Unlock()
}

// kick starts the consumer's delivery goroutine, or has it run once more.
func (sc *streamConsumer) kick() {
	sc.state.Lock()
	defer sc.state.Unlock()
	if sc.cancelled {
		return
	}
	if sc.running {
		sc.again = true
		return
	}
	sc.running = true
	go sc.run()
}

// run delivers until credit or records run out; a consumer that caught up
// then waits for the log to grow.
func (sc *streamConsumer) run() {
	for {
		why, waitFor := sc.deliver()
		sc.state.Lock()
		if sc.cancelled {
			sc.running = false
			sc.state.Unlock()
			return
		}
		if sc.again {
			sc.again = false
			sc.state.Unlock()
			continue
		}
		if why == noCredit {
			sc.running = false // the next Kick starts it again
			sc.state.Unlock()
			return
		}
		sc.state.Unlock()
		var retry <-chan time.Time
		wait := sc.s.log.Wait(waitFor)
		if why == readFailed {
			wait, retry = nil, time.After(time.Second)
		}
		select {
		case <-wait:
		case <-retry:
		case <-sc.stop:
		case <-sc.s.closing:
			// The stream is being deleted or the broker closes: its log
			// no longer grows, and a closed log's Wait never blocks.
			sc.state.Lock()
			sc.running = false
			sc.state.Unlock()
			return
		}
	}
}

// Why a delivery loop stopped.
const (
	noCredit   = iota // the consumer took no more: wait for a Kick
	caughtUp          // no record to deliver yet: wait for the log
	readFailed        // the log could not be read: try again later
)

// deliver hands records to the consumer while it takes them. It says why it
// stopped and, when caught up, past which offset the log's growth is worth
// waking up for.
func (sc *streamConsumer) deliver() (why int, waitFor int64) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	for !sc.gone.Load() {
		if !sc.haveRec {
			ok, wait, err := sc.nextRecord()
			if err != nil {
				sc.s.vhost.broker.log.Error("stream consumer: cannot read the log", "vhost", sc.s.vhost.Name, "stream", sc.s.name, "offset", sc.next, "err", err)
				return readFailed, 0
			}
			if !ok {
				return caughtUp, wait
			}
			sc.haveRec = true
		}
		e := Entry{Msg: sc.message(), Seq: uint64(sc.recOff)}
		if !sc.c.Sink.Deliver(sc.c, sc.s, &e) {
			return noCredit, 0
		}
		sc.haveRec = false
		sc.next = sc.recOff + 1
	}
	return noCredit, 0
}

// message builds the delivery of the current record. Its body aliases the
// chunk or the iterator's buffer: the sink copies it into its output at once
// and never reads a delivered entry's body again (a stream's entries come
// back only to return credit).
func (sc *streamConsumer) message() *Message {
	props, ex, rk := recordbatch.AppendDeliveryProperties(sc.props[:0], &sc.rec, sc.recOff)
	sc.props = props[:0]
	m := &Message{Exchange: string(ex), RoutingKey: string(rk), Props: append([]byte(nil), props...), TTL: -1, Persistent: true, tracker: sc.tracker}
	m.setBody(sc.rec.Value)
	return m
}

// nextRecord moves to the next record to deliver at or after sc.next,
// reading the log as needed. ok false: none yet; wait is the offset whose
// arrival is worth waiting for.
func (sc *streamConsumer) nextRecord() (ok bool, wait int64, err error) {
	l := sc.s.log
	for {
		if sc.inBatch {
			if !sc.it.Next(&sc.rec) {
				sc.inBatch = false
				if err := sc.it.Err(); err != nil {
					sc.s.vhost.broker.log.Warn("stream consumer: skipping a batch that does not decode", "stream", sc.s.name, "offset", sc.base, "err", err)
					sc.next = max(sc.next, sc.it.Header().LastOffset()+1)
				}
				continue
			}
			off := sc.base + int64(sc.rec.OffsetDelta)
			if off < sc.next {
				continue
			}
			if !sc.matches() {
				sc.next = off + 1 // filtered out: never read again
				continue
			}
			sc.recOff = off
			return true, 0, nil
		}
		if len(sc.chunk) >= recordbatch.HeaderSize {
			h, err := recordbatch.ParseHeader(sc.chunk)
			if err == nil && h.Size() > len(sc.chunk) {
				err = errors.New("batch cut short in a chunk")
			}
			if err != nil {
				sc.chunk = nil // the log checked it at append: its file is damaged
				return false, 0, err
			}
			b := sc.chunk[:h.Size()]
			sc.chunk = sc.chunk[h.Size():]
			if h.BaseOffset+int64(h.LastOffsetDelta) < sc.next || h.Control() || (h.Transactional() && sc.isAborted(h)) {
				sc.next = max(sc.next, h.BaseOffset+int64(h.LastOffsetDelta)+1)
				continue
			}
			if h.BaseOffset >= l.LastStableOffset() {
				sc.chunk = nil // not stable yet: read again once it is
				return false, l.NextOffset(), nil
			}
			sc.base = h.BaseOffset
			if err := sc.it.Reset(b, streamMaxDecompressed); err != nil {
				sc.s.vhost.broker.log.Warn("stream consumer: skipping a batch that does not decode", "stream", sc.s.name, "offset", h.BaseOffset, "err", err)
				sc.next = max(sc.next, h.BaseOffset+int64(h.LastOffsetDelta)+1)
				continue
			}
			sc.inBatch = true
			continue
		}
		sc.chunk = nil
		if sc.gone.Load() {
			return false, 0, nil
		}
		lso := l.LastStableOffset()
		if start := l.StartOffset(); sc.next < start {
			sc.next = start // retention removed what it had not read yet
		}
		if sc.next >= lso {
			if lso < l.NextOffset() {
				return false, l.NextOffset(), nil // an open transaction: wait for what ends it
			}
			return false, sc.next, nil
		}
		c, err := l.Read(sc.next, streamReadBytes)
		if errors.Is(err, streamlog.ErrOffsetOutOfRange) {
			continue // retention moved the start meanwhile
		}
		if err != nil {
			return false, 0, err
		}
		b, err := c.Bytes()
		end := sc.next
		c.Close()
		if err != nil {
			return false, 0, err
		}
		if len(b) == 0 {
			return false, end, nil
		}
		sc.chunk = b
		sc.aborted = nil
		if first, last, ok := chunkOffsets(b); ok {
			sc.aborted = l.AbortedTxns(first, last+1)
		}
	}
}

// chunkOffsets returns the first and last offsets of the whole batches in b.
// Offsets are not bytes: compaction leaves gaps, so the span must come from
// the last batch's header, not from the chunk's length.
func chunkOffsets(b []byte) (first, last int64, ok bool) {
	for len(b) > 0 {
		h, err := recordbatch.PeekHeader(b)
		if err != nil || h.Size() > len(b) {
			break
		}
		if !ok {
			first, ok = h.BaseOffset, true
		}
		last = h.LastOffset()
		b = b[h.Size():]
	}
	return first, last, ok
}

// isAborted reports whether a transactional batch belongs to a transaction
// that was aborted (its records are never delivered).
func (sc *streamConsumer) isAborted(h recordbatch.BatchHeader) bool {
	for _, t := range sc.aborted {
		if t.ProducerID == h.ProducerID && t.FirstOffset <= h.BaseOffset && h.BaseOffset <= t.LastOffset {
			return true
		}
	}
	return false
}

// matches applies the consumer's stream filter to the current record.
func (sc *streamConsumer) matches() bool {
	if len(sc.filter) == 0 {
		return true
	}
	for _, h := range sc.rec.Headers {
		if h.Key != streamFilterHeader {
			continue
		}
		for _, f := range sc.filter {
			if string(h.Value) == f {
				return true
			}
		}
		return false
	}
	return sc.unfiltered
}

// streamFilterHeader is the header a publisher sets to make a message
// match consumers' x-stream-filter.
const streamFilterHeader = "x-stream-filter-value"
