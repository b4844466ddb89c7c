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

// PartitionInfo is one partition of a Kafka topic.
type PartitionInfo struct {
	Partition int32
	// Stream is the stream holding it; Missing says a super stream's binding
	// names a stream that does not exist (offsets are then 0).
	Stream  string
	Missing bool
	// The stream's offsets, as in StreamInfo: NextOffset is the partition's
	// high watermark (log end offset), FirstOffset its log start offset.
	FirstOffset, NextOffset, LastStableOffset int64
}

// TopicInfo is a Kafka topic as the vhost's streams make it (see Topic).
type TopicInfo struct {
	VHost, Name string
	Super       bool
	Partitions  []PartitionInfo
}

// Messages is the sum of the partitions' committed offset spans.
func (ti *TopicInfo) Messages() int64 {
	var n int64
	for _, p := range ti.Partitions {
		n += max(0, p.NextOffset-p.FirstOffset)
	}
	return n
}

// TopicInfos returns a snapshot of the vhost's topics, by name.
func (v *VHost) TopicInfos() []TopicInfo {
	ts := v.Topics()
	out := make([]TopicInfo, len(ts))
	for i, t := range ts {
		out[i] = topicInfo(v.Name, t)
	}
	return out
}

// TopicInfo returns a snapshot of one topic.
func (v *VHost) TopicInfo(name string) (TopicInfo, bool) {
	t, ok := v.Topic(name)
	if !ok {
		return TopicInfo{}, false
	}
	return topicInfo(v.Name, t), true
}

func topicInfo(vhost string, t Topic) TopicInfo {
	ti := TopicInfo{VHost: vhost, Name: t.Name, Super: t.Super, Partitions: make([]PartitionInfo, len(t.Partitions))}
	for i, s := range t.Partitions {
		p := PartitionInfo{Partition: int32(i), Missing: s == nil}
		if s != nil {
			l := s.Log()
			p.Stream, p.FirstOffset, p.NextOffset, p.LastStableOffset = s.Name(), l.StartOffset(), l.NextOffset(), l.LastStableOffset()
		} else if t.Super {
			p.Stream = PartitionName(t.Name, i)
		}
		ti.Partitions[i] = p
	}
	return ti
}

// PartitionLag is how far a group's committed offset is behind one partition's end.
type PartitionLag struct {
	Topic     string
	Partition int32
	// Committed is the next offset the group will read; EndOffset the
	// partition's high watermark, -1 when the topic or partition is gone
	// (then Lag is -1 too).
	Committed, EndOffset, Lag int64
	Metadata                  string
}

// GroupView is a consumer group with its committed offsets and their lag
// (Kafka's consumer lag: high watermark minus committed offset, never
// negative).
type GroupView struct {
	GroupInfo
	Offsets []PartitionLag
	// Lag is the sum over the partitions that still exist.
	Lag int64
}

// GroupViews returns the vhost's consumer groups (Groups) with their lag.
func (b *Broker) GroupViews(vhost string) []GroupView {
	v, ok := b.VHost(vhost)
	if !ok {
		return nil
	}
	gs := b.Groups(vhost)
	out := make([]GroupView, len(gs))
	topics := map[string]Topic{}
	for i, g := range gs {
		gv := GroupView{GroupInfo: g}
		for _, co := range b.CommittedOffsets(vhost, g.Name) {
			pl := PartitionLag{Topic: co.Stream, Partition: co.Partition, Committed: co.Offset, EndOffset: -1, Lag: -1, Metadata: co.Metadata}
			t, seen := topics[co.Stream]
			if !seen {
				t, _ = v.Topic(co.Stream)
				topics[co.Stream] = t
			}
			if p := int(co.Partition); p >= 0 && p < len(t.Partitions) && t.Partitions[p] != nil {
				pl.EndOffset = t.Partitions[p].Log().NextOffset()
				pl.Lag = max(0, pl.EndOffset-max(0, co.Offset))
				gv.Lag += pl.Lag
			}
			gv.Offsets = append(gv.Offsets, pl)
		}
		out[i] = gv
	}
	return out
}
