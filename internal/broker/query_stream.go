package broker

import "github.com/warren-mq/warren/internal/amqp091"

// The query side of streams, Kafka topics and consumer groups, for
// management and metrics: snapshots, never the hot path. A stream's figures
// come from its log's atomically published view, so reading them takes no
// lock a writer needs.

// StreamInfo is a snapshot of a stream.
type StreamInfo struct {
	Name, VHost string
	Args        amqp091.Table // as declared
	Policy      AppliedPolicy
	// FirstOffset is the log start offset (retention moves it), NextOffset
	// the log end offset (the high watermark: one past the last record
	// written), LastStableOffset Kafka's LSO (below any open transaction).
	FirstOffset, NextOffset, LastStableOffset int64
	Consumers                                 []ConsumerInfo
}

// Messages is the span of committed offsets, what RabbitMQ's management
// reports as a stream's messages (control records of transactions included:
// they take offsets).
func (si *StreamInfo) Messages() int64 { return max(0, si.NextOffset-si.FirstOffset) }

// Info returns a snapshot of the stream.
func (s *Stream) Info() StreamInfo {
	si := StreamInfo{Name: s.name, VHost: s.vhost.Name, Args: s.Args}
	if ap := s.pol.Load(); ap != nil {
		si.Policy = ap.public()
	}
	l := s.log
	si.FirstOffset, si.NextOffset, si.LastStableOffset = l.StartOffset(), l.NextOffset(), l.LastStableOffset()
	s.mu.Lock()
	defer s.mu.Unlock()
	si.Consumers = make([]ConsumerInfo, len(s.consumers))
	for i, c := range s.consumers {
		si.Consumers[i] = ConsumerInfo{Tag: c.Tag, Queue: s.name, VHost: s.vhost.Name, AckRequired: !c.NoAck, Exclusive: c.Exclusive,
			Priority: c.Priority, Active: true, Channel: c.Channel, PrefetchCount: c.PrefetchCount, Args: c.Args}
	}
	return si
}
