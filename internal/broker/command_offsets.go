package broker

import (
	"cmp"
	"slices"
	"sync"
	"time"

	"github.com/warren-mq/warren/internal/amqp091"
)

// Committed offsets: how far a named group of consumers has got in each
// partition of a stream. Kafka consumer groups commit them (OffsetCommit),
// and AMQP stream consumers can track theirs under a consumer name the same
// way, so nothing here is Kafka's. They are durable metadata: one command per
// commit request, so a request's offsets survive a crash together or not at
// all, and the snapshot carries them through log compaction.
//
// Field tags are part of the on-disk format (see command.go): never reuse one.

func init() {
	registerCommand(cmdCommitOffsets, func() command { return &commitOffsetsCmd{} })
	registerCommand(cmdDeleteOffsets, func() command { return &deleteOffsetsCmd{} })
}

// StreamPartition names one partition of a stream (a Kafka topic partition;
// partition 0 of a plain stream queue).
type StreamPartition struct {
	Stream    string
	Partition int32
}

// CommittedOffset is where a group has got to in one partition: the next
// offset it will read, as Kafka commits it.
type CommittedOffset struct {
	StreamPartition
	Offset int64
	// LeaderEpoch is the epoch of the record before Offset as the client
	// saw it, or -1: kept and returned, not interpreted.
	LeaderEpoch int32
	// Metadata is the client's opaque string.
	Metadata string
	// CommitTime is when the broker accepted the commit.
	CommitTime time.Time
}

// offsetTable holds the committed offsets of every group. Its mutex is a
// leaf: nothing else is locked under it and nothing calls out holding it.
type offsetTable struct {
	mu     sync.RWMutex
	groups map[groupKey]map[StreamPartition]CommittedOffset
}

type groupKey struct{ vhost, group string }

// offsetEntry is one committed offset as a command carries it.
type offsetEntry struct {
	Stream      string
	Partition   int64
	Offset      int64
	LeaderEpoch int64
	Metadata    string
}

func (e *offsetEntry) fields() []field {
	return []field{{2, &e.Stream}, {4, &e.Partition}, {6, &e.Offset}, {8, &e.LeaderEpoch}, {10, &e.Metadata}}
}

// offsetEntries is a repeated field of offset entries (see records).
type offsetEntries []offsetEntry

func (es *offsetEntries) len() int           { return len(*es) }
func (es *offsetEntries) elem(i int) []field { return (*es)[i].fields() }
func (es *offsetEntries) grow() []field {
	*es = append(*es, offsetEntry{})
	return (*es)[len(*es)-1].fields()
}

// commitOffsetsCmd records one commit request's offsets for a group.
type commitOffsetsCmd struct {
	VHost, Group string
	TimeMs       int64 // commit time, chosen by the committer so replay gives the same
	Entries      offsetEntries
}

func (c *commitOffsetsCmd) typ() cmdType { return cmdCommitOffsets }

func (c *commitOffsetsCmd) fields() []field {
	return []field{{2, &c.VHost}, {4, &c.Group}, {6, &c.TimeMs}, {8, &c.Entries}}
}

func (c *commitOffsetsCmd) apply(a *applier) (any, error) {
	if _, ok := a.b.VHost(c.VHost); !ok {
		return nil, amqp091.NewError(amqp091.NotFound, "no vhost '%s'", c.VHost)
	}
	t := &a.b.offsets
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.groups == nil {
		t.groups = map[groupKey]map[StreamPartition]CommittedOffset{}
	}
	k := groupKey{c.VHost, c.Group}
	g := t.groups[k]
	if g == nil {
		g = map[StreamPartition]CommittedOffset{}
		t.groups[k] = g
	}
	at := time.UnixMilli(c.TimeMs)
	for _, e := range c.Entries {
		sp := StreamPartition{e.Stream, int32(e.Partition)}
		g[sp] = CommittedOffset{StreamPartition: sp, Offset: e.Offset, LeaderEpoch: int32(e.LeaderEpoch), Metadata: e.Metadata, CommitTime: at}
	}
	return nil, nil
}

// deleteOffsetsCmd forgets a group's offsets: all of them, or those of the
// partitions listed (only their Stream and Partition are set).
type deleteOffsetsCmd struct {
	VHost, Group string
	All          bool
	Partitions   offsetEntries
}

func (c *deleteOffsetsCmd) typ() cmdType { return cmdDeleteOffsets }

func (c *deleteOffsetsCmd) fields() []field {
	return []field{{2, &c.VHost}, {4, &c.Group}, {6, &c.All}, {8, &c.Partitions}}
}

func (c *deleteOffsetsCmd) apply(a *applier) (any, error) {
	t := &a.b.offsets
	t.mu.Lock()
	defer t.mu.Unlock()
	k := groupKey{c.VHost, c.Group}
	g := t.groups[k]
	if g == nil {
		return nil, nil
	}
	if !c.All {
		for _, e := range c.Partitions {
			delete(g, StreamPartition{e.Stream, int32(e.Partition)})
		}
	}
	if c.All || len(g) == 0 {
		delete(t.groups, k)
	}
	return nil, nil
}

// forgetVHost drops the offsets of a deleted vhost's groups.
func (t *offsetTable) forgetVHost(vhost string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k := range t.groups {
		if k.vhost == vhost {
			delete(t.groups, k)
		}
	}
}

// CommitOffsets durably records offsets for a group in a vhost, all in one
// metadata command: after a crash either all of them are there or none.
// CommitTime is set by the broker.
func (b *Broker) CommitOffsets(vhost, group string, offsets []CommittedOffset) error {
	if _, ok := b.VHost(vhost); !ok {
		return amqp091.NewError(amqp091.NotFound, "no vhost '%s'", vhost)
	}
	c := &commitOffsetsCmd{VHost: vhost, Group: group, TimeMs: time.Now().UnixMilli(), Entries: make(offsetEntries, 0, len(offsets))}
	for _, o := range offsets {
		c.Entries = append(c.Entries, offsetEntry{Stream: o.Stream, Partition: int64(o.Partition), Offset: o.Offset, LeaderEpoch: int64(o.LeaderEpoch), Metadata: o.Metadata})
	}
	_, _, err := b.commit(c, true)
	return err
}

// DeleteOffsets durably forgets a group's offsets in the partitions given.
func (b *Broker) DeleteOffsets(vhost, group string, parts []StreamPartition) error {
	c := &deleteOffsetsCmd{VHost: vhost, Group: group, Partitions: make(offsetEntries, 0, len(parts))}
	for _, p := range parts {
		c.Partitions = append(c.Partitions, offsetEntry{Stream: p.Stream, Partition: int64(p.Partition)})
	}
	_, _, err := b.commit(c, true)
	return err
}

// DeleteOffsetGroup durably forgets all of a group's offsets (a deleted group).
func (b *Broker) DeleteOffsetGroup(vhost, group string) error {
	_, _, err := b.commit(&deleteOffsetsCmd{VHost: vhost, Group: group, All: true}, true)
	return err
}

// CommittedOffset returns a group's committed offset in one partition.
func (b *Broker) CommittedOffset(vhost, group string, sp StreamPartition) (CommittedOffset, bool) {
	b.offsets.mu.RLock()
	defer b.offsets.mu.RUnlock()
	o, ok := b.offsets.groups[groupKey{vhost, group}][sp]
	return o, ok
}

// CommittedOffsets returns a group's committed offsets, sorted by stream and
// partition; none for a group that never committed.
func (b *Broker) CommittedOffsets(vhost, group string) []CommittedOffset {
	b.offsets.mu.RLock()
	g := b.offsets.groups[groupKey{vhost, group}]
	out := make([]CommittedOffset, 0, len(g))
	for _, o := range g {
		out = append(out, o)
	}
	b.offsets.mu.RUnlock()
	slices.SortFunc(out, func(x, y CommittedOffset) int { return compareSP(x.StreamPartition, y.StreamPartition) })
	return out
}

// OffsetGroups returns the names of the vhost's groups that hold committed
// offsets, sorted.
func (b *Broker) OffsetGroups(vhost string) []string {
	b.offsets.mu.RLock()
	var out []string
	for k := range b.offsets.groups {
		if k.vhost == vhost {
			out = append(out, k.group)
		}
	}
	b.offsets.mu.RUnlock()
	slices.Sort(out)
	return out
}

func compareSP(x, y StreamPartition) int {
	if c := cmp.Compare(x.Stream, y.Stream); c != 0 {
		return c
	}
	return cmp.Compare(x.Partition, y.Partition)
}

// snapshotOffsets adds one commit command per group, groups sorted by vhost
// and name, offsets by stream and partition, each with its own commit time
// (a command per distinct time, in time order, keeps them exact).
func (b *Broker) snapshotOffsets(add func(command)) {
	b.offsets.mu.RLock()
	keys := make([]groupKey, 0, len(b.offsets.groups))
	for k := range b.offsets.groups {
		keys = append(keys, k)
	}
	b.offsets.mu.RUnlock()
	slices.SortFunc(keys, func(x, y groupKey) int {
		if c := cmp.Compare(x.vhost, y.vhost); c != 0 {
			return c
		}
		return cmp.Compare(x.group, y.group)
	})
	for _, k := range keys {
		if _, ok := b.VHost(k.vhost); !ok {
			continue
		}
		offs := b.CommittedOffsets(k.vhost, k.group)
		slices.SortStableFunc(offs, func(x, y CommittedOffset) int { return x.CommitTime.Compare(y.CommitTime) })
		var c *commitOffsetsCmd
		for _, o := range offs {
			if c == nil || c.TimeMs != o.CommitTime.UnixMilli() {
				if c != nil {
					add(c)
				}
				c = &commitOffsetsCmd{VHost: k.vhost, Group: k.group, TimeMs: o.CommitTime.UnixMilli()}
			}
			c.Entries = append(c.Entries, offsetEntry{Stream: o.Stream, Partition: int64(o.Partition), Offset: o.Offset, LeaderEpoch: int64(o.LeaderEpoch), Metadata: o.Metadata})
		}
		if c != nil {
			add(c)
		}
	}
}

// GroupInfo describes a consumer group for management: live groups as their
// coordinator (a front end) reports them, and groups known only by the
// offsets they committed.
type GroupInfo struct {
	VHost, Name string
	// State is Kafka's group state: "Empty", "PreparingRebalance",
	// "CompletingRebalance", "Stable" or "Dead".
	State string
	// ProtocolType is what kind of group it is ("consumer" for Kafka
	// consumers); Protocol is the assignor the members chose.
	ProtocolType, Protocol string
	Generation             int32
	Members                []GroupMemberInfo
}

// GroupMemberInfo is one member of a live group.
type GroupMemberInfo struct {
	ID, InstanceID, ClientID, ClientHost string
	// Assignment is the partitions the member was given, when the group's
	// protocol type lets the coordinator read them.
	Assignment []StreamPartition
}

// groupViews holds the front ends' group reporters. Its mutex is a leaf;
// reporters are called without it.
type groupViews struct {
	mu      sync.Mutex
	next    int
	sources map[int]func(vhost string) []GroupInfo
}

// RegisterGroupSource registers fn, which reports a front end's live groups
// in a vhost (sorted or not); the returned function unregisters it.
func (b *Broker) RegisterGroupSource(fn func(vhost string) []GroupInfo) (unregister func()) {
	g := &b.groupViews
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.sources == nil {
		g.sources = map[int]func(string) []GroupInfo{}
	}
	id := g.next
	g.next++
	g.sources[id] = fn
	return func() {
		g.mu.Lock()
		delete(g.sources, id)
		g.mu.Unlock()
	}
}

// Groups returns a vhost's consumer groups sorted by name: the live ones,
// and, as "Empty" groups with no members, those that only hold committed
// offsets. A group's committed offsets are CommittedOffsets(vhost, name).
func (b *Broker) Groups(vhost string) []GroupInfo {
	g := &b.groupViews
	g.mu.Lock()
	srcs := make([]func(string) []GroupInfo, 0, len(g.sources))
	for _, fn := range g.sources {
		srcs = append(srcs, fn)
	}
	g.mu.Unlock()
	var out []GroupInfo
	seen := map[string]bool{}
	for _, fn := range srcs {
		for _, gi := range fn(vhost) {
			if !seen[gi.Name] {
				seen[gi.Name] = true
				out = append(out, gi)
			}
		}
	}
	for _, name := range b.OffsetGroups(vhost) {
		if !seen[name] {
			out = append(out, GroupInfo{VHost: vhost, Name: name, State: "Empty"})
		}
	}
	slices.SortFunc(out, func(x, y GroupInfo) int { return cmp.Compare(x.Name, y.Name) })
	return out
}
