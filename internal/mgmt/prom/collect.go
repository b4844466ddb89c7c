package prom

import (
	"runtime"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/warren-mq/warren/internal/broker"
	"github.com/warren-mq/warren/internal/store"
)

// mode is which of the plugin's endpoints a collector serves.
type mode int

const (
	aggregated mode = iota // /metrics: one series per family
	perObject              // /metrics/per-object
	detailed               // /metrics/detailed: chosen families, per object
)

// endpointNames are the rabbitmq_endpoint labels of the modes.
var endpointNames = [...]string{aggregated: "aggregated", perObject: "per-object", detailed: "detailed"}

// Label values of the global counters: Warren has one protocol and one
// queue type today.
const (
	protocolAMQP = "amqp091"
	classicQueue = "rabbit_classic_queue"
)

// collector reads the broker at each scrape. It describes nothing up front
// (an unchecked collector): its series depend on what the broker holds.
type collector struct {
	h        *Handler
	mode     mode
	families map[string]bool // detailed: the families asked for
	vhosts   map[string]bool // detailed: the vhosts asked for; nil means all
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(chan<- *prometheus.Desc) {}

// scrape is what one collection reads from the broker.
type scrape struct {
	totals    broker.Totals // read first: see read
	queues    []broker.QueueInfo
	sessions  []session
	store     store.Stats
	alarm     string
	diskFree  float64
	diskOK    bool
	memLimit  int64
	maxConns  int
	diskLimit int64
	uptime    float64
	proc      procStats
}

// session is a registered session as a scrape sees it.
type session struct {
	info  broker.SessionInfo
	chans []broker.ChannelInfo
	stats broker.MessageStats // the session's counters, unroutable split by its open channels
}

// read takes the scrape's snapshot. The totals are read before the live
// objects: an object retired in between is then briefly in neither (the
// monotonic clamp holds the sum) rather than in both.
func (h *Handler) read(withQueues func(vhost string) bool) *scrape {
	b := h.b
	s := &scrape{totals: b.Totals()}
	for _, v := range b.VHosts() {
		if !withQueues(v.Name) {
			continue
		}
		for _, q := range v.Queues() {
			s.queues = append(s.queues, q.Info())
		}
	}
	for _, ss := range b.Sessions() {
		se := session{info: ss.Info, chans: ss.Session.Channels()}
		se.stats = broker.SessionStats(se.info, se.chans)
		s.sessions = append(s.sessions, se)
	}
	s.store = b.StoreStats()
	s.alarm, _ = b.Alarm()
	if n, err := b.FreeDisk(); err == nil {
		s.diskFree, s.diskOK = float64(n), true
	}
	s.memLimit, s.diskLimit = b.Limits()
	s.maxConns = h.cfg.MaxConnections
	s.uptime = time.Since(h.started).Seconds()
	s.proc = readProcStats()
	return s
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	e := &emitter{ch: ch, descs: map[string]*prometheus.Desc{}, prefix: "rabbitmq_"}
	if c.mode == detailed {
		e.prefix = "rabbitmq_detailed_"
	}
	withVHost := func(vhost string) bool { return c.vhosts == nil || c.vhosts[vhost] }
	s := c.h.read(withVHost)
	k := c.readKafka(withVHost)
	s.queues = append(s.queues, streamQueues(k)...)
	c.info(e)
	for _, m := range nodeMetrics {
		if c.want(m.group) {
			if v, ok := m.v(s); ok {
				e.emit(m.def, v)
			}
		}
	}
	c.queues(e, s)
	c.channels(e, s)
	c.connections(e, s)
	c.streamsAndKafka(e, k, s)
	if c.mode == detailed {
		c.topology(e)
		return
	}
	c.totals(e, s)
	c.global(e, s)
}

// want says whether the collector exposes a family group.
func (c *collector) want(group string) bool {
	if c.mode == detailed {
		return c.families[group]
	}
	return group != vhostStatus.group && group != exchangeName.group && group != exchangeBnds.group
}

// info emits the identity and build series, which every endpoint has.
func (c *collector) info(e *emitter) {
	h := c.h
	// rabbitmq_endpoint is what RabbitMQ 3.11 and later add, and what the
	// RabbitMQ-Overview dashboard's $endpoint variable lists.
	e.emitNamed("rabbitmq_"+identityInfo.name, identityInfo, 1,
		"rabbitmq_node", h.cfg.Node, "rabbitmq_cluster", h.cfg.ClusterName,
		"rabbitmq_cluster_permanent_id", "warren-cluster-"+h.cfg.ClusterName, "rabbitmq_endpoint", endpointNames[c.mode])
	e.emitNamed("rabbitmq_"+buildInfo.name, buildInfo, 1,
		"rabbitmq_version", h.cfg.Version, "prometheus_plugin_version", h.cfg.Version,
		"prometheus_client_version", clientVersion, "erlang_version", runtime.Version())
}

func (c *collector) queues(e *emitter, s *scrape) {
	for _, m := range queueMetrics {
		// RabbitMQ has queue_consumers in two families.
		if !c.want(m.group) && !(m.name == "queue_consumers" && c.want("queue_metrics")) {
			continue
		}
		if c.mode == aggregated {
			var sum float64
			for i := range s.queues {
				sum += m.v(&s.queues[i])
			}
			if m.deleted != nil {
				sum = c.h.mono.clamp(m.name, sum+m.deleted(&s.totals.DeletedQueues))
			}
			e.emit(m.def, sum)
			continue
		}
		vl, ql := "vhost", "queue"
		if m.group == "channel_queue_exchange_metrics" {
			vl = "queue_vhost"
		}
		for i := range s.queues {
			q := &s.queues[i]
			e.emit(m.def, m.v(q), vl, q.VHost, ql, q.Name)
		}
	}
}

func (c *collector) channels(e *emitter, s *scrape) {
	for _, m := range channelGauges {
		if !c.want(m.group) {
			continue
		}
		var sum float64
		for _, se := range s.sessions {
			for i := range se.chans {
				if c.mode == aggregated {
					sum += m.v(&se.chans[i])
				} else {
					e.emit(m.def, m.v(&se.chans[i]), "channel", se.chans[i].Name)
				}
			}
		}
		if c.mode == aggregated {
			e.emit(m.def, sum)
		}
	}
	for _, m := range channelCounters {
		if !c.want(m.group) {
			continue
		}
		if c.mode == aggregated {
			// Over sessions, whose counters keep their closed channels'.
			sum := m.v(&s.totals.ClosedSessions)
			for i := range s.sessions {
				sum += m.v(&s.sessions[i].stats)
			}
			e.emit(m.def, c.h.mono.clamp(m.name, sum))
			continue
		}
		for _, se := range s.sessions {
			for i := range se.chans {
				ci := &se.chans[i]
				e.emit(m.def, m.v(&ci.Stats), "channel", ci.Name, "vhost", ci.VHost)
			}
		}
	}
}

func (c *collector) connections(e *emitter, s *scrape) {
	for _, m := range connMetrics {
		if !c.want(m.group) {
			continue
		}
		if c.mode == aggregated {
			var sum float64
			for i := range s.sessions {
				sum += m.v(&s.sessions[i].info)
			}
			if m.closed != nil {
				sum = c.h.mono.clamp(m.name, sum+m.closed(&s.totals))
			}
			e.emit(m.def, sum)
			continue
		}
		for i := range s.sessions {
			e.emit(m.def, m.v(&s.sessions[i].info), "channel", s.sessions[i].info.Name)
		}
	}
}

// totals emits the object counts and alarms.
func (c *collector) totals(e *emitter, s *scrape) {
	var chans, consumers int
	for _, se := range s.sessions {
		chans += len(se.chans)
	}
	for i := range s.queues {
		consumers += s.queues[i].Consumers
	}
	e.emit(totalConnections, float64(len(s.sessions)))
	e.emit(totalChannels, float64(chans))
	e.emit(totalConsumers, float64(consumers))
	e.emit(totalQueues, float64(len(s.queues)))
	if c.mode != aggregated {
		return // as RabbitMQ's: alarms are in /metrics only
	}
	e.emit(alarmFDs, 0) // Warren limits connections to what its descriptors allow instead
	e.emit(alarmDisk, flag(strings.Contains(s.alarm, "disk")))
	e.emit(alarmMemory, flag(strings.Contains(s.alarm, "memory")))
}

// global emits the rabbitmq_global_* families.
func (c *collector) global(e *emitter, s *scrape) {
	pub := s.totals.ClosedSessions
	var unconfirmed float64
	var publishers int
	for _, se := range s.sessions {
		pub.Add(se.stats)
		for i := range se.chans {
			unconfirmed += float64(se.chans[i].Unconfirmed)
			if se.chans[i].Stats.Publish > 0 {
				publishers++
			}
		}
	}
	for _, m := range globalProtocolCounters {
		d := def{name: m.name, help: m.help, typ: counter}
		e.emit(d, c.h.mono.clamp(m.name, m.v(&pub, unconfirmed)), "protocol", protocolAMQP)
	}
	deliv := s.totals.DeletedQueues
	var consumers int
	for i := range s.queues {
		deliv.Add(s.queues[i].Stats)
		consumers += s.queues[i].Consumers
	}
	for _, m := range globalQueueCounters {
		d := def{name: m.name, help: m.help, typ: counter}
		e.emit(d, c.h.mono.clamp(m.name, float64(m.v(&deliv))), "protocol", protocolAMQP, "queue_type", classicQueue)
	}
	for _, m := range deadLetterCounters {
		d := def{name: m.name, help: m.help, typ: counter}
		for dlx, strategy := range []string{"disabled", "at_most_once"} {
			v := uint64(0)
			if m.reason >= 0 {
				v = deliv.DeadLettered[dlx][m.reason]
			}
			e.emit(d, c.h.mono.clamp(m.name+strategy, float64(v)), "queue_type", classicQueue, "dead_letter_strategy", strategy)
		}
	}
	e.emit(globalConsumers, float64(consumers), "protocol", protocolAMQP)
	e.emit(globalPublishers, float64(publishers), "protocol", protocolAMQP)
}

// topology emits the /metrics/detailed families about vhosts and exchanges.
func (c *collector) topology(e *emitter) {
	if !c.want(vhostStatus.group) && !c.want(exchangeName.group) && !c.want(exchangeBnds.group) {
		return
	}
	for _, v := range c.h.b.VHosts() {
		if c.vhosts != nil && !c.vhosts[v.Name] {
			continue
		}
		if c.want(vhostStatus.group) {
			e.emit(vhostStatus, 1, "vhost", v.Name)
		}
		if !c.want(exchangeName.group) && !c.want(exchangeBnds.group) {
			continue
		}
		for _, x := range v.Exchanges() {
			if c.want(exchangeName.group) {
				e.emit(exchangeName, 1, "vhost", v.Name, "exchange", x.Name)
			}
			if c.want(exchangeBnds.group) {
				e.emit(exchangeBnds, float64(len(x.Bindings())), "vhost", v.Name, "exchange", x.Name, "type", x.Kind)
			}
		}
	}
}

func flag(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// emitter turns values into const metrics, one Desc per family and scrape.
type emitter struct {
	ch     chan<- prometheus.Metric
	descs  map[string]*prometheus.Desc
	prefix string
}

// emit sends one series of d; labels alternate names and values.
func (e *emitter) emit(d def, v float64, labels ...string) {
	e.emitNamed(e.prefix+d.name, d, v, labels...)
}

func (e *emitter) emitNamed(name string, d def, v float64, labels ...string) {
	desc, ok := e.descs[name]
	if !ok {
		names := make([]string, 0, len(labels)/2)
		for i := 0; i < len(labels); i += 2 {
			names = append(names, labels[i])
		}
		desc = prometheus.NewDesc(name, d.help, names, nil)
		e.descs[name] = desc
	}
	values := make([]string, 0, len(labels)/2)
	for i := 1; i < len(labels); i += 2 {
		// AMQP names are bytes; a label value must be UTF-8.
		values = append(values, strings.ToValidUTF8(labels[i], "\uFFFD"))
	}
	if m, err := prometheus.NewConstMetric(desc, d.typ, v, values...); err == nil {
		e.ch <- m
	}
}
