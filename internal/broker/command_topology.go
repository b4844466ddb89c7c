package broker

import (
	"github.com/warren-mq/warren/internal/amqp091"
)

// The topology commands: exchanges, queues and bindings. Field tags are part
// of the on-disk format (see command.go): never reuse one.

func init() {
	registerCommand(cmdDeclareExchange, func() command { return &declareExchangeCmd{} })
	registerCommand(cmdDeleteExchange, func() command { return &deleteExchangeCmd{} })
	registerCommand(cmdDeclareQueue, func() command { return &declareQueueCmd{} })
	registerCommand(cmdDeleteQueue, func() command { return &deleteQueueCmd{} })
	registerCommand(cmdBind, func() command { return &bindCmd{} })
	registerCommand(cmdUnbind, func() command { return &unbindCmd{} })
}

// vhostFor returns the vhost a command names. A command of a vhost deleted
// since is a deterministic no-op.
func (a *applier) vhostFor(name string) (*VHost, error) {
	v, ok := a.b.VHost(name)
	if !ok {
		return nil, amqp091.NewError(amqp091.NotFound, "no vhost '%s'", name)
	}
	return v, nil
}

// declareExchangeCmd creates an exchange unless one of that name exists.
type declareExchangeCmd struct {
	VHost, Name, Kind             string
	Durable, AutoDelete, Internal bool
	Args                          amqp091.Table
}

func (c *declareExchangeCmd) typ() cmdType { return cmdDeclareExchange }

func (c *declareExchangeCmd) fields() []field {
	return []field{{2, &c.VHost}, {4, &c.Name}, {6, &c.Kind}, {8, &c.Durable}, {10, &c.AutoDelete}, {12, &c.Internal}, {14, &c.Args}}
}

func (c *declareExchangeCmd) apply(a *applier) (any, error) {
	v, err := a.vhostFor(c.VHost)
	if err != nil {
		return nil, err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if e, ok := v.exchanges[c.Name]; ok {
		return e, nil // the caller compares it with what it asked for
	}
	e, ok := newExchange(c.Name, c.Kind, c.Durable, c.AutoDelete, c.Internal, c.Args)
	if !ok {
		return nil, amqp091.NewError(amqp091.CommandInvalid, "invalid exchange type '%s'", c.Kind)
	}
	e.setPoliciesLocked(v.policiesForLocked(c.Name, policyExchange))
	v.exchanges[c.Name] = e
	return e, nil
}

// deleteExchangeCmd deletes an exchange and the bindings from and to it.
type deleteExchangeCmd struct{ VHost, Name string }

func (c *deleteExchangeCmd) typ() cmdType { return cmdDeleteExchange }

func (c *deleteExchangeCmd) fields() []field { return []field{{2, &c.VHost}, {4, &c.Name}} }

func (c *deleteExchangeCmd) apply(a *applier) (any, error) {
	v, err := a.vhostFor(c.VHost)
	if err != nil {
		return nil, err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if e, ok := v.exchanges[c.Name]; ok {
		v.deleteExchangeLocked(a, e)
	}
	return nil, nil
}

// deleteExchangeLocked removes e with v.mu held, with the bindings to it;
// sources left without bindings auto-delete.
func (v *VHost) deleteExchangeLocked(a *applier, e *Exchange) {
	if v.exchanges[e.Name] != e {
		return
	}
	e.deleted.Store(true)
	delete(v.exchanges, e.Name)
	for _, src := range v.exchanges {
		if removed, remaining := src.unbindDestination(e.Name, true); removed && remaining == 0 && src.AutoDelete {
			a.autoDelete(v, src)
		}
	}
}

// declareQueueCmd creates a queue unless one of that name exists. Exclusive
// queues are never logged: their owner is set only on the local command.
type declareQueueCmd struct {
	VHost, Name                    string
	Durable, AutoDelete, Exclusive bool
	Args                           amqp091.Table
	owner                          any
}

func (c *declareQueueCmd) typ() cmdType { return cmdDeclareQueue }

func (c *declareQueueCmd) fields() []field {
	return []field{{2, &c.VHost}, {4, &c.Name}, {6, &c.Durable}, {8, &c.AutoDelete}, {10, &c.Args}}
}

func (c *declareQueueCmd) apply(a *applier) (any, error) {
	v, err := a.vhostFor(c.VHost)
	if err != nil {
		return nil, err
	}
	if isStreamDecl(c.Args) {
		return a.declareStream(v, c.Name, c.Args)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if q, ok := v.queues[c.Name]; ok {
		return q, nil // the caller compares it with what it asked for
	}
	if s, ok := v.streams[c.Name]; ok {
		return s, nil
	}
	q := newQueue(v, QueueDecl{Name: c.Name, Durable: c.Durable, AutoDelete: c.AutoDelete, Exclusive: c.Exclusive, Args: c.Args, Owner: c.owner})
	v.queues[c.Name] = q
	if !a.boot {
		v.broker.totals.queuesCreated.Add(1)
	}
	return q, nil
}

// deleteQueueCmd deletes a queue with its messages and the bindings to it.
type deleteQueueCmd struct{ VHost, Name string }

func (c *deleteQueueCmd) typ() cmdType { return cmdDeleteQueue }

func (c *deleteQueueCmd) fields() []field { return []field{{2, &c.VHost}, {4, &c.Name}} }

func (c *deleteQueueCmd) apply(a *applier) (any, error) {
	v, err := a.vhostFor(c.VHost)
	if err != nil {
		return 0, err
	}
	if s, ok := v.Stream(c.Name); ok {
		s.destroy(a)
		return 0, nil
	}
	q, ok := v.Queue(c.Name)
	if !ok {
		return 0, nil
	}
	return q.destroy(a), nil
}

// removeQueue unlinks a destroyed queue from the vhost and the bindings to it.
func (v *VHost) removeQueue(a *applier, q *Queue) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.queues[q.Name] != q {
		return
	}
	delete(v.queues, q.Name)
	v.unbindQueueLocked(a, q.Name)
}

// unbindQueueLocked removes the bindings to a deleted queue or stream;
// sources left without bindings auto-delete.
func (v *VHost) unbindQueueLocked(a *applier, name string) {
	for _, e := range v.exchanges {
		if removed, remaining := e.unbindDestination(name, false); removed && remaining == 0 && e.AutoDelete {
			a.autoDelete(v, e)
		}
	}
}

// bindCmd adds a binding; both ends must exist.
type bindCmd struct {
	VHost string
	BindingDecl
}

func (c *bindCmd) typ() cmdType { return cmdBind }

func (c *bindCmd) fields() []field { return bindingFields(&c.VHost, &c.BindingDecl) }

func bindingFields(vhost *string, d *BindingDecl) []field {
	return []field{{2, vhost}, {4, &d.Source}, {6, &d.Destination}, {8, &d.ToExchange}, {10, &d.Key}, {12, &d.Args}}
}

func (c *bindCmd) apply(a *applier) (any, error) {
	v, err := a.vhostFor(c.VHost)
	if err != nil {
		return nil, err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	src, ok := v.exchanges[c.Source]
	if !ok {
		return nil, v.errNoExchange(c.Source)
	}
	if c.ToExchange {
		if _, ok := v.exchanges[c.Destination]; !ok {
			return nil, v.errNoExchange(c.Destination)
		}
	} else if !v.hasQueueLocked(c.Destination) {
		return nil, v.errNoQueue(c.Destination)
	}
	src.bind(c.binding())
	return nil, nil
}

// unbindCmd removes a binding; its source auto-deletes if that was its last.
type unbindCmd struct {
	VHost string
	BindingDecl
}

func (c *unbindCmd) typ() cmdType { return cmdUnbind }

func (c *unbindCmd) fields() []field { return bindingFields(&c.VHost, &c.BindingDecl) }

func (c *unbindCmd) apply(a *applier) (any, error) {
	v, err := a.vhostFor(c.VHost)
	if err != nil {
		return nil, err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	src, ok := v.exchanges[c.Source]
	if !ok {
		return nil, nil
	}
	if removed, remaining := src.unbind(c.binding()); removed && remaining == 0 && src.AutoDelete {
		a.autoDelete(v, src)
	}
	return nil, nil
}
