// Package store persists what must outlive a broker restart: metadata (vhosts,
// users, exchanges, queues, bindings) as an append-only log of commands, and
// persistent messages of durable queues.
//
// Two implementations share one interface: Memory, which keeps nothing across a
// restart and is what the AMQP core runs on today, and (later) a file store with
// segment logs. The broker never knows which one it has.
package store

import (
	"errors"
	"sync"
)

// ErrClosed is returned by every call after Close.
var ErrClosed = errors.New("store: closed")

// MetaOp names a metadata command.
type MetaOp uint8

// Metadata commands. Values are part of the on-disk format: never renumber.
const (
	MetaDeclareVHost MetaOp = iota + 1
	MetaDeleteVHost
	MetaPutUser
	MetaDeleteUser
	MetaDeclareExchange
	MetaDeleteExchange
	MetaDeclareQueue
	MetaDeleteQueue
	MetaBind
	MetaUnbind
)

// MetaCommand is one metadata change. Fields not used by an op stay zero.
type MetaCommand struct {
	Op          MetaOp
	VHost       string
	Name        string // exchange, queue or user name; source exchange for bindings
	Kind        string // exchange type
	Destination string // binding destination
	ToExchange  bool   // binding destination is an exchange
	Key         string // binding key
	Flags       uint8  // durable/auto-delete/internal bits, op specific
	Args        []byte // encoded AMQP field table
	Secret      []byte // user password hash
	Tags        string // user tags
}

// MessageRecord is a persistent message written for one durable queue.
type MessageRecord struct {
	VHost string
	Queue string
	ID    uint64 // the queue's sequence number for the message
	Data  []byte // encoded message (exchange, key, properties, body)
}

// Store is what the broker persists through.
type Store interface {
	// AppendMeta records a metadata command; it is durable when AppendMeta returns.
	AppendMeta(cmd MetaCommand) error
	// MetaLog returns the commands to replay at boot, oldest first.
	MetaLog() ([]MetaCommand, error)
	// AppendMessages records messages and calls done once they are durable (or failed).
	// done may run on another goroutine and must not block.
	AppendMessages(recs []MessageRecord, done func(error))
	// Ack records that messages of a queue are gone (acknowledged, dropped, purged).
	Ack(vhost, queue string, ids []uint64) error
	// Close flushes and releases the store.
	Close() error
}

// Memory is a Store that keeps metadata in memory and persists nothing across a
// restart. Messages already live in the queues, so it records none of them.
type Memory struct {
	mu     sync.Mutex
	meta   []MetaCommand
	closed bool
}

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory { return &Memory{} }

// AppendMeta implements Store.
func (m *Memory) AppendMeta(cmd MetaCommand) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	m.meta = append(m.meta, cmd)
	return nil
}

// MetaLog implements Store.
func (m *Memory) MetaLog() ([]MetaCommand, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	return append([]MetaCommand(nil), m.meta...), nil
}

// AppendMessages implements Store: nothing to write, so done runs at once.
func (m *Memory) AppendMessages(recs []MessageRecord, done func(error)) {
	m.mu.Lock()
	closed := m.closed
	m.mu.Unlock()
	if closed {
		done(ErrClosed)
		return
	}
	done(nil)
}

// Ack implements Store.
func (m *Memory) Ack(vhost, queue string, ids []uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	return nil
}

// Close implements Store.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}
