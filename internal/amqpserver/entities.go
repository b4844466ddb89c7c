package amqpserver

import (
	"github.com/warren-mq/warren/internal/amqp091"
	"github.com/warren-mq/warren/internal/broker"
)

// Handlers for the exchange and queue classes.

func (ch *channel) exchangeDeclare(m *amqp091.ExchangeDeclare) error {
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
func (ch *channel) queueName(name string) string {
	if name == "" {
		return ch.lastQueue
	}
	return name
}

func (ch *channel) queueDeclare(m *amqp091.QueueDeclare) error {
	q, msgs, consumers, err := ch.vhost.DeclareQueue(broker.QueueDecl{
		Name: m.Queue, Passive: m.Passive, Durable: m.Durable, Exclusive: m.Exclusive,
		AutoDelete: m.AutoDelete, Args: m.Arguments, Owner: ch.conn,
	})
	if err != nil {
		return err
	}
	ch.lastQueue = q.Name
	if !m.NoWait {
		ch.conn.out.sendMethod(ch.id, &amqp091.QueueDeclareOk{Queue: q.Name, MessageCount: uint32(msgs), ConsumerCount: uint32(consumers)})
	}
	return nil
}

func (ch *channel) queueBind(m *amqp091.QueueBind) error {
	d := broker.BindingDecl{Source: m.Exchange, Destination: ch.queueName(m.Queue), Key: m.RoutingKey, Args: m.Arguments}
	if m.Queue == "" && m.RoutingKey == "" {
		d.Key = d.Destination
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
	d := broker.BindingDecl{Source: m.Exchange, Destination: ch.queueName(m.Queue), Key: m.RoutingKey, Args: m.Arguments}
	if err := ch.vhost.Unbind(d, ch.conn); err != nil {
		return err
	}
	ch.conn.out.sendMethod(ch.id, &amqp091.QueueUnbindOk{})
	return nil
}

func (ch *channel) queuePurge(m *amqp091.QueuePurge) error {
	q, err := ch.vhost.QueueFor(ch.queueName(m.Queue), ch.conn)
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
	n, err := ch.vhost.DeleteQueue(ch.queueName(m.Queue), m.IfUnused, m.IfEmpty, ch.conn)
	if err != nil {
		return err
	}
	if !m.NoWait {
		ch.conn.out.sendMethod(ch.id, &amqp091.QueueDeleteOk{MessageCount: uint32(n)})
	}
	return nil
}
