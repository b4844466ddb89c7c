package amqpserver

import (
	"sync"

	"github.com/warren-mq/warren/internal/amqp091"
)

// confirmTracker orders a channel's publisher confirms. Publishes settle in any
// order — at once, or later when the store reports them durable — but confirms
// go out in sequence: acks coalesced into one multiple=true ack, a nack as soon
// as it is the oldest unconfirmed publish (a multiple ack must never cover it).
type confirmTracker struct {
	mu        sync.Mutex
	next      uint64  // last sequence number handed out
	confirmed uint64  // every publish up to here has been confirmed to the client
	states    []uint8 // states[i] is publish confirmed+1+i
	head      int
}

const (
	confirmPending uint8 = iota
	confirmAck
	confirmNack
)

// publish returns the next publish sequence number, pending.
func (t *confirmTracker) publish() uint64 {
	t.mu.Lock()
	t.next++
	t.states = append(t.states, confirmPending)
	seq := t.next
	t.mu.Unlock()
	return seq
}

// settle records the outcome of publish seq.
func (t *confirmTracker) settle(seq uint64, ok bool) {
	t.mu.Lock()
	st := confirmNack
	if ok {
		st = confirmAck
	}
	t.states[t.head+int(seq-t.confirmed-1)] = st
	t.mu.Unlock()
}

// flush sends every confirm that is due, in order.
func (t *confirmTracker) flush(ch uint16, o *outbox) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.head == len(t.states) || t.states[t.head] == confirmPending {
		return
	}
	o.send(func(b []byte) []byte {
		from := t.confirmed
		for t.head < len(t.states) && t.states[t.head] != confirmPending {
			st := t.states[t.head]
			t.head++
			t.confirmed++
			if st == confirmNack {
				b = appendAcks(b, ch, from, t.confirmed-1)
				b = amqp091.AppendMethodFrame(b, ch, &amqp091.BasicNack{DeliveryTag: t.confirmed})
				from = t.confirmed
			}
		}
		return appendAcks(b, ch, from, t.confirmed)
	})
	if t.head == len(t.states) {
		t.states, t.head = t.states[:0], 0
	} else if t.head > 1024 && t.head > len(t.states)/2 {
		n := copy(t.states, t.states[t.head:])
		t.states, t.head = t.states[:n], 0
	}
}

// appendAcks acks publishes after..upTo with one frame, if there are any.
func appendAcks(b []byte, ch uint16, after, upTo uint64) []byte {
	if upTo <= after {
		return b
	}
	return amqp091.AppendMethodFrame(b, ch, &amqp091.BasicAck{DeliveryTag: upTo, Multiple: upTo > after+1})
}
