package broker

import (
	"maps"
	"slices"
	"strings"
)

// The broker's query side: snapshots of what it holds, for management,
// metrics and tests. Each returns a copy taken under the owner's read lock.

// VHosts returns the vhosts, sorted by name.
func (b *Broker) VHosts() []*VHost {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return slices.SortedFunc(maps.Values(b.vhosts), func(x, y *VHost) int { return strings.Compare(x.Name, y.Name) })
}

// Exchanges returns the vhost's exchanges (the default exchange included), sorted by name.
func (v *VHost) Exchanges() []*Exchange {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return slices.SortedFunc(maps.Values(v.exchanges), func(x, y *Exchange) int { return strings.Compare(x.Name, y.Name) })
}

// Queues returns the vhost's queues, sorted by name.
func (v *VHost) Queues() []*Queue {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return slices.SortedFunc(maps.Values(v.queues), func(x, y *Queue) int { return strings.Compare(x.Name, y.Name) })
}
