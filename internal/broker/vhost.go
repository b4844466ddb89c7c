package broker

import (
	"crypto/rand"
	"encoding/base64"
	"strings"
	"sync"

	"github.com/warren-mq/warren/internal/amqp091"
)

// VHost is a virtual host: its own exchanges, queues and bindings.
type VHost struct {
	Name   string
	broker *Broker

	mu        sync.RWMutex
	exchanges map[string]*Exchange
	queues    map[string]*Queue
	streams   map[string]*Stream // one namespace with queues: a name is in one map at most
	policies  policySet          // see policy.go

	params paramSet // runtime parameters, see params.go

	// inflight names the exchanges and queues a metadata change is being
	// validated, committed and applied for; a change to the same names waits
	// (see run). Routing never looks at it.
	resMu    sync.Mutex
	inflight map[string]chan struct{}
	// queuesPending names new queues between their max-queues check and
	// the end of their declare, so that concurrent declares cannot both take
	// the last slot.
	queuesPending map[string]bool

	infoMu sync.Mutex
	info   VHostInfo

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
	v := &VHost{Name: name, broker: b, exchanges: map[string]*Exchange{}, queues: map[string]*Queue{}, streams: map[string]*Stream{}, replyTo: map[string]ReplySink{}, inflight: map[string]chan struct{}{}}
	v.exchanges[""], _ = newExchange("", "direct", true, false, false, nil)
	for _, p := range [][2]string{{"amq.direct", "direct"}, {"amq.fanout", "fanout"}, {"amq.topic", "topic"}, {"amq.headers", "headers"}, {"amq.match", "headers"}} {
		v.exchanges[p[0]], _ = newExchange(p[0], p[1], true, false, false, nil)
	}
	// RabbitMQ's firehose tracer publishes here; clients may bind from it only.
	v.exchanges["amq.rabbitmq.trace"], _ = newExchange("amq.rabbitmq.trace", "topic", true, false, true, nil)
	return v
}

func exchangeKey(name string) string { return "e\x00" + name }
func queueKey(name string) string    { return "q\x00" + name }

// reserve waits until no metadata change is in flight for any of keys, then
// marks them all (at once, so two reservers never wait on each other) until
// the returned release runs.
func (v *VHost) reserve(keys ...string) (release func()) {
	v.resMu.Lock()
	for {
		var busy chan struct{}
		for _, k := range keys {
			if ch, ok := v.inflight[k]; ok {
				busy = ch
				break
			}
		}
		if busy == nil {
			break
		}
		v.resMu.Unlock()
		<-busy
		v.resMu.Lock()
	}
	ch := make(chan struct{})
	for _, k := range keys {
		v.inflight[k] = ch
	}
	v.resMu.Unlock()
	return func() {
		v.resMu.Lock()
		for _, k := range keys {
			delete(v.inflight, k)
		}
		v.resMu.Unlock()
		close(ch)
	}
}

// run performs one metadata change on the named entities: prepare validates
// the request against the current state (nothing else changes those
// entities meanwhile) and returns the command to commit and whether it must
// be logged, or a result without a command. Durable exchanges that a local
// command's apply left to auto-delete are then deleted by logged commands.
func (v *VHost) run(keys []string, prepare func() (c command, durable bool, res any, err error)) (any, error) {
	release := v.reserve(keys...)
	c, durable, res, err := prepare()
	var cascaded []deleteExchangeCmd
	if err == nil && c != nil {
		res, cascaded, err = v.broker.commit(c, durable)
	}
	release()
	for i := range cascaded {
		x := &cascaded[i]
		_, _ = v.run([]string{exchangeKey(x.Name)}, func() (command, bool, any, error) {
			return x, true, nil, nil
		})
	}
	return res, err
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
	if d.Name == "" {
		return nil, amqp091.NewError(amqp091.AccessRefused, "operation not permitted on the default exchange")
	}
	if d.Passive {
		if e, ok := v.Exchange(d.Name); ok {
			return e, nil
		}
		return nil, v.errNoExchange(d.Name)
	}
	res, err := v.run([]string{exchangeKey(d.Name)}, func() (command, bool, any, error) {
		if e, ok := v.Exchange(d.Name); ok {
			return nil, false, e, v.exchangeEquivalent(e, d)
		}
		if strings.HasPrefix(d.Name, "amq.") {
			return nil, false, nil, amqp091.NewError(amqp091.AccessRefused, "exchange name '%s' contains reserved prefix 'amq.*'", d.Name)
		}
		if err := checkExchangeArgs(d.Name, v.Name, d.Args); err != nil {
			return nil, false, nil, err
		}
		if !validExchangeKind(d.Kind) {
			return nil, false, nil, amqp091.NewError(amqp091.CommandInvalid, "invalid exchange type '%s'", d.Kind)
		}
		return &declareExchangeCmd{VHost: v.Name, Name: d.Name, Kind: d.Kind, Durable: d.Durable, AutoDelete: d.AutoDelete, Internal: d.Internal, Args: d.Args}, d.Durable, nil, nil
	})
	e, _ := res.(*Exchange)
	return e, err
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
	_, err := v.run([]string{exchangeKey(name)}, func() (command, bool, any, error) {
		e, ok := v.Exchange(name)
		if !ok {
			return nil, false, nil, nil // RabbitMQ 3.x deletes idempotently
		}
		if ifUnused && e.routes().len() > 0 {
			return nil, false, nil, amqp091.NewError(amqp091.PreconditionFailed, "exchange '%s' in vhost '%s' in use", name, v.Name)
		}
		return &deleteExchangeCmd{VHost: v.Name, Name: name}, e.Durable, nil, nil
	})
	return err
}

// BindingDecl is a queue.bind or exchange.bind request.
type BindingDecl struct {
	Source      string
	Destination string
	ToExchange  bool
	Key         string
	Args        amqp091.Table
}

func (d BindingDecl) binding() *Binding {
	return &Binding{Destination: d.Destination, ToExchange: d.ToExchange, Key: d.Key, Args: d.Args}
}

func (d BindingDecl) keys() []string {
	if d.ToExchange {
		return []string{exchangeKey(d.Source), exchangeKey(d.Destination)}
	}
	return []string{exchangeKey(d.Source), queueKey(d.Destination)}
}

// bindingEnds checks that both ends of a binding exist and that owner may use
// the queue; it returns the source and whether the binding outlives a restart
// (both ends durable).
func (v *VHost) bindingEnds(d BindingDecl, owner any) (*Exchange, bool, error) {
	if d.Source == "" || (d.ToExchange && d.Destination == "") {
		return nil, false, amqp091.NewError(amqp091.AccessRefused, "operation not permitted on the default exchange")
	}
	v.mu.RLock()
	defer v.mu.RUnlock()
	src, ok := v.exchanges[d.Source]
	if !ok {
		return nil, false, v.errNoExchange(d.Source)
	}
	if d.ToExchange {
		dst, ok := v.exchanges[d.Destination]
		if !ok {
			return nil, false, v.errNoExchange(d.Destination)
		}
		return src, src.Durable && dst.Durable, nil
	}
	if _, ok := v.streams[d.Destination]; ok {
		return src, src.Durable, nil // streams are always durable, never exclusive
	}
	q, ok := v.queues[d.Destination]
	if !ok {
		return nil, false, v.errNoQueue(d.Destination)
	}
	return src, src.Durable && q.Durable && !q.Exclusive, q.checkOwner(owner)
}

// Bind adds a binding (queue.bind / exchange.bind). owner is the calling
// connection, checked against exclusive queues.
func (v *VHost) Bind(d BindingDecl, owner any) error {
	_, err := v.run(d.keys(), func() (command, bool, any, error) {
		src, durable, err := v.bindingEnds(d, owner)
		if err != nil {
			return nil, false, nil, err
		}
		if src.Kind == "headers" {
			if reason := headersBindingError(d.Args); reason != "" {
				return nil, false, nil, amqp091.NewError(amqp091.PreconditionFailed, "%s", reason)
			}
		}
		if src.hasBinding(d.binding()) {
			return nil, false, nil, nil
		}
		return &bindCmd{VHost: v.Name, BindingDecl: d}, durable, nil, nil
	})
	return err
}

// Unbind removes a binding. As in RabbitMQ 3.x, removing a binding that does
// not exist (or whose ends do not) is not an error.
func (v *VHost) Unbind(d BindingDecl, owner any) error {
	if d.Source == "" || (d.ToExchange && d.Destination == "") {
		return amqp091.NewError(amqp091.AccessRefused, "operation not permitted on the default exchange")
	}
	_, err := v.run(d.keys(), func() (command, bool, any, error) {
		src, ok := v.Exchange(d.Source)
		if !ok || !src.hasBinding(d.binding()) {
			return nil, false, nil, nil
		}
		_, durable, err := v.bindingEnds(d, owner)
		if err != nil {
			return nil, false, nil, err
		}
		return &unbindCmd{VHost: v.Name, BindingDecl: d}, durable, nil, nil
	})
	return err
}

// QueueDecl is a queue.declare request.
type QueueDecl struct {
	Name                                    string
	Passive, Durable, Exclusive, AutoDelete bool
	Args                                    amqp091.Table
	// ServerNamed says Name came from GenerateQueueName (the front end
	// chose it to check permissions on it), so its amq. prefix is allowed.
	ServerNamed bool
	// Owner identifies the declaring connection (for exclusive queues).
	Owner any
}

// Declared is what a queue.declare found or made: a classic queue or a
// stream, with the counts declare-ok reports.
type Declared struct {
	Name                string
	Messages, Consumers int
	Queue               *Queue  // the classic queue, or nil
	Stream              *Stream // the stream, or nil
}

func declaredOf(x any) Declared {
	switch x := x.(type) {
	case *Queue:
		x.touch()
		n, c := x.Counts()
		return Declared{Name: x.Name, Messages: n, Consumers: c, Queue: x}
	case *Stream:
		n, c := x.Counts()
		return Declared{Name: x.name, Messages: n, Consumers: c, Stream: x}
	}
	return Declared{}
}

// DeclareQueue declares (or, passively, checks) a classic queue and returns
// it with its ready message count and consumer count. A declare that finds
// or makes a stream returns a nil queue: use Declare for those.
func (v *VHost) DeclareQueue(d QueueDecl) (*Queue, int, int, error) {
	r, err := v.Declare(d)
	return r.Queue, r.Messages, r.Consumers, err
}

// Declare declares (or, passively, checks) a queue of any type: a stream
// when the arguments say x-queue-type=stream, else a classic queue.
func (v *VHost) Declare(d QueueDecl) (Declared, error) {
	v.broker.totals.queuesDeclared.Add(1)
	if d.Passive {
		x, err := v.lookupQueue(d.Name, d.Owner)
		if err != nil {
			return Declared{}, err
		}
		return declaredOf(x), nil
	}
	serverNamed := d.Name == "" || d.ServerNamed
	if d.Name == "" {
		// The name is chosen here, before the command exists: replay
		// recreates this queue, it does not invent another.
		d.Name = generateName("amq.gen-")
	} else if strings.HasPrefix(d.Name, "amq.") && !d.ServerNamed {
		return Declared{}, amqp091.NewError(amqp091.AccessRefused, "queue name '%s' contains reserved prefix 'amq.*'", d.Name)
	}
	stream := isStreamDecl(d.Args)
	slot := false
	res, err := v.run([]string{queueKey(d.Name)}, func() (command, bool, any, error) {
		if q, ok := v.Queue(d.Name); ok {
			if err := q.checkOwner(d.Owner); err != nil {
				return nil, false, nil, err
			}
			return nil, false, q, q.equivalent(d)
		}
		if s, ok := v.Stream(d.Name); ok {
			return nil, false, s, s.equivalent(d)
		}
		if stream {
			if err := checkStreamDecl(d, v.Name, serverNamed); err != nil {
				return nil, false, nil, err
			}
			if v.broker.streamRoot == "" {
				return nil, false, nil, amqp091.NewError(amqp091.InternalError, "no stream directory configured")
			}
		} else if _, err := parseQueueArgs(d.Name, v.Name, d.Args); err != nil {
			return nil, false, nil, err
		}
		if err := v.takeQueueSlot(d.Name); err != nil {
			return nil, false, nil, err
		}
		slot = true
		c := &declareQueueCmd{VHost: v.Name, Name: d.Name, Durable: d.Durable, AutoDelete: d.AutoDelete, Args: d.Args}
		if d.Exclusive {
			c.Exclusive, c.owner = true, d.Owner
		}
		// Exclusive queues die with their connection, so never outlive a restart.
		return c, d.Durable && !d.Exclusive, nil, nil
	})
	if slot {
		v.releaseQueueSlot(d.Name)
	}
	if err != nil {
		return Declared{}, err
	}
	return declaredOf(res), nil
}

// lookupQueue finds a queue or stream for owner: 404 if missing, 405 if an
// exclusive queue of another connection.
func (v *VHost) lookupQueue(name string, owner any) (any, error) {
	v.mu.RLock()
	q, isQueue := v.queues[name]
	s, isStream := v.streams[name]
	v.mu.RUnlock()
	switch {
	case isQueue:
		return q, q.checkOwner(owner)
	case isStream:
		return s, nil
	}
	return nil, v.errNoQueue(name)
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
	x, err := v.lookupQueue(name, owner)
	if x == nil {
		return 0, nil // RabbitMQ 3.x deletes idempotently
	}
	if err != nil {
		return 0, err
	}
	if s, ok := x.(*Stream); ok {
		// RabbitMQ's streams ignore if-unused and if-empty.
		return 0, s.Delete()
	}
	return x.(*Queue).Delete(ifUnused, ifEmpty)
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

// GenerateQueueName returns a new server-chosen queue name (amq.gen-...).
func GenerateQueueName() string { return generateName("amq.gen-") }

func generateName(prefix string) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return prefix + base64.RawURLEncoding.EncodeToString(b[:])
}
