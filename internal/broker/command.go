package broker

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/warren-mq/warren/internal/amqp091"
)

// Every change to durable metadata goes through four steps (ARCHITECTURE.md):
// validate the client's request (its rules, its permissions: only there),
// build one fully resolved command (names chosen, no connection pointers),
// commit it to the store, apply it. Boot replay, and later a raft FSM, call
// only apply, which never re-checks client rules and is deterministic: the
// same log gives the same state, whatever the validators of the day say.
//
// A command is encoded as its type byte followed by fields, each
// tag uvarint | length uvarint | value (strings raw, bools one byte, integers
// zig-zag varints, tables in AMQP's field-table encoding, string lists one
// field per element). A decoder skips a field whose tag it does not know if
// the tag is odd (optional: added later, safe to ignore), and refuses the
// record if it is even (a newer Warren wrote something this one must not
// misread). Tags are never reused. See store/doc.go.

// cmdType identifies a command's encoding. Part of the on-disk format: never renumber.
type cmdType uint8

const (
	cmdPutVHost cmdType = iota + 1
	cmdDeleteVHost
	cmdPutUser
	cmdDeleteUser
	cmdDeclareExchange
	cmdDeleteExchange
	cmdDeclareQueue
	cmdDeleteQueue
	cmdBind
	cmdUnbind
	cmdSetPermission
	cmdClearPermission
	cmdSetTopicPermission
	cmdClearTopicPermission
	cmdSetPolicy
	cmdClearPolicy
	cmdSetParameter
	cmdClearParameter
	cmdSetVHostLimits
	cmdSetUserLimits
	cmdCommitOffsets
	cmdDeleteOffsets
	cmdReserveProducerIDs
	cmdPutTxn
	cmdDeleteTxn
	cmdSetTopicConfig
	cmdCreateTopic
)

// command is one resolved metadata change.
type command interface {
	// typ is the command's record type.
	typ() cmdType
	// fields lists the command's fields with their tags, each a pointer to
	// a string, bool, int64, []string or amqp091.Table: encoding reads
	// them, decoding fills them.
	fields() []field
	// apply makes the change. It is deterministic, checks no client rule
	// and returns what the caller answers with (e.g. the new *Queue); its
	// error is a deterministic outcome too (e.g. a binding's queue is gone).
	apply(a *applier) (any, error)
}

// field is one tagged field of a command.
type field struct {
	tag uint64
	p   any
}

// cmdNew makes an empty command of each type, for decoding; filled by the
// files that define the commands.
var cmdNew = map[cmdType]func() command{}

func registerCommand(t cmdType, mk func() command) {
	if _, dup := cmdNew[t]; dup {
		panic(fmt.Sprintf("broker: command type %d registered twice", t))
	}
	cmdNew[t] = mk
}

// encodeCommand returns c's record. Zero values are left out: a decoder
// reads a missing field as its zero value.
func encodeCommand(c command) []byte {
	return appendFields([]byte{byte(c.typ())}, c.fields(), c)
}

// appendFields appends fs's encoding; owner names the command in a panic.
func appendFields(b []byte, fs []field, owner any) []byte {
	put := func(tag uint64, v []byte) {
		b = binary.AppendUvarint(b, tag)
		b = binary.AppendUvarint(b, uint64(len(v)))
		b = append(b, v...)
	}
	for _, f := range fs {
		switch p := f.p.(type) {
		case *string:
			if *p != "" {
				put(f.tag, []byte(*p))
			}
		case *bool:
			if *p {
				put(f.tag, []byte{1})
			}
		case *int64:
			if *p != 0 {
				put(f.tag, binary.AppendVarint(nil, *p))
			}
		case *[]string:
			for _, s := range *p { // repeated: one field per element
				put(f.tag, []byte(s))
			}
		case *amqp091.Table:
			if len(*p) > 0 {
				put(f.tag, amqp091.AppendTable(nil, *p))
			}
		case records:
			for i := range p.len() { // repeated: one field per element, its own fields inside
				put(f.tag, appendFields(nil, p.elem(i), owner))
			}
		default:
			panic(fmt.Sprintf("broker: command %T: field %d has unsupported type %T", owner, f.tag, f.p))
		}
	}
	return b
}

// records is a repeated field whose elements are records of fields of their
// own (e.g. the offsets of one commit), with the same tag rules inside.
type records interface {
	len() int
	// elem returns the fields of element i.
	elem(i int) []field
	// grow appends a zero element and returns its fields, for decoding.
	grow() []field
}

// decodeCommand decodes a record made by encodeCommand. A field whose tag the
// command does not know is skipped if the tag is odd and refused if even.
func decodeCommand(rec []byte) (command, error) {
	if len(rec) == 0 {
		return nil, errors.New("empty command")
	}
	mk, ok := cmdNew[cmdType(rec[0])]
	if !ok {
		return nil, fmt.Errorf("unknown command type %d (written by a newer Warren?)", rec[0])
	}
	c := mk()
	if err := decodeFields(c.fields(), rec[1:]); err != nil {
		return nil, fmt.Errorf("command type %d: %w", rec[0], err)
	}
	return c, nil
}

func decodeFields(fs []field, b []byte) error {
	byTag := make(map[uint64]any, len(fs))
	for _, f := range fs {
		byTag[f.tag] = f.p
	}
	for len(b) > 0 {
		tag, k := binary.Uvarint(b)
		if k <= 0 {
			return errors.New("bad field tag")
		}
		n, k2 := binary.Uvarint(b[k:])
		if k2 <= 0 || n > uint64(len(b)-k-k2) {
			return fmt.Errorf("bad length of field %d", tag)
		}
		v := b[k+k2 : k+k2+int(n)]
		b = b[k+k2+int(n):]
		p, ok := byTag[tag]
		if !ok {
			if tag%2 == 0 {
				return fmt.Errorf("unknown required field %d (written by a newer Warren?)", tag)
			}
			continue
		}
		if err := decodeField(p, v); err != nil {
			return fmt.Errorf("field %d: %w", tag, err)
		}
	}
	return nil
}

func decodeField(p any, v []byte) error {
	switch p := p.(type) {
	case *string:
		*p = string(v)
	case *bool:
		if len(v) != 1 || v[0] > 1 {
			return errors.New("bad bool")
		}
		*p = v[0] == 1
	case *int64:
		x, k := binary.Varint(v)
		if k != len(v) {
			return errors.New("bad integer")
		}
		*p = x
	case *[]string:
		*p = append(*p, string(v))
	case *amqp091.Table:
		t, n, err := amqp091.DecodeTable(v)
		if err != nil || n != len(v) {
			return errors.New("bad table")
		}
		*p = t
	case records:
		return decodeFields(p.grow(), v)
	}
	return nil
}

// applier is the context a command is applied in.
type applier struct {
	b *Broker
	// local: the command is not in the log (transient entities). Durable
	// exchanges it removes as a side effect (an auto-delete exchange losing
	// its last, transient, binding) are collected in cascaded, to be logged
	// as commands of their own once no lock is held. A logged command's side
	// effects are not logged: its replay has them too.
	local    bool
	cascaded []deleteExchangeCmd
	// boot: replaying the log at start-up. The store's messages already
	// reflect the whole history then (a queue deleted and declared again
	// holds only the new queue's messages), so applying leaves them alone.
	boot bool
}

// autoDelete deletes an auto-delete exchange that lost its last binding,
// with v.mu held. Applying a local command leaves a durable one to a logged
// command of its own (see applier.local); it is removed then.
func (a *applier) autoDelete(v *VHost, e *Exchange) {
	if a.local && e.Durable {
		a.cascaded = append(a.cascaded, deleteExchangeCmd{VHost: v.Name, Name: e.Name})
		return
	}
	v.deleteExchangeLocked(a, e)
}

// commit makes a command durable, then applies it; a command that need not
// outlive a restart (durable false) is applied at once. commit must be called
// with no broker lock held: it waits for the store's sync, and the store
// applies commands on its own goroutine, in log order.
func (b *Broker) commit(c command, durable bool) (any, []deleteExchangeCmd, error) {
	if !durable {
		a := &applier{b: b, local: true}
		v, err := c.apply(a)
		return v, a.cascaded, err
	}
	type result struct {
		v   any
		err error
	}
	ch := make(chan result, 1)
	b.store.CommitMeta(encodeCommand(c), func(err error) {
		if err != nil {
			ch <- result{err: err}
			return
		}
		v, err := c.apply(&applier{b: b})
		ch <- result{v, err}
	})
	r := <-ch
	var ae *amqp091.Error
	if r.err != nil && !errors.As(r.err, &ae) {
		b.log.Error("cannot record metadata", "command", fmt.Sprintf("%T", c), "err", r.err)
		return nil, nil, amqp091.NewError(amqp091.InternalError, "cannot record metadata: %v", r.err)
	}
	return r.v, nil, r.err
}
