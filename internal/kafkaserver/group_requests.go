package kafkaserver

import (
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The coordinator's entry points for the membership APIs. Checks that need
// no group state (group id, permission, session timeout, protocols) come
// first, as in Kafka; the rest runs on the group's goroutine. JoinGroup and
// SyncGroup may wait for other members, so they answer through reply, which
// is called exactly once, perhaps from the group's goroutine later.

// joinGroup answers a JoinGroup.
func (co *coordinator) joinGroup(c *groupCaller, req *kmsg.JoinGroupRequest, reply func(kmsg.Response)) {
	resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
	resp.MemberID = req.MemberID
	fail := func(code int16) {
		resp.ErrorCode = code
		reply(resp)
	}
	if req.Group == "" {
		fail(kerr.InvalidGroupID.Code)
		return
	}
	if !c.mayGroup(req.Group) {
		fail(kerr.GroupAuthorizationFailed.Code)
		return
	}
	// Kafka checks only the session timeout against the group.min/max
	// bounds; the rebalance timeout is the client's to choose.
	if st := time.Duration(req.SessionTimeoutMillis) * time.Millisecond; st < co.cfg.MinSessionTimeout || st > co.cfg.MaxSessionTimeout {
		fail(kerr.InvalidSessionTimeout.Code)
		return
	}
	if req.ProtocolType == "" || len(req.Protocols) == 0 {
		fail(kerr.InconsistentGroupProtocol.Code)
		return
	}
	if !co.do(c.vhost, req.Group, true, func(g *group) { g.join(c, req, g.answer(reply)) }) {
		fail(kerr.CoordinatorNotAvailable.Code)
	}
}

// syncGroup answers a SyncGroup.
func (co *coordinator) syncGroup(c *groupCaller, req *kmsg.SyncGroupRequest, reply func(kmsg.Response)) {
	resp := req.ResponseKind().(*kmsg.SyncGroupResponse)
	fail := func(code int16) {
		resp.ErrorCode = code
		reply(resp)
	}
	switch {
	case req.Group == "":
		fail(kerr.InvalidGroupID.Code)
	case !c.mayGroup(req.Group):
		fail(kerr.GroupAuthorizationFailed.Code)
	case !co.do(c.vhost, req.Group, false, func(g *group) { g.sync(req, g.answer(reply)) }):
		fail(kerr.UnknownMemberID.Code)
	}
}

// heartbeat answers a Heartbeat.
func (co *coordinator) heartbeat(c *groupCaller, req *kmsg.HeartbeatRequest) *kmsg.HeartbeatResponse {
	resp := req.ResponseKind().(*kmsg.HeartbeatResponse)
	switch {
	case req.Group == "":
		resp.ErrorCode = kerr.InvalidGroupID.Code
	case !c.mayGroup(req.Group):
		resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
	default:
		if r, ok := ask(co, c.vhost, req.Group, func(g *group) *kmsg.HeartbeatResponse { return g.heartbeat(req) }); ok {
			return r
		}
		resp.ErrorCode = kerr.UnknownMemberID.Code
	}
	return resp
}

// leaveGroup answers a LeaveGroup.
func (co *coordinator) leaveGroup(c *groupCaller, req *kmsg.LeaveGroupRequest) *kmsg.LeaveGroupResponse {
	resp := req.ResponseKind().(*kmsg.LeaveGroupResponse)
	switch {
	case req.Group == "":
		resp.ErrorCode = kerr.InvalidGroupID.Code
		return resp
	case !c.mayGroup(req.Group):
		resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
		return resp
	}
	if r, ok := ask(co, c.vhost, req.Group, func(g *group) *kmsg.LeaveGroupResponse { return g.leave(req) }); ok {
		return r
	}
	// No such group: every member is unknown.
	if req.Version < 3 {
		resp.ErrorCode = kerr.UnknownMemberID.Code
		return resp
	}
	for _, l := range req.Members {
		r := kmsg.NewLeaveGroupResponseMember()
		r.MemberID, r.InstanceID, r.ErrorCode = l.MemberID, l.InstanceID, kerr.UnknownMemberID.Code
		resp.Members = append(resp.Members, r)
	}
	return resp
}

// ask runs fn on an existing group's goroutine and waits for its answer;
// false if there is no such group.
func ask[T any](co *coordinator, vhost, name string, fn func(g *group) T) (T, bool) {
	ch := make(chan T, 1)
	if !co.do(vhost, name, false, func(g *group) {
		r := fn(g)
		g.later = append(g.later, func() { ch <- r })
	}) {
		var zero T
		return zero, false
	}
	return <-ch, true
}
