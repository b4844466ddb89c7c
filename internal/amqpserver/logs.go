package amqpserver

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/warren-mq/warren/internal/amqp091"
)

// A connection's life in the log, in RabbitMQ's words where operators grep
// for them ("accepting AMQP connection", "user 'u' authenticated and granted
// access to vhost 'v'", "closing AMQP connection", "Channel error on
// connection", "Error on AMQP connection"), with the same facts as slog
// attributes for machines (connection, client_name, vhost, user, reason). RabbitMQ
// names a connection by its Erlang process and address; Warren by the
// address, which is also its name in the management API.

// logLabel is the connection as RabbitMQ's lines show it: its name, then
// the name the client gave itself (connection_name), if any.
func (c *connection) logLabel() string {
	if n := c.clientName(); n != "" {
		return c.name + " - " + n
	}
	return c.name
}

func (c *connection) clientName() string {
	n, _ := c.clientCaps["connection_name"].(string)
	return n
}

// logWho is the label with the vhost and user, once they are known.
func (c *connection) logWho() string {
	switch {
	case c.vhost != nil:
		return fmt.Sprintf("%s, vhost: '%s', user: '%s'", c.logLabel(), c.vhost.Name, c.user.Name)
	case c.user != nil:
		return fmt.Sprintf("%s, user: '%s'", c.logLabel(), c.user.Name)
	}
	return c.logLabel()
}

// logAccepted logs a client that sent the AMQP protocol header.
func (c *connection) logAccepted() {
	c.accepted = true
	c.log.Info("accepting AMQP connection (" + c.name + ")")
}

// logOpened logs a connection that got connection.open-ok.
func (c *connection) logOpened(mechanism string) {
	c.log.Info(fmt.Sprintf("connection (%s): user '%s' authenticated and granted access to vhost '%s'", c.logLabel(), c.user.Name, c.vhost.Name),
		"mechanism", mechanism)
}

// endWith records why the connection ends, for logClosed; the first reason wins.
func (c *connection) endWith(level slog.Level, reason string) {
	if c.endReason == "" {
		c.endLevel, c.endReason = level, reason
	}
}

// logClosed logs the end of a connection that was accepted.
func (c *connection) logClosed() {
	if !c.accepted {
		return
	}
	if c.endReason == "" && c.forced.Load() {
		c.endLevel, c.endReason = slog.LevelInfo, "connection forced"
	}
	msg := "closing AMQP connection (" + c.logWho() + ")"
	if c.endReason == "" {
		c.log.Info(msg)
		return
	}
	c.log.Log(context.Background(), c.endLevel, msg+": "+c.endReason, "reason", c.endReason)
}

// logConnectionError logs the exception that makes Warren close the connection.
func (c *connection) logConnectionError(err *amqp091.Error) {
	level := slog.LevelError
	if err.Code == amqp091.ConnectionForced {
		level = slog.LevelWarn
	}
	state := "running"
	if c.vhost == nil {
		state = "opening"
	}
	c.log.Log(context.Background(), level, fmt.Sprintf("Error on AMQP connection (%s, state: %s), channel 0: operation %s caused a connection exception %s",
		c.logWho(), state, operation(err), exception(err)), "code", err.Code, "text", err.Text)
	c.endWith(slog.LevelInfo, err.Text)
}

// logChannelError logs the exception that closes a channel.
func (c *connection) logChannelError(id uint16, err *amqp091.Error) {
	c.log.Error(fmt.Sprintf("Channel error on connection (%s), channel %d: operation %s caused a channel exception %s",
		c.logWho(), id, operation(err), exception(err)), "channel", id, "code", err.Code, "text", err.Text)
}

// exception is RabbitMQ's "not_found: no queue 'x' in vhost '/'" for a reply.
func exception(err *amqp091.Error) string {
	name := amqp091.ReplyName(err.Code)
	text := strings.TrimPrefix(err.Text, name+" - ")
	if name == "" {
		name = fmt.Sprint(err.Code)
	}
	return strings.ToLower(name) + ": " + text
}

// operation names the method an error is about ("queue.declare"), or "none".
func operation(err *amqp091.Error) string {
	if err.ClassID == 0 {
		return "none"
	}
	if m := amqp091.NewMethod(err.ClassID, err.MethodID); m != nil {
		return m.Name()
	}
	return fmt.Sprintf("%d.%d", err.ClassID, err.MethodID)
}
