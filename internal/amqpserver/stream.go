package amqpserver

import (
	"github.com/warren-mq/warren/internal/amqp091"
	"github.com/warren-mq/warren/internal/broker"
)

// streamFor finds the stream a method names ("" for the last declared
// queue), nil if the name is not a stream's; the caller checks permissions.
func (ch *channel) streamFor(name string) *broker.Stream {
	name, err := ch.queueName(name)
	if err != nil {
		return nil
	}
	s, _ := ch.vhost.Stream(name)
	return s
}

// streamRefuses is RabbitMQ's answer to a method streams do not support
// (basic.get, queue.purge): 540, which closes the connection.
func streamRefuses(method string, s *broker.Stream) error {
	return amqp091.NewError(amqp091.NotImplemented, "%s not supported by stream queues queue '%s' in vhost '%s'", method, s.Name(), s.VHost().Name)
}

// source finds what a basic.consume names: a classic queue (404 if missing,
// 405 if exclusive to another connection) or a stream; the connection needs
// perm on it.
func (ch *channel) source(name string, perm broker.Perm) (broker.Source, error) {
	if s := ch.streamFor(name); s != nil {
		if err := ch.conn.access.Check("queue", s.Name(), perm); err != nil {
			return nil, err
		}
		return s, nil
	}
	q, err := ch.queue(name, perm)
	if err != nil {
		return nil, err
	}
	return q, nil
}
