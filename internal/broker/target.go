package broker

// The queue-type seam. A queue type (the classic Queue, the Stream, later a
// replicated queue) is a type of its own that meets the rest of the broker
// at two small interfaces: Target, what routing delivers a publish into, and
// Source, what a front end's consumers consume from and settle to. Nothing
// outside a queue type's own files looks at which type it is, except where
// a protocol's rules differ by type (RabbitMQ refuses basic.get on streams,
// for one), and there the front end asks for the type by name (VHost.Stream).

// Target is what a publish delivers into. Its methods are the broker's own:
// only this package's queue types implement it.
type Target interface {
	// enqueue takes m, or reports false when the target refuses it (a
	// classic queue's reject-publish overflow): a confirm becomes a nack.
	// w, if not nil, learns when m is durable in the target (w.add before
	// handing it on, w.release once written) — or that writing it failed.
	enqueue(m *Message, w *durableWait) bool
	// targetName names the target in dead-letter cycle checks.
	targetName() string
}

// Source is what a consumer consumes from and settles to. A front end holds
// Sources, never a concrete queue type: the classic Queue and the Stream
// implement it. A Source delivers by calling its consumers'
// ConsumerSink.Deliver with itself as the source, which the sink keeps with
// each unacknowledged delivery to settle it back to.
type Source interface {
	// Consume adds a consumer. Delivery starts at the next Kick, so the
	// caller can answer consume-ok first.
	Consume(c *Consumer) error
	// Cancel removes a consumer.
	Cancel(c *Consumer)
	// Kick retries delivery after a consumer got credit back (an ack, a
	// basic.qos, channel.flow, room in the connection's output buffer).
	Kick()
	// Ack settles delivered entries for good (a stream's acks only return
	// credit, which the sink counts itself: they delete nothing).
	Ack(es []Entry)
	// Requeue gives delivered entries back (basic.nack/reject with
	// requeue, a closed channel's unacknowledged deliveries).
	Requeue(es []Entry)
	// Reject settles delivered entries as rejected without requeue.
	Reject(es []Entry)
	// ConsumerTimeout is the delivery acknowledgement timeout in ms that
	// the source's argument or policy sets, or -1 (the server's default).
	ConsumerTimeout() int64
}

var (
	_ Target = (*Queue)(nil)
	_ Source = (*Queue)(nil)
	_ Target = (*Stream)(nil)
	_ Source = (*Stream)(nil)
)

func (q *Queue) targetName() string { return q.Name }
