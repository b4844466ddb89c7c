package broker

import (
	"time"

	"github.com/warren-mq/warren/internal/amqp091"
)

// deadLetter is a message leaving a queue for its dead-letter exchange.
type deadLetter struct {
	msg    *Message
	reason string // rejected, expired, maxlen
	body   []byte // read while the queue still held the message
	// exchange and key are the queue's dead-letter exchange and routing key
	// (nil: the message's own) when the message died: a policy may change
	// them before it is republished.
	exchange string
	key      *string
}

// deadLetterLocked collects m for the queue's dead-letter exchange, if it
// has one, to be republished once q.mu is released (see Queue.unlock).
func (q *Queue) deadLetterLocked(m *Message, reason string, body []byte) {
	if q.args.dlx == nil {
		return
	}
	q.deadLetters = append(q.deadLetters, deadLetter{msg: m, reason: reason, body: body, exchange: *q.args.dlx, key: q.args.dlrk})
}

// countDeadLocked counts a message leaving the queue for reason ("expired",
// "maxlen", "rejected"), dead-lettered or discarded as the queue's
// dead-letter exchange says.
func (q *Queue) countDeadLocked(reason string) {
	r := DeadRejected
	switch reason {
	case "expired":
		r = DeadExpired
	case "maxlen":
		r = DeadMaxLen
	}
	dlx := 0
	if q.args.dlx != nil {
		dlx = 1
	}
	q.stats.DeadLettered[dlx][r]++
}

// deadLetter republishes d.msg from q to its dead-letter exchange with
// RabbitMQ's x-death bookkeeping. Called without q's lock.
func (v *VHost) deadLetter(q *Queue, d deadLetter) {
	ex, ok := v.Exchange(d.exchange)
	if !ok {
		return // a missing dead-letter exchange drops the message, as in RabbitMQ
	}
	p, err := d.msg.Properties()
	if err != nil {
		return
	}
	key := d.msg.RoutingKey
	if d.key != nil {
		key = *d.key
	}
	deaths, rejectedSeen := updateXDeath(&p, q, d, time.Now())
	m := &Message{Exchange: ex.Name, RoutingKey: key, Persistent: d.msg.Persistent, Priority: d.msg.Priority, TTL: -1}
	m.setBody(d.body)
	m.Props = p.Append(nil)
	var r Router
	for _, target := range v.route(&r, ex, m) {
		if !rejectedSeen && diedIn(deaths, target.targetName()) {
			continue // a dead-letter cycle without a rejection: dropped, as in RabbitMQ
		}
		target.enqueue(m, nil)
	}
	m.rec.Store(nil)
}

// updateXDeath records this death in the x-death header and the x-first-death-*
// headers. It returns the x-death entries and whether any was a rejection.
func updateXDeath(p *amqp091.Properties, q *Queue, d deadLetter, now time.Time) ([]any, bool) {
	if p.Headers == nil {
		p.Headers = amqp091.Table{}
	}
	old, _ := p.Headers["x-death"].([]any)
	keys := []any{d.msg.RoutingKey}
	// BCC never reaches a queue: Publish removed it (withoutBCC).
	if extra, ok := p.Headers["CC"].([]any); ok {
		keys = append(keys, extra...)
	}
	var deaths []any
	var count int64 = 1
	for _, x := range old {
		t, ok := x.(amqp091.Table)
		if ok && t["queue"] == q.Name && t["reason"] == d.reason {
			if n, ok := TableInt(t["count"]); ok {
				count = n + 1
			}
			continue // the updated entry moves to the front
		}
		deaths = append(deaths, x)
	}
	entry := amqp091.Table{
		"count":        count,
		"reason":       d.reason,
		"queue":        q.Name,
		"time":         now.Truncate(time.Second),
		"exchange":     d.msg.Exchange,
		"routing-keys": keys,
	}
	if p.Expiration != "" {
		entry["original-expiration"] = p.Expiration
		p.Expiration = ""
	}
	deaths = append([]any{entry}, deaths...)
	p.Headers["x-death"] = deaths
	if _, ok := p.Headers["x-first-death-reason"]; !ok {
		p.Headers["x-first-death-reason"] = d.reason
		p.Headers["x-first-death-queue"] = q.Name
		p.Headers["x-first-death-exchange"] = d.msg.Exchange
	}
	rejected := false
	for _, x := range deaths {
		if t, ok := x.(amqp091.Table); ok && t["reason"] == "rejected" {
			rejected = true
		}
	}
	return deaths, rejected
}

func diedIn(deaths []any, queue string) bool {
	for _, x := range deaths {
		if t, ok := x.(amqp091.Table); ok && t["queue"] == queue {
			return true
		}
	}
	return false
}
