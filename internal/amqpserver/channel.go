package amqpserver

import (
	"sync"

	"github.com/warren-mq/warren/internal/amqp091"
	"github.com/warren-mq/warren/internal/broker"
)

// channel is one AMQP channel. Fields above mu are owned by the connection's
// reader goroutine; fields below it are shared with delivering goroutines.
type channel struct {
	id    uint16
	conn  *connection
	vhost *broker.VHost

	closing    bool // channel.close sent, awaiting close-ok
	pub        publishing
	publishM   amqp091.BasicPublish
	ackM       amqp091.BasicAck
	router     broker.Router
	exchange   *broker.Exchange // last exchange published to
	lastQueue  string           // last queue declared, for "" queue names
	settled    []unackedRec     // acks taken from unacked, not yet given to their queues
	kick       []broker.Source  // queues to kick once settled is flushed
	acksQueued bool             // in conn.ackPending
	entries    []broker.Entry

	confirms   *confirmTracker // set by confirm.select
	confirmDue bool            // in conn.confirmDirty; guarded by conn.confirmMu
	tx         *txState

	replyKey string // direct reply-to key of this channel's reply consumer
	replyTag string

	mu               sync.Mutex
	released         bool
	nextTag          uint64
	unacked          unackedList
	consumers        map[string]*consumerState
	prefetchConsumer uint16 // basic.qos global=false: for consumers started later
	prefetchChannel  uint16 // basic.qos global=true: shared by the channel
	unackedAll       int    // unacked deliveries to consumers (for prefetchChannel)
	starved          int    // consumers refused for want of credit since credit last returned
	flowActive       bool
	stats            chanStats // counters for the management view (session.go)
}

// consumerState is a channel's view of one of its consumers.
type consumerState struct {
	c        *broker.Consumer
	q        broker.Source
	prefetch uint16
	unacked  int
	starved  bool // refused a delivery for want of credit; kick its queue when credit returns
}

func newChannel(c *connection, id uint16) *channel {
	return &channel{id: id, conn: c, vhost: c.vhost, consumers: map[string]*consumerState{}, flowActive: true}
}

// handleMethod decodes and handles one method frame.
func (ch *channel) handleMethod(payload []byte) error {
	if ch.closing {
		cls, mth, _ := amqp091.MethodIDs(payload)
		switch {
		case cls == 20 && mth == 41: // channel.close-ok
			ch.conn.dropChannel(ch.id)
		case cls == 20 && mth == 40: // channel.close crossing ours
			ch.conn.out.sendMethod(ch.id, &amqp091.ChannelCloseOk{})
		}
		return nil
	}
	cls, mth, _ := amqp091.MethodIDs(payload)
	if ch.pub.active {
		return ch.pub.unexpected()
	}
	var err error
	switch {
	case cls == 60 && mth == 40: // basic.publish, the hot path: no allocation of the struct
		if err = amqp091.DecodeBasicPublish(payload[4:], &ch.publishM); err == nil {
			err = ch.startPublish(&ch.publishM)
		}
	case cls == 60 && mth == 80: // basic.ack
		if err = ch.ackM.Decode(payload[4:]); err == nil {
			err = ch.settle(ch.ackM.DeliveryTag, ch.ackM.Multiple, settleAck)
		}
	default:
		ch.flushAcks() // whatever comes next sees the acks before it applied
		var m amqp091.Method
		if m, err = amqp091.DecodeMethod(payload); err == nil {
			if h := ch.conn.srv.methodHook; h != nil {
				h(m.Name())
			}
			err = ch.dispatch(m)
			if cls == 60 && (mth == 20 || mth == 70) { // basic.consume, basic.get
				ch.conn.armAckTick()
			}
		}
	}
	if ae, ok := err.(*amqp091.Error); ok && ae.ClassID == 0 {
		ae.ClassID, ae.MethodID = cls, mth
	}
	return err
}

func (ch *channel) dispatch(m amqp091.Method) error {
	switch m := m.(type) {
	case *amqp091.ChannelClose:
		ch.release()
		ch.conn.out.sendMethod(ch.id, &amqp091.ChannelCloseOk{})
		ch.conn.dropChannel(ch.id)
		return nil
	case *amqp091.ChannelOpen:
		return amqp091.NewError(amqp091.ChannelError, "second 'channel.open' seen")
	case *amqp091.ChannelFlow:
		return ch.flow(m.Active)
	case *amqp091.ChannelFlowOk:
		return nil
	case *amqp091.ExchangeDeclare:
		return ch.exchangeDeclare(m)
	case *amqp091.ExchangeDelete:
		return ch.exchangeDelete(m)
	case *amqp091.ExchangeBind:
		return ch.exchangeBind(m.Source, m.Destination, m.RoutingKey, m.Arguments, m.NoWait, true)
	case *amqp091.ExchangeUnbind:
		return ch.exchangeBind(m.Source, m.Destination, m.RoutingKey, m.Arguments, m.NoWait, false)
	case *amqp091.QueueDeclare:
		return ch.queueDeclare(m)
	case *amqp091.QueueBind:
		return ch.queueBind(m)
	case *amqp091.QueueUnbind:
		return ch.queueUnbind(m)
	case *amqp091.QueuePurge:
		return ch.queuePurge(m)
	case *amqp091.QueueDelete:
		return ch.queueDelete(m)
	case *amqp091.BasicQos:
		return ch.qos(m)
	case *amqp091.BasicConsume:
		return ch.consume(m)
	case *amqp091.BasicCancel:
		return ch.cancel(m)
	case *amqp091.BasicGet:
		return ch.get(m)
	case *amqp091.BasicReject:
		op := settleReject
		if m.Requeue {
			op = settleRequeue
		}
		return ch.settle(m.DeliveryTag, false, op)
	case *amqp091.BasicNack:
		op := settleReject
		if m.Requeue {
			op = settleRequeue
		}
		return ch.settle(m.DeliveryTag, m.Multiple, op)
	case *amqp091.BasicRecover:
		if !m.Requeue {
			return amqp091.NewError(amqp091.NotImplemented, "requeue=false")
		}
		ch.recover()
		ch.conn.out.sendMethod(ch.id, &amqp091.BasicRecoverOk{})
		return nil
	case *amqp091.BasicRecoverAsync:
		if !m.Requeue {
			return amqp091.NewError(amqp091.NotImplemented, "requeue=false")
		}
		ch.recover()
		return nil
	case *amqp091.ConfirmSelect:
		return ch.confirmSelect(m)
	case *amqp091.TxSelect:
		return ch.txSelect()
	case *amqp091.TxCommit:
		return ch.txCommit()
	case *amqp091.TxRollback:
		return ch.txRollback()
	}
	// Connection methods, and a channel.close-ok nobody asked for, as RabbitMQ says.
	return amqp091.NewError(amqp091.CommandInvalid, "unimplemented method")
}

func (ch *channel) flow(active bool) error {
	ch.mu.Lock()
	ch.flowActive = active
	queues := ch.consumerQueuesLocked()
	ch.mu.Unlock()
	ch.conn.out.sendMethod(ch.id, &amqp091.ChannelFlowOk{Active: active})
	if active {
		for _, q := range queues {
			q.Kick()
		}
	}
	return nil
}

func (ch *channel) consumerQueuesLocked() []broker.Source {
	var qs []broker.Source
	for _, cs := range ch.consumers {
		qs = append(qs, cs.q)
	}
	return qs
}

// fail closes the channel for a channel-level error.
func (ch *channel) fail(err *amqp091.Error) {
	ch.release()
	ch.closing = true
	ch.conn.out.sendMethod(ch.id, &amqp091.ChannelClose{ReplyCode: err.Code, ReplyText: err.Text, FailingClassID: err.ClassID, FailingMethodID: err.MethodID})
}

// release ends the channel's work: consumers cancelled, unacknowledged and
// uncommitted-settled messages requeued in their original order.
func (ch *channel) release() {
	ch.flushAcks()
	ch.mu.Lock()
	if ch.released {
		ch.mu.Unlock()
		return
	}
	ch.released = true
	consumers := ch.consumers
	ch.consumers = map[string]*consumerState{}
	recs := ch.unacked.takeAll(nil)
	ch.mu.Unlock()
	for _, cs := range consumers {
		cs.q.Cancel(cs.c)
	}
	if ch.tx != nil {
		recs = append(recs, ch.tx.takenRecs()...)
		ch.tx = nil
	}
	if ch.replyKey != "" {
		ch.vhost.UnregisterReplyTo(ch.replyKey)
	}
	ch.pub = publishing{}
	requeueAll(recs)
}

// requeueAll gives records back to their queues, one call per queue.
func requeueAll(recs []unackedRec) {
	byQueue := map[broker.Source][]broker.Entry{}
	var order []broker.Source
	for _, r := range recs {
		if _, ok := byQueue[r.queue]; !ok {
			order = append(order, r.queue)
		}
		byQueue[r.queue] = append(byQueue[r.queue], r.entry)
	}
	for _, q := range order {
		q.Requeue(byQueue[q])
	}
}

// recover requeues every unacknowledged message of the channel (basic.recover).
func (ch *channel) recover() {
	ch.mu.Lock()
	recs := ch.unacked.takeAll(nil)
	kick := ch.creditReturnedLocked(recs, nil)
	ch.mu.Unlock()
	requeueAll(recs)
	for _, q := range kick {
		q.Kick()
	}
}
