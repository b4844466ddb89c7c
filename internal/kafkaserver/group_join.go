package kafkaserver

import (
	"bytes"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The rebalance protocol as Kafka's coordinator runs it (the states of its
// GroupMetadata): a join moves the group to PreparingRebalance; the join
// phase ends when every member has rejoined (and no member given an id with
// MEMBER_ID_REQUIRED is still to come back), or when the longest rebalance
// timeout has passed, or — for a group that was empty — after the initial
// rebalance delay, extended while members keep arriving. Members that did
// not rejoin are removed; the generation is bumped, a protocol every member
// supports is chosen by vote, and the leader gets the member list.
// CompletingRebalance then waits for the leader's SyncGroup, whose
// assignments go to every member: Stable. Everything here runs on the
// group's goroutine.

// join handles a JoinGroup that passed the checks that need no group state.
func (g *group) join(c *groupCaller, req *kmsg.JoinGroupRequest, reply func(kmsg.Response)) {
	resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
	resp.MemberID = req.MemberID
	fail := func(code int16) {
		resp.ErrorCode = code
		reply(resp)
	}
	if g.state == groupDead {
		fail(kerr.CoordinatorNotAvailable.Code)
		return
	}
	if !g.supports(req) {
		fail(kerr.InconsistentGroupProtocol.Code)
		return
	}
	if req.MemberID == "" {
		if req.InstanceID != nil {
			if old, ok := g.static[*req.InstanceID]; ok && g.members[old] != nil {
				g.replaceStatic(g.members[old], c, req, reply)
				return
			}
			delete(g.static, *req.InstanceID)
		}
		if n := g.co.cfg.MaxSize; n > 0 && len(g.members)+len(g.pending) >= n {
			fail(kerr.GroupMaxSizeReached.Code)
			return
		}
		id := newMemberID(c.clientID, req.InstanceID)
		if req.Version >= 4 && req.InstanceID == nil {
			// KIP-394: a dynamic member learns its id first and joins with
			// it, so a client that gives up on a join leaves no member.
			g.pending[id] = g.co.clock.Now().Add(time.Duration(req.SessionTimeoutMillis) * time.Millisecond)
			g.dirty = true
			resp.MemberID = id
			fail(kerr.MemberIDRequired.Code)
			return
		}
		g.addMember(id, c, req, reply)
		return
	}
	if req.InstanceID != nil {
		if code := g.checkInstance(*req.InstanceID, req.MemberID); code != 0 {
			fail(code)
			return
		}
	}
	if _, ok := g.pending[req.MemberID]; ok {
		delete(g.pending, req.MemberID)
		g.addMember(req.MemberID, c, req, reply)
		return
	}
	m := g.members[req.MemberID]
	if m == nil {
		fail(kerr.UnknownMemberID.Code)
		return
	}
	switch g.state {
	case groupPreparingRebalance:
		g.awaitJoin(m, c, req, reply)
		g.maybeCompleteJoin()
	case groupCompletingRebalance:
		if m.sameJoin(req) { // it missed the answer: answer again
			reply(g.joinResponse(m, req))
			return
		}
		g.awaitJoin(m, c, req, reply)
		g.prepareRebalance("member " + m.id + " changed its protocols")
	case groupStable:
		if m.id != g.leader && m.sameJoin(req) {
			reply(g.joinResponse(m, req))
			return
		}
		g.awaitJoin(m, c, req, reply)
		g.prepareRebalance("member " + m.id + " rejoined")
	default:
		fail(kerr.UnknownMemberID.Code)
	}
}

// supports reports whether the joining member can be in the group: the
// group's protocol type and a protocol all other members support.
func (g *group) supports(req *kmsg.JoinGroupRequest) bool {
	others := 0
	for _, m := range g.members {
		if m.id != req.MemberID {
			others++
		}
	}
	if others == 0 {
		return true
	}
	if req.ProtocolType != g.protocolType {
		return false
	}
	for _, p := range req.Protocols {
		all := true
		for _, m := range g.members {
			if m.id != req.MemberID && !m.hasProtocol(p.Name) {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}

func (m *member) hasProtocol(name string) bool {
	return slices.ContainsFunc(m.protocols, func(p kmsg.JoinGroupRequestProtocol) bool { return p.Name == name })
}

// checkInstance fences a static member whose instance id now belongs to
// another member id (KIP-345).
func (g *group) checkInstance(instanceID, memberID string) int16 {
	if id, ok := g.static[instanceID]; ok && id != memberID {
		return kerr.FencedInstanceID.Code
	}
	return 0
}

func (m *member) sameJoin(req *kmsg.JoinGroupRequest) bool {
	if req.ProtocolType != m.protocolType || len(req.Protocols) != len(m.protocols) {
		return false
	}
	for i, p := range req.Protocols {
		if p.Name != m.protocols[i].Name || !bytes.Equal(p.Metadata, m.protocols[i].Metadata) {
			return false
		}
	}
	return true
}

// addMember adds a new member, which waits for the join phase to end.
func (g *group) addMember(id string, c *groupCaller, req *kmsg.JoinGroupRequest, reply func(kmsg.Response)) {
	if len(g.members) == 0 {
		g.protocolType = req.ProtocolType
	}
	g.seq++
	m := &member{id: id, seq: g.seq}
	g.members[id] = m
	if req.InstanceID != nil {
		g.static[*req.InstanceID] = id
	}
	g.awaitJoin(m, c, req, reply)
	if g.state == groupPreparingRebalance {
		g.newJoiner = true
		g.maybeCompleteJoin()
		return
	}
	g.prepareRebalance("member " + id + " joined")
}

// awaitJoin takes the member's join details and parks its answer.
func (g *group) awaitJoin(m *member, c *groupCaller, req *kmsg.JoinGroupRequest, reply func(kmsg.Response)) {
	if m.joinReply != nil { // a join sent again: the first one is overtaken
		old := m.joinReq.ResponseKind().(*kmsg.JoinGroupResponse)
		old.ErrorCode = kerr.RebalanceInProgress.Code
		old.MemberID = m.id
		m.joinReply(old)
	}
	m.clientID, m.clientHost, m.instanceID = c.clientID, c.clientHost, req.InstanceID
	m.session = time.Duration(req.SessionTimeoutMillis) * time.Millisecond
	m.rebalance = time.Duration(req.RebalanceTimeoutMillis) * time.Millisecond
	if req.Version == 0 {
		m.rebalance = m.session
	}
	m.protocolType, m.protocols = req.ProtocolType, req.Protocols
	m.joinReq, m.joinReply = req, reply
	g.dirty = true
}

// replaceStatic lets a static member come back under a new member id with
// its old assignment: the old id is fenced, and a stable group whose member
// rejoins unchanged does not rebalance (KIP-345).
func (g *group) replaceStatic(old *member, c *groupCaller, req *kmsg.JoinGroupRequest, reply func(kmsg.Response)) {
	g.failWaiting(old, kerr.FencedInstanceID.Code)
	unchanged := old.sameJoin(req)
	delete(g.members, old.id)
	id := newMemberID(c.clientID, req.InstanceID)
	m := &member{id: id, seq: old.seq, assignment: old.assignment, synced: old.synced}
	g.members[id] = m
	g.static[*req.InstanceID] = id
	if g.leader == old.id {
		g.leader = id
	}
	g.co.log.Info("Kafka static group member rejoined", "group", g.name, "instance", *req.InstanceID, "member", id, "replaced", old.id)
	g.awaitJoin(m, c, req, reply)
	switch g.state {
	case groupStable:
		if unchanged {
			m.joinReq, m.joinReply = nil, nil
			m.expires = g.co.clock.Now().Add(m.session)
			resp := g.joinResponse(m, req)
			resp.SkipAssignment = id == g.leader // v9: the leader need not assign again
			reply(resp)
			return
		}
		g.prepareRebalance("static member " + id + " rejoined changed")
	case groupCompletingRebalance:
		g.prepareRebalance("static member " + id + " rejoined during the sync")
	default:
		g.maybeCompleteJoin()
	}
}

// joinResponse is the answer to m's join in the current generation; the
// leader's lists every member with its metadata for the chosen protocol.
func (g *group) joinResponse(m *member, req *kmsg.JoinGroupRequest) *kmsg.JoinGroupResponse {
	resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
	resp.Generation = g.generation
	resp.ProtocolType = kmsg.StringPtr(g.protocolType)
	resp.Protocol = kmsg.StringPtr(g.protocol)
	resp.LeaderID = g.leader
	resp.MemberID = m.id
	if m.id == g.leader {
		for _, o := range g.sortedMembers() {
			rm := kmsg.NewJoinGroupResponseMember()
			rm.MemberID, rm.InstanceID, rm.ProtocolMetadata = o.id, o.instanceID, o.metadataFor(g.protocol)
			resp.Members = append(resp.Members, rm)
		}
	}
	return resp
}

// prepareRebalance starts a join phase; waiting syncs are told to rejoin.
func (g *group) prepareRebalance(reason string) {
	for _, m := range g.members {
		if m.syncReply != nil {
			resp := m.syncReq.ResponseKind().(*kmsg.SyncGroupResponse)
			resp.ErrorCode = kerr.RebalanceInProgress.Code
			m.syncReply(resp)
			m.syncReq, m.syncReply = nil, nil
		}
	}
	wasEmpty := g.state == groupEmpty
	g.state = groupPreparingRebalance
	g.dirty = true
	g.syncDeadline = time.Time{}
	now := g.co.clock.Now()
	rt := g.maxRebalanceTimeout()
	g.co.log.Debug("Kafka group rebalancing", "group", g.name, "generation", g.generation, "reason", reason)
	if d := g.co.cfg.InitialRebalanceDelay; wasEmpty && d > 0 {
		d = min(d, rt)
		g.delayUntil, g.delayLeft, g.newJoiner = now.Add(d), rt-d, false
		return
	}
	g.delayUntil = time.Time{}
	g.joinDeadline = now.Add(rt)
	g.maybeCompleteJoin()
}

func (g *group) maxRebalanceTimeout() time.Duration {
	var d time.Duration
	for _, m := range g.members {
		d = max(d, m.rebalance)
	}
	return d
}

// maybeCompleteJoin ends the join phase once everyone is in.
func (g *group) maybeCompleteJoin() {
	if g.state != groupPreparingRebalance || !g.delayUntil.IsZero() || len(g.pending) > 0 {
		return
	}
	for _, m := range g.members {
		if m.joinReply == nil {
			return
		}
	}
	g.completeJoin()
}

// completeJoin starts the next generation with the members that rejoined.
func (g *group) completeJoin() {
	g.joinDeadline, g.delayUntil = time.Time{}, time.Time{}
	for _, m := range g.sortedMembers() {
		if m.joinReply == nil {
			g.co.log.Info("Kafka group member removed: it did not rejoin in time", "group", g.name, "member", m.id)
			g.removeMember(m)
		}
	}
	g.generation++
	g.dirty = true
	if len(g.members) == 0 {
		g.state, g.protocol, g.leader = groupEmpty, "", ""
		return
	}
	ms := g.sortedMembers()
	if g.members[g.leader] == nil {
		g.leader = ms[0].id
	}
	g.protocol = g.selectProtocol(ms)
	g.state = groupCompletingRebalance
	now := g.co.clock.Now()
	g.syncDeadline = now.Add(g.maxRebalanceTimeout())
	for _, m := range ms {
		m.synced = false
		m.expires = now.Add(m.session)
		reply, req := m.joinReply, m.joinReq
		m.joinReq, m.joinReply = nil, nil
		reply(g.joinResponse(m, req))
	}
	g.co.log.Debug("Kafka group join complete", "group", g.name, "generation", g.generation, "members", len(ms), "protocol", g.protocol)
}

// selectProtocol picks, among the protocols every member supports, the one
// most members prefer (each votes for its first supported choice); a tie
// goes to the leader's preference.
func (g *group) selectProtocol(ms []*member) string {
	var candidates []string
	for _, p := range g.members[g.leader].protocols {
		all := true
		for _, m := range ms {
			if !m.hasProtocol(p.Name) {
				all = false
				break
			}
		}
		if all {
			candidates = append(candidates, p.Name)
		}
	}
	votes := map[string]int{}
	for _, m := range ms {
		for _, p := range m.protocols {
			if slices.Contains(candidates, p.Name) {
				votes[p.Name]++
				break
			}
		}
	}
	best := ""
	for _, c := range candidates {
		if best == "" || votes[c] > votes[best] {
			best = c
		}
	}
	return best
}

// removeMember forgets m (its waiting requests are answered UNKNOWN_MEMBER_ID).
func (g *group) removeMember(m *member) {
	g.failWaiting(m, kerr.UnknownMemberID.Code)
	delete(g.members, m.id)
	if m.instanceID != nil && g.static[*m.instanceID] == m.id {
		delete(g.static, *m.instanceID)
	}
	if g.leader == m.id {
		g.leader = ""
	}
	g.dirty = true
}

// memberGone reacts to a member's departure: the others rebalance.
func (g *group) memberGone() {
	switch g.state {
	case groupStable, groupCompletingRebalance:
		g.prepareRebalance("a member left")
	case groupPreparingRebalance:
		g.maybeCompleteJoin()
	}
}

func (g *group) sortedMembers() []*member {
	ms := make([]*member, 0, len(g.members))
	for _, m := range g.members {
		ms = append(ms, m)
	}
	slices.SortFunc(ms, func(a, b *member) int { return a.seq - b.seq })
	return ms
}

// sync handles SyncGroup: the leader's assignments end the rebalance.
func (g *group) sync(req *kmsg.SyncGroupRequest, reply func(kmsg.Response)) {
	resp := req.ResponseKind().(*kmsg.SyncGroupResponse)
	fail := func(code int16) {
		resp.ErrorCode = code
		reply(resp)
	}
	m, code := g.member(req.MemberID, req.InstanceID, req.Generation)
	if code != 0 {
		fail(code)
		return
	}
	if (req.ProtocolType != nil && *req.ProtocolType != g.protocolType) || (req.Protocol != nil && *req.Protocol != g.protocol) {
		fail(kerr.InconsistentGroupProtocol.Code)
		return
	}
	switch g.state {
	case groupPreparingRebalance:
		fail(kerr.RebalanceInProgress.Code)
	case groupCompletingRebalance:
		if m.syncReply != nil {
			old := m.syncReq.ResponseKind().(*kmsg.SyncGroupResponse)
			old.ErrorCode = kerr.RebalanceInProgress.Code
			m.syncReply(old)
		}
		m.syncReq, m.syncReply, m.synced = req, reply, true
		if m.id == g.leader {
			g.assign(req)
		}
	case groupStable:
		m.expires = g.co.clock.Now().Add(m.session)
		resp.ProtocolType, resp.Protocol = kmsg.StringPtr(g.protocolType), kmsg.StringPtr(g.protocol)
		resp.MemberAssignment = m.assignment
		reply(resp)
	default:
		fail(kerr.UnknownMemberID.Code)
	}
}

// member finds the member a heartbeat, sync or commit comes from, with
// Kafka's checks in Kafka's order.
func (g *group) member(id string, instanceID *string, generation int32) (*member, int16) {
	if g.state == groupDead {
		return nil, kerr.CoordinatorNotAvailable.Code
	}
	if instanceID != nil {
		if code := g.checkInstance(*instanceID, id); code != 0 {
			return nil, code
		}
	}
	m := g.members[id]
	if m == nil {
		return nil, kerr.UnknownMemberID.Code
	}
	if generation != g.generation {
		return nil, kerr.IllegalGeneration.Code
	}
	return m, 0
}

// assign takes the leader's assignments and answers every waiting sync.
func (g *group) assign(req *kmsg.SyncGroupRequest) {
	given := map[string][]byte{}
	for _, a := range req.GroupAssignment {
		given[a.MemberID] = a.MemberAssignment
	}
	now := g.co.clock.Now()
	for _, m := range g.members {
		m.assignment = given[m.id]
		if m.assignment == nil {
			m.assignment = []byte{}
		}
		m.expires = now.Add(m.session)
	}
	g.state = groupStable
	g.syncDeadline = time.Time{}
	g.dirty = true
	for _, m := range g.sortedMembers() {
		if m.syncReply != nil {
			resp := m.syncReq.ResponseKind().(*kmsg.SyncGroupResponse)
			resp.ProtocolType, resp.Protocol = kmsg.StringPtr(g.protocolType), kmsg.StringPtr(g.protocol)
			resp.MemberAssignment = m.assignment
			m.syncReply(resp)
			m.syncReq, m.syncReply = nil, nil
		}
	}
	g.co.log.Info("Kafka group stable", "group", g.name, "generation", g.generation, "members", len(g.members), "protocol", g.protocol)
}

// heartbeat handles a Heartbeat: it keeps the session and says whether to rejoin.
func (g *group) heartbeat(req *kmsg.HeartbeatRequest) *kmsg.HeartbeatResponse {
	resp := req.ResponseKind().(*kmsg.HeartbeatResponse)
	m, code := g.member(req.MemberID, req.InstanceID, req.Generation)
	if code != 0 {
		resp.ErrorCode = code
		return resp
	}
	switch g.state {
	case groupEmpty:
		resp.ErrorCode = kerr.UnknownMemberID.Code
		return resp
	case groupPreparingRebalance:
		resp.ErrorCode = kerr.RebalanceInProgress.Code
	}
	m.expires = g.co.clock.Now().Add(m.session)
	return resp
}

// leave handles LeaveGroup: one member before v3, a batch after.
func (g *group) leave(req *kmsg.LeaveGroupRequest) *kmsg.LeaveGroupResponse {
	resp := req.ResponseKind().(*kmsg.LeaveGroupResponse)
	if g.state == groupDead {
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return resp
	}
	leaving := req.Members
	if req.Version < 3 {
		leaving = []kmsg.LeaveGroupRequestMember{{MemberID: req.MemberID}}
	}
	for _, l := range leaving {
		r := kmsg.NewLeaveGroupResponseMember()
		r.MemberID, r.InstanceID = l.MemberID, l.InstanceID
		r.ErrorCode = g.leaveOne(l)
		resp.Members = append(resp.Members, r)
	}
	if req.Version < 3 {
		resp.ErrorCode = resp.Members[0].ErrorCode
		resp.Members = nil
	}
	return resp
}

func (g *group) leaveOne(l kmsg.LeaveGroupRequestMember) int16 {
	id := l.MemberID
	if l.InstanceID != nil {
		mapped, ok := g.static[*l.InstanceID]
		if !ok {
			return kerr.UnknownMemberID.Code
		}
		if id != "" && id != mapped {
			return kerr.FencedInstanceID.Code
		}
		id = mapped
	}
	if _, ok := g.pending[id]; ok {
		delete(g.pending, id)
		g.dirty = true
		g.maybeCompleteJoin()
		return 0
	}
	m := g.members[id]
	if m == nil {
		return kerr.UnknownMemberID.Code
	}
	reason := ""
	if l.Reason != nil {
		reason = *l.Reason
	}
	g.co.log.Debug("Kafka group member left", "group", g.name, "member", id, "reason", strings.TrimSpace(reason))
	g.removeMember(m)
	g.memberGone()
	return 0
}
