package broker

import (
	"sync"
	"sync/atomic"

	"github.com/warren-mq/warren/internal/amqp091"
)

// Exchange routes messages to queues and other exchanges through its bindings.
type Exchange struct {
	Name       string
	Kind       string
	Durable    bool
	AutoDelete bool
	Internal   bool
	Args       amqp091.Table

	// alternate is the alternate exchange in effect, "" if none: the
	// argument's, else the policy's. Guarded by the vhost's lock, which
	// routing holds while it reads it.
	alternate         string
	declaredAlternate string // the alternate-exchange argument
	pol               atomic.Pointer[appliedPolicies]

	mu      sync.Mutex // serialises binding changes; routing reads table without it
	table   atomic.Pointer[routeSnapshot]
	deleted atomic.Bool
	stats   exchangeStats
}

// routeSnapshot boxes a routeTable so it can live in an atomic.Pointer.
type routeSnapshot struct{ t routeTable }

func newExchange(name, kind string, durable, autoDelete, internal bool, args amqp091.Table) (*Exchange, bool) {
	t, ok := newRouteTable(kind)
	if !ok {
		return nil, false
	}
	e := &Exchange{Name: name, Kind: kind, Durable: durable, AutoDelete: autoDelete, Internal: internal, Args: args}
	if ae, ok := args["alternate-exchange"].(string); ok {
		e.alternate, e.declaredAlternate = ae, ae
	}
	e.table.Store(&routeSnapshot{t})
	return e, true
}

// setPoliciesLocked makes ap the exchange's policies, with its vhost's lock
// held. As in RabbitMQ, an alternate-exchange argument wins over the policy's.
func (e *Exchange) setPoliciesLocked(ap *appliedPolicies) {
	e.pol.Store(ap)
	e.alternate = e.declaredAlternate
	if e.alternate == "" {
		if ae, ok := ap.definition()["alternate-exchange"].(string); ok {
			e.alternate = ae
		}
	}
}

func (e *Exchange) routes() routeTable { return e.table.Load().t }

// Bindings returns the exchange's bindings.
func (e *Exchange) Bindings() []*Binding { return e.routes().all() }

// Deleted reports whether the exchange was deleted (callers may cache pointers).
func (e *Exchange) Deleted() bool { return e.deleted.Load() }

// bind adds b; false if an equal binding exists.
func (e *Exchange) bind(b *Binding) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	t, added := e.routes().with(b)
	if added {
		e.table.Store(&routeSnapshot{t})
	}
	return added
}

// hasBinding reports whether a binding equal to b exists.
func (e *Exchange) hasBinding(b *Binding) bool {
	for _, x := range e.routes().all() {
		if bindingsEqual(x, b) {
			return true
		}
	}
	return false
}

// unbind removes the binding equal to b; it returns whether one was removed and
// how many bindings remain.
func (e *Exchange) unbind(b *Binding) (bool, int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	t, removed := e.routes().without(b)
	if removed {
		e.table.Store(&routeSnapshot{t})
	}
	return removed, t.len()
}

// unbindDestination removes every binding to a destination, returning how many
// bindings remain and whether any were removed.
func (e *Exchange) unbindDestination(dest string, toExchange bool) (removed bool, remaining int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	t := e.routes()
	for _, b := range t.all() {
		if b.Destination == dest && b.ToExchange == toExchange {
			t, _ = t.without(b)
			removed = true
		}
	}
	if removed {
		e.table.Store(&routeSnapshot{t})
	}
	return removed, t.len()
}
