package broker

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync/atomic"
	"time"

	"github.com/warren-mq/warren/internal/amqp091"
	"github.com/warren-mq/warren/internal/store"
)

// Flags of format 1 metadata commands (store.MetaCommand.Flags).
const (
	flagDurable    = 1 << 0
	flagAutoDelete = 1 << 1
	flagInternal   = 1 << 2
)

// replay rebuilds durable metadata from the store's log, applying each
// command as it was applied when it was committed. An apply's error is part
// of that history (a binding whose queue had gone) and replays the same; a
// record that does not decode stops start-up, naming where it is. fresh
// reports a log with no commands of this format: a new data directory, or one
// from before users were recorded (format 1), which gets the defaults too.
func (b *Broker) replay() (fresh bool, err error) {
	recs, err := b.store.MetaLog()
	if err != nil {
		return false, fmt.Errorf("broker: reading metadata: %w", err)
	}
	fresh = true
	a := &applier{b: b, boot: true}
	for _, r := range recs {
		var c command
		if r.Legacy != nil {
			c, err = legacyCommand(*r.Legacy)
		} else {
			c, err = decodeCommand(r.Data)
			fresh = false
		}
		if err != nil {
			return false, fmt.Errorf("broker: metadata %s does not decode: %w; the data directory was written by a newer Warren or is damaged (see warren --help)", r.Where, err)
		}
		if c == nil {
			continue
		}
		if _, err := c.apply(a); err != nil {
			b.log.Debug("replayed metadata command failed as it did when committed", "where", r.Where, "err", err)
		}
	}
	b.store.SetMetaSnapshot(b.snapshot)
	return fresh, nil
}

// legacyCommand converts a format 1 command; nil for one with no effect.
func legacyCommand(c store.MetaCommand) (command, error) {
	args, err := decodeArgs(c.Args)
	if err != nil {
		return nil, err
	}
	bd := BindingDecl{Source: c.Name, Destination: c.Destination, ToExchange: c.ToExchange, Key: c.Key, Args: args}
	switch c.Op {
	case store.MetaDeclareVHost:
		return &putVHostCmd{Name: c.VHost}, nil
	case store.MetaDeleteVHost:
		return &deleteVHostCmd{Name: c.VHost}, nil
	case store.MetaDeclareExchange:
		return &declareExchangeCmd{VHost: c.VHost, Name: c.Name, Kind: c.Kind, Durable: c.Flags&flagDurable != 0, AutoDelete: c.Flags&flagAutoDelete != 0, Internal: c.Flags&flagInternal != 0, Args: args}, nil
	case store.MetaDeleteExchange:
		return &deleteExchangeCmd{VHost: c.VHost, Name: c.Name}, nil
	case store.MetaDeclareQueue:
		return &declareQueueCmd{VHost: c.VHost, Name: c.Name, Durable: c.Flags&flagDurable != 0, AutoDelete: c.Flags&flagAutoDelete != 0, Args: args}, nil
	case store.MetaDeleteQueue:
		return &deleteQueueCmd{VHost: c.VHost, Name: c.Name}, nil
	case store.MetaBind:
		return &bindCmd{VHost: c.VHost, BindingDecl: bd}, nil
	case store.MetaUnbind:
		return &unbindCmd{VHost: c.VHost, BindingDecl: bd}, nil
	case store.MetaPutUser, store.MetaDeleteUser:
		return nil, nil // format 1 never held users
	}
	return nil, fmt.Errorf("unknown format 1 operation %d", c.Op)
}

func decodeArgs(b []byte) (amqp091.Table, error) {
	if len(b) == 0 {
		return nil, nil
	}
	t, _, err := amqp091.DecodeTable(b)
	return t, err
}

// snapshot returns the durable metadata as commands that replay to it: the
// store compacts its log to this. Vhosts come first, then per vhost its
// exchanges, queues and bindings, each sorted by name so that equal states
// give equal logs.
func (b *Broker) snapshot() [][]byte {
	var out [][]byte
	add := func(c command) { out = append(out, encodeCommand(c)) }
	vhosts := b.VHosts()
	for _, v := range vhosts {
		add(v.putCommand())
	}
	b.snapshotAccess(add)
	b.snapshotPolicies(add)
	b.snapshotTxns(add)
	for _, v := range vhosts {
		v.snapshot(add)
	}
	b.snapshotTopicConfigs(add)
	b.snapshotOffsets(add)
	return out
}

// snapshot adds the vhost's durable exchanges, queues and bindings.
func (v *VHost) snapshot(add func(command)) {
	exchanges, queues, streams := v.Exchanges(), v.Queues(), v.Streams()
	v.mu.RLock()
	defer v.mu.RUnlock()
	for _, e := range exchanges {
		if e.Durable && !predeclared(e.Name) {
			add(&declareExchangeCmd{VHost: v.Name, Name: e.Name, Kind: e.Kind, Durable: true, AutoDelete: e.AutoDelete, Internal: e.Internal, Args: e.Args})
		}
	}
	for _, q := range queues {
		if q.Durable && !q.Exclusive {
			add(&declareQueueCmd{VHost: v.Name, Name: q.Name, Durable: true, AutoDelete: q.AutoDelete, Args: q.Args})
		}
	}
	for _, s := range streams {
		add(&declareQueueCmd{VHost: v.Name, Name: s.name, Durable: true, Args: s.Args})
	}
	for _, e := range exchanges {
		if !e.Durable {
			continue
		}
		for _, bd := range e.Bindings() {
			d := BindingDecl{Source: e.Name, Destination: bd.Destination, ToExchange: bd.ToExchange, Key: bd.Key, Args: bd.Args}
			if _, durable := v.durableEndsLocked(d); durable {
				add(&bindCmd{VHost: v.Name, BindingDecl: d})
			}
		}
	}
}

// durableEndsLocked reports whether both ends of d exist and are durable.
func (v *VHost) durableEndsLocked(d BindingDecl) (exists, durable bool) {
	src, ok := v.exchanges[d.Source]
	if !ok {
		return false, false
	}
	if d.ToExchange {
		dst, ok := v.exchanges[d.Destination]
		return ok, ok && src.Durable && dst.Durable
	}
	if _, ok := v.streams[d.Destination]; ok {
		return true, src.Durable // streams are always durable
	}
	q, ok := v.queues[d.Destination]
	return ok, ok && src.Durable && q.Durable && !q.Exclusive
}

// recoverMessages puts the store's live persistent messages back in their queues.
// Messages of a queue that no longer exists (deleted, and the crash came
// before the store had recorded their removal) are removed now, so a queue
// declared again under that name never sees them. A queue's backlog beyond
// its window comes back from the store in bulk (counts, bytes, highest ID),
// neither read nor built into Messages: a restart with 100 M queued messages
// reads about the window. A priority queue's records come under a store
// vhost name per priority level (levelKey).
func (b *Broker) recoverMessages() error {
	n := 0
	orphans := map[[2]string]bool{}
	queue := func(key, name string) (*Queue, int) {
		var q *Queue
		vhost, level := splitLevelKey(key)
		if v, ok := b.VHost(vhost); ok && level >= 0 {
			q, _ = v.Queue(name)
		}
		if q == nil || !q.Durable || level >= len(q.tail.lv) {
			orphans[[2]string{key, name}] = true
			return nil, 0
		}
		return q, level
	}
	count := func(k int) {
		if n += k; n/1_000_000 != (n-k)/1_000_000 {
			b.log.Info("recovering messages", "recovered", n)
		}
	}
	err := b.store.Recover(func(rec store.MessageRecord, delivered bool) (bool, error) {
		q, level := queue(rec.VHost, rec.Queue)
		if q == nil {
			return false, nil
		}
		count(1)
		// Beyond the queue's window the message stays in the store's tail:
		// a restart with a long backlog builds no Message for it.
		if q.recoverTail(rec, level) {
			return true, nil
		}
		m, enqueued, err := b.recoveredMessage(rec)
		if err != nil {
			return false, fmt.Errorf("message %d of queue %q: %w", rec.ID, rec.Queue, err)
		}
		q.restore(m, rec.ID, delivered, enqueued)
		return false, nil
	}, func(run store.TailRun) error {
		// Only after fn put one of the queue's records in the tail, so the
		// queue exists; an orphan's run goes with its DeleteQueue below.
		if q, level := queue(run.VHost, run.Queue); q != nil {
			count(run.Count)
			q.recoverTailRun(run, level)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("broker: recovering messages: %w", err)
	}
	for k := range orphans {
		if err := b.store.DeleteQueue(k[0], k[1]); err != nil {
			return fmt.Errorf("broker: dropping messages of deleted queue %q: %w", k[1], err)
		}
	}
	if len(orphans) > 0 {
		b.log.Info("dropped messages of queues deleted before the restart", "queues", len(orphans))
	}
	for _, v := range b.VHosts() {
		for _, q := range v.Queues() {
			q.recovered()
		}
	}
	if n > 0 {
		b.log.Info("recovered persistent messages", "messages", n)
	}
	return nil
}

// The message record: what the broker stores for a queued message
// (store.MessageRecord.Data, opaque to the store). Format 2, written since
// TTLs survive a restart:
//
//	0x80 0x00 | enqueued uvarint | exchange len uvarint | exchange |
//	routing key len uvarint | routing key | properties len uvarint |
//	properties (content-header flags + properties) | body
//
// enqueued is when the message was first enqueued (unix milliseconds): a
// message's TTL counts from it, also after a restart and for a backlog read
// back from disk. Format 1 is format 2 without the marker and the time; its
// first byte is the minimal uvarint of the exchange name's length (at most
// 255), so it never begins 0x80 0x00 (a non-minimal zero), which is how the
// two are told apart. A format 1 record (a data directory from before) counts
// as enqueued at the restart. Later formats may take other non-minimal
// zero-valued markers (0x81 0x00 ...).
const (
	recordMark0, recordMark1 = 0x80, 0x00
)

// record returns the message encoded for the store (format 2, above), built
// once per message, when it is first enqueued: the time in it is then.
func (m *Message) record() []byte {
	if r := m.rec.Load(); r != nil {
		return *r
	}
	body := *m.body.Load() // records are built when a message is enqueued, before any paging
	b := make([]byte, 0, 2+binary.MaxVarintLen64+16+len(m.Exchange)+len(m.RoutingKey)+len(m.Props)+len(body))
	b = append(b, recordMark0, recordMark1)
	b = binary.AppendUvarint(b, uint64(nowNano()/int64(time.Millisecond)))
	for _, s := range []string{m.Exchange, m.RoutingKey} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = binary.AppendUvarint(b, uint64(len(m.Props)))
	b = append(b, m.Props...)
	b = append(b, body...)
	m.rec.Store(&b)
	return b
}

// recordParts is a decoded message record; its slices alias the record.
type recordParts struct {
	// enqueued is the enqueue time in unix nanoseconds (to the
	// millisecond), 0 for a format 1 record, which has none.
	enqueued                          int64
	exchange, routingKey, props, body []byte
}

var errCorruptRecord = errors.New("corrupt message record")

// splitRecord decodes an encoded message record of either format, aliasing b.
func splitRecord(b []byte) (r recordParts, err error) {
	if len(b) >= 2 && b[0] == recordMark0 && b[1] == recordMark1 {
		ms, k := binary.Uvarint(b[2:])
		if k <= 0 || ms > math.MaxInt64/uint64(time.Millisecond) {
			return r, errCorruptRecord
		}
		r.enqueued = int64(ms) * int64(time.Millisecond)
		b = b[2+k:]
	}
	var parts [3][]byte
	for i := range parts {
		n, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < n {
			return r, errCorruptRecord
		}
		parts[i] = b[k : k+int(n)]
		b = b[k+int(n):]
	}
	r.exchange, r.routingKey, r.props, r.body = parts[0], parts[1], parts[2], b
	return r, nil
}

// recordLevel returns the priority level, of levels, of an encoded message
// record's message (0 for one that does not decode).
func recordLevel(data []byte, levels int) int {
	r, err := splitRecord(data)
	if err != nil {
		return 0
	}
	var s amqp091.PropertySummary
	if amqp091.SummarizeProperties(r.props, &s) != nil {
		return 0
	}
	return min(int(s.Priority), levels-1)
}

// recordBodyLen returns the body length of an encoded message record (either
// format), -1 for one that does not decode: what the store counts as a
// tail record's bytes, without the broker's framing around the body.
func recordBodyLen(data []byte) int64 {
	r, err := splitRecord(data)
	if err != nil {
		return -1
	}
	return int64(len(r.body))
}

// RecordBodyLen is the store.Options.Weigh the broker's store must be opened
// with: a message record's body length (0 for one that does not decode).
// Without it a backlog recovered in bulk counts whole records, not bodies,
// in its queue's byte totals.
func RecordBodyLen(data []byte) int64 { return max(recordBodyLen(data), 0) }

// enqueuedAt returns when a recovered record was enqueued, in unix
// nanoseconds: its own time, or for a format 1 record the broker's start.
func (b *Broker) enqueuedAt(r recordParts) int64 {
	if r.enqueued != 0 {
		return r.enqueued
	}
	return b.started
}

// recoveredMessage rebuilds a message from its record at boot, with the
// time it was enqueued (see enqueuedAt). The body stays on disk, in the
// queue's own record, and is read back on delivery: a restart with a long
// backlog costs neither the time to copy every body nor the memory.
func (b *Broker) recoveredMessage(rec store.MessageRecord) (m *Message, enqueued int64, err error) {
	r, err := splitRecord(rec.Data)
	if err != nil {
		return nil, 0, err
	}
	m, err = NewMessage(string(r.exchange), string(r.routingKey), append([]byte(nil), r.props...), nil)
	if err != nil {
		return nil, 0, err
	}
	m.BodySize = len(r.body)
	m.body.Store(nil)
	m.page = pageState{id: rec.ID, vhost: rec.VHost, queue: rec.Queue, broker: b}
	m.page.bits.Store(pageIssued | pageAppended | pageDropped)
	return m, b.enqueuedAt(r), nil
}

// durableWait collects the store appends one publish caused and reports once
// all are durable. ok is false if any queue refused the message or a write failed.
type durableWait struct {
	n      atomic.Int32
	failed atomic.Bool
	done   func(ok bool)
}

func (w *durableWait) add() { w.n.Add(1) }

func (w *durableWait) release(err error) {
	if err != nil {
		w.failed.Store(true)
	}
	if w.n.Add(-1) == 0 && w.done != nil {
		w.done(!w.failed.Load())
	}
}
