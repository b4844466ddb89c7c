package mgmt

import (
	"github.com/warren-mq/warren/internal/broker"
)

// Kafka views, which RabbitMQ has no counterpart for, under /api/kafka/:
// topics with their partitions (the streams behind them and their offsets),
// consumer groups with their members, committed offsets and lag, and the
// Kafka connections (the sessions /api/connections also lists, protocol
// "kafka"). The shapes follow the management API's conventions: lists take
// the usual sort, page, columns and name parameters; vhost-scoped routes
// show only vhosts the user may see.

func (s *Server) addKafkaRoutes() {
	const get = "GET"
	m := levelManagement
	s.handle(get, "/api/kafka/topics", m, s.listTopics)
	s.handle(get, "/api/kafka/topics/{vhost}", m, s.listTopics)
	s.handle(get, "/api/kafka/topics/{vhost}/{name}", m, s.getTopic)
	s.handle(get, "/api/kafka/groups", m, s.listGroups)
	s.handle(get, "/api/kafka/groups/{vhost}", m, s.listGroups)
	s.handle(get, "/api/kafka/groups/{vhost}/{name}", m, s.getGroup)
	s.handle(get, "/api/kafka/connections", m, s.listKafkaConnections)
	s.handle(get, "/api/kafka/connections/{vhost}", m, s.listKafkaConnections)
}

func partitionObj(p *broker.PartitionInfo) obj {
	return obj{"partition": p.Partition, "stream": p.Stream, "missing": p.Missing,
		"log_start_offset": p.FirstOffset, "high_watermark": p.NextOffset, "last_stable_offset": p.LastStableOffset,
		"messages": max(0, p.NextOffset-p.FirstOffset), "leader": 0, "replicas": []any{0}, "isr": []any{0}}
}

func (s *Server) topicObj(ti *broker.TopicInfo) obj {
	parts := make([]obj, len(ti.Partitions))
	for i := range ti.Partitions {
		parts[i] = partitionObj(&ti.Partitions[i])
	}
	kind := "stream"
	if ti.Super {
		kind = "super stream"
	}
	return obj{"name": ti.Name, "vhost": ti.VHost, "node": s.node, "type": kind, "partition_count": len(ti.Partitions),
		"messages": ti.Messages(), "partitions": parts}
}

func (s *Server) listTopics(r *req) error {
	o, err := r.listOpts()
	if err != nil {
		return err
	}
	vs, err := r.vhostsOf()
	if err != nil {
		return err
	}
	items := []obj{}
	total := 0
	for _, v := range vs {
		for _, ti := range v.TopicInfos() {
			total++
			if o.nameMatches(ti.Name) {
				items = append(items, s.topicObj(&ti))
			}
		}
	}
	return r.writeList(items, o, total)
}

func (s *Server) getTopic(r *req) error {
	v, err := r.vhost()
	if err != nil {
		return err
	}
	ti, ok := v.TopicInfo(r.v("name"))
	if !ok {
		return errNotFound
	}
	return r.writeOne(s.topicObj(&ti))
}

func groupObj(g *broker.GroupView) obj {
	members := make([]obj, len(g.Members))
	for i, m := range g.Members {
		as := make([]obj, len(m.Assignment))
		for j, a := range m.Assignment {
			as[j] = obj{"topic": a.Stream, "partition": a.Partition}
		}
		members[i] = obj{"member_id": m.ID, "group_instance_id": orNull(m.InstanceID), "client_id": m.ClientID,
			"client_host": m.ClientHost, "assignment": as}
	}
	offsets := make([]obj, len(g.Offsets))
	for i, p := range g.Offsets {
		offsets[i] = obj{"topic": p.Topic, "partition": p.Partition, "committed_offset": p.Committed,
			"high_watermark": p.EndOffset, "lag": p.Lag, "metadata": p.Metadata}
	}
	return obj{"name": g.Name, "vhost": g.VHost, "state": g.State, "protocol_type": g.ProtocolType, "protocol": g.Protocol,
		"generation": g.Generation, "member_count": len(g.Members), "members": members, "offsets": offsets, "lag": g.Lag}
}

func (s *Server) listGroups(r *req) error {
	o, err := r.listOpts()
	if err != nil {
		return err
	}
	vs, err := r.vhostsOf()
	if err != nil {
		return err
	}
	items := []obj{}
	total := 0
	for _, v := range vs {
		for _, g := range s.b.GroupViews(v.Name) {
			total++
			if o.nameMatches(g.Name) {
				items = append(items, groupObj(&g))
			}
		}
	}
	return r.writeList(items, o, total)
}

func (s *Server) getGroup(r *req) error {
	v, err := r.vhost()
	if err != nil {
		return err
	}
	for _, g := range s.b.GroupViews(v.Name) {
		if g.Name == r.v("name") {
			return r.writeOne(groupObj(&g))
		}
	}
	return errNotFound
}

// kafkaProtocol is the Protocol the Kafka front end registers its sessions with.
const kafkaProtocol = "kafka"

func (s *Server) listKafkaConnections(r *req) error {
	o, err := r.listOpts()
	if err != nil {
		return err
	}
	if _, ok := r.vars["vhost"]; ok {
		if _, err := r.vhost(); err != nil {
			return err
		}
	}
	items := []obj{}
	total := 0
	for _, ss := range r.sessions() {
		if ss.Info.Protocol != kafkaProtocol {
			continue
		}
		total++
		if o.nameMatches(ss.Info.Name) {
			items = append(items, s.connectionObj(&ss.Info))
		}
	}
	return r.writeList(items, o, total)
}
