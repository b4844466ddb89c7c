package amqpserver

import (
	"sync"

	"github.com/warren-mq/warren/internal/amqp091"
	"github.com/warren-mq/warren/internal/broker"
)

// txState holds what a transaction will do at commit.
type txState struct {
	ops     []txOp
	settles []txSettle
}

// txOp is a publish made inside a transaction.
type txOp struct {
	msg       *broker.Message
	exchange  *broker.Exchange
	mandatory bool
}

// txSettle is an ack, nack or reject made inside a transaction; its records
// left the channel's unacked list and go back there on rollback.
type txSettle struct {
	recs []unackedRec
	op   settleOp
}

func (t *txState) takenRecs() []unackedRec {
	var recs []unackedRec
	for _, s := range t.settles {
		recs = append(recs, s.recs...)
	}
	return recs
}

func (ch *channel) txSelect() error {
	if ch.confirms != nil {
		return amqp091.NewError(amqp091.PreconditionFailed, "cannot switch from confirm to tx mode")
	}
	if ch.tx == nil {
		ch.tx = &txState{}
		ch.stats.tx.Store(true)
	}
	ch.conn.out.sendMethod(ch.id, &amqp091.TxSelectOk{})
	return nil
}

func (ch *channel) txCommit() error {
	if ch.tx == nil {
		return amqp091.NewError(amqp091.PreconditionFailed, "channel is not transactional")
	}
	t := ch.tx
	ch.tx = &txState{}
	if !ch.conn.waitAlarm() {
		return nil // the connection ended: nothing is committed
	}
	var durable sync.WaitGroup
	for _, op := range t.ops {
		if op.exchange.Deleted() {
			continue
		}
		ch.route(op.exchange, op.msg, op.mandatory, &durable)
	}
	durable.Wait() // commit-ok only once the committed persistent messages are on disk
	for _, s := range t.settles {
		ch.mu.Lock()
		kick := ch.creditReturnedLocked(s.recs, nil)
		ch.mu.Unlock()
		ch.applySettle(s.recs, s.op)
		for _, q := range kick {
			q.Kick()
		}
	}
	ch.conn.out.sendMethod(ch.id, &amqp091.TxCommitOk{})
	return nil
}

func (ch *channel) txRollback() error {
	if ch.tx == nil {
		return amqp091.NewError(amqp091.PreconditionFailed, "channel is not transactional")
	}
	recs := ch.tx.takenRecs()
	ch.tx = &txState{}
	ch.mu.Lock()
	ch.unacked.restore(recs)
	ch.mu.Unlock()
	ch.conn.out.sendMethod(ch.id, &amqp091.TxRollbackOk{})
	return nil
}

func (ch *channel) confirmSelect(m *amqp091.ConfirmSelect) error {
	if ch.tx != nil {
		return amqp091.NewError(amqp091.PreconditionFailed, "cannot switch from tx to confirm mode")
	}
	if ch.confirms == nil {
		ch.confirms = &confirmTracker{}
		ch.stats.tracker.Store(ch.confirms)
	}
	if !m.Nowait {
		ch.conn.out.sendMethod(ch.id, &amqp091.ConfirmSelectOk{})
	}
	return nil
}
