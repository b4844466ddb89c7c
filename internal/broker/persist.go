package broker

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/warren-mq/warren/internal/amqp091"
	"github.com/warren-mq/warren/internal/store"
)

// Metadata command flags.
const (
	flagDurable    = 1 << 0
	flagAutoDelete = 1 << 1
	flagInternal   = 1 << 2
)

// logMeta records a metadata change in the store, unless the broker is
// replaying the store's own log at boot.
func (b *Broker) logMeta(cmd store.MetaCommand) error {
	if b.replaying {
		return nil
	}
	if err := b.store.AppendMeta(cmd); err != nil {
		b.log.Error("cannot record metadata", "op", cmd.Op, "name", cmd.Name, "err", err)
		return amqp091.NewError(amqp091.InternalError, "cannot record metadata: %v", err)
	}
	return nil
}

func boolFlag(b bool, f uint8) uint8 {
	if b {
		return f
	}
	return 0
}

func encodeArgs(t amqp091.Table) []byte {
	if len(t) == 0 {
		return nil
	}
	return amqp091.AppendTable(nil, t)
}

func decodeArgs(b []byte) (amqp091.Table, error) {
	if len(b) == 0 {
		return nil, nil
	}
	t, _, err := amqp091.DecodeTable(b)
	return t, err
}

// bindingCommand is the metadata command for a binding between durable ends.
func bindingCommand(op store.MetaOp, vhost string, d BindingDecl) store.MetaCommand {
	return store.MetaCommand{Op: op, VHost: vhost, Name: d.Source, Destination: d.Destination, ToExchange: d.ToExchange, Key: d.Key, Args: encodeArgs(d.Args)}
}

// replay rebuilds durable metadata from the store's log.
func (b *Broker) replay() error {
	cmds, err := b.store.MetaLog()
	if err != nil {
		return fmt.Errorf("broker: reading metadata: %w", err)
	}
	b.replaying = true
	defer func() { b.replaying = false }()
	for _, c := range cmds {
		if err := b.apply(c); err != nil {
			return fmt.Errorf("broker: replaying %v %q: %w", c.Op, c.Name, err)
		}
	}
	return nil
}

func (b *Broker) apply(c store.MetaCommand) error {
	if c.Op == store.MetaDeclareVHost {
		b.AddVHost(c.VHost)
		return nil
	}
	v, ok := b.VHost(c.VHost)
	if !ok {
		return nil // commands of a vhost that is gone
	}
	args, err := decodeArgs(c.Args)
	if err != nil {
		return err
	}
	switch c.Op {
	case store.MetaDeclareExchange:
		_, err = v.DeclareExchange(ExchangeDecl{Name: c.Name, Kind: c.Kind, Durable: c.Flags&flagDurable != 0, AutoDelete: c.Flags&flagAutoDelete != 0, Internal: c.Flags&flagInternal != 0, Args: args})
	case store.MetaDeleteExchange:
		err = v.DeleteExchange(c.Name, false)
	case store.MetaDeclareQueue:
		_, _, _, err = v.DeclareQueue(QueueDecl{Name: c.Name, Durable: c.Flags&flagDurable != 0, AutoDelete: c.Flags&flagAutoDelete != 0, Args: args})
	case store.MetaDeleteQueue:
		_, err = v.DeleteQueue(c.Name, false, false, nil)
	case store.MetaBind:
		err = v.Bind(BindingDecl{Source: c.Name, Destination: c.Destination, ToExchange: c.ToExchange, Key: c.Key, Args: args}, nil)
	case store.MetaUnbind:
		err = v.Unbind(BindingDecl{Source: c.Name, Destination: c.Destination, ToExchange: c.ToExchange, Key: c.Key, Args: args}, nil)
	}
	var ae *amqp091.Error
	if errors.As(err, &ae) && ae.Code == amqp091.NotFound {
		return nil // e.g. a binding whose end was deleted
	}
	return err
}

// recoverMessages puts the store's live persistent messages back in their queues.
func (b *Broker) recoverMessages() error {
	n := 0
	err := b.store.Recover(func(rec store.MessageRecord, delivered bool) error {
		v, ok := b.VHost(rec.VHost)
		if !ok {
			return nil
		}
		q, ok := v.Queue(rec.Queue)
		if !ok {
			return nil
		}
		m, err := b.recoveredMessage(rec)
		if err != nil {
			return fmt.Errorf("message %d of queue %q: %w", rec.ID, rec.Queue, err)
		}
		q.restore(m, rec.ID, delivered)
		n++
		if n%1_000_000 == 0 {
			b.log.Info("recovering messages", "recovered", n)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("broker: recovering messages: %w", err)
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
