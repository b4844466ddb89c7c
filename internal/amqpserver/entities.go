package amqpserver

import (
	"strings"

	"github.com/warren-mq/warren/internal/amqp091"
	"github.com/warren-mq/warren/internal/broker"
)

// Handlers for the exchange and queue classes.

func (ch *channel) exchangeDeclare(m *amqp091.ExchangeDeclare) error {
	if !m.Passive && m.Exchange != "" {
		if err := ch.checkExchangeDeclare(m.Exchange, m.Arguments); err != nil {
			return err
		}
	}
	_, err := ch.vhost.DeclareExchange(broker.ExchangeDecl{
		Name: m.Exchange, Kind: m.Type, Passive: m.Passive, Durable: m.Durable,
		AutoDelete: m.AutoDelete, Internal: m.Internal, Args: m.Arguments,
	})
	if err != nil {
		return err
	}
	if !m.NoWait {
		ch.conn.out.sendMethod(ch.id, &amqp091.ExchangeDeclareOk{})
	}
	return nil
}

func (ch *channel) exchangeDelete(m *amqp091.ExchangeDelete) error {
	if m.Exchange != "" {
		if err := ch.conn.access.Check("exchange", m.Exchange, broker.Configure); err != nil {
			return err
		}
	}
	if err := ch.vhost.DeleteExchange(m.Exchange, m.IfUnused); err != nil {
		return err
	}
	if !m.NoWait {
		ch.conn.out.sendMethod(ch.id, &amqp091.ExchangeDeleteOk{})
	}
	return nil
}

func (ch *channel) exchangeBind(src, dst, key string, args amqp091.Table, noWait, bind bool) error {
	d := broker.BindingDecl{Source: src, Destination: dst, ToExchange: true, Key: key, Args: args}
	if err := ch.checkBinding("exchange", d); err != nil {
		return err
	}
	if bind {
		if err := ch.vhost.Bind(d, ch.conn); err != nil {
			return err
		}
		if !noWait {
			ch.conn.out.sendMethod(ch.id, &amqp091.ExchangeBindOk{})
		}
		return nil
	}
	if err := ch.vhost.Unbind(d, ch.conn); err != nil {
		return err
	}
	if !noWait {
		ch.conn.out.sendMethod(ch.id, &amqp091.ExchangeUnbindOk{})
	}
	return nil
}

// queueName resolves "" to the channel's last declared queue, as RabbitMQ does.
func (ch *channel) queueName(name string) (string, error) {
	if name != "" {
		return name, nil
	}
	if ch.lastQueue == "" {
		return "", amqp091.NewError(amqp091.NotFound, "no previously declared queue")
	}
	return ch.lastQueue, nil
}

// queue finds the queue a method names ("" for the last declared one) on
// behalf of this channel's connection, which needs perm on it.
func (ch *channel) queue(name string, perm broker.Perm) (*broker.Queue, error) {
	name, err := ch.queueName(name)
	if err != nil {
		return nil, err
	}
	if err := ch.conn.access.Check("queue", name, perm); err != nil {
		return nil, err
	}
	return ch.vhost.QueueFor(name, ch.conn)
}

func (ch *channel) queueDeclare(m *amqp091.QueueDeclare) error {
	if m.Passive && strings.HasPrefix(m.Queue, broker.DirectReplyTo+".") {
		// A direct reply-to name is a pseudo-queue: it exists while its consumer does.
		if !ch.vhost.ReplyToExists(m.Queue) {
			return amqp091.NewError(amqp091.NotFound, "no queue '%s' in vhost '%s'", m.Queue, ch.vhost.Name)
		}
		if !m.NoWait {
			ch.conn.out.sendMethod(ch.id, &amqp091.QueueDeclareOk{Queue: m.Queue, ConsumerCount: 1})
		}
		return nil
	}
	d := broker.QueueDecl{Name: m.Queue}
	if !m.Passive {
		var err error
		if d, err = ch.checkQueueDeclare(m.Queue, m.Arguments); err != nil {
			return err
		}
	}
	r, err := ch.vhost.Declare(broker.QueueDecl{
		Name: d.Name, ServerNamed: d.ServerNamed, Passive: m.Passive, Durable: m.Durable, Exclusive: m.Exclusive,
		AutoDelete: m.AutoDelete, Args: m.Arguments, Owner: ch.conn,
	})
	if err != nil {
		return err
	}
	ch.lastQueue = r.Name
	if !m.NoWait {
		ch.conn.out.sendMethod(ch.id, &amqp091.QueueDeclareOk{Queue: r.Name, MessageCount: uint32(r.Messages), ConsumerCount: uint32(r.Consumers)})
	}
	return nil
}

func (ch *channel) queueBind(m *amqp091.QueueBind) error {
	name, err := ch.queueName(m.Queue)
	if err != nil {
		return err
	}
	d := broker.BindingDecl{Source: m.Exchange, Destination: name, Key: m.RoutingKey, Args: m.Arguments}
	if m.Queue == "" && m.RoutingKey == "" {
		d.Key = d.Destination
	}
	if err := ch.checkBinding("queue", d); err != nil {
		return err
	}
	if err := ch.vhost.Bind(d, ch.conn); err != nil {
		return err
	}
	if !m.NoWait {
		ch.conn.out.sendMethod(ch.id, &amqp091.QueueBindOk{})
	}
	return nil
}

func (ch *channel) queueUnbind(m *amqp091.QueueUnbind) error {
	name, err := ch.queueName(m.Queue)
	if err != nil {
		return err
	}
	d := broker.BindingDecl{Source: m.Exchange, Destination: name, Key: m.RoutingKey, Args: m.Arguments}
	if err := ch.checkBinding("queue", d); err != nil {
		return err
	}
	if err := ch.vhost.Unbind(d, ch.conn); err != nil {
		return err
	}
	ch.conn.out.sendMethod(ch.id, &amqp091.QueueUnbindOk{})
	return nil
}

func (ch *channel) queuePurge(m *amqp091.QueuePurge) error {
	if s := ch.streamFor(m.Queue); s != nil {
		if err := ch.conn.access.Check("queue", s.Name(), broker.Read); err != nil {
			return err
		}
		return streamRefuses("queue.purge", s)
	}
	q, err := ch.queue(m.Queue, broker.Read)
	if err != nil {
		return err
	}
	n := q.Purge()
	if !m.NoWait {
		ch.conn.out.sendMethod(ch.id, &amqp091.QueuePurgeOk{MessageCount: uint32(n)})
	}
	return nil
}

func (ch *channel) queueDelete(m *amqp091.QueueDelete) error {
	name, err := ch.queueName(m.Queue)
	if err != nil {
		return err
	}
	if err := ch.conn.access.Check("queue", name, broker.Configure); err != nil {
		return err
	}
	n, err := ch.vhost.DeleteQueue(name, m.IfUnused, m.IfEmpty, ch.conn)
	if err != nil {
		return err
	}
	if !m.NoWait {
		ch.conn.out.sendMethod(ch.id, &amqp091.QueueDeleteOk{MessageCount: uint32(n)})
	}
	return nil
}
