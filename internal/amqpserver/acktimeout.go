package amqpserver

import (
	"time"

	"github.com/warren-mq/warren/internal/amqp091"
)

// The delivery acknowledgement timeout (RabbitMQ's consumer_timeout): a
// channel whose delivery stays unacknowledged longer than the timeout of its
// queue (x-consumer-timeout or the consumer-timeout policy, else the
// server's) is closed with 406, which requeues its unacknowledged messages.
//
// Nothing is paid per delivery: the connection's reader checks its channels
// on a tick (deadlineReader wakes it without ending its read) while any has
// consumers or unacknowledged deliveries. A check stamps the records it sees
// for the first time; a record is overdue once a later check finds it
// stamped at least the timeout ago. So a channel is never closed early, and
// at most two tick intervals late.

// maxAckTick bounds the interval between checks.
const maxAckTick = time.Second

// minAckTick keeps very short timeouts from spinning the reader.
const minAckTick = 10 * time.Millisecond

// armAckTick makes sure a check is due within one interval; the reader calls
// it when a channel starts consuming or gets a message.
func (c *connection) armAckTick() {
	at := time.Now().Add(c.ackTickInterval(c.srv.cfg.ConsumerTimeout)).UnixNano()
	if c.rd.tickAt == 0 || at < c.rd.tickAt {
		c.rd.tickAt = at
	}
}

// ackTickInterval is the check interval for a timeout: a quarter of it,
// within [minAckTick, maxAckTick].
func (c *connection) ackTickInterval(timeout time.Duration) time.Duration {
	if timeout <= 0 {
		return maxAckTick
	}
	return min(max(timeout/4, minAckTick), maxAckTick)
}

// ackTick checks every channel for overdue deliveries, on the reader goroutine.
func (c *connection) ackTick() {
	now := time.Now()
	shortest := c.srv.cfg.ConsumerTimeout
	active := false
	for _, ch := range c.channels {
		if ch.closing {
			continue
		}
		overdue, used, busy, short := ch.checkAckTimeout(now.UnixMilli(), c.srv.cfg.ConsumerTimeout)
		if overdue {
			c.log.Warn("delivery acknowledgement timed out; closing the channel", "channel", ch.id, "timeout_ms", used)
			ch.fail(amqp091.NewError(amqp091.PreconditionFailed, "delivery acknowledgement on channel %d timed out. Timeout value used: %d ms. This timeout value can be configured, see consumers doc guide to learn more", ch.id, used))
			continue
		}
		if busy {
			active = true
			if short > 0 && (shortest <= 0 || short < shortest) {
				shortest = short
			}
		}
	}
	if active {
		c.rd.tickAt = now.Add(c.ackTickInterval(shortest)).UnixNano()
	}
}

// checkAckTimeout stamps the channel's new unacknowledged records and looks
// for an overdue one; def is the server's timeout (negative: none). It
// returns whether one is overdue and the timeout (ms) it broke, whether the
// channel needs further checks (it has consumers or unacknowledged
// deliveries) and the shortest timeout among its records.
func (ch *channel) checkAckTimeout(nowMs int64, def time.Duration) (overdue bool, used int64, busy bool, shortest time.Duration) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	busy = len(ch.consumers) > 0 || ch.unacked.len() > 0
	recs := ch.unacked.recs[ch.unacked.head:]
	for i := range recs {
		r := &recs[i]
		if r.queue == nil {
			continue
		}
		timeout := r.queue.ConsumerTimeout()
		if timeout < 0 {
			if def < 0 {
				continue
			}
			timeout = def.Milliseconds()
		}
		if d := time.Duration(timeout) * time.Millisecond; shortest == 0 || d < shortest {
			shortest = d
		}
		if r.seen == 0 {
			r.seen = nowMs
		} else if nowMs-r.seen >= timeout {
			return true, timeout, busy, shortest
		}
	}
	return false, 0, busy, shortest
}
