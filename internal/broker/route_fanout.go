package broker

import (
	"slices"

	"github.com/warren-mq/warren/internal/amqp091"
)

// fanoutTable routes every message to every binding; keys and headers are ignored. Fanout
// exchanges have few bindings and route far more often than they change, so a plain slice
// copied on change keeps routing a single append.
type fanoutTable struct {
	bindings []*Binding
}

func (t *fanoutTable) route(dst []*Binding, _ string, _ amqp091.Table) []*Binding {
	return append(dst, t.bindings...)
}

func (t *fanoutTable) with(b *Binding) (routeTable, bool) {
	if slices.ContainsFunc(t.bindings, func(x *Binding) bool { return bindingsEqual(x, b) }) {
		return t, false
	}
	return &fanoutTable{bindings: append(slices.Clip(t.bindings), b)}, true
}

func (t *fanoutTable) without(b *Binding) (routeTable, bool) {
	i := slices.IndexFunc(t.bindings, func(x *Binding) bool { return bindingsEqual(x, b) })
	if i < 0 {
		return t, false
	}
	return &fanoutTable{bindings: slices.Delete(slices.Clone(t.bindings), i, i+1)}, true
}

func (t *fanoutTable) all() []*Binding { return slices.Clone(t.bindings) }

func (t *fanoutTable) len() int { return len(t.bindings) }
