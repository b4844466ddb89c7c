package prom

import (
	"strconv"

	"github.com/warren-mq/warren/internal/broker"
)

// Streams, Kafka topics, consumer groups and Kafka connections. Streams are
// also in the rabbitmq_queue_* families, as RabbitMQ puts its stream queues
// there (messages = the span of committed offsets, nothing unacknowledged).
// What RabbitMQ has no family for is named warren_*: warren_stream_* for a
// stream's log, and warren_kafka_* after kafka_exporter's names
// (kafka_topic_partition_current_offset, kafka_consumergroup_lag, ...), so
// Kafka dashboards map onto them by prefix. /metrics has unlabelled totals;
// /metrics/per-object (and /metrics/detailed with family=stream_metrics or
// family=kafka_metrics) has them per stream, partition and group.

const (
	streamGroup = "stream_metrics"
	kafkaGroup  = "kafka_metrics"
	// kafkaProtocol is the Protocol of the Kafka front end's sessions.
	kafkaProtocol = "kafka"
)

var (
	streamsTotal      = def{streamGroup, "streams", "Streams (stream queues, and the partitions of Kafka topics)", gauge}
	streamMessages    = def{streamGroup, "stream_messages", "Records a stream holds: its log end offset minus its log start offset", gauge}
	streamFirstOffset = def{streamGroup, "stream_first_offset", "Log start offset of a stream, which retention moves", gauge}
	streamNextOffset  = def{streamGroup, "stream_next_offset", "Log end offset of a stream: one past its last record (Kafka's high watermark)", gauge}
	streamStable      = def{streamGroup, "stream_last_stable_offset", "Last stable offset of a stream: below every open transaction", gauge}

	kafkaTopics         = def{kafkaGroup, "kafka_topics", "Kafka topics (streams and super streams)", gauge}
	kafkaPartitions     = def{kafkaGroup, "kafka_topic_partitions", "Partitions of a Kafka topic", gauge}
	kafkaCurrentOffset  = def{kafkaGroup, "kafka_topic_partition_current_offset", "High watermark of a Kafka topic partition", gauge}
	kafkaOldestOffset   = def{kafkaGroup, "kafka_topic_partition_oldest_offset", "Log start offset of a Kafka topic partition", gauge}
	kafkaGroups         = def{kafkaGroup, "kafka_consumergroups", "Kafka consumer groups, live or holding committed offsets", gauge}
	kafkaGroupMembers   = def{kafkaGroup, "kafka_consumergroup_members", "Members of a Kafka consumer group", gauge}
	kafkaGroupOffset    = def{kafkaGroup, "kafka_consumergroup_current_offset", "Committed offset of a Kafka consumer group in a partition", gauge}
	kafkaGroupLag       = def{kafkaGroup, "kafka_consumergroup_lag", "Records between a consumer group's committed offset and the partition's high watermark", gauge}
	kafkaConnectionsNow = def{kafkaGroup, "kafka_connections", "Open Kafka protocol connections", gauge}
)

// kafkaScrape is what one collection reads about streams and Kafka.
type kafkaScrape struct {
	streams []broker.StreamInfo
	topics  []broker.TopicInfo
	groups  []broker.GroupView
}

// readKafka reads the vhosts' streams, and topics and groups when the
// collector will show them (groups cost a look-up per committed offset).
func (c *collector) readKafka(withVHost func(string) bool) *kafkaScrape {
	k := &kafkaScrape{}
	wantKafka := c.want(kafkaGroup)
	for _, v := range c.h.b.VHosts() {
		if !withVHost(v.Name) {
			continue
		}
		for _, st := range v.Streams() {
			k.streams = append(k.streams, st.Info())
		}
		if wantKafka {
			k.topics = append(k.topics, v.TopicInfos()...)
			k.groups = append(k.groups, c.h.b.GroupViews(v.Name)...)
		}
	}
	return k
}

// streamQueues are the streams as rabbitmq_queue_* sees them.
func streamQueues(k *kafkaScrape) []broker.QueueInfo {
	out := make([]broker.QueueInfo, len(k.streams))
	for i := range k.streams {
		si := &k.streams[i]
		out[i] = broker.QueueInfo{Name: si.Name, VHost: si.VHost, Durable: true, Args: si.Args,
			MessagesReady: int(si.Messages()), Consumers: len(si.Consumers)}
	}
	return out
}

func (c *collector) streamsAndKafka(e *emitter, k *kafkaScrape, s *scrape) {
	w := &emitter{ch: e.ch, descs: e.descs, prefix: "warren_"}
	if c.mode == detailed {
		w.prefix = "warren_detailed_"
	}
	if c.want(streamGroup) {
		if c.mode == aggregated {
			var n int64
			for i := range k.streams {
				n += k.streams[i].Messages()
			}
			w.emit(streamsTotal, float64(len(k.streams)))
			w.emit(streamMessages, float64(n))
		} else {
			for i := range k.streams {
				si := &k.streams[i]
				l := []string{"vhost", si.VHost, "stream", si.Name}
				w.emit(streamMessages, float64(si.Messages()), l...)
				w.emit(streamFirstOffset, float64(si.FirstOffset), l...)
				w.emit(streamNextOffset, float64(si.NextOffset), l...)
				w.emit(streamStable, float64(si.LastStableOffset), l...)
			}
		}
	}
	if !c.want(kafkaGroup) {
		return
	}
	conns := 0
	for i := range s.sessions {
		if s.sessions[i].info.Protocol == kafkaProtocol {
			conns++
		}
	}
	w.emit(kafkaConnectionsNow, float64(conns))
	if c.mode == aggregated {
		var lag int64
		for i := range k.groups {
			lag += k.groups[i].Lag
		}
		w.emit(kafkaTopics, float64(len(k.topics)))
		w.emit(kafkaGroups, float64(len(k.groups)))
		w.emit(kafkaGroupLag, float64(lag))
		return
	}
	for i := range k.topics {
		t := &k.topics[i]
		w.emit(kafkaPartitions, float64(len(t.Partitions)), "vhost", t.VHost, "topic", t.Name)
		for _, p := range t.Partitions {
			l := []string{"vhost", t.VHost, "topic", t.Name, "partition", strconv.Itoa(int(p.Partition))}
			w.emit(kafkaCurrentOffset, float64(p.NextOffset), l...)
			w.emit(kafkaOldestOffset, float64(p.FirstOffset), l...)
		}
	}
	for i := range k.groups {
		g := &k.groups[i]
		w.emit(kafkaGroupMembers, float64(len(g.Members)), "vhost", g.VHost, "consumergroup", g.Name)
		for _, o := range g.Offsets {
			l := []string{"vhost", g.VHost, "consumergroup", g.Name, "topic", o.Topic, "partition", strconv.Itoa(int(o.Partition))}
			w.emit(kafkaGroupOffset, float64(o.Committed), l...)
			if o.Lag >= 0 {
				w.emit(kafkaGroupLag, float64(o.Lag), l...)
			}
		}
	}
}
