package kafkaserver

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/warren-mq/warren/internal/broker"
)

// Committed offsets over Kafka: OffsetCommit, OffsetFetch and OffsetDelete.
// The offsets live in the broker (broker.CommitOffsets: one durable metadata
// command per OffsetCommit request); the group's goroutine only checks that
// a group member's commit comes from the current generation. The commit
// itself, which waits for the metadata log's fsync, runs on the caller's
// goroutine so that the group keeps answering heartbeats meanwhile.

// offsetCommit answers an OffsetCommit (v0-v9: topics by name).
func (co *coordinator) offsetCommit(c *groupCaller, req *kmsg.OffsetCommitRequest) *kmsg.OffsetCommitResponse {
	resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
	// codes[i][j] is partition j of topic i's outcome; 0 = still to commit.
	codes := make([][]int16, len(req.Topics))
	for i, t := range req.Topics {
		codes[i] = make([]int16, len(t.Partitions))
	}
	setAll := func(code int16) {
		for i := range codes {
			for j := range codes[i] {
				if codes[i][j] == 0 {
					codes[i][j] = code
				}
			}
		}
	}
	groupCode := int16(0)
	switch {
	case req.Group == "":
		groupCode = kerr.InvalidGroupID.Code
	case !c.mayGroup(req.Group):
		groupCode = kerr.GroupAuthorizationFailed.Code
	}
	if groupCode == 0 {
		for i, t := range req.Topics {
			allowed := c.mayTopic(t.Topic)
			for j, p := range t.Partitions {
				switch {
				case !allowed:
					codes[i][j] = kerr.TopicAuthorizationFailed.Code
				case co.partitionExists != nil && !co.partitionExists(c.vhost, t.Topic, p.Partition):
					codes[i][j] = kerr.UnknownTopicOrPartition.Code
				case p.Metadata != nil && len(*p.Metadata) > co.cfg.MaxMetadataBytes:
					codes[i][j] = kerr.OffsetMetadataTooLarge.Code
				}
			}
		}
		groupCode = co.commitAllowed(c.vhost, req)
	}
	setAll(groupCode)
	var offs []broker.CommittedOffset
	for i, t := range req.Topics {
		for j, p := range t.Partitions {
			if codes[i][j] == 0 {
				o := broker.CommittedOffset{StreamPartition: broker.StreamPartition{Stream: t.Topic, Partition: p.Partition}, Offset: p.Offset, LeaderEpoch: p.LeaderEpoch}
				if req.Version < 6 {
					o.LeaderEpoch = -1
				}
				if p.Metadata != nil {
					o.Metadata = *p.Metadata
				}
				offs = append(offs, o)
			}
		}
	}
	if len(offs) > 0 {
		if err := co.b.CommitOffsets(c.vhost, req.Group, offs); err != nil {
			co.log.Warn("cannot record committed offsets", "group", req.Group, "err", err)
			setAll(kerr.CoordinatorNotAvailable.Code)
		}
	}
	for i, t := range req.Topics {
		rt := kmsg.NewOffsetCommitResponseTopic()
		rt.Topic = t.Topic
		for j, p := range t.Partitions {
			rp := kmsg.NewOffsetCommitResponseTopicPartition()
			rp.Partition, rp.ErrorCode = p.Partition, codes[i][j]
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

// commitAllowed applies Kafka's rules for who may commit: a member of the
// current generation (not while the group waits for the leader's
// assignment), or, with generation -1 and no member id, anyone while the
// group has no members (a consumer that assigns itself partitions).
func (co *coordinator) commitAllowed(vhost string, req *kmsg.OffsetCommitRequest) int16 {
	simple := req.Generation < 0 && req.MemberID == "" && req.InstanceID == nil
	code, ok := ask(co, vhost, req.Group, func(g *group) int16 { return g.commitCheck(req) })
	if !ok && !simple {
		return kerr.IllegalGeneration.Code // a member of a group that is not (any more)
	}
	return code
}

// commitCheck is commitAllowed on the group's goroutine.
func (g *group) commitCheck(req *kmsg.OffsetCommitRequest) int16 {
	if g.state == groupDead {
		return kerr.CoordinatorNotAvailable.Code
	}
	if req.Generation < 0 && g.state == groupEmpty {
		return 0
	}
	m, code := g.member(req.MemberID, req.InstanceID, req.Generation)
	if code != 0 {
		return code
	}
	if g.state == groupCompletingRebalance {
		return kerr.RebalanceInProgress.Code
	}
	m.expires = g.co.clock.Now().Add(m.session) // a commit is a sign of life, as in Kafka
	return 0
}

// offsetFetch answers an OffsetFetch: one group before v8, several after. A
// group that never committed has offset -1 everywhere and no error, as Kafka.
func (co *coordinator) offsetFetch(c *groupCaller, req *kmsg.OffsetFetchRequest) *kmsg.OffsetFetchResponse {
	resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
	if req.Version >= 8 {
		for _, rg := range req.Groups {
			var topics []fetchTopic
			if rg.Topics != nil {
				topics = make([]fetchTopic, 0, len(rg.Topics))
				for _, t := range rg.Topics {
					topics = append(topics, fetchTopic{t.Topic, t.Partitions})
				}
			}
			got, code := co.fetchGroup(c, rg.Group, topics, req.RequireStable)
			sg := kmsg.NewOffsetFetchResponseGroup()
			sg.Group, sg.ErrorCode = rg.Group, code
			for _, t := range got {
				st := kmsg.NewOffsetFetchResponseGroupTopic()
				st.Topic = t.topic
				for _, p := range t.parts {
					sp := kmsg.NewOffsetFetchResponseGroupTopicPartition()
					sp.Partition, sp.Offset, sp.LeaderEpoch, sp.Metadata, sp.ErrorCode = p.Partition, p.Offset, p.LeaderEpoch, p.Metadata, p.ErrorCode
					st.Partitions = append(st.Partitions, sp)
				}
				sg.Topics = append(sg.Topics, st)
			}
			resp.Groups = append(resp.Groups, sg)
		}
		return resp
	}
	var topics []fetchTopic
	if req.Topics != nil || req.Version < 2 { // null topics (v2+) means all of them
		topics = make([]fetchTopic, 0, len(req.Topics))
		for _, t := range req.Topics {
			topics = append(topics, fetchTopic{t.Topic, t.Partitions})
		}
	}
	got, code := co.fetchGroup(c, req.Group, topics, req.RequireStable)
	if code != 0 && req.Version < 2 { // no top-level error before v2: on each partition
		got = nil
		for _, t := range topics {
			ft := fetchedTopic{topic: t.topic}
			for _, p := range t.parts {
				ft.parts = append(ft.parts, missingOffset(p, code))
			}
			got = append(got, ft)
		}
	}
	resp.ErrorCode = code
	for _, t := range got {
		rt := kmsg.NewOffsetFetchResponseTopic()
		rt.Topic, rt.Partitions = t.topic, t.parts
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

type fetchTopic struct {
	topic string
	parts []int32
}

type fetchedTopic struct {
	topic string
	parts []kmsg.OffsetFetchResponseTopicPartition
}

func missingOffset(p int32, code int16) kmsg.OffsetFetchResponseTopicPartition {
	r := kmsg.NewOffsetFetchResponseTopicPartition()
	r.Partition, r.Offset, r.LeaderEpoch, r.Metadata, r.ErrorCode = p, -1, -1, kmsg.StringPtr(""), code
	return r
}

// fetchGroup reads one group's offsets: the partitions asked for, or all
// (topics nil) of the topics the client may read.
func (co *coordinator) fetchGroup(c *groupCaller, group string, topics []fetchTopic, requireStable bool) ([]fetchedTopic, int16) {
	if group == "" {
		return nil, kerr.InvalidGroupID.Code
	}
	if !c.mayGroup(group) {
		return nil, kerr.GroupAuthorizationFailed.Code
	}
	unstable := func(topic string, p int32) bool {
		return requireStable && co.unstableOffset != nil && co.unstableOffset(c.vhost, group, topic, p)
	}
	var out []fetchedTopic
	if topics == nil {
		for _, o := range co.b.CommittedOffsets(c.vhost, group) {
			if !c.mayTopic(o.Stream) {
				continue
			}
			if len(out) == 0 || out[len(out)-1].topic != o.Stream {
				out = append(out, fetchedTopic{topic: o.Stream})
			}
			t := &out[len(out)-1]
			t.parts = append(t.parts, committedOffset(o, unstable(o.Stream, o.Partition)))
		}
		return out, 0
	}
	for _, t := range topics {
		ft := fetchedTopic{topic: t.topic}
		allowed := c.mayTopic(t.topic)
		for _, p := range t.parts {
			switch o, ok := co.b.CommittedOffset(c.vhost, group, broker.StreamPartition{Stream: t.topic, Partition: p}); {
			case !allowed:
				ft.parts = append(ft.parts, missingOffset(p, kerr.TopicAuthorizationFailed.Code))
			case unstable(t.topic, p):
				// Also with no offset committed yet: a group's first
				// transactional commit is pending (KIP-447).
				ft.parts = append(ft.parts, missingOffset(p, kerr.UnstableOffsetCommit.Code))
			case !ok:
				ft.parts = append(ft.parts, missingOffset(p, 0))
			default:
				ft.parts = append(ft.parts, committedOffset(o, unstable(t.topic, p)))
			}
		}
		out = append(out, ft)
	}
	return out, 0
}

func committedOffset(o broker.CommittedOffset, unstable bool) kmsg.OffsetFetchResponseTopicPartition {
	if unstable { // a transaction's commit of this partition is pending
		return missingOffset(o.Partition, kerr.UnstableOffsetCommit.Code)
	}
	r := kmsg.NewOffsetFetchResponseTopicPartition()
	r.Partition, r.Offset, r.LeaderEpoch, r.Metadata = o.Partition, o.Offset, o.LeaderEpoch, kmsg.StringPtr(o.Metadata)
	return r
}

// offsetDelete answers an OffsetDelete: a consumer group's offsets of topics
// its members no longer subscribe to can go (GROUP_SUBSCRIBED_TO_TOPIC
// otherwise).
func (co *coordinator) offsetDelete(c *groupCaller, req *kmsg.OffsetDeleteRequest) *kmsg.OffsetDeleteResponse {
	resp := req.ResponseKind().(*kmsg.OffsetDeleteResponse)
	if req.Group == "" {
		resp.ErrorCode = kerr.InvalidGroupID.Code
		return resp
	}
	if !c.mayGroup(req.Group) {
		resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
		return resp
	}
	var v *groupView
	if g := co.lookup(c.vhost, req.Group, false); g != nil {
		v = g.view.Load()
	}
	if (v == nil || v.state == groupDead) && len(co.b.CommittedOffsets(c.vhost, req.Group)) == 0 {
		resp.ErrorCode = kerr.GroupIDNotFound.Code
		return resp
	}
	active := v != nil && v.nonEmpty
	if active && v.protocolType != "consumer" {
		resp.ErrorCode = kerr.NonEmptyGroup.Code
		return resp
	}
	var del []broker.StreamPartition
	for _, t := range req.Topics {
		rt := kmsg.NewOffsetDeleteResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewOffsetDeleteResponseTopicPartition()
			rp.Partition = p.Partition
			switch {
			case !c.mayTopic(t.Topic):
				rp.ErrorCode = kerr.TopicAuthorizationFailed.Code
			case co.partitionExists != nil && !co.partitionExists(c.vhost, t.Topic, p.Partition):
				rp.ErrorCode = kerr.UnknownTopicOrPartition.Code
			case active && v.subscribed[t.Topic]:
				rp.ErrorCode = kerr.GroupSubscribedToTopic.Code
			default:
				del = append(del, broker.StreamPartition{Stream: t.Topic, Partition: p.Partition})
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	if len(del) > 0 {
		if err := co.b.DeleteOffsets(c.vhost, req.Group, del); err != nil {
			co.log.Warn("cannot delete committed offsets", "group", req.Group, "err", err)
			resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
			resp.Topics = nil
		}
	}
	return resp
}
