package kafkaserver

import (
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/warren-mq/warren/internal/broker"
)

func commitReq(group, member string, gen int32, topic string, parts ...int32) *kmsg.OffsetCommitRequest {
	r := kmsg.NewPtrOffsetCommitRequest()
	r.Version, r.Group, r.MemberID, r.Generation = 9, group, member, gen
	t := kmsg.NewOffsetCommitRequestTopic()
	t.Topic = topic
	for _, p := range parts {
		cp := kmsg.NewOffsetCommitRequestTopicPartition()
		cp.Partition, cp.Offset, cp.LeaderEpoch, cp.Metadata = p, int64(100+p), 5, kmsg.StringPtr("meta")
		t.Partitions = append(t.Partitions, cp)
	}
	r.Topics = []kmsg.OffsetCommitRequestTopic{t}
	return r
}

func commitCodes(resp *kmsg.OffsetCommitResponse) []int16 {
	var out []int16
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			out = append(out, p.ErrorCode)
		}
	}
	return out
}

func fetchReq(version int16, group string, topic string, parts ...int32) *kmsg.OffsetFetchRequest {
	r := kmsg.NewPtrOffsetFetchRequest()
	r.Version, r.Group = version, group
	if topic != "" {
		r.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: topic, Partitions: parts}}
	}
	return r
}

func TestOffsetsCommitAndFetch(t *testing.T) {
	h := newHarness(t, groupConfig{})
	// A standalone consumer (generation -1, no member) commits to a group
	// that has no members.
	if c := commitCodes(h.co.offsetCommit(h.c, commitReq("solo", "", -1, "t", 0, 1))); c[0] != 0 || c[1] != 0 {
		t.Fatalf("simple commit: %v", c)
	}
	resp := h.co.offsetFetch(h.c, fetchReq(7, "solo", "t", 0, 1, 2))
	ps := resp.Topics[0].Partitions
	if resp.ErrorCode != 0 || ps[0].Offset != 100 || ps[1].Offset != 101 || ps[1].LeaderEpoch != 5 || *ps[1].Metadata != "meta" || ps[2].Offset != -1 || ps[2].ErrorCode != 0 {
		t.Fatalf("fetch: %+v", resp)
	}
	// An unknown group: offset -1, no error, as Kafka.
	resp = h.co.offsetFetch(h.c, fetchReq(7, "never", "t", 0))
	if p := resp.Topics[0].Partitions[0]; resp.ErrorCode != 0 || p.Offset != -1 || p.ErrorCode != 0 || p.LeaderEpoch != -1 {
		t.Fatalf("unknown group: %+v", resp)
	}
	// All topics (null list).
	all := fetchReq(7, "solo", "")
	if resp := h.co.offsetFetch(h.c, all); len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 2 {
		t.Fatalf("all: %+v", resp)
	}
	// v8: several groups at once.
	multi := kmsg.NewPtrOffsetFetchRequest()
	multi.Version = 8
	multi.Groups = []kmsg.OffsetFetchRequestGroup{
		{Group: "solo", Topics: []kmsg.OffsetFetchRequestGroupTopic{{Topic: "t", Partitions: []int32{1}}}},
		{Group: "never", Topics: []kmsg.OffsetFetchRequestGroupTopic{{Topic: "t", Partitions: []int32{1}}}},
		{Group: "solo"}, // null topics: all
	}
	mr := h.co.offsetFetch(h.c, multi)
	if len(mr.Groups) != 3 || mr.Groups[0].Topics[0].Partitions[0].Offset != 101 || mr.Groups[1].Topics[0].Partitions[0].Offset != -1 || len(mr.Groups[2].Topics[0].Partitions) != 2 {
		t.Fatalf("v8: %+v", mr)
	}
	// Partition and metadata checks.
	bad := commitReq("solo", "", -1, "missing", 0)
	if c := commitCodes(h.co.offsetCommit(h.c, bad)); c[0] != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("unknown topic: %v", c)
	}
	big := commitReq("solo", "", -1, "t", 0)
	big.Topics[0].Partitions[0].Metadata = kmsg.StringPtr(strings.Repeat("x", 5000))
	if c := commitCodes(h.co.offsetCommit(h.c, big)); c[0] != kerr.OffsetMetadataTooLarge.Code {
		t.Fatalf("metadata too large: %v", c)
	}
	// Permissions: group and topic.
	h.c.groupAllowed = func(g string) bool { return g != "secret" }
	h.c.topicAllowed = func(t string) bool { return t != "hidden" }
	if c := commitCodes(h.co.offsetCommit(h.c, commitReq("secret", "", -1, "t", 0))); c[0] != kerr.GroupAuthorizationFailed.Code {
		t.Fatalf("group permission: %v", c)
	}
	if c := commitCodes(h.co.offsetCommit(h.c, commitReq("solo", "", -1, "hidden", 0))); c[0] != kerr.TopicAuthorizationFailed.Code {
		t.Fatalf("topic permission: %v", c)
	}
	code(t, "fetch without permission", h.co.offsetFetch(h.c, fetchReq(7, "secret", "t", 0)).ErrorCode, kerr.GroupAuthorizationFailed.Code)
	if p := h.co.offsetFetch(h.c, fetchReq(1, "secret", "t", 0)).Topics[0].Partitions[0]; p.ErrorCode != kerr.GroupAuthorizationFailed.Code {
		t.Fatalf("v1 fetch without permission: %+v", p)
	}
}

// A group member's commits must come from the current generation; a
// standalone commit to a group with members is refused.
func TestOffsetsCommitGenerationChecks(t *testing.T) {
	h := newHarness(t, groupConfig{})
	a, b, gen := h.stableTwo("g")
	if c := commitCodes(h.co.offsetCommit(h.c, commitReq("g", a, gen, "t", 0))); c[0] != 0 {
		t.Fatalf("member commit: %v", c)
	}
	if c := commitCodes(h.co.offsetCommit(h.c, commitReq("g", b, gen-1, "t", 0))); c[0] != kerr.IllegalGeneration.Code {
		t.Fatalf("old generation: %v", c)
	}
	if c := commitCodes(h.co.offsetCommit(h.c, commitReq("g", "x", gen, "t", 0))); c[0] != kerr.UnknownMemberID.Code {
		t.Fatalf("unknown member: %v", c)
	}
	if c := commitCodes(h.co.offsetCommit(h.c, commitReq("g", "", -1, "t", 0))); c[0] != kerr.UnknownMemberID.Code {
		t.Fatalf("simple commit to a live group: %v", c)
	}
	if c := commitCodes(h.co.offsetCommit(h.c, commitReq("gone", a, 3, "t", 0))); c[0] != kerr.IllegalGeneration.Code {
		t.Fatalf("member of no group: %v", c)
	}
	// During the join phase members may still commit (cooperative clients
	// keep their partitions); while the leader assigns they may not.
	_, jc := h.joinNew("g")
	if c := commitCodes(h.co.offsetCommit(h.c, commitReq("g", b, gen, "t", 1))); c[0] != 0 {
		t.Fatalf("commit while preparing: %v", c)
	}
	ja, jb := h.join(joinReq("g", a, nil, 9)), h.join(joinReq("g", b, nil, 9))
	h.settle("g")
	got(t, ja)
	got(t, jb)
	got(t, jc)
	if c := commitCodes(h.co.offsetCommit(h.c, commitReq("g", b, gen+1, "t", 1))); c[0] != kerr.RebalanceInProgress.Code {
		t.Fatalf("commit while completing: %v", c)
	}
	if o, ok := h.b.CommittedOffset("/", "g", streamPart("t", 1)); !ok || o.Offset != 101 || o.LeaderEpoch != 5 || o.Metadata != "meta" {
		t.Fatalf("committed: %+v %v", o, ok)
	}
}

func TestOffsetsDelete(t *testing.T) {
	h := newHarness(t, groupConfig{})
	h.stableTwo("g")                                       // subscribed to "t"
	h.co.offsetCommit(h.c, commitReq("g", "", -1, "u", 0)) // refused: the group has members
	if err := h.b.CommitOffsets("/", "g", offsetsOf("t", "u")); err != nil {
		t.Fatal(err)
	}
	d := kmsg.NewPtrOffsetDeleteRequest()
	d.Group = "g"
	d.Topics = []kmsg.OffsetDeleteRequestTopic{
		{Topic: "t", Partitions: []kmsg.OffsetDeleteRequestTopicPartition{{Partition: 0}}},
		{Topic: "u", Partitions: []kmsg.OffsetDeleteRequestTopicPartition{{Partition: 0}}},
	}
	r := h.co.offsetDelete(h.c, d)
	if r.ErrorCode != 0 || r.Topics[0].Partitions[0].ErrorCode != kerr.GroupSubscribedToTopic.Code || r.Topics[1].Partitions[0].ErrorCode != 0 {
		t.Fatalf("offset delete: %+v", r)
	}
	if offs := h.b.CommittedOffsets("/", "g"); len(offs) != 1 || offs[0].Stream != "t" {
		t.Fatalf("left: %+v", offs)
	}
	d.Group = "nothing"
	code(t, "unknown group", h.co.offsetDelete(h.c, d).ErrorCode, kerr.GroupIDNotFound.Code)
}

func streamPart(topic string, p int32) broker.StreamPartition {
	return broker.StreamPartition{Stream: topic, Partition: p}
}

func offsetsOf(topics ...string) []broker.CommittedOffset {
	var out []broker.CommittedOffset
	for _, t := range topics {
		out = append(out, broker.CommittedOffset{StreamPartition: streamPart(t, 0), Offset: 1, LeaderEpoch: -1})
	}
	return out
}
