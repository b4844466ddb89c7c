package prom

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/warren-mq/warren/internal/broker"
)

// The metric families. Names, types, help texts and the family groups
// (what /metrics/detailed?family= selects) are RabbitMQ's, so that queries
// written for RabbitMQ find them; testdata/ holds the real plugin's output
// they were compared with. What Warren cannot measure honestly (Erlang
// reductions, process memory per queue, paging counts per queue...) is left
// out rather than faked; see the README of this package's tests.

const (
	gauge   = prometheus.GaugeValue
	counter = prometheus.CounterValue
	untyped = prometheus.UntypedValue
)

// def is one metric family.
type def struct {
	group, name, help string
	typ               prometheus.ValueType
}

// queueMetric is a per-queue family (labels vhost, queue). deleted, for
// counters, is what deleted queues had counted, added to the /metrics sum.
type queueMetric struct {
	def
	v       func(q *broker.QueueInfo) float64
	deleted func(s *broker.MessageStats) float64
}

var queueMetrics = []queueMetric{
	{def: def{"queue_coarse_metrics", "queue_messages_ready", "Messages ready to be delivered to consumers", gauge},
		v: func(q *broker.QueueInfo) float64 { return float64(q.MessagesReady) }},
	{def: def{"queue_coarse_metrics", "queue_messages_unacked", "Messages delivered to consumers but not yet acknowledged", gauge},
		v: func(q *broker.QueueInfo) float64 { return float64(q.MessagesUnacked) }},
	{def: def{"queue_coarse_metrics", "queue_messages", "Sum of ready and unacknowledged messages - total queue depth", gauge},
		v: func(q *broker.QueueInfo) float64 { return float64(q.MessagesReady + q.MessagesUnacked) }},
	{def: def{"queue_consumer_count", "queue_consumers", "Consumers on a queue", gauge},
		v: func(q *broker.QueueInfo) float64 { return float64(q.Consumers) }},
	{def: def{"queue_metrics", "queue_messages_ready_bytes", "Size in bytes of ready messages", gauge},
		v: func(q *broker.QueueInfo) float64 { return float64(q.MessageBytesReady) }},
	{def: def{"queue_metrics", "queue_messages_unacked_bytes", "Size in bytes of all unacknowledged messages", gauge},
		v: func(q *broker.QueueInfo) float64 { return float64(q.MessageBytesUnacked) }},
	{def: def{"queue_metrics", "queue_process_memory_bytes", "Memory in bytes used by the Erlang queue process", gauge},
		v: func(q *broker.QueueInfo) float64 { return float64(q.Memory) }},
	// RabbitMQ labels this one by channel, queue and exchange; Warren counts
	// per queue only, so its per-object series carry queue_vhost and queue.
	{def: def{"channel_queue_exchange_metrics", "queue_messages_published_total", "Total number of messages published to queues", counter},
		v:       func(q *broker.QueueInfo) float64 { return float64(q.Stats.Publish) },
		deleted: func(s *broker.MessageStats) float64 { return float64(s.Publish) }},
}

// channelGauge is a per-channel gauge (label channel: the channel's name).
type channelGauge struct {
	def
	v func(c *broker.ChannelInfo) float64
}

var channelGauges = []channelGauge{
	{def{"channel_metrics", "channel_consumers", "Consumers on a channel", gauge}, func(c *broker.ChannelInfo) float64 { return float64(c.Consumers) }},
	{def{"channel_metrics", "channel_messages_unacked", "Delivered but not yet acknowledged messages", gauge}, func(c *broker.ChannelInfo) float64 { return float64(c.Unacked) }},
	{def{"channel_metrics", "channel_messages_unconfirmed", "Published but not yet confirmed messages", gauge}, func(c *broker.ChannelInfo) float64 { return float64(c.Unconfirmed) }},
	{def{"channel_metrics", "channel_messages_uncommitted", "Messages received in a transaction but not yet committed", gauge}, func(c *broker.ChannelInfo) float64 { return float64(c.UncommittedMessages) }},
	{def{"channel_metrics", "channel_acks_uncommitted", "Message acknowledgements in a transaction not yet committed", gauge}, func(c *broker.ChannelInfo) float64 { return float64(c.UncommittedAcks) }},
	{def{"channel_metrics", "consumer_prefetch", "Limit of unacknowledged messages for each consumer", gauge}, func(c *broker.ChannelInfo) float64 { return float64(c.PrefetchCount) }},
	{def{"channel_metrics", "channel_prefetch", "Total limit of unacknowledged messages for all consumers on a channel", gauge}, func(c *broker.ChannelInfo) float64 { return float64(c.GlobalPrefetchCount) }},
}

// channelCounter is a per-channel message counter (labels channel, vhost;
// RabbitMQ adds the exchange or queue, which Warren does not count by).
// The /metrics sum is over connections, closed ones included.
type channelCounter struct {
	def
	v func(s *broker.MessageStats) float64
}

var channelCounters = []channelCounter{
	{def{"channel_exchange_metrics", "channel_messages_published_total", "Total number of messages published into an exchange on a channel", counter},
		func(s *broker.MessageStats) float64 { return float64(s.Publish) }},
	{def{"channel_exchange_metrics", "channel_messages_confirmed_total", "Total number of messages published into an exchange and confirmed on the channel", counter},
		func(s *broker.MessageStats) float64 { return float64(s.Confirm) }},
	{def{"channel_exchange_metrics", "channel_messages_unroutable_returned_total", "Total number of messages published as mandatory into an exchange and returned to the publisher as unroutable", counter},
		func(s *broker.MessageStats) float64 { return float64(s.ReturnUnroutable) }},
	{def{"channel_exchange_metrics", "channel_messages_unroutable_dropped_total", "Total number of messages published as non-mandatory into an exchange and dropped as unroutable", counter},
		func(s *broker.MessageStats) float64 { return float64(s.DropUnroutable) }},
	{def{"channel_queue_metrics", "channel_get_ack_total", "Total number of messages fetched with basic.get in manual acknowledgement mode", counter},
		func(s *broker.MessageStats) float64 { return float64(s.Get) }},
	{def{"channel_queue_metrics", "channel_get_total", "Total number of messages fetched with basic.get in automatic acknowledgement mode", counter},
		func(s *broker.MessageStats) float64 { return float64(s.GetNoAck) }},
	{def{"channel_queue_metrics", "channel_messages_delivered_ack_total", "Total number of messages delivered to consumers in manual acknowledgement mode", counter},
		func(s *broker.MessageStats) float64 { return float64(s.Deliver) }},
	{def{"channel_queue_metrics", "channel_messages_delivered_total", "Total number of messages delivered to consumers in automatic acknowledgement mode", counter},
		func(s *broker.MessageStats) float64 { return float64(s.DeliverNoAck) }},
	{def{"channel_queue_metrics", "channel_messages_redelivered_total", "Total number of messages redelivered to consumers", counter},
		func(s *broker.MessageStats) float64 { return float64(s.Redeliver) }},
	{def{"channel_queue_metrics", "channel_messages_acked_total", "Total number of messages acknowledged by consumers", counter},
		func(s *broker.MessageStats) float64 { return float64(s.Ack) }},
	{def{"channel_queue_metrics", "channel_get_empty_total", "Total number of times basic.get operations fetched no message", counter},
		func(s *broker.MessageStats) float64 { return float64(s.GetEmpty) }},
}

// connMetric is a per-connection family; RabbitMQ labels these "channel"
// (with the connection's process id), Warren with the connection's name.
// closed, for counters, is what closed connections had counted.
type connMetric struct {
	def
	v      func(s *broker.SessionInfo) float64
	closed func(t *broker.Totals) float64
}

var connMetrics = []connMetric{
	{def{"connection_coarse_metrics", "connection_incoming_bytes_total", "Total number of bytes received on a connection", counter},
		func(s *broker.SessionInfo) float64 { return float64(s.RecvOct) }, func(t *broker.Totals) float64 { return float64(t.ClosedRecvOct) }},
	{def{"connection_coarse_metrics", "connection_outgoing_bytes_total", "Total number of bytes sent on a connection", counter},
		func(s *broker.SessionInfo) float64 { return float64(s.SendOct) }, func(t *broker.Totals) float64 { return float64(t.ClosedSendOct) }},
	{def{"connection_metrics", "connection_incoming_packets_total", "Total number of packets received on a connection", counter},
		func(s *broker.SessionInfo) float64 { return float64(s.RecvCnt) }, func(t *broker.Totals) float64 { return float64(t.ClosedRecvCnt) }},
	{def{"connection_metrics", "connection_outgoing_packets_total", "Total number of packets sent on a connection", counter},
		func(s *broker.SessionInfo) float64 { return float64(s.SendCnt) }, func(t *broker.Totals) float64 { return float64(t.ClosedSendCnt) }},
	{def{"connection_metrics", "connection_channels", "Channels on a connection", gauge},
		func(s *broker.SessionInfo) float64 { return float64(s.Channels) }, nil},
}

// nodeMetric is a node-wide family; ok is false when the value cannot be
// read on this platform, and the series is then left out.
type nodeMetric struct {
	def
	v func(s *scrape) (v float64, ok bool)
}

func always(f func(s *scrape) float64) func(s *scrape) (float64, bool) {
	return func(s *scrape) (float64, bool) { return f(s), true }
}

var nodeMetrics = []nodeMetric{
	{def{"connection_churn_metrics", "connections_opened_total", "Total number of connections opened", counter},
		always(func(s *scrape) float64 { return float64(s.totals.ConnectionsOpened) })},
	{def{"connection_churn_metrics", "connections_closed_total", "Total number of connections closed or terminated", counter},
		always(func(s *scrape) float64 { return float64(s.totals.ConnectionsClosed) })},
	{def{"connection_churn_metrics", "channels_opened_total", "Total number of channels opened", counter},
		always(func(s *scrape) float64 { return float64(s.totals.ChannelsOpened) })},
	{def{"connection_churn_metrics", "channels_closed_total", "Total number of channels closed", counter},
		always(func(s *scrape) float64 { return float64(s.totals.ChannelsClosed) })},
	{def{"connection_churn_metrics", "queues_declared_total", "Total number of queues declared", counter},
		always(func(s *scrape) float64 { return float64(s.totals.QueuesDeclared) })},
	{def{"connection_churn_metrics", "queues_created_total", "Total number of queues created", counter},
		always(func(s *scrape) float64 { return float64(s.totals.QueuesCreated) })},
	{def{"connection_churn_metrics", "queues_deleted_total", "Total number of queues deleted", counter},
		always(func(s *scrape) float64 { return float64(s.totals.QueuesDeleted) })},

	{def{"node_coarse_metrics", "process_open_fds", "Open file descriptors", gauge}, func(s *scrape) (float64, bool) { return s.proc.openFDs, s.proc.fdsOK }},
	// Warren's client sockets are its sessions (listeners are not counted, as in RabbitMQ).
	{def{"node_coarse_metrics", "process_open_tcp_sockets", "Open TCP sockets", gauge}, always(func(s *scrape) float64 { return float64(len(s.sessions)) })},
	{def{"node_coarse_metrics", "process_resident_memory_bytes", "Memory used in bytes", gauge}, func(s *scrape) (float64, bool) { return s.proc.rss, s.proc.rssOK }},
	{def{"node_coarse_metrics", "disk_space_available_bytes", "Disk space available in bytes", gauge}, func(s *scrape) (float64, bool) { return s.diskFree, s.diskOK }},

	{def{"node_metrics", "process_max_fds", "Open file descriptors limit", gauge}, func(s *scrape) (float64, bool) { return s.proc.maxFDs, s.proc.maxFDsOK }},
	{def{"node_metrics", "process_max_tcp_sockets", "Open TCP sockets limit", gauge},
		func(s *scrape) (float64, bool) { return float64(s.maxConns), s.maxConns > 0 }},
	{def{"node_metrics", "resident_memory_limit_bytes", "Memory high watermark in bytes", gauge}, always(func(s *scrape) float64 { return float64(s.memLimit) })},
	{def{"node_metrics", "disk_space_available_limit_bytes", "Free disk space low watermark in bytes", gauge}, always(func(s *scrape) float64 { return float64(s.diskLimit) })},
	// The process's uptime: the dashboard's "uptime" panel reads this name.
	{def{"node_metrics", "erlang_uptime_seconds", "Node uptime", gauge}, always(func(s *scrape) float64 { return s.uptime })},

	{def{"node_persister_metrics", "io_sync_ops_total", "Total number of I/O sync operations", counter},
		always(func(s *scrape) float64 { return float64(s.store.Syncs) })},
}

// The families of /metrics and /metrics/per-object only (never in /metrics/detailed).
var (
	totalConnections = def{"", "connections", "Connections currently open", gauge}
	totalChannels    = def{"", "channels", "Channels currently open", gauge}
	totalConsumers   = def{"", "consumers", "Consumers currently connected", gauge}
	totalQueues      = def{"", "queues", "Queues available", gauge}

	alarmFDs    = def{"", "alarms_file_descriptor_limit", "is 1 if file descriptor limit alarm is in effect", untyped}
	alarmDisk   = def{"", "alarms_free_disk_space_watermark", "is 1 if free disk space watermark alarm is in effect", untyped}
	alarmMemory = def{"", "alarms_memory_used_watermark", "is 1 if VM memory watermark alarm is in effect", untyped}

	buildInfo    = def{"", "build_info", "RabbitMQ & Erlang/OTP version info", untyped}
	identityInfo = def{"", "identity_info", "RabbitMQ node & cluster identity info", untyped}

	globalConsumers  = def{"", "global_consumers", "Current number of consumers", gauge}
	globalPublishers = def{"", "global_publishers", "Current number of publishers", gauge}
)

// globalProtocolCounter is a rabbitmq_global_messages_* counter labelled by
// protocol only: what publishing channels count.
type globalProtocolCounter struct {
	name, help string
	v          func(s *broker.MessageStats, unconfirmed float64) float64
}

var globalProtocolCounters = []globalProtocolCounter{
	{"global_messages_received_total", "Total number of messages received from publishers",
		func(s *broker.MessageStats, _ float64) float64 { return float64(s.Publish) }},
	// Every publish on a confirm channel is confirmed or still waiting.
	{"global_messages_received_confirm_total", "Total number of messages received from publishers expecting confirmations",
		func(s *broker.MessageStats, unconfirmed float64) float64 { return float64(s.Confirm) + unconfirmed }},
	{"global_messages_routed_total", "Total number of messages routed to queues or streams",
		func(s *broker.MessageStats, _ float64) float64 {
			return float64(s.Publish) - float64(s.ReturnUnroutable) - float64(s.DropUnroutable)
		}},
	{"global_messages_unroutable_dropped_total", "Total number of messages published as non-mandatory into an exchange and dropped as unroutable",
		func(s *broker.MessageStats, _ float64) float64 { return float64(s.DropUnroutable) }},
	{"global_messages_unroutable_returned_total", "Total number of messages published as mandatory into an exchange and returned to the publisher as unroutable",
		func(s *broker.MessageStats, _ float64) float64 { return float64(s.ReturnUnroutable) }},
	{"global_messages_confirmed_total", "Total number of messages confirmed to publishers",
		func(s *broker.MessageStats, _ float64) float64 { return float64(s.Confirm) }},
}

// globalQueueCounter is a rabbitmq_global_messages_* counter labelled by
// protocol and queue type: what queues count, deleted ones included.
type globalQueueCounter struct {
	name, help string
	v          func(s *broker.MessageStats) uint64
}

var globalQueueCounters = []globalQueueCounter{
	{"global_messages_delivered_total", "Total number of messages delivered to consumers",
		func(s *broker.MessageStats) uint64 { return s.Deliver + s.DeliverNoAck + s.Get + s.GetNoAck }},
	{"global_messages_delivered_consume_auto_ack_total", "Total number of messages delivered to consumers using basic.consume with automatic acknowledgment",
		func(s *broker.MessageStats) uint64 { return s.DeliverNoAck }},
	{"global_messages_delivered_consume_manual_ack_total", "Total number of messages delivered to consumers using basic.consume with manual acknowledgment",
		func(s *broker.MessageStats) uint64 { return s.Deliver }},
	{"global_messages_delivered_get_auto_ack_total", "Total number of messages delivered to consumers using basic.get with automatic acknowledgment",
		func(s *broker.MessageStats) uint64 { return s.GetNoAck }},
	{"global_messages_delivered_get_manual_ack_total", "Total number of messages delivered to consumers using basic.get with manual acknowledgment",
		func(s *broker.MessageStats) uint64 { return s.Get }},
	{"global_messages_redelivered_total", "Total number of messages redelivered to consumers",
		func(s *broker.MessageStats) uint64 { return s.Redeliver }},
	{"global_messages_acknowledged_total", "Total number of messages acknowledged by consumers",
		func(s *broker.MessageStats) uint64 { return s.Ack }},
	{"global_messages_get_empty_total", "Total number of times basic.get operations fetched no message",
		func(s *broker.MessageStats) uint64 { return s.GetEmpty }},
}

// deadLetterCounters are RabbitMQ's rabbitmq_global_messages_dead_lettered_*
// counters, labelled by queue type and dead-letter strategy (classic queues:
// at_most_once with a dead-letter exchange, disabled without one). reason is
// a broker.Dead* index; -1 for what classic queues never do.
var deadLetterCounters = []struct {
	name, help string
	reason     int
}{
	{"global_messages_dead_lettered_confirmed_total", "Total number of messages dead-lettered and confirmed by target queues", -1},
	{"global_messages_dead_lettered_delivery_limit_total", "Total number of messages dead-lettered due to delivery-limit exceeded", -1},
	{"global_messages_dead_lettered_expired_total", "Total number of messages dead-lettered due to message TTL exceeded", broker.DeadExpired},
	{"global_messages_dead_lettered_maxlen_total", "Total number of messages dead-lettered due to overflow drop-head or reject-publish-dlx", broker.DeadMaxLen},
	{"global_messages_dead_lettered_rejected_total", "Total number of messages dead-lettered due to basic.reject or basic.nack", broker.DeadRejected},
}

// The families of /metrics/detailed only, about the broker's topology.
var (
	vhostStatus  = def{"vhost_status", "vhost_status", "Whether a given vhost is running", gauge}
	exchangeName = def{"exchange_names", "exchange_name", "Enumerates exchanges without any additional info. This value is cluster-wide. A cheaper alternative to `exchange_bindings`", gauge}
	exchangeBnds = def{"exchange_bindings", "exchange_bindings", "Number of bindings for an exchange. This value is cluster-wide.", gauge}
)
