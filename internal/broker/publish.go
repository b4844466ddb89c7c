package broker

import (
	"strings"

	"github.com/warren-mq/warren/internal/amqp091"
)

// PublishResult says what became of a published message.
type PublishResult struct {
	// Routed is true when at least one queue (or direct reply-to consumer) took the message.
	Routed bool
	// Rejected is true when a queue refused it (x-overflow reject-publish): a
	// publisher in confirm mode gets a nack.
	Rejected bool
	// Queues is how many queues it was routed to (RabbitMQ's publish_out).
	Queues int
}

// Router holds scratch space for routing, so the hot path does not allocate.
// One per publishing channel; not safe for concurrent use.
type Router struct {
	bindings []*Binding
	targets  []Target
	visited  []*Exchange
	pending  []*Exchange
	keys     []string
}

// Publish routes m from exchange e to its queues. If durable is not nil it is
// called exactly once — before Publish returns, or later from the store's
// goroutine — with ok=true when every queue took the message and the store has
// made it durable wherever it must be (a publisher confirm's ack), false when a
// queue refused it or a write failed (a nack).
func (v *VHost) Publish(r *Router, e *Exchange, m *Message, durable func(ok bool)) PublishResult {
	if e.Name == "" && strings.HasPrefix(m.RoutingKey, DirectReplyTo+".") {
		res := v.publishReply(m)
		if durable != nil {
			durable(true)
		}
		return res
	}
	if m.hasCC() {
		m = m.withoutBCC()
	}
	targets := v.route(r, e, m)
	var w *durableWait
	if durable != nil {
		w = &durableWait{done: durable}
		w.add()
	}
	res := PublishResult{Queues: len(targets)}
	for _, t := range targets {
		res.Routed = true
		if !t.enqueue(m, w) {
			res.Rejected = true
			if w != nil {
				w.failed.Store(true)
			}
		}
	}
	clear(r.targets)
	m.rec.Store(nil) // the store has its own reference until written
	if m.refs.Load() > 0 && v.broker.pagingNeeded() {
		v.broker.pageOut(v.Name, m, nil) // still queued somewhere: its body goes to disk
		v.broker.maybeSweep()            // and so do those queued before paging started
	}
	if w != nil {
		w.release(nil)
	}
	return res
}

func (v *VHost) publishReply(m *Message) PublishResult {
	v.replyMu.RLock()
	s, ok := v.replyTo[m.RoutingKey]
	v.replyMu.RUnlock()
	if !ok {
		return PublishResult{}
	}
	s.DeliverReply(m)
	return PublishResult{Routed: true}
}

// route returns the distinct queues and streams m reaches from e, following
// exchange-to-exchange bindings and alternate exchanges.
func (v *VHost) route(r *Router, e *Exchange, m *Message) []Target {
	r.targets = r.targets[:0]
	v.mu.RLock()
	defer v.mu.RUnlock()
	r.keys = append(r.keys[:0], m.RoutingKey)
	if m.cc != nil {
		r.keys = append(r.keys, m.cc...)
	}
	if e.Name == "" {
		for _, k := range r.keys {
			if q, ok := v.queues[k]; ok {
				r.addTarget(q)
			} else if s, ok := v.streams[k]; ok {
				r.addTarget(s)
			}
		}
		return r.targets
	}
	r.visited = append(r.visited[:0], e)
	r.pending = append(r.pending[:0], e)
	var headers amqp091.Table
	headersDone := false
	for len(r.pending) > 0 {
		x := r.pending[len(r.pending)-1]
		r.pending = r.pending[:len(r.pending)-1]
		if (x.Kind == "headers" || x.Kind == SuperStreamKind) && !headersDone {
			headers, headersDone = m.Headers(), true
		}
		r.bindings = r.bindings[:0]
		for _, k := range r.keys {
			r.bindings = x.routes().route(r.bindings, k, headers)
		}
		if len(r.bindings) == 0 && x.alternate != "" {
			if ae, ok := v.exchanges[x.alternate]; ok {
				r.visit(ae)
			}
			continue
		}
		for _, b := range r.bindings {
			if b.ToExchange {
				if dx, ok := v.exchanges[b.Destination]; ok {
					r.visit(dx)
				}
				continue
			}
			if q, ok := v.queues[b.Destination]; ok {
				r.addTarget(q)
			} else if s, ok := v.streams[b.Destination]; ok {
				r.addTarget(s)
			}
		}
	}
	clear(r.bindings)
	clear(r.visited)
	return r.targets
}

func (r *Router) visit(x *Exchange) {
	for _, seen := range r.visited {
		if seen == x {
			return
		}
	}
	r.visited = append(r.visited, x)
	r.pending = append(r.pending, x)
}

func (r *Router) addTarget(t Target) {
	for _, seen := range r.targets {
		if seen == t {
			return
		}
	}
	r.targets = append(r.targets, t)
}
