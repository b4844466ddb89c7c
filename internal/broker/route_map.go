package broker

import "math/bits"

// routeMap is a persistent (immutable) hash map from string to V: a hash array mapped trie.
// Adding or removing a key copies only the O(log32 n) nodes on its path, so routing snapshots
// with thousands of keys can be rebuilt once per bind without copying every key, while lookups
// stay allocation-free and lock-free. The zero value is an empty map.
//
// Callers pass the key's routeHash with the key, so a hash computed once (for a word of a
// routing key, say) serves several lookups.
type routeMap[V any] struct {
	root *routeMapNode[V]
	n    int
}

// routeMapNode is one trie level: bitmap has a bit set for each of the 32 hash chunk values that
// are present, and slots holds them in chunk order. Below routeMapMaxShift a node is a collision
// list searched linearly (two keys with the same 64-bit hash).
type routeMapNode[V any] struct {
	bitmap uint32
	slots  []routeMapSlot[V]
}

// routeMapSlot is either a sub-node or a leaf; leaves are shared between versions of the map.
type routeMapSlot[V any] struct {
	node *routeMapNode[V]
	leaf *routeMapLeaf[V]
}

type routeMapLeaf[V any] struct {
	hash uint64
	key  string
	val  V
}

const (
	routeMapBits     = 5
	routeMapMaxShift = 64 // at this shift all hash bits are used up: collision list
)

func routeMapChunk(h uint64, shift uint) uint32 { return 1 << ((h >> shift) & 31) }

// len returns the number of keys.
func (m routeMap[V]) len() int { return m.n }

// get returns the value stored under key, whose routeHash is h.
func (m routeMap[V]) get(h uint64, key string) (V, bool) {
	n, shift := m.root, uint(0)
	for n != nil {
		if shift >= routeMapMaxShift {
			for _, s := range n.slots {
				if s.leaf.key == key {
					return s.leaf.val, true
				}
			}
			break
		}
		bit := routeMapChunk(h, shift)
		if n.bitmap&bit == 0 {
			break
		}
		s := n.slots[bits.OnesCount32(n.bitmap&(bit-1))]
		if s.node != nil {
			n, shift = s.node, shift+routeMapBits
			continue
		}
		if s.leaf.hash == h && s.leaf.key == key {
			return s.leaf.val, true
		}
		break
	}
	var zero V
	return zero, false
}

// with returns a map that stores val under key (replacing any old value); m is unchanged.
func (m routeMap[V]) with(h uint64, key string, val V) routeMap[V] {
	leaf := &routeMapLeaf[V]{hash: h, key: key, val: val}
	root, added := m.root.with(0, leaf)
	if added {
		m.n++
	}
	m.root = root
	return m
}

func (n *routeMapNode[V]) with(shift uint, leaf *routeMapLeaf[V]) (*routeMapNode[V], bool) {
	if n == nil {
		n = &routeMapNode[V]{}
	}
	if shift >= routeMapMaxShift {
		for i, s := range n.slots {
			if s.leaf.key == leaf.key {
				return n.replaced(i, routeMapSlot[V]{leaf: leaf}), false
			}
		}
		c := &routeMapNode[V]{slots: make([]routeMapSlot[V], len(n.slots), len(n.slots)+1)}
		copy(c.slots, n.slots)
		c.slots = append(c.slots, routeMapSlot[V]{leaf: leaf})
		return c, true
	}
	bit := routeMapChunk(leaf.hash, shift)
	i := bits.OnesCount32(n.bitmap & (bit - 1))
	if n.bitmap&bit == 0 {
		c := &routeMapNode[V]{bitmap: n.bitmap | bit, slots: make([]routeMapSlot[V], len(n.slots)+1)}
		copy(c.slots, n.slots[:i])
		c.slots[i] = routeMapSlot[V]{leaf: leaf}
		copy(c.slots[i+1:], n.slots[i:])
		return c, true
	}
	s := n.slots[i]
	if s.node != nil {
		child, added := s.node.with(shift+routeMapBits, leaf)
		return n.replaced(i, routeMapSlot[V]{node: child}), added
	}
	if s.leaf.hash == leaf.hash && s.leaf.key == leaf.key {
		return n.replaced(i, routeMapSlot[V]{leaf: leaf}), false
	}
	// Two different keys share this chunk: push both one level down.
	child, _ := (*routeMapNode[V])(nil).with(shift+routeMapBits, s.leaf)
	child, _ = child.with(shift+routeMapBits, leaf)
	return n.replaced(i, routeMapSlot[V]{node: child}), true
}

// replaced returns a copy of n with slot i set to s.
func (n *routeMapNode[V]) replaced(i int, s routeMapSlot[V]) *routeMapNode[V] {
	c := &routeMapNode[V]{bitmap: n.bitmap, slots: make([]routeMapSlot[V], len(n.slots))}
	copy(c.slots, n.slots)
	c.slots[i] = s
	return c
}

// without returns a map lacking key; removed=false (and m itself) if key was absent.
func (m routeMap[V]) without(h uint64, key string) (routeMap[V], bool) {
	root, removed := m.root.without(0, h, key)
	if !removed {
		return m, false
	}
	return routeMap[V]{root: root, n: m.n - 1}, true
}

// without returns the node lacking key, nil when it ends up empty. A sub-node left holding a
// single leaf is replaced by that leaf so the trie stays as shallow as an insert-only one.
func (n *routeMapNode[V]) without(shift uint, h uint64, key string) (*routeMapNode[V], bool) {
	if n == nil {
		return nil, false
	}
	var i int
	if shift >= routeMapMaxShift {
		i = -1
		for j, s := range n.slots {
			if s.leaf.key == key {
				i = j
			}
		}
		if i < 0 {
			return n, false
		}
	} else {
		bit := routeMapChunk(h, shift)
		if n.bitmap&bit == 0 {
			return n, false
		}
		i = bits.OnesCount32(n.bitmap & (bit - 1))
		if s := n.slots[i]; s.node != nil {
			child, removed := s.node.without(shift+routeMapBits, h, key)
			switch {
			case !removed:
				return n, false
			case child == nil:
				return n.dropped(i, bit), true
			case len(child.slots) == 1 && child.slots[0].leaf != nil:
				return n.replaced(i, child.slots[0]), true
			default:
				return n.replaced(i, routeMapSlot[V]{node: child}), true
			}
		} else if s.leaf.hash != h || s.leaf.key != key {
			return n, false
		}
		return n.dropped(i, bit), true
	}
	return n.dropped(i, 0), true
}

// dropped returns a copy of n without slot i (whose bitmap bit is bit), or nil if none is left.
func (n *routeMapNode[V]) dropped(i int, bit uint32) *routeMapNode[V] {
	if len(n.slots) == 1 {
		return nil
	}
	c := &routeMapNode[V]{bitmap: n.bitmap &^ bit, slots: make([]routeMapSlot[V], 0, len(n.slots)-1)}
	c.slots = append(c.slots, n.slots[:i]...)
	c.slots = append(c.slots, n.slots[i+1:]...)
	return c
}

// each calls fn for every key and value, in no particular order.
func (m routeMap[V]) each(fn func(key string, val V)) { m.root.each(fn) }

func (n *routeMapNode[V]) each(fn func(key string, val V)) {
	if n == nil {
		return
	}
	for _, s := range n.slots {
		if s.node != nil {
			s.node.each(fn)
		} else {
			fn(s.leaf.key, s.leaf.val)
		}
	}
}
