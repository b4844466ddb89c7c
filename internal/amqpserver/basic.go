package amqpserver

import (
	"sync"
	"sync/atomic"

	"github.com/warren-mq/warren/internal/amqp091"
	"github.com/warren-mq/warren/internal/broker"
)

// publishing is the state of a basic.publish whose content is still arriving.
type publishing struct {
	active     bool
	haveHeader bool
	mandatory  bool
	exchange   *broker.Exchange
	routingKey string
	props      []byte // copied: the frame's buffer is reused
	body       []byte // separate from props, so a paged-out body can be freed
	bodySize   uint64
	overflow   bool                    // more body arrived than declared: RabbitMQ waits on, so do we
	summary    amqp091.PropertySummary // of props, read once at the header
}

// unexpected is the 505 for a frame that interrupts content, naming basic.publish.
func (p *publishing) unexpected() error {
	text := "expected content header for class 60, got non content header frame instead"
	if p.haveHeader {
		text = "expected content body, got non content body frame instead"
	}
	e := amqp091.NewError(amqp091.UnexpectedFrame, "%s", text)
	e.ClassID, e.MethodID = 60, 40
	return e
}

func (ch *channel) startPublish(m *amqp091.BasicPublish) error {
	if m.Immediate {
		return amqp091.NewError(amqp091.NotImplemented, "immediate=true")
	}
	ex := ch.exchange
	acc := ch.conn.access
	if ex == nil || ex.Name != m.Exchange || ex.Deleted() || !acc.Current() {
		// The last exchange was checked under the current permissions; any
		// other, or any change to permissions, is checked again.
		ch.exchange = nil
		if err := acc.Check("exchange", m.Exchange, broker.Write); err != nil {
			return err
		}
		var err error
		if ex, err = ch.vhost.ExchangeForPublish(m.Exchange); err != nil {
			return err
		}
		ch.exchange = ex
	}
	if ex.Kind == "topic" {
		if err := acc.CheckTopic(ex.Name, m.RoutingKey, broker.Write); err != nil {
			return err
		}
	}
	ch.pub = publishing{active: true, mandatory: m.Mandatory, exchange: ex, routingKey: m.RoutingKey}
	return nil
}

// contentWithoutMethod is RabbitMQ's 505 for a content header or body that no
// content-carrying method announced, on an open channel or an unopened one.
func contentWithoutMethod() error {
	return amqp091.NewError(amqp091.UnexpectedFrame, "expected method frame, got non method frame instead")
}

// handleContent takes a content header or body frame.
func (ch *channel) handleContent(f amqp091.Frame) error {
	if ch.closing {
		return nil
	}
	p := &ch.pub
	if !p.active {
		return contentWithoutMethod()
	}
	if f.Type == amqp091.FrameHeader {
		if p.haveHeader {
			return p.unexpected()
		}
		classID, size, props, err := amqp091.ParseContentHeader(f.Payload)
		if err != nil {
			return err
		}
		if classID != 60 {
			e := amqp091.NewError(amqp091.UnexpectedFrame, "expected content header for class 60, got one for class %d instead", classID)
			e.ClassID, e.MethodID = 60, 40
			return e
		}
		p.props = append([]byte(nil), props...)
		if amqp091.SummarizeProperties(p.props, &p.summary) != nil {
			return &amqp091.Error{Code: amqp091.InternalError, Text: "INTERNAL_ERROR"} // RabbitMQ's bare reply
		}
		if max := ch.conn.srv.cfg.MaxMessageSize; size > max {
			return amqp091.NewError(amqp091.PreconditionFailed, "message size %d is larger than configured max size %d", size, max)
		}
		p.haveHeader = true
		p.bodySize = size
		// Reserve the whole body up front when it is modest; grow otherwise, so a
		// header claiming a huge body cannot make Warren allocate it in advance.
		p.body = make([]byte, 0, min(size, 1<<20))
		if size == 0 {
			return ch.finishPublish()
		}
		return nil
	}
	if !p.haveHeader {
		return p.unexpected()
	}
	if p.overflow || uint64(len(p.body)+len(f.Payload)) > p.bodySize {
		// RabbitMQ does not notice an overlong body: it waits for the body to end
		// exactly, and fails at the next frame that is not a body. Keep nothing.
		p.overflow = true
		return nil
	}
	p.body = append(p.body, f.Payload...)
	if uint64(len(p.body)) == p.bodySize {
		return ch.finishPublish()
	}
	return nil
}

// finishPublish routes a completely received message.
func (ch *channel) finishPublish() error {
	p := ch.pub
	ch.pub = publishing{}
	m, err := broker.NewMessageFromSummary(p.exchange.Name, p.routingKey, p.props, p.body, &p.summary)
	if err != nil {
		return err
	}
	if err := ch.checkProperties(m, &p.summary); err != nil {
		return err
	}
	if ch.tx != nil {
		ch.tx.ops = append(ch.tx.ops, txOp{msg: m, exchange: p.exchange, mandatory: p.mandatory})
		return nil
	}
	if !ch.conn.waitAlarm() {
		return nil
	}
	ch.route(p.exchange, m, p.mandatory, nil)
	return nil
}

// route publishes m and sends the basic.return it calls for; in confirm mode
// the confirm follows once the message is durable. wg, if not nil, is done
// when the message is durable (transactions wait for that).
func (ch *channel) route(ex *broker.Exchange, m *broker.Message, mandatory bool, wg *sync.WaitGroup) {
	var pc *pendingConfirm
	var durable func(bool)
	switch {
	case ch.confirms != nil:
		pc = &pendingConfirm{ch: ch, seq: ch.confirms.publish()}
		durable = pc.done
	case wg != nil:
		wg.Add(1)
		durable = func(bool) { wg.Done() }
	}
	res := ch.vhost.Publish(&ch.router, ex, m, durable)
	ch.notePublish(ex, res, mandatory)
	if mandatory && !res.Routed {
		body, _ := ch.body(m) // unrouted, so never paged out
		ch.conn.out.send(func(b []byte) []byte {
			b = amqp091.AppendMethodFrame(b, ch.id, &amqp091.BasicReturn{ReplyCode: amqp091.NoRoute, ReplyText: "NO_ROUTE", Exchange: m.Exchange, RoutingKey: m.RoutingKey})
			return ch.appendContent(b, m, body)
		})
	}
	if pc != nil {
		pc.published() // only now may its confirm go out: after any basic.return
	}
}

// pendingConfirm joins the two events a publisher confirm waits for: the
// store's verdict (done, on any goroutine) and the reader finishing the publish
// (published, after a basic.return). Whichever comes second settles it.
type pendingConfirm struct {
	ch    *channel
	seq   uint64
	state atomic.Uint32
}

const (
	pcDone      = 1 << 0
	pcOK        = 1 << 1
	pcPublished = 1 << 2
)

func (p *pendingConfirm) done(ok bool) {
	bits := uint32(pcDone)
	if ok {
		bits |= pcOK
	}
	if old := p.state.Or(bits); old&pcPublished != 0 {
		p.ch.confirms.settle(p.seq, ok)
		p.ch.conn.confirmsDue(p.ch, false)
	}
}

func (p *pendingConfirm) published() {
	if old := p.state.Or(pcPublished); old&pcDone != 0 {
		p.ch.confirms.settle(p.seq, old&pcOK != 0)
		p.ch.conn.confirmsDue(p.ch, true)
	}
}

// appendContent appends m's content header and body frames.
func (ch *channel) appendContent(b []byte, m *broker.Message, body []byte) []byte {
	b = amqp091.AppendHeaderFrame(b, ch.id, 60, uint64(len(body)), m.Props)
	return amqp091.AppendBodyFrames(b, ch.id, body, ch.conn.frameMax)
}

// body returns m's body, read back from the store if it was paged out. Only
// a failing store makes that fail; the message is then not delivered.
func (ch *channel) body(m *broker.Message) ([]byte, bool) {
	body, err := m.Body()
	if err != nil {
		ch.conn.log.Error("cannot read a paged-out message body", "err", err)
		return nil, false
	}
	return body, true
}

// Deliver implements broker.ConsumerSink. It runs under the queue's lock.
func (ch *channel) Deliver(c *broker.Consumer, q broker.Source, e *broker.Entry) bool {
	cs := c.Data.(*consumerState)
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.released || !ch.flowActive {
		return false
	}
	if !c.NoAck {
		if (cs.prefetch != 0 && cs.unacked >= int(cs.prefetch)) || (ch.prefetchChannel != 0 && ch.unackedAll >= int(ch.prefetchChannel)) {
			if !cs.starved {
				cs.starved = true
				ch.starved++
			}
			return false
		}
	}
	body, ok := ch.body(e.Msg)
	if !ok {
		return false
	}
	o := ch.conn.out
	o.mu.Lock()
	if o.closed || o.fullLocked(q) {
		o.mu.Unlock()
		return false
	}
	ch.nextTag++
	wasEmpty := len(o.buf) == 0
	o.buf = amqp091.AppendBasicDeliver(o.buf, ch.id, c.Tag, ch.nextTag, e.Redelivered, e.Msg.Exchange, e.Msg.RoutingKey)
	o.buf = ch.appendContent(o.buf, e.Msg, body)
	o.notifyLocked(wasEmpty)
	o.mu.Unlock()
	if !c.NoAck {
		ch.unacked.push(unackedRec{tag: ch.nextTag, queue: q, entry: *e, cs: cs})
		cs.unacked++
		ch.unackedAll++
		ch.stats.Deliver++
	} else {
		ch.stats.DeliverNoAck++
	}
	if e.Redelivered {
		ch.stats.Redeliver++
	}
	return true
}

// Cancelled implements broker.ConsumerSink: the queue went away.
func (ch *channel) Cancelled(c *broker.Consumer) {
	ch.mu.Lock()
	_, mine := ch.consumers[c.Tag]
	if mine {
		delete(ch.consumers, c.Tag)
	}
	released := ch.released
	ch.mu.Unlock()
	if mine && !released && ch.conn.clientCap("consumer_cancel_notify") {
		ch.conn.out.sendMethod(ch.id, &amqp091.BasicCancel{ConsumerTag: c.Tag, NoWait: true})
	}
}

// DeliverReply implements broker.ReplySink for direct reply-to.
func (ch *channel) DeliverReply(m *broker.Message) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.released {
		return
	}
	body, ok := ch.body(m)
	if !ok {
		return
	}
	ch.nextTag++
	tag := ch.nextTag
	ch.conn.out.send(func(b []byte) []byte {
		b = amqp091.AppendBasicDeliver(b, ch.id, ch.replyTag, tag, false, m.Exchange, m.RoutingKey)
		return ch.appendContent(b, m, body)
	})
}

type settleOp uint8

const (
	settleAck settleOp = iota
	settleRequeue
	settleReject
)

// settle handles basic.ack, basic.nack and basic.reject.
// Plain acks are not handed to their queues one by one: they collect in
// ch.settled and go to each queue in one call when the connection has handled
// what it read (or before anything whose outcome they could change). Credit is
// returned at once, so prefetch behaves exactly as if each ack were applied.
func (ch *channel) settle(tag uint64, multiple bool, op settleOp) error {
	deferred := op == settleAck && ch.tx == nil
	if !deferred {
		ch.flushAcks()
	}
	ch.mu.Lock()
	n0 := len(ch.settled)
	recs, ok := ch.unacked.take(ch.settled, tag, multiple)
	if !ok {
		ch.mu.Unlock()
		return amqp091.NewError(amqp091.PreconditionFailed, "unknown delivery tag %d", tag)
	}
	taken := recs[n0:]
	if op == settleAck {
		ch.stats.Ack += uint64(len(taken))
	}
	if ch.tx != nil {
		ch.mu.Unlock()
		ch.tx.settles = append(ch.tx.settles, txSettle{recs: append([]unackedRec(nil), taken...), op: op})
		clear(taken)
		ch.settled = recs[:n0]
		return nil
	}
	ch.kick = ch.creditReturnedLocked(taken, ch.kick)
	ch.mu.Unlock()
	ch.settled = recs
	if deferred {
		if !ch.acksQueued {
			ch.acksQueued = true
			ch.conn.ackPending = append(ch.conn.ackPending, ch)
		}
		return nil
	}
	ch.flushSettled(op)
	return nil
}

// flushAcks hands the channel's collected acks to their queues.
func (ch *channel) flushAcks() {
	if len(ch.settled) > 0 || len(ch.kick) > 0 {
		ch.flushSettled(settleAck)
	}
}

// flushSettled applies op to ch.settled and kicks the queues whose consumers
// got credit back.
func (ch *channel) flushSettled(op settleOp) {
	ch.applySettle(ch.settled, op)
	clear(ch.settled)
	ch.settled = ch.settled[:0]
	for _, q := range ch.kick {
		q.Kick()
	}
	clear(ch.kick)
	ch.kick = ch.kick[:0]
}

// applySettle hands settled records to their queues, batching runs of one queue.
func (ch *channel) applySettle(recs []unackedRec, op settleOp) {
	for i := 0; i < len(recs); {
		q := recs[i].queue
		es := ch.entries[:0]
		for ; i < len(recs) && recs[i].queue == q; i++ {
			es = append(es, recs[i].entry)
		}
		switch op {
		case settleAck:
			q.Ack(es)
		case settleRequeue:
			q.Requeue(es)
		case settleReject:
			q.Reject(es)
		}
		clear(es)
		ch.entries = es[:0]
	}
}

// creditReturnedLocked updates prefetch accounting for settled records and
// appends to kick the queues whose consumers were starved of credit.
func (ch *channel) creditReturnedLocked(recs []unackedRec, kick []broker.Source) []broker.Source {
	for _, r := range recs {
		if r.cs != nil {
			r.cs.unacked--
			ch.unackedAll--
		}
	}
	if ch.starved == 0 {
		return kick
	}
	ch.starved = 0
	for _, cs := range ch.consumers {
		if cs.starved {
			cs.starved = false
			kick = append(kick, cs.q)
		}
	}
	return kick
}

func (ch *channel) qos(m *amqp091.BasicQos) error {
	if m.PrefetchSize != 0 {
		return amqp091.NewError(amqp091.NotImplemented, "prefetch_size!=0 (%d)", m.PrefetchSize)
	}
	ch.mu.Lock()
	if m.Global {
		ch.prefetchChannel = m.PrefetchCount
	} else {
		// RabbitMQ: a per-consumer qos also lifts the channel-wide limit.
		ch.prefetchConsumer = m.PrefetchCount
		ch.prefetchChannel = 0
	}
	queues := ch.consumerQueuesLocked()
	ch.mu.Unlock()
	ch.conn.out.sendMethod(ch.id, &amqp091.BasicQosOk{})
	for _, q := range queues {
		q.Kick()
	}
	return nil
}

func (ch *channel) consume(m *amqp091.BasicConsume) error {
	if m.Queue == broker.DirectReplyTo {
		return ch.consumeReplyTo(m)
	}
	q, err := ch.source(m.Queue, broker.Read)
	if err != nil {
		return err
	}
	tag := m.ConsumerTag
	if tag == "" {
		tag = generateTag()
	}
	ch.mu.Lock()
	_, dup := ch.consumers[tag]
	ch.mu.Unlock()
	if dup || tag == ch.replyTag {
		return amqp091.NewError(amqp091.NotAllowed, "attempt to reuse consumer tag '%s'", tag)
	}
	priority := 0
	if v, ok := m.Arguments["x-priority"]; ok {
		n, ok := broker.TableInt(v)
		if !ok {
			return amqp091.NewError(amqp091.PreconditionFailed, "invalid arg 'x-priority' for consumer '%s': {unacceptable_type,%T}", tag, v)
		}
		priority = int(n)
	}
	ch.mu.Lock()
	cs := &consumerState{q: q, prefetch: ch.prefetchConsumer}
	cs.c = &broker.Consumer{Tag: tag, NoAck: m.NoAck, Exclusive: m.Exclusive, Priority: priority, Sink: ch, Data: cs,
		Channel: ch.name(), PrefetchCount: int(ch.prefetchConsumer), Args: m.Arguments}
	ch.consumers[tag] = cs
	ch.mu.Unlock()
	if err := q.Consume(cs.c); err != nil {
		ch.mu.Lock()
		delete(ch.consumers, tag)
		ch.mu.Unlock()
		return err
	}
	if !m.NoWait {
		ch.conn.out.sendMethod(ch.id, &amqp091.BasicConsumeOk{ConsumerTag: tag})
	}
	q.Kick()
	return nil
}

func (ch *channel) consumeReplyTo(m *amqp091.BasicConsume) error {
	if !m.NoAck {
		return amqp091.NewError(amqp091.PreconditionFailed, "reply consumer cannot acknowledge")
	}
	if ch.replyKey != "" {
		return amqp091.NewError(amqp091.PreconditionFailed, "reply consumer already set")
	}
	tag := m.ConsumerTag
	if tag == "" {
		tag = generateTag()
	}
	ch.replyTag = tag
	ch.replyKey = ch.vhost.RegisterReplyTo(ch)
	if !m.NoWait {
		ch.conn.out.sendMethod(ch.id, &amqp091.BasicConsumeOk{ConsumerTag: tag})
	}
	return nil
}

func (ch *channel) cancel(m *amqp091.BasicCancel) error {
	if ch.replyKey != "" && m.ConsumerTag == ch.replyTag {
		ch.vhost.UnregisterReplyTo(ch.replyKey)
		ch.replyKey, ch.replyTag = "", ""
	} else {
		ch.mu.Lock()
		cs, ok := ch.consumers[m.ConsumerTag]
		delete(ch.consumers, m.ConsumerTag)
		ch.mu.Unlock()
		if ok {
			cs.q.Cancel(cs.c)
		}
	}
	if !m.NoWait {
		ch.conn.out.sendMethod(ch.id, &amqp091.BasicCancelOk{ConsumerTag: m.ConsumerTag})
	}
	return nil
}

func (ch *channel) get(m *amqp091.BasicGet) error {
	if s := ch.streamFor(m.Queue); s != nil {
		if err := ch.conn.access.Check("queue", s.Name(), broker.Read); err != nil {
			return err
		}
		return streamRefuses("basic.get", s)
	}
	q, err := ch.queue(m.Queue, broker.Read)
	if err != nil {
		return err
	}
	e, body, remaining, ok, err := q.Get(m.NoAck)
	if err != nil {
		ch.conn.log.Error("basic.get: cannot read the message back from the store", "queue", q.Name, "err", err)
		return amqp091.NewError(amqp091.InternalError, "cannot read message from the store")
	}
	if !ok {
		ch.mu.Lock()
		ch.stats.GetEmpty++
		ch.mu.Unlock()
		ch.conn.out.sendMethod(ch.id, &amqp091.BasicGetEmpty{})
		return nil
	}
	ch.mu.Lock()
	ch.nextTag++
	tag := ch.nextTag
	if !m.NoAck {
		ch.unacked.push(unackedRec{tag: tag, queue: q, entry: e})
		ch.stats.Get++
	} else {
		ch.stats.GetNoAck++
	}
	if e.Redelivered {
		ch.stats.Redeliver++
	}
	ch.conn.out.send(func(b []byte) []byte {
		b = amqp091.AppendMethodFrame(b, ch.id, &amqp091.BasicGetOk{DeliveryTag: tag, Redelivered: e.Redelivered, Exchange: e.Msg.Exchange, RoutingKey: e.Msg.RoutingKey, MessageCount: uint32(remaining)})
		return ch.appendContent(b, e.Msg, body)
	})
	ch.mu.Unlock()
	return nil
}
