package broker

import (
	"maps"
	"slices"
	"strings"

	"github.com/warren-mq/warren/internal/amqp091"
)

// The broker's query side: snapshots of what it holds, for management,
// metrics and tests. Each returns a copy taken under the owner's read lock.

// VHosts returns the vhosts, sorted by name.
func (b *Broker) VHosts() []*VHost {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return slices.SortedFunc(maps.Values(b.vhosts), func(x, y *VHost) int { return strings.Compare(x.Name, y.Name) })
}

// Exchanges returns the vhost's exchanges (the default exchange included), sorted by name.
func (v *VHost) Exchanges() []*Exchange {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return slices.SortedFunc(maps.Values(v.exchanges), func(x, y *Exchange) int { return strings.Compare(x.Name, y.Name) })
}

// Queues returns the vhost's queues, sorted by name.
func (v *VHost) Queues() []*Queue {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return slices.SortedFunc(maps.Values(v.queues), func(x, y *Queue) int { return strings.Compare(x.Name, y.Name) })
}

// QueueInfo is a snapshot of a queue's state and counters.
type QueueInfo struct {
	Name, VHost                    string
	Durable, AutoDelete, Exclusive bool
	Args                           amqp091.Table // as declared
	EffectiveArgs                  amqp091.Table // declared merged with the policies
	Policy                         AppliedPolicy
	MessagesReady, MessagesUnacked int
	MessageBytesReady              int64 // body bytes of ready messages
	// MessagesPagedOut and MessageBytesPagedOut are the ready messages held
	// only on disk, in the queue's tail (part of MessagesReady and
	// MessageBytesReady; see backlog.go).
	MessagesPagedOut     int
	MessageBytesPagedOut int64
	MessageBytesUnacked  int64 // body bytes of delivered, unacknowledged messages
	Consumers            int
	// Memory estimates what the queue holds in memory: its own fixed cost,
	// each message's entry and record (the same figures the memory alarm
	// counts) and the bodies of ready and unacknowledged messages, as if none
	// were paged out; the tail's messages cost nothing.
	Memory int64
	// SingleActiveConsumerTag is the active consumer of a single-active-consumer queue.
	SingleActiveConsumerTag string
	Stats                   MessageStats
}

// Info returns a snapshot of the queue.
func (q *Queue) Info() QueueInfo {
	qi := QueueInfo{Name: q.Name, VHost: q.vhost.Name, Durable: q.Durable, AutoDelete: q.AutoDelete, Exclusive: q.Exclusive,
		Args: q.Args, EffectiveArgs: q.EffectiveArgs(), Policy: q.Policy()}
	q.mu.Lock()
	defer q.mu.Unlock()
	qi.MessagesReady, qi.MessagesUnacked, qi.MessageBytesReady, qi.MessageBytesUnacked = q.readyLocked(), q.unacked, q.readyBytes+q.tail.bytes, q.unackedBytes
	qi.MessagesPagedOut, qi.MessageBytesPagedOut = q.tail.count, q.tail.bytes
	qi.Consumers, qi.Stats = len(q.consumers), q.stats
	n := int64(q.ready.len() + q.unacked)
	qi.Memory = queueFixedCost + n*(entryCost+messageOverhead) + q.readyBytes + q.unackedBytes
	if q.args.singleActive && len(q.consumers) > 0 {
		qi.SingleActiveConsumerTag = q.consumers[0].Tag
	}
	return qi
}

// ConsumerInfo describes one consumer of a queue.
type ConsumerInfo struct {
	Tag, Queue, VHost string
	AckRequired       bool
	Exclusive         bool
	Priority          int
	// Active is false for a waiting consumer of a single-active-consumer queue.
	Active bool
	// Channel, PrefetchCount and Args are what the front end set on Consumer.
	Channel       string
	PrefetchCount int
	Args          amqp091.Table
}

// ConsumerList returns the queue's consumers, in delivery preference order.
func (q *Queue) ConsumerList() []ConsumerInfo {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make([]ConsumerInfo, len(q.consumers))
	for i, c := range q.consumers {
		out[i] = ConsumerInfo{Tag: c.Tag, Queue: q.Name, VHost: q.vhost.Name, AckRequired: !c.NoAck, Exclusive: c.Exclusive, Priority: c.Priority,
			Active: !q.args.singleActive || i == 0, Channel: c.Channel, PrefetchCount: c.PrefetchCount, Args: c.Args}
	}
	return out
}
