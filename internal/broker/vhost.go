package broker

import (
	"crypto/rand"
	"encoding/base64"
	"strings"
	"sync"

	"github.com/warren-mq/warren/internal/amqp091"
	"github.com/warren-mq/warren/internal/store"
)

// VHost is a virtual host: its own exchanges, queues and bindings.
type VHost struct {
	Name   string
	broker *Broker

	mu        sync.RWMutex
	exchanges map[string]*Exchange
	queues    map[string]*Queue

	replyMu sync.RWMutex
	replyTo map[string]ReplySink // direct reply-to consumers by their reply-to key
}

// ReplySink receives direct reply-to messages for one channel.
type ReplySink interface {
	// DeliverReply hands over a reply; it must not block.
	DeliverReply(m *Message)
}

// DirectReplyTo is the pseudo-queue clients consume for direct reply-to.
const DirectReplyTo = "amq.rabbitmq.reply-to"

func newVHost(b *Broker, name string) *VHost {
	v := &VHost{Name: name, broker: b, exchanges: map[string]*Exchange{}, queues: map[string]*Queue{}, replyTo: map[string]ReplySink{}}
	v.exchanges[""], _ = newExchange("", "direct", true, false, false, nil)
	for _, p := range [][2]string{{"amq.direct", "direct"}, {"amq.fanout", "fanout"}, {"amq.topic", "topic"}, {"amq.headers", "headers"}, {"amq.match", "headers"}} {
		v.exchanges[p[0]], _ = newExchange(p[0], p[1], true, false, false, nil)
	}
	return v
}

// Broker returns the broker the vhost belongs to.
func (v *VHost) Broker() *Broker { return v.broker }

func (v *VHost) errNoExchange(name string) error {
	return amqp091.NewError(amqp091.NotFound, "no exchange '%s' in vhost '%s'", name, v.Name)
}

func (v *VHost) errNoQueue(name string) error {
	return amqp091.NewError(amqp091.NotFound, "no queue '%s' in vhost '%s'", name, v.Name)
}

// ExchangeDecl is an exchange.declare request.
type ExchangeDecl struct {
	Name, Kind                             string
	Passive, Durable, AutoDelete, Internal bool
	Args                                   amqp091.Table
}

// DeclareExchange declares (or, passively, checks) an exchange.
func (v *VHost) DeclareExchange(d ExchangeDecl) (*Exchange, error) {
	if d.Passive {
		if d.Name == "" {
			return nil, amqp091.NewError(amqp091.AccessRefused, "operation not permitted on the default exchange")
		}
		if e, ok := v.Exchange(d.Name); ok {
			return e, nil
		}
		return nil, v.errNoExchange(d.Name)
	}
	if d.Name == "" {
		return nil, amqp091.NewError(amqp091.AccessRefused, "operation not permitted on the default exchange")
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if e, ok := v.exchanges[d.Name]; ok {
		return e, v.exchangeEquivalent(e, d)
	}
	if strings.HasPrefix(d.Name, "amq.") {
		return nil, amqp091.NewError(amqp091.AccessRefused, "exchange name '%s' contains reserved prefix 'amq.*'", d.Name)
	}
	if err := checkExchangeArgs(d.Name, v.Name, d.Args); err != nil {
		return nil, err
	}
	e, ok := newExchange(d.Name, d.Kind, d.Durable, d.AutoDelete, d.Internal, d.Args)
	if !ok {
		return nil, amqp091.NewError(amqp091.CommandInvalid, "invalid exchange type '%s'", d.Kind)
	}
	if d.Durable {
		flags := flagDurable | boolFlag(d.AutoDelete, flagAutoDelete) | boolFlag(d.Internal, flagInternal)
		if err := v.broker.logMeta(store.MetaCommand{Op: store.MetaDeclareExchange, VHost: v.Name, Name: d.Name, Kind: d.Kind, Flags: flags, Args: encodeArgs(d.Args)}); err != nil {
			return nil, err
		}
	}
	v.exchanges[d.Name] = e
	return e, nil
}

func (v *VHost) exchangeEquivalent(e *Exchange, d ExchangeDecl) error {
	what := "exchange '" + e.Name + "' in vhost '" + v.Name + "'"
	if e.Kind != d.Kind {
		return inequivalent("type", what, "'"+d.Kind+"'", "'"+e.Kind+"'")
	}
	for _, c := range []struct {
		name      string
		have, got bool
	}{{"durable", e.Durable, d.Durable}, {"auto_delete", e.AutoDelete, d.AutoDelete}, {"internal", e.Internal, d.Internal}} {
		if c.have != c.got {
			return inequivalent(c.name, what, "'"+boolText(c.got)+"'", "'"+boolText(c.have)+"'")
		}
	}
	return argsEquivalent(what, e.Args, d.Args, []string{"alternate-exchange"})
}

// Exchange returns an exchange by name.
func (v *VHost) Exchange(name string) (*Exchange, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	e, ok := v.exchanges[name]
	return e, ok
}

// ExchangeForPublish finds the exchange a basic.publish names.
func (v *VHost) ExchangeForPublish(name string) (*Exchange, error) {
	e, ok := v.Exchange(name)
	if !ok {
		return nil, v.errNoExchange(name)
	}
	if e.Internal {
		return nil, amqp091.NewError(amqp091.AccessRefused, "cannot publish to internal exchange '%s' in vhost '%s'", name, v.Name)
	}
	return e, nil
}

// DeleteExchange deletes an exchange and every binding from or to it.
func (v *VHost) DeleteExchange(name string, ifUnused bool) error {
	if name == "" {
		return amqp091.NewError(amqp091.AccessRefused, "operation not permitted on the default exchange")
	}
	if strings.HasPrefix(name, "amq.") {
		return amqp091.NewError(amqp091.AccessRefused, "deletion of system exchange '%s' in vhost '%s' not allowed", name, v.Name)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	e, ok := v.exchanges[name]
	if !ok {
		return nil // RabbitMQ 3.x deletes idempotently
	}
	if ifUnused && e.routes().len() > 0 {
		return amqp091.NewError(amqp091.PreconditionFailed, "exchange '%s' in vhost '%s' in use", name, v.Name)
	}
	v.deleteExchangeLocked(e)
	return nil
}

func (v *VHost) deleteExchangeLocked(e *Exchange) {
	if e.Durable {
		// A failure is logged by logMeta; the exchange goes from memory anyway
		// and, at worst, comes back at the next restart.
		_ = v.broker.logMeta(store.MetaCommand{Op: store.MetaDeleteExchange, VHost: v.Name, Name: e.Name})
	}
	e.deleted.Store(true)
	delete(v.exchanges, e.Name)
	// Bindings from other exchanges to this one go too.
	for _, src := range v.exchanges {
		if removed, remaining := src.unbindDestination(e.Name, true); removed && remaining == 0 && src.AutoDelete {
			v.deleteExchangeLocked(src)
		}
	}
}

// BindingDecl is a queue.bind or exchange.bind request.
type BindingDecl struct {
	Source      string
	Destination string
	ToExchange  bool
	Key         string
	Args        amqp091.Table
}

func (v *VHost) bindingEnds(d BindingDecl, owner any) (*Exchange, error) {
	if d.Source == "" || (d.ToExchange && d.Destination == "") {
		return nil, amqp091.NewError(amqp091.AccessRefused, "operation not permitted on the default exchange")
	}
	src, ok := v.exchanges[d.Source]
	if !ok {
		return nil, v.errNoExchange(d.Source)
	}
	if d.ToExchange {
		if _, ok := v.exchanges[d.Destination]; !ok {
			return nil, v.errNoExchange(d.Destination)
		}
		return src, nil
	}
	q, ok := v.queues[d.Destination]
	if !ok {
		return nil, v.errNoQueue(d.Destination)
	}
	return src, q.checkOwner(owner)
}

// Bind adds a binding (queue.bind / exchange.bind). owner is the calling
// connection, checked against exclusive queues.
func (v *VHost) Bind(d BindingDecl, owner any) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	src, err := v.bindingEnds(d, owner)
	if err != nil {
		return err
	}
	if src.Kind == "headers" {
		if reason := headersBindingError(d.Args); reason != "" {
			return amqp091.NewError(amqp091.PreconditionFailed, "%s", reason)
		}
	}
	if src.bind(&Binding{Destination: d.Destination, ToExchange: d.ToExchange, Key: d.Key, Args: d.Args}) && v.durableEnds(src, d) {
		if err := v.broker.logMeta(bindingCommand(store.MetaBind, v.Name, d)); err != nil {
			src.unbind(&Binding{Destination: d.Destination, ToExchange: d.ToExchange, Key: d.Key, Args: d.Args})
			return err
		}
	}
	return nil
}

// durableEnds reports whether a binding survives restarts: both ends durable.
func (v *VHost) durableEnds(src *Exchange, d BindingDecl) bool {
	if !src.Durable {
		return false
	}
	if d.ToExchange {
		dst, ok := v.exchanges[d.Destination]
		return ok && dst.Durable
	}
	q, ok := v.queues[d.Destination]
	return ok && q.Durable && !q.Exclusive
}

// Unbind removes a binding. As in RabbitMQ 3.x, removing a binding that does
// not exist (or whose ends do not) is not an error.
func (v *VHost) Unbind(d BindingDecl, owner any) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	b := &Binding{Destination: d.Destination, ToExchange: d.ToExchange, Key: d.Key, Args: d.Args}
	if d.Source == "" || (d.ToExchange && d.Destination == "") {
		return amqp091.NewError(amqp091.AccessRefused, "operation not permitted on the default exchange")
	}
	src, ok := v.exchanges[d.Source]
	if !ok || !src.hasBinding(b) {
		return nil
	}
	if _, err := v.bindingEnds(d, owner); err != nil {
		return err
	}
	removed, remaining := src.unbind(b)
	if removed && v.durableEnds(src, d) {
		_ = v.broker.logMeta(bindingCommand(store.MetaUnbind, v.Name, d))
	}
	if removed && remaining == 0 && src.AutoDelete {
		v.deleteExchangeLocked(src)
	}
	return nil
}

// QueueDecl is a queue.declare request.
type QueueDecl struct {
	Name                                    string
	Passive, Durable, Exclusive, AutoDelete bool
	Args                                    amqp091.Table
	// Owner identifies the declaring connection (for exclusive queues).
	Owner any
}

// DeclareQueue declares (or, passively, checks) a queue and returns it with its
// ready message count and consumer count.
func (v *VHost) DeclareQueue(d QueueDecl) (*Queue, int, int, error) {
	if d.Passive {
		v.mu.RLock()
		q, ok := v.queues[d.Name]
		v.mu.RUnlock()
		if !ok {
			return nil, 0, 0, v.errNoQueue(d.Name)
		}
		if err := q.checkOwner(d.Owner); err != nil {
			return nil, 0, 0, err
		}
		q.touch()
		n, c := q.Counts()
		return q, n, c, nil
	}
	if d.Name == "" {
		d.Name = generateName("amq.gen-")
	} else if strings.HasPrefix(d.Name, "amq.") {
		return nil, 0, 0, amqp091.NewError(amqp091.AccessRefused, "queue name '%s' contains reserved prefix 'amq.*'", d.Name)
	}
	v.mu.Lock()
	if q, ok := v.queues[d.Name]; ok {
		v.mu.Unlock()
		if err := q.checkOwner(d.Owner); err != nil {
			return nil, 0, 0, err
		}
		if err := q.equivalent(d); err != nil {
			return nil, 0, 0, err
		}
		q.touch()
		n, c := q.Counts()
		return q, n, c, nil
	}
	q, err := newQueue(v, d)
	if err != nil {
		v.mu.Unlock()
		return nil, 0, 0, err
	}
	if d.Durable && !d.Exclusive {
		// Exclusive queues die with their connection, so never outlive a restart.
		flags := flagDurable | boolFlag(d.AutoDelete, flagAutoDelete)
		if err := v.broker.logMeta(store.MetaCommand{Op: store.MetaDeclareQueue, VHost: v.Name, Name: d.Name, Flags: flags, Args: encodeArgs(d.Args)}); err != nil {
			v.mu.Unlock()
			return nil, 0, 0, err
		}
	}
	v.queues[d.Name] = q
	v.mu.Unlock()
	q.touch()
	return q, 0, 0, nil
}

// Queue returns a queue by name.
func (v *VHost) Queue(name string) (*Queue, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	q, ok := v.queues[name]
	return q, ok
}

// QueueFor looks a queue up for an operation by owner: 404 if missing, 405 if
// exclusive to another connection.
func (v *VHost) QueueFor(name string, owner any) (*Queue, error) {
	q, ok := v.Queue(name)
	if !ok {
		return nil, v.errNoQueue(name)
	}
	return q, q.checkOwner(owner)
}

// DeleteQueue deletes a queue, returning how many ready messages it held.
func (v *VHost) DeleteQueue(name string, ifUnused, ifEmpty bool, owner any) (int, error) {
	q, ok := v.Queue(name)
	if !ok {
		return 0, nil // RabbitMQ 3.x deletes idempotently
	}
	if err := q.checkOwner(owner); err != nil {
		return 0, err
	}
	return q.Delete(ifUnused, ifEmpty)
}

// removeQueue unlinks a deleted queue from the vhost and its bindings.
func (v *VHost) removeQueue(q *Queue) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.queues[q.Name] != q {
		return
	}
	if q.Durable && !q.Exclusive {
		_ = v.broker.logMeta(store.MetaCommand{Op: store.MetaDeleteQueue, VHost: v.Name, Name: q.Name})
	}
	delete(v.queues, q.Name)
	for _, e := range v.exchanges {
		if removed, remaining := e.unbindDestination(q.Name, false); removed && remaining == 0 && e.AutoDelete {
			v.deleteExchangeLocked(e)
		}
	}
}

// OwnerClosed deletes the exclusive queues of a closed connection.
func (v *VHost) OwnerClosed(owner any) {
	v.mu.RLock()
	var mine []*Queue
	for _, q := range v.queues {
		if q.owner != nil && q.owner == owner {
			mine = append(mine, q)
		}
	}
	v.mu.RUnlock()
	for _, q := range mine {
		_, _ = q.Delete(false, false)
	}
}

// RegisterReplyTo registers a direct reply-to consumer and returns its key.
func (v *VHost) RegisterReplyTo(s ReplySink) string {
	key := generateName(DirectReplyTo + ".")
	v.replyMu.Lock()
	v.replyTo[key] = s
	v.replyMu.Unlock()
	return key
}

// ReplyToExists reports whether a direct reply-to key has a live consumer.
func (v *VHost) ReplyToExists(key string) bool {
	v.replyMu.RLock()
	defer v.replyMu.RUnlock()
	_, ok := v.replyTo[key]
	return ok
}

// UnregisterReplyTo removes a direct reply-to consumer.
func (v *VHost) UnregisterReplyTo(key string) {
	v.replyMu.Lock()
	delete(v.replyTo, key)
	v.replyMu.Unlock()
}

func generateName(prefix string) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return prefix + base64.RawURLEncoding.EncodeToString(b[:])
}
