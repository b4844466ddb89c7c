package broker

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unsafe"
)

// routeTopicPatterns are the binding keys of TestRouteTopicRabbitMQ.
var routeTopicPatterns = []string{"", "#", "*", "#.#", "*.#", "#.*", "a.#.b", "a.*", "a.#", "a",
	"a.", ".a", "a..b", "a.*.b", "*.*", ".", "#.a", "a.#.#.b", "#.a.#", "*.*.#", "a.b", "*.",
	"*.b", "#.b", "#.", "a*", "*a", "a#", "#.#.#", "*.#.*", "#.*.#", "..", ".#", "#..", "a.#.*",
	"*.a.#"}

// TestRouteTopicRabbitMQ binds one queue per pattern of routeTopicPatterns and expects each
// routing key to reach exactly the patterns RabbitMQ 3.10.8 delivered it to (observed with one
// queue per pattern on a real topic exchange).
func TestRouteTopicRabbitMQ(t *testing.T) {
	cases := []struct {
		key  string
		want []string
	}{
		{"", []string{"", "#", "#.#", "#.#.#"}},
		{"a", []string{"#", "*", "#.#", "*.#", "#.*", "a.#", "a", "#.a", "#.a.#", "#.#.#", "#.*.#"}},
		{"a.b", []string{"#", "#.#", "*.#", "#.*", "a.#.b", "a.*", "a.#", "*.*", "a.#.#.b", "#.a.#", "*.*.#", "a.b", "*.b", "#.b", "#.#.#", "*.#.*", "#.*.#", "a.#.*"}},
		{"a.b.c", []string{"#", "#.#", "*.#", "#.*", "a.#", "#.a.#", "*.*.#", "#.#.#", "*.#.*", "#.*.#", "a.#.*"}},
		{"a..b", []string{"#", "#.#", "*.#", "#.*", "a.#.b", "a.#", "a..b", "a.*.b", "a.#.#.b", "#.a.#", "*.*.#", "#.b", "#.#.#", "*.#.*", "#.*.#", "a.#.*"}},
		{"a.", []string{"#", "#.#", "*.#", "#.*", "a.*", "a.#", "a.", "*.*", "#.a.#", "*.*.#", "*.", "#.", "#.#.#", "*.#.*", "#.*.#", "a.#.*"}},
		{".a", []string{"#", "#.#", "*.#", "#.*", ".a", "*.*", "#.a", "#.a.#", "*.*.#", "#.#.#", "*.#.*", "#.*.#", ".#", "*.a.#"}},
		{".", []string{"#", "#.#", "*.#", "#.*", "*.*", ".", "*.*.#", "*.", "#.", "#.#.#", "*.#.*", "#.*.#", ".#", "#.."}},
		{"..", []string{"#", "#.#", "*.#", "#.*", "*.*.#", "#.", "#.#.#", "*.#.*", "#.*.#", "..", ".#", "#.."}},
		{"a.x.b", []string{"#", "#.#", "*.#", "#.*", "a.#.b", "a.#", "a.*.b", "a.#.#.b", "#.a.#", "*.*.#", "#.b", "#.#.#", "*.#.*", "#.*.#", "a.#.*"}},
		{"a.x.y.b", []string{"#", "#.#", "*.#", "#.*", "a.#.b", "a.#", "a.#.#.b", "#.a.#", "*.*.#", "#.b", "#.#.#", "*.#.*", "#.*.#", "a.#.*"}},
		{"a.b.b", []string{"#", "#.#", "*.#", "#.*", "a.#.b", "a.#", "a.*.b", "a.#.#.b", "#.a.#", "*.*.#", "#.b", "#.#.#", "*.#.*", "#.*.#", "a.#.*"}},
		{"b", []string{"#", "*", "#.#", "*.#", "#.*", "#.b", "#.#.#", "#.*.#"}},
		{"*", []string{"#", "*", "#.#", "*.#", "#.*", "#.#.#", "#.*.#"}},
		{"#", []string{"#", "*", "#.#", "*.#", "#.*", "#.#.#", "#.*.#"}},
		{"a.*", []string{"#", "#.#", "*.#", "#.*", "a.*", "a.#", "*.*", "#.a.#", "*.*.#", "#.#.#", "*.#.*", "#.*.#", "a.#.*"}},
		{"a.#", []string{"#", "#.#", "*.#", "#.*", "a.*", "a.#", "*.*", "#.a.#", "*.*.#", "#.#.#", "*.#.*", "#.*.#", "a.#.*"}},
		{"a*", []string{"#", "*", "#.#", "*.#", "#.*", "a*", "#.#.#", "#.*.#"}},
		{"a.a", []string{"#", "#.#", "*.#", "#.*", "a.*", "a.#", "*.*", "#.a", "#.a.#", "*.*.#", "#.#.#", "*.#.*", "#.*.#", "a.#.*", "*.a.#"}},
		{"a.a.a", []string{"#", "#.#", "*.#", "#.*", "a.#", "#.a", "#.a.#", "*.*.#", "#.#.#", "*.#.*", "#.*.#", "a.#.*", "*.a.#"}},
		{"...", []string{"#", "#.#", "*.#", "#.*", "*.*.#", "#.", "#.#.#", "*.#.*", "#.*.#", ".#", "#.."}},
		{"x.a.y", []string{"#", "#.#", "*.#", "#.*", "#.a.#", "*.*.#", "#.#.#", "*.#.*", "#.*.#", "*.a.#"}},
		{"a.b.c.d", []string{"#", "#.#", "*.#", "#.*", "a.#", "#.a.#", "*.*.#", "#.#.#", "*.#.*", "#.*.#", "a.#.*"}},
	}
	var tbl routeTable = newTopicTable(nil, 0)
	for _, p := range routeTopicPatterns {
		tbl, _ = tbl.with(&Binding{Destination: "q:" + p, Key: p})
	}
	for _, c := range cases {
		want := make([]string, len(c.want))
		for i, p := range c.want {
			want[i] = "q:" + p
		}
		slices.Sort(want)
		// Twice: the first call matches through the trie, the second is served by the cache.
		for range 2 {
			got := tbl.route(nil, c.key, nil)
			routeNoDuplicates(t, got)
			if !slices.Equal(routeDests(got), want) {
				t.Errorf("key %q routed to %q\nwant %q", c.key, routeDests(got), want)
			}
		}
	}
}

// routeTopicMatches is a deliberately naive reference matcher: RabbitMQ's recursive word
// matching, used to check the trie on random patterns.
func routeTopicMatches(pattern, key string) bool {
	split := func(s string) []string {
		if s == "" {
			return nil
		}
		return strings.Split(s, ".")
	}
	var match func(p, k []string) bool
	match = func(p, k []string) bool {
		switch {
		case len(p) == 0:
			return len(k) == 0
		case p[0] == "#":
			return match(p[1:], k) || len(k) > 0 && match(p, k[1:])
		case len(k) == 0:
			return false
		case p[0] == "*" || p[0] == k[0]:
			return match(p[1:], k[1:])
		}
		return false
	}
	return match(split(pattern), split(key))
}

// TestRouteTopicModel binds and unbinds random patterns and compares every route, cached and
// not, with the reference matcher.
func TestRouteTopicModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	words := []string{"a", "b", "", "*", "#", "ab"}
	randomKey := func(wild bool) string {
		n := rng.IntN(5)
		parts := make([]string, n)
		for i := range parts {
			w := words[rng.IntN(len(words))]
			if !wild && (w == "*" || w == "#") && rng.IntN(4) > 0 {
				w = "a"
			}
			parts[i] = w
		}
		return strings.Join(parts, ".")
	}
	var tbl routeTable = newTopicTable(nil, 0)
	var bound []*Binding
	for step := range 3000 {
		if rng.IntN(3) == 0 && len(bound) > 0 {
			i := rng.IntN(len(bound))
			var removed bool
			if tbl, removed = tbl.without(bound[i]); !removed {
				t.Fatalf("step %d: %q not removed", step, bound[i].Key)
			}
			bound = slices.Delete(bound, i, i+1)
		} else {
			b := &Binding{Destination: fmt.Sprint("q", step), Key: randomKey(true)}
			tbl, _ = tbl.with(b)
			bound = append(bound, b)
		}
		if tbl.len() != len(bound) {
			t.Fatalf("step %d: len %d, want %d", step, tbl.len(), len(bound))
		}
		if step%10 != 0 {
			continue
		}
		for range 5 {
			key := randomKey(false)
			var want []string
			for _, b := range bound {
				if routeTopicMatches(b.Key, key) {
					want = append(want, b.Destination)
				}
			}
			slices.Sort(want)
			for range 2 {
				got := tbl.route(nil, key, nil)
				routeNoDuplicates(t, got)
				if g := routeDests(got); !slices.Equal(g, want) {
					t.Fatalf("step %d: key %q routed to %v, want %v", step, key, g, want)
				}
			}
		}
	}
}

// TestRouteTopicHashRuns checks that patterns differing only in runs of '#' stay separate
// bindings even though they share a trie node.
func TestRouteTopicHashRuns(t *testing.T) {
	var tbl routeTable = newTopicTable(nil, 0)
	one := &Binding{Destination: "q", Key: "a.#"}
	two := &Binding{Destination: "q", Key: "a.#.#"}
	tbl, _ = tbl.with(one)
	tbl, added := tbl.with(two)
	if !added || tbl.len() != 2 {
		t.Fatalf("a.#.# not added next to a.#")
	}
	if got := tbl.route(nil, "a.x", nil); len(got) != 2 {
		t.Fatalf("a.x routed to %d bindings, want 2", len(got))
	}
	tbl, _ = tbl.without(&Binding{Destination: "q", Key: "a.#.#"})
	if got := tbl.route(nil, "a", nil); len(got) != 1 || got[0] != one {
		t.Fatalf("after removing a.#.#, a routed to %v", got)
	}
	tbl, _ = tbl.without(one)
	if root := tbl.(*topicTable).root; root != nil {
		t.Fatalf("empty table kept trie nodes: %+v", root)
	}
}

// TestRouteTopicDeepHashes makes sure many '#' and a long key cost polynomial, not
// exponential, work: the naive recursion would take C(200, 8) steps here.
func TestRouteTopicDeepHashes(t *testing.T) {
	var tbl routeTable = newTopicTable(nil, 0)
	tbl, _ = tbl.with(&Binding{Destination: "q", Key: "#.a.#.a.#.a.#.a.#.a.#.a.#.a.#.a.#.b"})
	key := strings.Repeat("a.", 200) + "c"
	if got := tbl.route(nil, key, nil); len(got) != 0 {
		t.Fatalf("routed to %v", got)
	}
	if got := tbl.route(nil, key[:len(key)-1]+"b", nil); len(got) != 1 {
		t.Fatalf("routed to %d bindings, want 1", len(got))
	}
}

// routeTopicCacheLen counts the cached results of a topic table.
func routeTopicCacheLen(tbl *topicTable) int {
	top := tbl.cache.shards.Load()
	if top == nil {
		return 0
	}
	n := 0
	for i := range top {
		if s := top[i].Load(); s != nil {
			for j := range s {
				if s[j].Load() != nil {
					n++
				}
			}
		}
	}
	return n
}

func TestRouteTopicCache(t *testing.T) {
	var rt routeTable = newTopicTable(nil, 0)
	rt, _ = rt.with(&Binding{Destination: "q1", Key: "a.*"})
	rt, _ = rt.with(&Binding{Destination: "q2", Key: "#"})
	tbl := rt.(*topicTable)

	t.Run("bounded", func(t *testing.T) {
		for i := range 20000 {
			tbl.route(nil, fmt.Sprint("a.", i), nil)
		}
		if n := routeTopicCacheLen(tbl); n > topicCacheShards*topicCacheSlots || n < 1000 {
			t.Fatalf("cache holds %d results", n)
		}
	})

	t.Run("result not aliased", func(t *testing.T) {
		dst := make([]*Binding, 0, 8)
		first := tbl.route(dst, "a.b", nil)
		first[0], first[1] = nil, nil // a caller reusing its buffer
		if got := routeDests(tbl.route(dst, "a.b", nil)); !slices.Equal(got, []string{"q1", "q2"}) {
			t.Fatalf("cached result corrupted: %v", got)
		}
	})

	t.Run("key not aliased", func(t *testing.T) {
		// The broker may hand over a string backed by a read buffer it reuses.
		buf := []byte("a.zz")
		tbl.route(nil, unsafe.String(unsafe.SliceData(buf), len(buf)), nil)
		copy(buf, "b.qq")
		if got, ok := tbl.cache.get(routeHash("a.zz"), "a.zz"); !ok || !slices.Equal(routeDests(got), []string{"q1", "q2"}) {
			t.Fatalf("cached a.zz lost or wrong after its key's buffer changed: %v, %v", got, ok)
		}
		if got := routeDests(tbl.route(nil, "b.qq", nil)); !slices.Equal(got, []string{"q2"}) {
			t.Fatalf("b.qq routed to %v", got)
		}
	})

	t.Run("per snapshot", func(t *testing.T) {
		tbl.route(nil, "b", nil)
		next, _ := tbl.with(&Binding{Destination: "q3", Key: "b"})
		if got := routeDests(next.route(nil, "b", nil)); !slices.Equal(got, []string{"q2", "q3"}) {
			t.Fatalf("new snapshot routed b to %v", got)
		}
		if got := routeDests(tbl.route(nil, "b", nil)); !slices.Equal(got, []string{"q2"}) {
			t.Fatalf("old snapshot routed b to %v", got)
		}
	})

	t.Run("large results not cached", func(t *testing.T) {
		var big routeTable = newTopicTable(nil, 0)
		for i := range topicCacheMaxResult + 1 {
			big, _ = big.with(&Binding{Destination: fmt.Sprint("q", i), Key: "#"})
		}
		if got := big.route(nil, "x", nil); len(got) != topicCacheMaxResult+1 {
			t.Fatalf("routed to %d", len(got))
		}
		if n := routeTopicCacheLen(big.(*topicTable)); n != 0 {
			t.Fatalf("cached %d results", n)
		}
	})
}

// TestRouteTopicAll checks that all returns each binding exactly once.
func TestRouteTopicAll(t *testing.T) {
	var tbl routeTable = newTopicTable(nil, 0)
	for i, p := range routeTopicPatterns {
		tbl, _ = tbl.with(&Binding{Destination: routeQ(i), Key: p})
		tbl, _ = tbl.with(&Binding{Destination: routeQ(i), Key: p, ToExchange: true})
	}
	all := tbl.all()
	routeNoDuplicates(t, all)
	if len(all) != 2*len(routeTopicPatterns) || tbl.len() != len(all) {
		t.Fatalf("all has %d, len %d, want %d", len(all), tbl.len(), 2*len(routeTopicPatterns))
	}
}
