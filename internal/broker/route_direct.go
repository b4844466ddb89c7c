package broker

import (
	"slices"

	"github.com/warren-mq/warren/internal/amqp091"
)

// directTable routes on exact equality of routing key and binding key.
//
// Bindings are grouped by key in a persistent hash map rather than a Go map: a Go map would have
// to be copied whole on every bind to keep old snapshots intact, which makes binding N queues
// O(N²). Lookups are as cheap (one hash, a few pointer hops) and allocate nothing.
type directTable struct {
	byKey routeMap[[]*Binding]
	n     int
}

func (t *directTable) route(dst []*Binding, routingKey string, _ amqp091.Table) []*Binding {
	if t.n == 0 {
		return dst
	}
	bs, _ := t.byKey.get(routeHash(routingKey), routingKey)
	return append(dst, bs...)
}

func (t *directTable) with(b *Binding) (routeTable, bool) {
	h := routeHash(b.Key)
	old, _ := t.byKey.get(h, b.Key)
	if slices.ContainsFunc(old, func(x *Binding) bool { return bindingsEqual(x, b) }) {
		return t, false
	}
	// Clip so append always copies: old is shared with the previous snapshot.
	return &directTable{byKey: t.byKey.with(h, b.Key, append(slices.Clip(old), b)), n: t.n + 1}, true
}

func (t *directTable) without(b *Binding) (routeTable, bool) {
	h := routeHash(b.Key)
	old, _ := t.byKey.get(h, b.Key)
	i := slices.IndexFunc(old, func(x *Binding) bool { return bindingsEqual(x, b) })
	if i < 0 {
		return t, false
	}
	if len(old) == 1 {
		m, _ := t.byKey.without(h, b.Key)
		return &directTable{byKey: m, n: t.n - 1}, true
	}
	bs := slices.Delete(slices.Clone(old), i, i+1)
	return &directTable{byKey: t.byKey.with(h, b.Key, bs), n: t.n - 1}, true
}

func (t *directTable) all() []*Binding {
	out := make([]*Binding, 0, t.n)
	t.byKey.each(func(_ string, bs []*Binding) { out = append(out, bs...) })
	return out
}

func (t *directTable) len() int { return t.n }
