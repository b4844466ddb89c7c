package amqpserver

import (
	"strings"

	"github.com/warren-mq/warren/internal/amqp091"
	"github.com/warren-mq/warren/internal/broker"
)

// Connection and channel accounting for vhost and user limits, and closing
// the connections of a deleted vhost or user. The counts live under
// Server.mu; a connection is counted from connection.open-ok to teardown.

// accounting is the server's per-vhost and per-user counts.
type accounting struct {
	vhostConns map[string]int
	userConns  map[string]int
	userChans  map[string]int
}

// watchAccess registers the broker hooks that close connections of a
// deleted vhost or user with RabbitMQ's 320 texts.
func (s *Server) watchAccess() {
	s.acct = accounting{vhostConns: map[string]int{}, userConns: map[string]int{}, userChans: map[string]int{}}
	s.broker.OnVHostDeleted(func(vhost string) {
		s.closeWhere(func(c *connection) bool { return c.openVHost == vhost }, "vhost '"+vhost+"' is deleted")
	})
	s.broker.OnUserDeleted(func(user string) {
		s.closeWhere(func(c *connection) bool { return c.openUser == user }, "user '"+user+"' is deleted")
	})
}

// closeWhere force-closes every open connection that match selects (under s.mu).
func (s *Server) closeWhere(match func(*connection) bool, reason string) {
	s.mu.Lock()
	var hit []*connection
	for c := range s.conns {
		if c.counted && match(c) {
			hit = append(hit, c)
		}
	}
	s.mu.Unlock()
	for _, c := range hit {
		c.log.Info("closing connection", "reason", reason)
		c.forceClose(reason)
	}
}

// admit counts c as open on vhost for user, unless a vhost or user
// max-connections limit is reached: then it returns RabbitMQ's 530.
func (s *Server) admit(c *connection, user, vhost string) *amqp091.Error {
	b := s.broker
	s.mu.Lock()
	defer s.mu.Unlock()
	if limit, ok := broker.Limit(b.VHostLimits(vhost), broker.LimitMaxConnections); ok && int64(s.acct.vhostConns[vhost]) >= limit {
		return amqp091.NewError(amqp091.NotAllowed, "access to vhost '%s' refused for user '%s': connection limit (%d) is reached", vhost, user, limit)
	}
	if limit, ok := broker.Limit(b.UserLimits(user), broker.LimitMaxConnections); ok && int64(s.acct.userConns[user]) >= limit {
		return amqp091.NewError(amqp091.NotAllowed, "connection refused for user '%s': user connection limit (%d) is reached", user, limit)
	}
	s.acct.vhostConns[vhost]++
	s.acct.userConns[user]++
	c.counted, c.openUser, c.openVHost = true, user, vhost
	return nil
}

// uncount forgets c's connection and channels in the counts.
func (s *Server) uncount(c *connection) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !c.counted {
		return
	}
	c.counted = false
	decr(s.acct.vhostConns, c.openVHost, 1)
	decr(s.acct.userConns, c.openUser, 1)
	decr(s.acct.userChans, c.openUser, c.openChans)
	c.openChans = 0
}

// openChannelCounted counts a new channel of c's user unless the user's
// max-channels limit is reached: then RabbitMQ's 530 (a connection error).
func (s *Server) openChannelCounted(c *connection) *amqp091.Error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if limit, ok := broker.Limit(s.broker.UserLimits(c.openUser), broker.LimitMaxChannels); ok && int64(s.acct.userChans[c.openUser]) >= limit {
		return amqp091.NewError(amqp091.NotAllowed, "number of channels opened for user '%s' has reached the maximum allowed user limit of (%d)", c.openUser, limit)
	}
	s.acct.userChans[c.openUser]++
	c.openChans++
	return nil
}

// closeChannelCounted forgets one channel of c's user.
func (s *Server) closeChannelCounted(c *connection) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.openChans > 0 {
		c.openChans--
		decr(s.acct.userChans, c.openUser, 1)
	}
}

func decr(m map[string]int, k string, n int) {
	if m[k] -= n; m[k] <= 0 {
		delete(m, k)
	}
}

// Permission checks of the exchange and queue methods that go beyond one
// resource, in RabbitMQ's order (rabbit_channel): what is refused first is
// what RabbitMQ names in its refusal.

// checkExchangeDeclare: configure on the exchange; for a new exchange with an
// alternate exchange, read on it and write on the alternate.
func (ch *channel) checkExchangeDeclare(name string, args amqp091.Table) error {
	acc := ch.conn.access
	if err := acc.Check("exchange", name, broker.Configure); err != nil {
		return err
	}
	if _, exists := ch.vhost.Exchange(name); exists {
		return nil
	}
	if ae, ok := args["alternate-exchange"].(string); ok {
		if err := acc.Check("exchange", name, broker.Read); err != nil {
			return err
		}
		return acc.Check("exchange", ae, broker.Write)
	}
	return nil
}

// checkQueueDeclare chooses a server-named queue's name and checks
// configure on the queue; for a new queue, the vhost's max-queues and, with a
// dead-letter exchange, read on the queue and write on that exchange.
func (ch *channel) checkQueueDeclare(name string, args amqp091.Table) (broker.QueueDecl, error) {
	d := broker.QueueDecl{Name: name}
	if name == "" {
		d.Name, d.ServerNamed = broker.GenerateQueueName(), true
	} else if strings.HasPrefix(name, "amq.") {
		return d, nil // refused for its name first, by DeclareQueue
	}
	acc := ch.conn.access
	if err := acc.Check("queue", d.Name, broker.Configure); err != nil {
		return d, err
	}
	if _, exists := ch.vhost.Queue(d.Name); exists {
		return d, nil
	}
	if _, exists := ch.vhost.Stream(d.Name); exists {
		return d, nil
	}
	if err := ch.vhost.QueueLimitReached(d.Name); err != nil {
		return d, err
	}
	if dlx, ok := args["x-dead-letter-exchange"].(string); ok {
		if err := acc.Check("queue", d.Name, broker.Read); err != nil {
			return d, err
		}
		return d, acc.Check("exchange", dlx, broker.Write)
	}
	return d, nil
}

// checkBinding: write on the destination (kind "queue" or "exchange"), read
// on the source, and the topic read permission on the binding key when the
// source is a topic exchange. Bindings from or to the default exchange are
// left for the vhost to refuse, after the destination's check, as RabbitMQ does.
func (ch *channel) checkBinding(kind string, d broker.BindingDecl) error {
	acc := ch.conn.access
	if err := acc.Check(kind, d.Destination, broker.Write); err != nil {
		return err
	}
	if d.Source == "" || (d.ToExchange && d.Destination == "") {
		return nil
	}
	if err := acc.Check("exchange", d.Source, broker.Read); err != nil {
		return err
	}
	if src, ok := ch.vhost.Exchange(d.Source); ok && src.Kind == "topic" {
		return acc.CheckTopic(src.Name, d.Key, broker.Read)
	}
	return nil
}
