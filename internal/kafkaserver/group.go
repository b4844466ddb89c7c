package kafkaserver

import (
	"crypto/rand"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/warren-mq/warren/internal/broker"
)

// The group coordinator: Kafka's classic consumer-group protocol (JoinGroup,
// SyncGroup, Heartbeat, LeaveGroup) with its committed offsets kept by the
// broker as durable metadata. Eager and cooperative clients use the same
// protocol (cooperative rebalancing is the clients' business: they give up
// partitions and rejoin), so the coordinator needs no mode for them.
//
// Each group is one goroutine that owns all of the group's state and takes
// work from a mailbox (a mutex-protected slice and a 1-buffered signal, as
// the store's syncer does): requests, and ticks of the group's single timer,
// which is armed for the earliest deadline the group has (a session expiry,
// the end of a join phase, the initial rebalance delay, a sync that never
// came). Time comes from a groupClock, so tests drive it with a fake clock
// and nothing sleeps. A request that must wait (a join until the rebalance
// completes, a follower's sync until the leader's) leaves a reply function
// with the group and the group calls it later.
//
// Groups are not durable: after a restart members find their member ids
// unknown and rejoin, as after a coordinator move in Kafka. Committed
// offsets are durable (broker.CommitOffsets).

// groupClock is where the coordinator gets time; tests use a fake one.
type groupClock interface {
	Now() time.Time
	// AfterFunc calls f in its own goroutine after d.
	AfterFunc(d time.Duration, f func()) groupTimer
}

// groupTimer is a timer a groupClock made.
type groupTimer interface{ Stop() bool }

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }
func (realClock) AfterFunc(d time.Duration, f func()) groupTimer {
	return time.AfterFunc(d, f)
}

// groupConfig holds the coordinator's settings; zero values take Kafka's
// defaults (group.min.session.timeout.ms and so on).
type groupConfig struct {
	MinSessionTimeout     time.Duration // group.min.session.timeout.ms, 6 s
	MaxSessionTimeout     time.Duration // group.max.session.timeout.ms, 30 min
	InitialRebalanceDelay time.Duration // group.initial.rebalance.delay.ms, 3 s; negative: none
	MaxMetadataBytes      int           // offset.metadata.max.bytes, 4096
	MaxSize               int           // group.max.size, 0: unlimited
}

func (c *groupConfig) defaults() {
	if c.MinSessionTimeout == 0 {
		c.MinSessionTimeout = 6 * time.Second
	}
	if c.MaxSessionTimeout == 0 {
		c.MaxSessionTimeout = 30 * time.Minute
	}
	if c.InitialRebalanceDelay == 0 {
		c.InitialRebalanceDelay = 3 * time.Second
	}
	if c.InitialRebalanceDelay < 0 {
		c.InitialRebalanceDelay = 0
	}
	if c.MaxMetadataBytes == 0 {
		c.MaxMetadataBytes = 4096
	}
}

// groupCaller is what the coordinator knows of the client behind a request.
type groupCaller struct {
	vhost, clientID, clientHost string
	// groupAllowed and topicAllowed say whether the client may use a group
	// or read a topic (the vhost's permissions); nil allows everything.
	groupAllowed func(group string) bool
	topicAllowed func(topic string) bool
}

func (c *groupCaller) mayGroup(g string) bool { return c.groupAllowed == nil || c.groupAllowed(g) }
func (c *groupCaller) mayTopic(t string) bool { return c.topicAllowed == nil || c.topicAllowed(t) }

// coordinator holds the groups of one Kafka server.
type coordinator struct {
	b     *broker.Broker
	cfg   groupConfig
	clock groupClock
	log   *slog.Logger
	// partitionExists says whether a topic partition exists in a vhost
	// (commits to others are refused); nil accepts every partition.
	partitionExists func(vhost, topic string, partition int32) bool
	// unstableOffset says whether a transaction's offset commit for the
	// partition is pending (OffsetFetch with require_stable answers
	// UNSTABLE_OFFSET_COMMIT then); nil: never.
	unstableOffset func(vhost, group, topic string, partition int32) bool

	mu     sync.Mutex
	groups map[groupID]*group
	closed bool
	wg     sync.WaitGroup

	unregister func() // from the broker's group views
}

type groupID struct{ vhost, name string }

func newCoordinator(b *broker.Broker, cfg groupConfig, clock groupClock, log *slog.Logger) *coordinator {
	cfg.defaults()
	if clock == nil {
		clock = realClock{}
	}
	co := &coordinator{b: b, cfg: cfg, clock: clock, log: log, groups: map[groupID]*group{}}
	co.unregister = b.RegisterGroupSource(co.groupInfos)
	return co
}

// close stops every group; requests waiting on one are answered with
// COORDINATOR_NOT_AVAILABLE.
func (co *coordinator) close() {
	co.mu.Lock()
	if co.closed {
		co.mu.Unlock()
		return
	}
	co.closed = true
	groups := co.groups
	co.groups = map[groupID]*group{}
	co.mu.Unlock()
	co.unregister()
	for _, g := range groups {
		g.post(func() { g.kill() })
	}
	co.wg.Wait()
}

// lookup returns the live group, creating it if create is set.
func (co *coordinator) lookup(vhost, name string, create bool) *group {
	co.mu.Lock()
	defer co.mu.Unlock()
	id := groupID{vhost, name}
	if g := co.groups[id]; g != nil || !create || co.closed {
		return g
	}
	g := &group{co: co, vhost: vhost, name: name, sig: make(chan struct{}, 1),
		members: map[string]*member{}, pending: map[string]time.Time{}, static: map[string]string{}}
	g.publish()
	co.groups[id] = g
	co.wg.Add(1)
	go g.run()
	return g
}

// do runs fn on the group's goroutine (creating the group if create is set)
// and returns false if there is no such group. fn must arrange for its
// request to be answered. A group that was deleted meanwhile is replaced by
// a new one, as for a request that came after the deletion.
func (co *coordinator) do(vhost, name string, create bool, fn func(g *group)) bool {
	for {
		g := co.lookup(vhost, name, create)
		if g == nil {
			return false
		}
		if g.post(func() { fn(g) }) {
			return true
		}
	}
}

// drop forgets a dead group so that the next request makes a new one.
func (co *coordinator) drop(g *group) {
	co.mu.Lock()
	if co.groups[groupID{g.vhost, g.name}] == g {
		delete(co.groups, groupID{g.vhost, g.name})
	}
	co.mu.Unlock()
}

// groupState is Kafka's classic group state.
type groupState int

const (
	groupEmpty groupState = iota
	groupPreparingRebalance
	groupCompletingRebalance
	groupStable
	groupDead
)

func (s groupState) String() string {
	return [...]string{"Empty", "PreparingRebalance", "CompletingRebalance", "Stable", "Dead"}[s]
}

// group is one consumer group. Everything below the mailbox is owned by the
// group's goroutine.
type group struct {
	co          *coordinator
	vhost, name string

	mbMu   sync.Mutex
	mbox   []func()
	mbDone bool // the goroutine has ended: post refuses
	sig    chan struct{}

	// view is the group as management and ListGroups/DescribeGroups see it,
	// republished after every batch that changed something.
	view  atomic.Pointer[groupView]
	dirty bool

	state        groupState
	generation   int32
	protocolType string
	protocol     string
	leader       string
	members      map[string]*member
	pending      map[string]time.Time // member id given with MEMBER_ID_REQUIRED -> deadline of its rejoin
	static       map[string]string    // group.instance.id -> member id
	seq          int                  // members joined so far

	joinDeadline time.Time // PreparingRebalance: the join completes by then
	delayUntil   time.Time // initial rebalance delay: not before then
	delayLeft    time.Duration
	newJoiner    bool      // a member joined during the initial delay
	syncDeadline time.Time // CompletingRebalance: members that did not sync by then are removed

	timer   groupTimer
	timerAt time.Time
	later   []func() // answers to send after this batch (see answer)
}

// member is one member of a group.
type member struct {
	id, clientID, clientHost string
	seq                      int // join order: the first member leads
	instanceID               *string
	session, rebalance       time.Duration
	protocolType             string
	protocols                []kmsg.JoinGroupRequestProtocol
	assignment               []byte
	expires                  time.Time // session expiry, unless it waits for a join or sync

	joinReq   *kmsg.JoinGroupRequest // awaiting the end of the join phase
	joinReply func(kmsg.Response)
	syncReq   *kmsg.SyncGroupRequest // awaiting the leader's assignment
	syncReply func(kmsg.Response)
	synced    bool // sent SyncGroup in this generation
}

// post queues fn for the group's goroutine; false if the group has ended.
func (g *group) post(fn func()) bool {
	g.mbMu.Lock()
	if g.mbDone {
		g.mbMu.Unlock()
		return false
	}
	g.mbox = append(g.mbox, fn)
	g.mbMu.Unlock()
	select {
	case g.sig <- struct{}{}:
	default:
	}
	return true
}

func (g *group) run() {
	defer g.co.wg.Done()
	for range g.sig {
		g.mbMu.Lock()
		batch := g.mbox
		g.mbox = nil
		g.mbMu.Unlock()
		for _, fn := range batch {
			fn()
		}
		if g.state == groupDead {
			g.mbMu.Lock()
			g.mbDone = true
			rest := g.mbox
			g.mbox = nil
			g.mbMu.Unlock()
			for _, fn := range rest { // they find the group dead and answer so
				fn()
			}
			if g.timer != nil {
				g.timer.Stop()
			}
			g.co.drop(g)
			g.publish()
			g.flush()
			return
		}
		g.rearm()
		if g.dirty {
			g.publish()
		}
		g.flush()
		if g.retire() {
			return
		}
	}
}

// retire ends the goroutine of a group left with no members and nothing to
// do, so that a broker that saw many short-lived groups does not keep one
// goroutine for each; what remains of such a group is its committed offsets
// (an Empty group to DescribeGroups and ListGroups), and its next member
// starts it again. A group whose mailbox is not empty stays.
func (g *group) retire() bool {
	if g.state != groupEmpty || len(g.members)+len(g.pending) > 0 {
		return false
	}
	g.mbMu.Lock()
	idle := len(g.mbox) == 0
	if idle {
		g.mbDone = true
	}
	g.mbMu.Unlock()
	if !idle {
		return false
	}
	if g.timer != nil {
		g.timer.Stop()
	}
	g.co.drop(g)
	return true
}

// answer returns reply deferred to the end of the batch, after the group's
// snapshot is published: a client that got its answer sees the group as
// that answer left it (DescribeGroups, ListGroups).
func (g *group) answer(reply func(kmsg.Response)) func(kmsg.Response) {
	return func(r kmsg.Response) { g.later = append(g.later, func() { reply(r) }) }
}

func (g *group) flush() {
	later := g.later
	g.later = nil
	for _, fn := range later {
		fn()
	}
}

// kill ends the group (coordinator closing): waiting requests are answered
// COORDINATOR_NOT_AVAILABLE, as by a broker that stopped being coordinator.
func (g *group) kill() {
	for _, m := range g.members {
		g.failWaiting(m, kerr.CoordinatorNotAvailable.Code)
	}
	g.state = groupDead
}

// failWaiting answers m's waiting join and sync with code.
func (g *group) failWaiting(m *member, code int16) {
	if m.joinReply != nil {
		resp := m.joinReq.ResponseKind().(*kmsg.JoinGroupResponse)
		resp.ErrorCode = code
		resp.MemberID = m.id
		m.joinReply(resp)
		m.joinReq, m.joinReply = nil, nil
	}
	if m.syncReply != nil {
		resp := m.syncReq.ResponseKind().(*kmsg.SyncGroupResponse)
		resp.ErrorCode = code
		m.syncReply(resp)
		m.syncReq, m.syncReply = nil, nil
	}
}

// rearm points the group's timer at its earliest deadline.
func (g *group) rearm() {
	next := g.nextDeadline()
	if next.Equal(g.timerAt) {
		return
	}
	if g.timer != nil {
		g.timer.Stop()
		g.timer = nil
	}
	g.timerAt = next
	if next.IsZero() {
		return
	}
	d := next.Sub(g.co.clock.Now())
	g.timer = g.co.clock.AfterFunc(max(d, 0), func() { g.post(g.tick) })
}

func (g *group) nextDeadline() time.Time {
	var next time.Time
	consider := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	for _, m := range g.members {
		if m.joinReply == nil && m.syncReply == nil {
			consider(m.expires)
		}
	}
	for _, t := range g.pending {
		consider(t)
	}
	switch g.state {
	case groupPreparingRebalance:
		if !g.delayUntil.IsZero() {
			consider(g.delayUntil)
		} else {
			consider(g.joinDeadline)
		}
	case groupCompletingRebalance:
		consider(g.syncDeadline)
	}
	return next
}

// tick handles every deadline that has passed.
func (g *group) tick() {
	g.timerAt = time.Time{} // the timer fired: rearm anew
	g.timer = nil
	now := g.co.clock.Now()
	for id, t := range g.pending {
		if !t.After(now) {
			delete(g.pending, id)
			g.dirty = true
			g.maybeCompleteJoin()
		}
	}
	for _, m := range g.sortedMembers() {
		if m.joinReply == nil && m.syncReply == nil && !m.expires.After(now) {
			g.co.log.Info("Kafka group member's session expired", "group", g.name, "member", m.id)
			g.removeMember(m)
			g.memberGone()
		}
	}
	switch g.state {
	case groupPreparingRebalance:
		if !g.delayUntil.IsZero() {
			if g.delayUntil.After(now) {
				return
			}
			if g.newJoiner && g.delayLeft > 0 { // members still arriving: wait another delay
				d := min(g.co.cfg.InitialRebalanceDelay, g.delayLeft)
				g.delayLeft -= d
				g.newJoiner = false
				g.delayUntil = now.Add(d)
				return
			}
			g.delayUntil = time.Time{}
			g.completeJoin()
			return
		}
		if !g.joinDeadline.After(now) {
			g.completeJoin()
		}
	case groupCompletingRebalance:
		if !g.syncDeadline.IsZero() && !g.syncDeadline.After(now) {
			// Members that never sent SyncGroup are gone (Kafka's pending
			// sync timeout); the others rejoin.
			for _, m := range g.sortedMembers() {
				if !m.synced {
					g.removeMember(m)
				}
			}
			g.prepareRebalance("members did not sync in time")
		}
	}
}

// groupView is a group's published snapshot.
type groupView struct {
	state                  groupState
	protocolType, protocol string
	generation             int32
	leader                 string
	members                []memberView
	subscribed             map[string]bool // topics the members subscribe to (consumer protocol)
	nonEmpty               bool            // members or pending members
}

type memberView struct {
	id, clientID, clientHost string
	instanceID               *string
	metadata, assignment     []byte
}

// publish stores a snapshot of the group for readers outside its goroutine.
func (g *group) publish() {
	g.dirty = false
	v := &groupView{state: g.state, protocolType: g.protocolType, protocol: g.protocol, generation: g.generation,
		leader: g.leader, nonEmpty: len(g.members)+len(g.pending) > 0, subscribed: map[string]bool{}}
	for _, m := range g.sortedMembers() {
		mv := memberView{id: m.id, clientID: m.clientID, clientHost: m.clientHost, instanceID: m.instanceID, assignment: m.assignment}
		mv.metadata = m.metadataFor(g.protocol)
		if g.protocolType == "consumer" {
			for _, p := range m.protocols {
				var md kmsg.ConsumerMemberMetadata
				if md.ReadFrom(p.Metadata) == nil {
					for _, t := range md.Topics {
						v.subscribed[t] = true
					}
				}
			}
		}
		v.members = append(v.members, mv)
	}
	g.view.Store(v)
}

func (m *member) metadataFor(protocol string) []byte {
	for _, p := range m.protocols {
		if p.Name == protocol {
			return p.Metadata
		}
	}
	return nil
}

// newMemberID makes a member id as Kafka does: the client id (or the
// instance id of a static member) and a random UUID.
func newMemberID(clientID string, instanceID *string) string {
	prefix := clientID
	if instanceID != nil {
		prefix = *instanceID
	}
	var u [16]byte
	rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("%s-%x-%x-%x-%x-%x", prefix, u[0:4], u[4:6], u[6:8], u[8:10], u[10:])
}
