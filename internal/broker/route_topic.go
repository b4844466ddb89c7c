package broker

import (
	"slices"
	"strings"
	"sync/atomic"

	"github.com/warren-mq/warren/internal/amqp091"
)

// topicTable routes by matching the routing key against binding keys as patterns over words
// separated by '.': "*" matches exactly one word and "#" zero or more words. Semantics follow
// RabbitMQ 3.10 exactly (checked against 3.10.8): the empty key has zero words, while empty
// words are real words ("a..b" has three, "a." two, "." two), so pattern "" matches only key ""
// and "#" matches every key including "".
//
// Patterns live in a trie over words, shared between snapshots: a bind copies only the nodes on
// its pattern's path (and the trie's word maps are persistent too), so N binds in a row cost
// O(N log N), not O(N²). Routing walks the trie as a set of live nodes per word (an NFA
// simulation), which visits each (node, word) pair at most once however many '#' a pattern has,
// and yields each matching node, hence each binding, once. Results are cached per snapshot.
type topicTable struct {
	root  *topicNode // nil when empty
	n     int
	cache topicCache
}

// topicNode is one position in a pattern. Nodes are immutable once their table is published.
type topicNode struct {
	words    routeMap[*topicNode] // children for literal words
	star     *topicNode           // child for "*"
	hash     *topicNode           // child for "#"
	isHash   bool                 // this node is its parent's "#" child, so it can absorb further words
	bindings []*Binding           // bindings whose pattern ends here
}

func newTopicTable(root *topicNode, n int) *topicTable { return &topicTable{root: root, n: n} }

// topicPattern splits a binding key into the trie path it is stored under. Runs of "#" collapse
// into one, since "#.#" matches exactly what "#" matches; this keeps the trie free of chains of
// '#' nodes that would otherwise multiply the ways a key can match.
func topicPattern(key string) []string {
	if key == "" {
		return nil
	}
	words := strings.Split(key, ".")
	return slices.CompactFunc(words, func(a, b string) bool { return a == "#" && b == "#" })
}

func (t *topicTable) route(dst []*Binding, routingKey string, _ amqp091.Table) []*Binding {
	if t.n == 0 {
		return dst
	}
	h := routeHash(routingKey)
	if r, ok := t.cache.get(h, routingKey); ok {
		return append(dst, r...)
	}
	start := len(dst)
	dst = t.match(dst, routingKey)
	t.cache.put(h, routingKey, dst[start:])
	return dst
}

// match appends the bindings whose patterns match key, walking the trie without the cache.
func (t *topicTable) match(dst []*Binding, key string) []*Binding {
	if t.root == nil {
		return dst
	}
	// Live node sets start on the stack; only keys that keep more than 16 patterns alive at
	// once spill to the heap.
	var bufA, bufB [16]*topicNode
	cur, next := append(bufA[:0], t.root), bufB[:0]
	if t.root.hash != nil {
		cur = append(cur, t.root.hash)
	}
	if key != "" {
		for rest := key; ; {
			w, tail, more := strings.Cut(rest, ".")
			next = topicStep(next[:0], cur, w)
			cur, next = next, cur
			if len(cur) == 0 {
				return dst
			}
			if !more {
				break
			}
			rest = tail
		}
	}
	for _, n := range cur {
		dst = append(dst, n.bindings...)
	}
	return dst
}

// topicStep appends to next the set of nodes live after consuming word w from the set cur.
// cur holds no duplicates, and neither does the result.
func topicStep(next, cur []*topicNode, w string) []*topicNode {
	// A '#' node absorbs the word and stays live. These go first so the '#' step below can
	// check against them: they are the only nodes that can be reached twice.
	for _, n := range cur {
		if n.isHash {
			next = append(next, n)
		}
	}
	loops := len(next)
	var h uint64
	hashed := false
	for _, n := range cur {
		if n.words.len() > 0 {
			if !hashed {
				h, hashed = routeHash(w), true
			}
			if c, ok := n.words.get(h, w); ok {
				next = append(next, c)
			}
		}
		if n.star != nil {
			next = append(next, n.star)
		}
	}
	// A '#' child matches zero words too, so it is live wherever its parent is. Patterns are
	// stored with runs of '#' collapsed, so a '#' node never has a '#' child to follow further.
	for i, end := loops, len(next); i < end; i++ {
		if hn := next[i].hash; hn != nil && !slices.Contains(next[:loops], hn) {
			next = append(next, hn)
		}
	}
	return next
}

func (t *topicTable) with(b *Binding) (routeTable, bool) {
	root, added := t.root.with(topicPattern(b.Key), b, false)
	if !added {
		return t, false
	}
	return newTopicTable(root, t.n+1), true
}

// with returns a copy of the subtree at n (nil for a new node) that also holds b at the end of
// path words; isHash marks a node created as a '#' child.
func (n *topicNode) with(words []string, b *Binding, isHash bool) (*topicNode, bool) {
	var c topicNode
	if n != nil {
		c = *n
	} else {
		c.isHash = isHash
	}
	if len(words) == 0 {
		if slices.ContainsFunc(c.bindings, func(x *Binding) bool { return bindingsEqual(x, b) }) {
			return n, false
		}
		// Clip so append copies: the old slice still belongs to the previous snapshot.
		c.bindings = append(slices.Clip(c.bindings), b)
		return &c, true
	}
	var added bool
	switch w, rest := words[0], words[1:]; w {
	case "*":
		c.star, added = c.star.with(rest, b, false)
	case "#":
		c.hash, added = c.hash.with(rest, b, true)
	default:
		h := routeHash(w)
		old, _ := c.words.get(h, w)
		var child *topicNode
		if child, added = old.with(rest, b, false); added {
			c.words = c.words.with(h, w, child)
		}
	}
	if !added {
		return n, false
	}
	return &c, true
}

func (t *topicTable) without(b *Binding) (routeTable, bool) {
	root, removed := t.root.without(topicPattern(b.Key), b)
	if !removed {
		return t, false
	}
	return newTopicTable(root, t.n-1), true
}

// without returns a copy of the subtree at n lacking b, or nil if nothing is left in it.
func (n *topicNode) without(words []string, b *Binding) (*topicNode, bool) {
	if n == nil {
		return nil, false
	}
	c := *n
	var removed bool
	if len(words) == 0 {
		i := slices.IndexFunc(c.bindings, func(x *Binding) bool { return bindingsEqual(x, b) })
		if i < 0 {
			return n, false
		}
		c.bindings, removed = slices.Delete(slices.Clone(c.bindings), i, i+1), true
		if len(c.bindings) == 0 {
			c.bindings = nil
		}
	} else {
		switch w, rest := words[0], words[1:]; w {
		case "*":
			c.star, removed = c.star.without(rest, b)
		case "#":
			c.hash, removed = c.hash.without(rest, b)
		default:
			h := routeHash(w)
			old, _ := c.words.get(h, w)
			var child *topicNode
			if child, removed = old.without(rest, b); removed {
				if child == nil {
					c.words, _ = c.words.without(h, w)
				} else {
					c.words = c.words.with(h, w, child)
				}
			}
		}
	}
	if !removed {
		return n, false
	}
	if c.bindings == nil && c.words.len() == 0 && c.star == nil && c.hash == nil {
		return nil, true
	}
	return &c, true
}

func (t *topicTable) all() []*Binding {
	out := make([]*Binding, 0, t.n)
	var walk func(n *topicNode)
	walk = func(n *topicNode) {
		if n == nil {
			return
		}
		out = append(out, n.bindings...)
		n.words.each(func(_ string, c *topicNode) { walk(c) })
		walk(n.star)
		walk(n.hash)
	}
	walk(t.root)
	return out
}

func (t *topicTable) len() int { return t.n }

// Topic result cache: 4096 slots in pairs, 2-way set associative (64 shards of 64 slots, each
// shard allocated on first use so a snapshot that is rebuilt often never pays for slots it does
// not touch). A slot holds one immutable entry, replaced wholesale, so readers need only atomic
// loads: no locks and no shared writes on a hit. A key that finds both slots of its pair taken
// evicts one, which bounds memory without any bookkeeping.
const (
	topicCacheShards    = 64
	topicCacheSlots     = 64  // per shard
	topicCacheMaxResult = 128 // larger results are not cached: matching is cheap next to copying them
)

type topicCacheEntry struct {
	hash   uint64
	key    string
	result []*Binding
}

type topicCacheShard [topicCacheSlots]atomic.Pointer[topicCacheEntry]

type topicCache struct {
	shards atomic.Pointer[[topicCacheShards]atomic.Pointer[topicCacheShard]]
}

// pair returns the two slots key hash h may live in, or nil if they were never allocated and
// create is false.
func (c *topicCache) pair(h uint64, create bool) []atomic.Pointer[topicCacheEntry] {
	top := c.shards.Load()
	if top == nil {
		if !create {
			return nil
		}
		c.shards.CompareAndSwap(nil, new([topicCacheShards]atomic.Pointer[topicCacheShard]))
		top = c.shards.Load()
	}
	sp := &top[(h/topicCacheSlots)%topicCacheShards]
	shard := sp.Load()
	if shard == nil {
		if !create {
			return nil
		}
		sp.CompareAndSwap(nil, new(topicCacheShard))
		shard = sp.Load()
	}
	i := h % topicCacheSlots &^ 1
	return shard[i : i+2]
}

// get returns the cached result for key, whose routeHash is h.
func (c *topicCache) get(h uint64, key string) ([]*Binding, bool) {
	p := c.pair(h, false)
	for i := range p {
		if e := p[i].Load(); e != nil && e.hash == h && e.key == key {
			return e.result, true
		}
	}
	return nil, false
}

// put caches a copy of result for key. The key is copied too: callers may pass a string that
// aliases a reused read buffer.
func (c *topicCache) put(h uint64, key string, result []*Binding) {
	if len(result) > topicCacheMaxResult {
		return
	}
	e := &topicCacheEntry{hash: h, key: strings.Clone(key), result: slices.Clone(result)}
	p := c.pair(h, true)
	for i := range p {
		// A concurrent miss on the same key may have filled it already; either copy is right.
		if p[i].CompareAndSwap(nil, e) {
			return
		}
	}
	// Both taken: evict by a hash bit the slot index does not use, so keys sharing a pair do
	// not all evict the same one.
	p[(h>>32)&1].Store(e)
}
