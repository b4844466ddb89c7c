package broker

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"

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
// declared again under that name never sees them.
func (b *Broker) recoverMessages() error {
	n := 0
	orphans := map[[2]string]bool{}
	err := b.store.Recover(func(rec store.MessageRecord, delivered bool) (bool, error) {
		var q *Queue
		if v, ok := b.VHost(rec.VHost); ok {
			q, _ = v.Queue(rec.Queue)
		}
		if q == nil || !q.Durable {
			orphans[[2]string{rec.VHost, rec.Queue}] = true
			return false, nil
		}
		n++
		if n%1_000_000 == 0 {
			b.log.Info("recovering messages", "recovered", n)
		}
		// Beyond the queue's window the message stays in the store's tail:
		// a restart with a long backlog builds no Message for it.
		if q.recoverTail(rec) {
			return true, nil
		}
		m, err := b.recoveredMessage(rec)
		if err != nil {
			return false, fmt.Errorf("message %d of queue %q: %w", rec.ID, rec.Queue, err)
		}
		q.restore(m, rec.ID, delivered)
		return false, nil
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

// record returns the message encoded for the store, built once per message:
// exchange and routing key (uvarint length-prefixed), properties, body.
func (m *Message) record() []byte {
	if r := m.rec.Load(); r != nil {
		return *r
	}
	body := *m.body.Load() // records are built when a message is enqueued, before any paging
	b := make([]byte, 0, 16+len(m.Exchange)+len(m.RoutingKey)+len(m.Props)+len(body))
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

// splitRecord splits an encoded message record into exchange, routing key,
// properties and body, aliasing b.
func splitRecord(b []byte) (parts [3][]byte, body []byte, err error) {
	for i := range parts {
		n, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < n {
			return parts, nil, errors.New("corrupt message record")
		}
		parts[i] = b[k : k+int(n)]
		b = b[k+int(n):]
	}
	return parts, b, nil
}

// recoveredMessage rebuilds a message from its record at boot. The body stays
// on disk, in the queue's own record, and is read back on delivery: a restart
// with a long backlog costs neither the time to copy every body nor the memory.
func (b *Broker) recoveredMessage(rec store.MessageRecord) (*Message, error) {
	parts, body, err := splitRecord(rec.Data)
	if err != nil {
		return nil, err
	}
	m, err := NewMessage(string(parts[0]), string(parts[1]), append([]byte(nil), parts[2]...), nil)
	if err != nil {
		return nil, err
	}
	m.BodySize = len(body)
	m.body.Store(nil)
	m.page = pageState{id: rec.ID, vhost: rec.VHost, queue: rec.Queue, broker: b}
	m.page.bits.Store(pageIssued | pageAppended | pageDropped)
	return m, nil
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
