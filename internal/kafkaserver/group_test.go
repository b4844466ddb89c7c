package kafkaserver

import (
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/warren-mq/warren/internal/broker"
)

// groupFakeClock is a groupClock the test moves by hand: Advance runs the timers
// that fall due, in time order, on the test's goroutine (they only post to a
// group's mailbox).
type groupFakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*groupFakeTimer
}

type groupFakeTimer struct {
	c       *groupFakeClock
	at      time.Time
	f       func()
	stopped bool
}

func newGroupFakeClock() *groupFakeClock { return &groupFakeClock{now: time.Unix(1_700_000_000, 0)} }

func (c *groupFakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *groupFakeClock) AfterFunc(d time.Duration, f func()) groupTimer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &groupFakeTimer{c: c, at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return t
}

func (t *groupFakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := !t.stopped
	t.stopped = true
	return was
}

func (c *groupFakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []*groupFakeTimer
	keep := c.timers[:0]
	for _, t := range c.timers {
		switch {
		case t.stopped:
		case !t.at.After(c.now):
			t.stopped = true
			due = append(due, t)
		default:
			keep = append(keep, t)
		}
	}
	c.timers = keep
	c.mu.Unlock()
	slices.SortStableFunc(due, func(a, b *groupFakeTimer) int { return a.at.Compare(b.at) })
	for _, t := range due {
		t.f()
	}
}

// harness drives one coordinator with a fake clock over a memory broker.
type harness struct {
	t   *testing.T
	b   *broker.Broker
	co  *coordinator
	clk *groupFakeClock
	c   *groupCaller
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newHarness(t *testing.T, cfg groupConfig) *harness {
	t.Helper()
	b, err := broker.New(broker.Config{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	clk := newGroupFakeClock()
	co := newCoordinator(b, cfg, clk, quiet())
	co.partitionExists = func(vhost, topic string, p int32) bool { return topic != "missing" && p < 4 }
	t.Cleanup(func() {
		co.close()
		b.Close()
	})
	return &harness{t: t, b: b, co: co, clk: clk, c: &groupCaller{vhost: "/", clientID: "client", clientHost: "/127.0.0.1"}}
}

// settle waits until the group has handled everything sent to it so far and
// armed its timer for what it now waits for.
func (h *harness) settle(name string) {
	h.t.Helper()
	ask(h.co, "/", name, func(g *group) int { g.rearm(); return 0 })
}

// advance settles the group, then moves the clock.
func (h *harness) advance(group string, d time.Duration) {
	h.t.Helper()
	h.settle(group)
	h.clk.Advance(d)
	h.settle(group)
}

func subscription(topics ...string) []byte {
	m := kmsg.NewConsumerMemberMetadata()
	m.Topics = topics
	return m.AppendTo(nil)
}

func joinReq(group, member string, instance *string, version int16, protocols ...string) *kmsg.JoinGroupRequest {
	r := kmsg.NewPtrJoinGroupRequest()
	r.Version, r.Group, r.MemberID, r.InstanceID = version, group, member, instance
	r.SessionTimeoutMillis, r.RebalanceTimeoutMillis = 10_000, 60_000
	r.ProtocolType = "consumer"
	if len(protocols) == 0 {
		protocols = []string{"range"}
	}
	for _, p := range protocols {
		r.Protocols = append(r.Protocols, kmsg.JoinGroupRequestProtocol{Name: p, Metadata: subscription("t")})
	}
	return r
}

// join sends a JoinGroup and returns where its answer will come.
func (h *harness) join(req *kmsg.JoinGroupRequest) chan *kmsg.JoinGroupResponse {
	ch := make(chan *kmsg.JoinGroupResponse, 1)
	h.co.joinGroup(h.c, req, func(r kmsg.Response) { ch <- r.(*kmsg.JoinGroupResponse) })
	return ch
}

func (h *harness) sync(req *kmsg.SyncGroupRequest) chan *kmsg.SyncGroupResponse {
	ch := make(chan *kmsg.SyncGroupResponse, 1)
	h.co.syncGroup(h.c, req, func(r kmsg.Response) { ch <- r.(*kmsg.SyncGroupResponse) })
	return ch
}

// got returns an answer that must have come already (the group settled).
func got[T any](t *testing.T, ch chan T) T {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(10 * time.Second): // a deadline, not a timing assertion
		t.Fatal("no answer")
		panic("unreachable")
	}
}

// none checks that a settled group has not answered.
func none[T any](t *testing.T, ch chan T) {
	t.Helper()
	select {
	case r := <-ch:
		t.Fatalf("unexpected answer %+v", r)
	default:
	}
}

func code(t *testing.T, what string, have, want int16) {
	t.Helper()
	if have != want {
		t.Fatalf("%s: error %v, want %v", what, kerr.ErrorForCode(have), kerr.ErrorForCode(want))
	}
}

// joinNew does the v4+ two-step join of a new dynamic member and returns
// its member id and the channel of its second join.
func (h *harness) joinNew(group string) (string, chan *kmsg.JoinGroupResponse) {
	h.t.Helper()
	r := got(h.t, h.join(joinReq(group, "", nil, 9)))
	code(h.t, "first join", r.ErrorCode, kerr.MemberIDRequired.Code)
	if r.MemberID == "" {
		h.t.Fatal("no member id with MEMBER_ID_REQUIRED")
	}
	return r.MemberID, h.join(joinReq(group, r.MemberID, nil, 9))
}

func syncReq(group, member string, gen int32, assign map[string]string) *kmsg.SyncGroupRequest {
	r := kmsg.NewPtrSyncGroupRequest()
	r.Version, r.Group, r.MemberID, r.Generation = 5, group, member, gen
	for id, a := range assign {
		r.GroupAssignment = append(r.GroupAssignment, kmsg.SyncGroupRequestGroupAssignment{MemberID: id, MemberAssignment: []byte(a)})
	}
	return r
}

func (h *harness) heartbeat(group, member string, gen int32) int16 {
	r := kmsg.NewPtrHeartbeatRequest()
	r.Version, r.Group, r.MemberID, r.Generation = 4, group, member, gen
	return h.co.heartbeat(h.c, r).ErrorCode
}

// stableTwo builds a stable group of two dynamic members: leader a, follower b.
func (h *harness) stableTwo(group string) (a, b string, gen int32) {
	h.t.Helper()
	a, ja := h.joinNew(group)
	b, jb := h.joinNew(group)
	h.settle(group)
	none(h.t, ja)
	h.advance(group, 3*time.Second) // the initial rebalance delay, extended once as b came during it
	none(h.t, ja)
	h.advance(group, 3*time.Second)
	ra, rb := got(h.t, ja), got(h.t, jb)
	code(h.t, "join a", ra.ErrorCode, 0)
	code(h.t, "join b", rb.ErrorCode, 0)
	if ra.LeaderID != a || rb.LeaderID != a || ra.Generation != 1 || rb.Generation != 1 || len(ra.Members) != 2 || len(rb.Members) != 0 || *ra.Protocol != "range" {
		h.t.Fatalf("join answers: %+v / %+v", ra, rb)
	}
	sb := h.sync(syncReq(group, b, 1, nil))
	h.settle(group)
	none(h.t, sb)
	sa := got(h.t, h.sync(syncReq(group, a, 1, map[string]string{a: "for-a", b: "for-b"})))
	if string(sa.MemberAssignment) != "for-a" || string(got(h.t, sb).MemberAssignment) != "for-b" {
		h.t.Fatalf("assignments: %q", sa.MemberAssignment)
	}
	return a, b, 1
}

func TestKafkaGroupJoinSyncHeartbeat(t *testing.T) {
	h := newHarness(t, groupConfig{})
	a, b, gen := h.stableTwo("g")
	code(t, "heartbeat", h.heartbeat("g", a, gen), 0)
	code(t, "old generation", h.heartbeat("g", b, gen-1), kerr.IllegalGeneration.Code)
	code(t, "unknown member", h.heartbeat("g", "nobody", gen), kerr.UnknownMemberID.Code)
	code(t, "unknown group", h.heartbeat("other", a, gen), kerr.UnknownMemberID.Code)
	// A follower's sync in a stable group gets its assignment again.
	if r := got(t, h.sync(syncReq("g", b, gen, nil))); r.ErrorCode != 0 || string(r.MemberAssignment) != "for-b" {
		t.Fatalf("stable sync: %+v", r)
	}
	code(t, "sync of an old generation", got(t, h.sync(syncReq("g", b, 7, nil))).ErrorCode, kerr.IllegalGeneration.Code)
}

func TestKafkaGroupJoinValidation(t *testing.T) {
	h := newHarness(t, groupConfig{})
	r := joinReq("g", "", nil, 9)
	r.SessionTimeoutMillis = 1000
	code(t, "short session", got(t, h.join(r)).ErrorCode, kerr.InvalidSessionTimeout.Code)
	r.SessionTimeoutMillis = 2 * 3600 * 1000
	code(t, "long session", got(t, h.join(r)).ErrorCode, kerr.InvalidSessionTimeout.Code)
	r = joinReq("g", "", nil, 9)
	r.Protocols = nil
	code(t, "no protocols", got(t, h.join(r)).ErrorCode, kerr.InconsistentGroupProtocol.Code)
	code(t, "empty group id", got(t, h.join(joinReq("", "", nil, 9))).ErrorCode, kerr.InvalidGroupID.Code)
	h.c.groupAllowed = func(g string) bool { return g != "secret" }
	code(t, "no permission", got(t, h.join(joinReq("secret", "", nil, 9))).ErrorCode, kerr.GroupAuthorizationFailed.Code)

	// Protocols must be common to all members.
	h.joinNew("g")
	other := joinReq("g", "", nil, 9, "roundrobin")
	code(t, "no common protocol", got(t, h.join(other)).ErrorCode, kerr.InconsistentGroupProtocol.Code)
	other = joinReq("g", "", nil, 9)
	other.ProtocolType = "connect"
	code(t, "other protocol type", got(t, h.join(other)).ErrorCode, kerr.InconsistentGroupProtocol.Code)
	// v3 and before join at once, without MEMBER_ID_REQUIRED.
	old := h.join(joinReq("g", "", nil, 3, "roundrobin", "range"))
	h.advance("g", 3*time.Second)
	h.advance("g", 3*time.Second)
	if r := got(t, old); r.ErrorCode != 0 || r.MemberID == "" || *r.Protocol != "range" {
		t.Fatalf("v3 join: %+v", r)
	}
}

// The protocol most members prefer among those all support wins.
func TestKafkaGroupProtocolVote(t *testing.T) {
	h := newHarness(t, groupConfig{InitialRebalanceDelay: -1})
	j1 := h.join(joinReq("g", "", nil, 3, "range", "sticky"))
	h.settle("g")
	// With no delay the first member's join completes at once.
	r1 := got(t, j1)
	if *r1.Protocol != "range" {
		t.Fatalf("first: %+v", r1)
	}
	j2 := h.join(joinReq("g", "", nil, 3, "sticky", "range"))
	j3 := h.join(joinReq("g", "", nil, 3, "sticky", "range"))
	j1 = h.join(joinReq("g", r1.MemberID, nil, 3, "range", "sticky"))
	h.settle("g")
	r := got(t, j1)
	got(t, j2)
	got(t, j3)
	if *r.Protocol != "sticky" || r.Generation != 2 || len(r.Members) != 3 {
		t.Fatalf("vote: %+v", r)
	}
}

func TestKafkaGroupRebalanceOnJoinAndLeaderRejoin(t *testing.T) {
	h := newHarness(t, groupConfig{})
	a, b, gen := h.stableTwo("g")
	// A follower rejoining unchanged gets the current generation back.
	if r := got(t, h.join(joinReq("g", b, nil, 9))); r.ErrorCode != 0 || r.Generation != gen {
		t.Fatalf("follower rejoin: %+v", r)
	}
	// A third member: everybody rejoins.
	c, jc := h.joinNew("g")
	code(t, "heartbeat during the rebalance", h.heartbeat("g", a, gen), kerr.RebalanceInProgress.Code)
	ja := h.join(joinReq("g", a, nil, 9))
	h.settle("g")
	none(t, jc)
	jb := h.join(joinReq("g", b, nil, 9))
	h.settle("g")
	ra, rb, rc := got(t, ja), got(t, jb), got(t, jc)
	if ra.Generation != gen+1 || rb.Generation != gen+1 || rc.Generation != gen+1 || ra.LeaderID != a || len(ra.Members) != 3 {
		t.Fatalf("second generation: %+v %+v %+v", ra, rb, rc)
	}
	gen++
	// A sync of the new generation before the leader's waits; the leader's
	// rejoin (a cooperative client's second rebalance) tells it to rejoin.
	sc := h.sync(syncReq("g", c, gen, nil))
	got(t, h.sync(syncReq("g", a, gen, map[string]string{a: "1", b: "2", c: "3"})))
	if r := got(t, sc); string(r.MemberAssignment) != "3" {
		t.Fatalf("sync c: %+v", r)
	}
	changed := joinReq("g", a, nil, 9)
	changed.Protocols[0].Metadata = subscription("t", "u")
	ja = h.join(changed)
	h.settle("g")
	none(t, ja)
	code(t, "b's heartbeat", h.heartbeat("g", b, gen), kerr.RebalanceInProgress.Code)
	code(t, "sync during the join phase", got(t, h.sync(syncReq("g", b, gen, nil))).ErrorCode, kerr.RebalanceInProgress.Code)
	jb = h.join(joinReq("g", b, nil, 9))
	jc = h.join(joinReq("g", c, nil, 9))
	h.settle("g")
	if r := got(t, ja); r.Generation != gen+1 {
		t.Fatalf("third generation: %+v", r)
	}
	got(t, jb)
	got(t, jc)
}

func TestKafkaGroupSessionExpiry(t *testing.T) {
	h := newHarness(t, groupConfig{})
	a, b, gen := h.stableTwo("g")
	for range 2 { // a heartbeats every 4 s; b's 10 s session runs out at 10 s
		h.advance("g", 4*time.Second)
		code(t, "a's heartbeat", h.heartbeat("g", a, gen), 0)
	}
	h.advance("g", 4*time.Second)
	code(t, "a's heartbeat after b expired", h.heartbeat("g", a, gen), kerr.RebalanceInProgress.Code)
	if r := got(t, h.join(joinReq("g", a, nil, 9))); r.ErrorCode != 0 || r.Generation != gen+1 || len(r.Members) != 1 {
		t.Fatalf("rejoin alone: %+v", r)
	}
	code(t, "b's heartbeat", h.heartbeat("g", b, gen), kerr.UnknownMemberID.Code)
	gen++
	got(t, h.sync(syncReq("g", a, gen, map[string]string{a: "all"})))
	// A member given an id with MEMBER_ID_REQUIRED that never comes back
	// holds a join phase up for its session timeout at most.
	code(t, "first step", got(t, h.join(joinReq("g", "", nil, 9))).ErrorCode, kerr.MemberIDRequired.Code)
	ja := h.join(joinReq("g", a, nil, 9)) // the leader rejoins: a join phase
	h.settle("g")
	none(t, ja)
	h.advance("g", 10*time.Second)
	if r := got(t, ja); r.ErrorCode != 0 || r.Generation != gen+1 || len(r.Members) != 1 {
		t.Fatalf("join after the pending member expired: %+v", r)
	}
}

// Members that do not rejoin within the rebalance timeout are dropped.
func TestKafkaGroupRebalanceTimeout(t *testing.T) {
	h := newHarness(t, groupConfig{})
	a, b, gen := h.stableTwo("g")
	changed := joinReq("g", a, nil, 9)
	changed.Protocols[0].Metadata = subscription("t", "u")
	ja := h.join(changed)
	for range 11 { // b keeps its session but never rejoins; 60 s rebalance timeout
		h.advance("g", 6*time.Second)
		h.heartbeat("g", b, gen)
	}
	r := got(t, ja)
	if r.ErrorCode != 0 || r.Generation != gen+1 || len(r.Members) != 1 {
		t.Fatalf("join after the rebalance timeout: %+v", r)
	}
	code(t, "b", h.heartbeat("g", b, gen), kerr.UnknownMemberID.Code)
	// A leader that never syncs: after the rebalance timeout the members
	// that did not sync are removed.
	h.advance("g", 61*time.Second)
	code(t, "a never synced", h.heartbeat("g", a, gen+1), kerr.UnknownMemberID.Code)
}

// The initial delay waits for more members while they keep coming.
func TestKafkaGroupInitialDelayExtends(t *testing.T) {
	h := newHarness(t, groupConfig{})
	_, ja := h.joinNew("g")
	h.advance("g", 2*time.Second)
	_, jb := h.joinNew("g")
	h.advance("g", 1*time.Second) // first delay over, but b arrived: another 3 s
	none(t, ja)
	h.advance("g", 3*time.Second)
	if ra, rb := got(t, ja), got(t, jb); ra.Generation != 1 || rb.Generation != 1 || len(ra.Members) != 2 {
		t.Fatalf("joins: %+v %+v", ra, rb)
	}
}

func TestKafkaGroupStaticMembership(t *testing.T) {
	h := newHarness(t, groupConfig{})
	inst := kmsg.StringPtr("instance-1")
	ja := h.join(joinReq("g", "", inst, 9)) // static members need no MEMBER_ID_REQUIRED
	h.advance("g", 3*time.Second)
	ra := got(t, ja)
	code(t, "static join", ra.ErrorCode, 0)
	s := syncReq("g", ra.MemberID, ra.Generation, map[string]string{ra.MemberID: "mine"})
	s.InstanceID = inst
	got(t, h.sync(s))
	// The consumer restarts: same instance id, no member id.
	r2 := got(t, h.join(joinReq("g", "", inst, 9)))
	if r2.ErrorCode != 0 || r2.MemberID == ra.MemberID || r2.Generation != ra.Generation || !r2.SkipAssignment {
		t.Fatalf("static rejoin: %+v (first %+v)", r2, ra)
	}
	s = syncReq("g", r2.MemberID, r2.Generation, nil)
	s.InstanceID = inst
	if r := got(t, h.sync(s)); string(r.MemberAssignment) != "mine" {
		t.Fatalf("assignment kept: %+v", r)
	}
	hb := kmsg.NewPtrHeartbeatRequest()
	hb.Version, hb.Group, hb.MemberID, hb.Generation, hb.InstanceID = 4, "g", ra.MemberID, ra.Generation, inst
	code(t, "old member id", h.co.heartbeat(h.c, hb).ErrorCode, kerr.FencedInstanceID.Code)
	// Leaving by instance id.
	l := kmsg.NewPtrLeaveGroupRequest()
	l.Version, l.Group = 5, "g"
	l.Members = []kmsg.LeaveGroupRequestMember{{InstanceID: inst}, {MemberID: "nobody"}}
	lr := h.co.leaveGroup(h.c, l)
	if len(lr.Members) != 2 || lr.Members[0].ErrorCode != 0 || lr.Members[1].ErrorCode != kerr.UnknownMemberID.Code {
		t.Fatalf("leave: %+v", lr)
	}
	hb.MemberID = r2.MemberID
	code(t, "after leaving", h.co.heartbeat(h.c, hb).ErrorCode, kerr.UnknownMemberID.Code)
}

func TestKafkaGroupLeave(t *testing.T) {
	h := newHarness(t, groupConfig{})
	a, b, gen := h.stableTwo("g")
	l := kmsg.NewPtrLeaveGroupRequest()
	l.Version, l.Group, l.MemberID = 1, "g", b
	code(t, "v1 leave", h.co.leaveGroup(h.c, l).ErrorCode, 0)
	code(t, "v1 leave again", h.co.leaveGroup(h.c, l).ErrorCode, kerr.UnknownMemberID.Code)
	code(t, "a", h.heartbeat("g", a, gen), kerr.RebalanceInProgress.Code)
	l.Group = "unknown"
	code(t, "unknown group", h.co.leaveGroup(h.c, l).ErrorCode, kerr.UnknownMemberID.Code)
}

// Closing the coordinator answers the requests waiting on a group.
func TestKafkaGroupCloseAnswersWaiting(t *testing.T) {
	h := newHarness(t, groupConfig{})
	_, ja := h.joinNew("g")
	h.settle("g")
	h.co.close()
	code(t, "waiting join", got(t, ja).ErrorCode, kerr.CoordinatorNotAvailable.Code)
	code(t, "join after close", got(t, h.join(joinReq("g", "", nil, 9))).ErrorCode, kerr.CoordinatorNotAvailable.Code)
}

func TestKafkaGroupDescribeListDelete(t *testing.T) {
	h := newHarness(t, groupConfig{})
	a, b, _ := h.stableTwo("g")
	if err := h.b.CommitOffsets("/", "idle", []broker.CommittedOffset{{StreamPartition: broker.StreamPartition{Stream: "t"}, Offset: 3}}); err != nil {
		t.Fatal(err)
	}
	d := kmsg.NewPtrDescribeGroupsRequest()
	d.Version, d.Groups = 6, []string{"g", "idle", "none"}
	dr := h.co.describeGroups(h.c, d)
	g := dr.Groups[0]
	if g.State != "Stable" || g.Protocol != "range" || g.ProtocolType != "consumer" || len(g.Members) != 2 || g.Members[0].MemberID != a || string(g.Members[1].MemberAssignment) != "for-b" {
		t.Fatalf("describe g: %+v", g)
	}
	if dr.Groups[1].State != "Empty" || dr.Groups[1].ErrorCode != 0 || dr.Groups[2].ErrorCode != kerr.GroupIDNotFound.Code || dr.Groups[2].State != "Dead" {
		t.Fatalf("describe others: %+v", dr.Groups[1:])
	}
	l := kmsg.NewPtrListGroupsRequest()
	l.Version = 5
	if lr := h.co.listGroups(h.c, l); len(lr.Groups) != 2 || lr.Groups[0].Group != "g" || lr.Groups[0].GroupState != "Stable" || lr.Groups[1].Group != "idle" {
		t.Fatalf("list: %+v", lr.Groups)
	}
	l.StatesFilter = []string{"empty"}
	if lr := h.co.listGroups(h.c, l); len(lr.Groups) != 1 || lr.Groups[0].Group != "idle" {
		t.Fatalf("list empty: %+v", lr.Groups)
	}
	l.StatesFilter, l.TypesFilter = nil, []string{"consumer"}
	if lr := h.co.listGroups(h.c, l); len(lr.Groups) != 0 {
		t.Fatalf("list of the new protocol's groups: %+v", lr.Groups)
	}
	del := kmsg.NewPtrDeleteGroupsRequest()
	del.Version, del.Groups = 2, []string{"g", "idle", "none"}
	rs := h.co.deleteGroups(h.c, del).Groups
	code(t, "delete live", rs[0].ErrorCode, kerr.NonEmptyGroup.Code)
	code(t, "delete idle", rs[1].ErrorCode, 0)
	code(t, "delete none", rs[2].ErrorCode, kerr.GroupIDNotFound.Code)
	if g := h.b.OffsetGroups("/"); len(g) != 0 {
		t.Fatalf("offsets of the deleted group: %v", g)
	}
	if c := commitCodes(h.co.offsetCommit(h.c, commitReq("g", a, 1, "t", 0))); c[0] != 0 {
		t.Fatalf("commit: %v", c)
	}
	lv := kmsg.NewPtrLeaveGroupRequest()
	lv.Version, lv.Group = 3, "g"
	lv.Members = []kmsg.LeaveGroupRequestMember{{MemberID: a}, {MemberID: b}}
	h.co.leaveGroup(h.c, lv)
	h.settle("g")
	// The emptied group's goroutine has ended; its offsets remain.
	if gi := h.b.Groups("/"); len(gi) != 1 || gi[0].Name != "g" || gi[0].State != "Empty" {
		t.Fatalf("emptied group: %+v", gi)
	}
	del.Groups = []string{"g"}
	code(t, "delete emptied", h.co.deleteGroups(h.c, del).Groups[0].ErrorCode, 0)
	code(t, "delete again", h.co.deleteGroups(h.c, del).Groups[0].ErrorCode, kerr.GroupIDNotFound.Code)
	// A deleted group's name is free for a new group.
	_, j := h.joinNew("g")
	h.advance("g", 3*time.Second)
	if r := got(t, j); r.Generation != 1 {
		t.Fatalf("new group: %+v", r)
	}
	if gi := h.b.Groups("/"); len(gi) != 1 || gi[0].Name != "g" || len(gi[0].Members) != 1 {
		t.Fatalf("management view: %+v", gi)
	}
}
