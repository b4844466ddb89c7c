package amqpserver

import (
	"crypto/rand"
	"encoding/base64"

	"github.com/warren-mq/warren/internal/amqp091"
	"github.com/warren-mq/warren/internal/broker"
)

// checkProperties enforces what RabbitMQ checks of a message's properties: a
// user_id must be the connection's user (unless it is an impersonator), and a reply_to of
// amq.rabbitmq.reply-to is rewritten to this channel's reply key.
func (ch *channel) checkProperties(m *broker.Message, s *amqp091.PropertySummary) error {
	if s.Flags&amqp091.FlagUserID != 0 && string(s.UserID) != ch.conn.user.Name && !ch.conn.user.HasTag("impersonator") {
		return amqp091.NewError(amqp091.PreconditionFailed, "user_id property set to '%s' but authenticated user was '%s'", s.UserID, ch.conn.user.Name)
	}
	if s.Flags&amqp091.FlagReplyTo != 0 && string(s.ReplyTo) == broker.DirectReplyTo {
		if ch.replyKey == "" {
			return amqp091.NewError(amqp091.PreconditionFailed, "fast reply consumer does not exist")
		}
		p, err := m.Properties()
		if err != nil {
			return err
		}
		p.ReplyTo = ch.replyKey
		m.Props = p.Append(nil)
	}
	return nil
}

// waitAlarm blocks a publishing connection while a broker resource alarm
// (memory, disk) is set, telling clients that support it with
// connection.blocked and connection.unblocked. It reports false if the
// connection ended meanwhile (the peer went away, the writer failed, the
// server shut down): the message that waited is then dropped, unconfirmed.
func (c *connection) waitAlarm() bool {
	reason, cleared := c.srv.broker.Alarm()
	if reason == "" {
		return true
	}
	notify := c.clientCap("connection.blocked")
	c.flushConfirms()
	if notify {
		c.out.sendMethod(0, &amqp091.ConnectionBlocked{Reason: reason})
	}
	if n, ok := c.srv.blockLog.Allow(); ok {
		// One line per interval however many publishers block: an alarm
		// blocks every publishing connection at once.
		c.log.Info("publisher blocked", "reason", reason, "others_not_logged", n)
	}
	// Nobody reads the socket while the reader waits here; the watch sees the
	// client go away, so its connection ends now, not when the alarm clears.
	w := watchPeer(c.nc, c.rd)
	defer w.stop()
	c.sess.state.Store(stateBlocked)
	defer c.sess.state.CompareAndSwap(stateBlocked, stateRunning)
	for reason != "" {
		select {
		case <-cleared:
		case <-w.gone:
			return false
		case <-c.writerDone:
			return false
		case <-c.forcedCh:
			return false
		}
		reason, cleared = c.srv.broker.Alarm()
	}
	if notify {
		c.out.sendMethod(0, &amqp091.ConnectionUnblocked{})
	}
	return true
}

// generateTag makes a server-generated consumer tag.
func generateTag() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "amq.ctag-" + base64.RawURLEncoding.EncodeToString(b[:])
}
