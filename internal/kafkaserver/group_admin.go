package kafkaserver

import (
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/warren-mq/warren/internal/broker"
)

// Group administration: DescribeGroups, ListGroups, DeleteGroups, and the broker's management view of the groups. Reads use
// the snapshots the groups publish, not their mailboxes. A group known only
// by its committed offsets (its members left, or the broker restarted) is
// an Empty group, as in Kafka.

// liveView returns a live group's snapshot, nil if none.
func (co *coordinator) liveView(vhost, name string) *groupView {
	g := co.lookup(vhost, name, false)
	if g == nil {
		return nil
	}
	if v := g.view.Load(); v.state != groupDead {
		return v
	}
	return nil
}

// Kafka's ACL operation numbers, for DescribeGroups' authorized operations.
const aclRead, aclDelete, aclDescribe = 3, 6, 8

// describeGroups answers a DescribeGroups.
func (co *coordinator) describeGroups(c *groupCaller, req *kmsg.DescribeGroupsRequest) *kmsg.DescribeGroupsResponse {
	resp := req.ResponseKind().(*kmsg.DescribeGroupsResponse)
	for _, name := range req.Groups {
		r := kmsg.NewDescribeGroupsResponseGroup()
		r.Group = name
		if !c.mayGroup(name) {
			r.ErrorCode = kerr.GroupAuthorizationFailed.Code
			resp.Groups = append(resp.Groups, r)
			continue
		}
		if req.IncludeAuthorizedOperations {
			r.AuthorizedOperations = 1<<aclRead | 1<<aclDelete | 1<<aclDescribe
		}
		switch v := co.liveView(c.vhost, name); {
		case v != nil:
			r.State, r.ProtocolType = v.state.String(), v.protocolType
			stable := v.state == groupStable
			if stable {
				r.Protocol = v.protocol
			}
			for _, m := range v.members {
				rm := kmsg.NewDescribeGroupsResponseGroupMember()
				rm.MemberID, rm.InstanceID, rm.ClientID, rm.ClientHost = m.id, m.instanceID, m.clientID, m.clientHost
				if stable { // Kafka shows metadata and assignments of a stable group only
					rm.ProtocolMetadata, rm.MemberAssignment = m.metadata, m.assignment
				}
				r.Members = append(r.Members, rm)
			}
		case len(co.b.CommittedOffsets(c.vhost, name)) > 0:
			r.State = groupEmpty.String()
		default:
			r.State = groupDead.String()
			if req.Version >= 6 {
				r.ErrorCode = kerr.GroupIDNotFound.Code
				r.ErrorMessage = kmsg.StringPtr("group '" + name + "' does not exist")
			}
		}
		resp.Groups = append(resp.Groups, r)
	}
	return resp
}

// listGroups answers a ListGroups: the groups the client may see, filtered
// by state (v4+, case-insensitive) and type (v5+: these are all "classic").
func (co *coordinator) listGroups(c *groupCaller, req *kmsg.ListGroupsRequest) *kmsg.ListGroupsResponse {
	resp := req.ResponseKind().(*kmsg.ListGroupsResponse)
	match := func(filter []string, v string) bool {
		return len(filter) == 0 || slices.ContainsFunc(filter, func(f string) bool { return strings.EqualFold(f, v) })
	}
	if !match(req.TypesFilter, "classic") {
		return resp
	}
	for _, gi := range co.b.Groups(c.vhost) {
		if !c.mayGroup(gi.Name) || !match(req.StatesFilter, gi.State) {
			continue
		}
		r := kmsg.NewListGroupsResponseGroup()
		r.Group, r.ProtocolType, r.GroupState, r.GroupType = gi.Name, gi.ProtocolType, gi.State, "classic"
		resp.Groups = append(resp.Groups, r)
	}
	return resp
}

// deleteGroups answers a DeleteGroups: a group without members goes, with
// its committed offsets (NON_EMPTY_GROUP while it has members).
func (co *coordinator) deleteGroups(c *groupCaller, req *kmsg.DeleteGroupsRequest) *kmsg.DeleteGroupsResponse {
	resp := req.ResponseKind().(*kmsg.DeleteGroupsResponse)
	for _, name := range req.Groups {
		r := kmsg.NewDeleteGroupsResponseGroup()
		r.Group = name
		r.ErrorCode = co.deleteGroup(c, name)
		resp.Groups = append(resp.Groups, r)
	}
	return resp
}

func (co *coordinator) deleteGroup(c *groupCaller, name string) int16 {
	if name == "" {
		return kerr.InvalidGroupID.Code
	}
	if !c.mayGroup(name) {
		return kerr.GroupAuthorizationFailed.Code
	}
	code, live := ask(co, c.vhost, name, func(g *group) int16 {
		switch {
		case g.state == groupDead:
			return kerr.GroupIDNotFound.Code
		case len(g.members)+len(g.pending) > 0:
			return kerr.NonEmptyGroup.Code
		}
		g.state = groupDead // its goroutine ends after this batch
		g.dirty = true
		return 0
	})
	if code != 0 {
		return code
	}
	if !live && len(co.b.CommittedOffsets(c.vhost, name)) == 0 {
		return kerr.GroupIDNotFound.Code
	}
	if err := co.b.DeleteOffsetGroup(c.vhost, name); err != nil {
		co.log.Warn("cannot delete a group's committed offsets", "group", name, "err", err)
		return kerr.CoordinatorNotAvailable.Code
	}
	return 0
}

// groupInfos reports the live groups of a vhost to the broker's management
// views; consumer groups' assignments are decoded.
func (co *coordinator) groupInfos(vhost string) []broker.GroupInfo {
	co.mu.Lock()
	var gs []*group
	for id, g := range co.groups {
		if id.vhost == vhost {
			gs = append(gs, g)
		}
	}
	co.mu.Unlock()
	out := make([]broker.GroupInfo, 0, len(gs))
	for _, g := range gs {
		v := g.view.Load()
		if v.state == groupDead {
			continue
		}
		gi := broker.GroupInfo{VHost: vhost, Name: g.name, State: v.state.String(), ProtocolType: v.protocolType, Protocol: v.protocol, Generation: v.generation}
		for _, m := range v.members {
			mi := broker.GroupMemberInfo{ID: m.id, ClientID: m.clientID, ClientHost: m.clientHost}
			if m.instanceID != nil {
				mi.InstanceID = *m.instanceID
			}
			var a kmsg.ConsumerMemberAssignment
			if v.protocolType == "consumer" && len(m.assignment) > 0 && a.ReadFrom(m.assignment) == nil {
				for _, t := range a.Topics {
					for _, p := range t.Partitions {
						mi.Assignment = append(mi.Assignment, broker.StreamPartition{Stream: t.Topic, Partition: p})
					}
				}
			}
			gi.Members = append(gi.Members, mi)
		}
		out = append(out, gi)
	}
	return out
}
