package broker

import (
	"sync"
	"time"
)

// Server-side offset tracking for AMQP stream consumers, a Warren extension:
// a consumer with the argument x-stream-consumer-name starts, unless it
// names an x-stream-offset, where the last consumer of that name got to,
// and its acknowledgements move that position on. The position is the
// committed offset of the group of that name (command_offsets.go), so it is
// durable metadata shared with Kafka consumer groups of the same name: a
// Kafka group and AMQP consumers can take turns on one stream.
//
// Commits are batched: at most one per trackInterval per consumer, and a
// last one when the consumer goes. An acknowledged record may so be read
// again after a crash (at least once), never skipped.

// ConsumerNameArg is the consumer argument naming a tracked position.
const ConsumerNameArg = "x-stream-consumer-name"

const trackInterval = time.Second

// offsetTracker commits one consumer's acknowledged position.
type offsetTracker struct {
	s    *Stream
	name string

	mu        sync.Mutex
	acked     int64 // next offset after the highest acknowledged record
	committed int64
	timer     *time.Timer
	closed    bool
}

// trackedStart returns where a named consumer resumes: its committed offset
// clamped to the log, ok false if the name has none.
func (s *Stream) trackedStart(name string) (int64, bool) {
	o, ok := s.vhost.broker.CommittedOffset(s.vhost.Name, name, StreamPartition{Stream: s.name})
	if !ok {
		return 0, false
	}
	return min(max(o.Offset, s.log.StartOffset()), s.log.NextOffset()), true
}

func newOffsetTracker(s *Stream, name string, start int64) *offsetTracker {
	return &offsetTracker{s: s, name: name, acked: start, committed: start}
}

// ack records the acknowledgement of the record at off.
func (t *offsetTracker) ack(off int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if off+1 <= t.acked || t.closed {
		return
	}
	t.acked = off + 1
	if t.timer == nil {
		t.timer = time.AfterFunc(trackInterval, t.flush)
	}
}

// flush commits the acknowledged position if it moved. It runs on a timer's
// goroutine or the cancelling caller's, holding no lock while it commits.
func (t *offsetTracker) flush() {
	t.mu.Lock()
	t.timer = nil
	pos := t.acked
	if pos == t.committed {
		t.mu.Unlock()
		return
	}
	t.committed = pos
	t.mu.Unlock()
	err := t.s.vhost.broker.CommitOffsets(t.s.vhost.Name, t.name, []CommittedOffset{{StreamPartition: StreamPartition{Stream: t.s.name}, Offset: pos, LeaderEpoch: -1}})
	if err != nil {
		t.s.vhost.broker.log.Warn("stream consumer: committing its offset failed", "vhost", t.s.vhost.Name, "stream", t.s.name, "consumer_name", t.name, "err", err)
	}
}

// close commits what is left; later acknowledgements are ignored.
func (t *offsetTracker) close() {
	t.mu.Lock()
	t.closed = true
	if t.timer != nil {
		t.timer.Stop()
	}
	t.mu.Unlock()
	t.flush()
}
