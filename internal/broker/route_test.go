package broker

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warren-mq/warren/internal/amqp091"
)

// routeQ names the destination queue of the i'th binding in table-driven routing tests.
func routeQ(i int) string { return "q" + strconv.Itoa(i) }

// routeDests returns the destinations of bs, sorted, failing nothing: duplicates stay visible.
func routeDests(bs []*Binding) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = b.Destination
	}
	slices.Sort(out)
	return out
}

// routeNoDuplicates fails if a binding appears twice in a route result.
func routeNoDuplicates(t testing.TB, bs []*Binding) {
	t.Helper()
	seen := make(map[*Binding]bool, len(bs))
	for _, b := range bs {
		if seen[b] {
			t.Fatalf("binding %+v routed twice", *b)
		}
		seen[b] = true
	}
}

func routeMustTable(t testing.TB, kind string) routeTable {
	t.Helper()
	tbl, ok := newRouteTable(kind)
	if !ok {
		t.Fatalf("newRouteTable(%q) failed", kind)
	}
	return tbl
}

func TestRouteNewRouteTable(t *testing.T) {
	for _, kind := range []string{"direct", "fanout", "topic", "headers"} {
		tbl, ok := newRouteTable(kind)
		if !ok || tbl == nil || tbl.len() != 0 || len(tbl.all()) != 0 {
			t.Errorf("newRouteTable(%q) = %v, %v", kind, tbl, ok)
		}
		if got := tbl.route(nil, "", nil); len(got) != 0 {
			t.Errorf("empty %s table routed to %v", kind, got)
		}
	}
	for _, kind := range []string{"", "Direct", "x-consistent-hash", "match"} {
		if _, ok := newRouteTable(kind); ok {
			t.Errorf("newRouteTable(%q) accepted", kind)
		}
	}
}

func TestRouteBindingsEqual(t *testing.T) {
	base := Binding{Destination: "q", Key: "k"}
	with := func(f func(b *Binding)) *Binding { b := base; f(&b); return &b }
	args := func(a amqp091.Table) *Binding { return with(func(b *Binding) { b.Args = a }) }
	nan := math.NaN()
	cases := []struct {
		name string
		a, b *Binding
		want bool
	}{
		{"same", &base, with(func(*Binding) {}), true},
		{"destination", &base, with(func(b *Binding) { b.Destination = "r" }), false},
		{"to exchange", &base, with(func(b *Binding) { b.ToExchange = true }), false},
		{"key", &base, with(func(b *Binding) { b.Key = "K" }), false},
		// Identity checked against RabbitMQ 3.10.8: nil and {} arguments make one binding,
		// int32 1 and int64 1 two.
		{"nil and empty args", args(nil), args(amqp091.Table{}), true},
		{"args differ", args(amqp091.Table{"a": int32(1)}), args(amqp091.Table{"a": int32(2)}), false},
		{"arg types differ", args(amqp091.Table{"a": int32(1)}), args(amqp091.Table{"a": int64(1)}), false},
		{"string vs bytes", args(amqp091.Table{"a": "x"}), args(amqp091.Table{"a": []byte("x")}), false},
		{"extra arg", args(amqp091.Table{"a": nil}), args(nil), false},
		{"bytes", args(amqp091.Table{"a": []byte("x")}), args(amqp091.Table{"a": []byte("x")}), true},
		{"nested", args(amqp091.Table{"a": amqp091.Table{"b": []any{int8(1), "s", nil}}}),
			args(amqp091.Table{"a": amqp091.Table{"b": []any{int8(1), "s", nil}}}), true},
		{"nested differs", args(amqp091.Table{"a": amqp091.Table{"b": []any{int8(1)}}}),
			args(amqp091.Table{"a": amqp091.Table{"b": []any{int16(1)}}}), false},
		{"array length", args(amqp091.Table{"a": []any{int8(1)}}), args(amqp091.Table{"a": []any{int8(1), int8(1)}}), false},
		{"timestamps compare by second", args(amqp091.Table{"a": time.Unix(3, 1)}), args(amqp091.Table{"a": time.Unix(3, 2).UTC()}), true},
		{"decimal", args(amqp091.Table{"a": amqp091.Decimal{Scale: 1, Value: 10}}), args(amqp091.Table{"a": amqp091.Decimal{Scale: 0, Value: 1}}), false},
		{"NaN can be found again", args(amqp091.Table{"a": nan}), args(amqp091.Table{"a": nan}), true},
		{"float32 NaN", args(amqp091.Table{"a": float32(nan)}), args(amqp091.Table{"a": float32(nan)}), true},
		{"empty table vs empty array", args(amqp091.Table{"a": amqp091.Table{}}), args(amqp091.Table{"a": []any{}}), false},
	}
	for _, c := range cases {
		if got := bindingsEqual(c.a, c.b); got != c.want {
			t.Errorf("%s: bindingsEqual = %v", c.name, got)
		}
		if got := bindingsEqual(c.b, c.a); got != c.want {
			t.Errorf("%s: bindingsEqual reversed = %v", c.name, got)
		}
	}
}

func TestRouteDirect(t *testing.T) {
	keys := []string{"a", "a", "b", "", "a.b", "A", "a "}
	var tbl routeTable = &directTable{}
	for i, k := range keys {
		tbl, _ = tbl.with(&Binding{Destination: routeQ(i), Key: k})
	}
	cases := []struct {
		key  string
		want []int
	}{
		{"a", []int{0, 1}},
		{"b", []int{2}},
		{"", []int{3}},
		{"a.b", []int{4}},
		{"A", []int{5}},
		{"a ", []int{6}},
		{"c", nil},
		{"a.*", nil},
		{"#", nil},
	}
	for _, c := range cases {
		got := tbl.route(nil, c.key, amqp091.Table{"a": "b"})
		routeNoDuplicates(t, got)
		want := []string{}
		for _, i := range c.want {
			want = append(want, routeQ(i))
		}
		if !slices.Equal(routeDests(got), want) {
			t.Errorf("direct key %q routed to %v, want %v", c.key, routeDests(got), want)
		}
	}
}

func TestRouteFanout(t *testing.T) {
	var tbl routeTable = &fanoutTable{}
	for i := range 3 {
		tbl, _ = tbl.with(&Binding{Destination: routeQ(i), Key: "k" + strconv.Itoa(i)})
	}
	for _, key := range []string{"", "k0", "anything.at.all", "#"} {
		got := routeDests(tbl.route(nil, key, nil))
		if want := []string{"q0", "q1", "q2"}; !slices.Equal(got, want) {
			t.Errorf("fanout key %q routed to %v", key, got)
		}
	}
}

// TestRouteIdentity checks with/without on every kind: a binding's identity is destination,
// kind of destination, key and arguments, whatever the exchange type uses for routing.
func TestRouteIdentity(t *testing.T) {
	for _, kind := range []string{"direct", "fanout", "topic", "headers"} {
		t.Run(kind, func(t *testing.T) {
			tbl := routeMustTable(t, kind)
			add := func(b *Binding, want bool) {
				t.Helper()
				n, added := tbl.with(b)
				if added != want {
					t.Fatalf("with(%+v) added=%v, want %v", *b, added, want)
				}
				if !added && n != tbl {
					t.Fatalf("with(%+v) of a duplicate returned a new table", *b)
				}
				tbl = n
			}
			add(&Binding{Destination: "q", Key: "k"}, true)
			add(&Binding{Destination: "q", Key: "k"}, false)
			add(&Binding{Destination: "q", Key: "k", Args: amqp091.Table{}}, false)
			add(&Binding{Destination: "q", Key: "k", Args: amqp091.Table{"a": int32(1)}}, true)
			add(&Binding{Destination: "q", Key: "k", Args: amqp091.Table{"a": int64(1)}}, true)
			add(&Binding{Destination: "q", Key: "k", Args: amqp091.Table{"a": int32(1)}}, false)
			add(&Binding{Destination: "q", Key: "k", ToExchange: true}, true)
			add(&Binding{Destination: "q", Key: "k2"}, true)
			add(&Binding{Destination: "r", Key: "k"}, true)
			if tbl.len() != 6 || len(tbl.all()) != 6 {
				t.Fatalf("len %d, all %d, want 6", tbl.len(), len(tbl.all()))
			}

			remove := func(b *Binding, want bool) {
				t.Helper()
				n, removed := tbl.without(b)
				if removed != want {
					t.Fatalf("without(%+v) removed=%v, want %v", *b, removed, want)
				}
				if !removed && n != tbl {
					t.Fatalf("without(%+v) of a missing binding returned a new table", *b)
				}
				tbl = n
			}
			remove(&Binding{Destination: "q", Key: "k", Args: amqp091.Table{"a": int16(1)}}, false)
			remove(&Binding{Destination: "q", Key: "k", Args: amqp091.Table{"a": int64(1)}}, true)
			remove(&Binding{Destination: "q", Key: "k", Args: amqp091.Table{"a": int64(1)}}, false)
			remove(&Binding{Destination: "q", Key: "k", Args: amqp091.Table{}}, true) // equal to the nil-args one
			remove(&Binding{Destination: "q", Key: "k"}, false)
			if tbl.len() != 4 {
				t.Fatalf("len %d, want 4", tbl.len())
			}
			for _, b := range tbl.all() {
				remove(b, true)
			}
			if tbl.len() != 0 || len(tbl.all()) != 0 || len(tbl.route(nil, "k", nil)) != 0 {
				t.Fatalf("table not empty after removing everything: %d", tbl.len())
			}
			add(&Binding{Destination: "q", Key: "k"}, true)
			if got := routeDests(tbl.route(nil, "k", nil)); !slices.Equal(got, []string{"q"}) {
				t.Fatalf("re-added binding routes to %v", got)
			}
		})
	}
}

// routeSnapshotOf records what a table routes for some keys, to detect later mutation.
func routeSnapshotOf(tbl routeTable, keys []string) []string {
	var out []string
	for _, k := range keys {
		out = append(out, fmt.Sprint(k, routeDests(tbl.route(nil, k, amqp091.Table{"h": int32(1)}))))
	}
	out = append(out, fmt.Sprint(tbl.len(), routeDests(tbl.all())))
	return out
}

// TestRouteSnapshotImmutable checks that with and without leave the tables they start from
// exactly as they were: publishers may still be routing through them.
func TestRouteSnapshotImmutable(t *testing.T) {
	keys := []string{"", "a", "a.b", "a.b.c", "b", "x.y"}
	for _, kind := range []string{"direct", "fanout", "topic", "headers"} {
		t.Run(kind, func(t *testing.T) {
			tbl := routeMustTable(t, kind)
			var snaps []routeTable
			var recs [][]string
			pattern := []string{"a", "a.b", "a.*", "#", "a.#", "b", "", "x.y", "*.*"}
			for i := range 40 {
				b := &Binding{Destination: routeQ(i % 7), Key: pattern[i%len(pattern)],
					Args: amqp091.Table{"h": int32(i % 3), "x-match": []string{"all", "any"}[i%2]}}
				snaps = append(snaps, tbl)
				recs = append(recs, routeSnapshotOf(tbl, keys))
				tbl, _ = tbl.with(b)
			}
			for _, b := range slices.Backward(tbl.all()) {
				snaps = append(snaps, tbl)
				recs = append(recs, routeSnapshotOf(tbl, keys))
				tbl, _ = tbl.without(b)
			}
			for i, s := range snaps {
				if got := routeSnapshotOf(s, keys); !slices.Equal(got, recs[i]) {
					t.Fatalf("snapshot %d changed:\n was %v\n now %v", i, recs[i], got)
				}
			}
		})
	}
}

// TestRouteConcurrent routes through the current snapshot from several goroutines while one
// goroutine keeps binding and unbinding, as the broker does. Run with -race. A permanent
// binding must always be routed to, and never twice.
func TestRouteConcurrent(t *testing.T) {
	for _, kind := range []string{"direct", "fanout", "topic", "headers"} {
		t.Run(kind, func(t *testing.T) {
			tbl := routeMustTable(t, kind)
			anchor := &Binding{Destination: "anchor", Key: "a.b"}
			tbl, _ = tbl.with(anchor)
			var cur atomic.Pointer[routeSnapshotBox]
			cur.Store(&routeSnapshotBox{tbl})

			var done atomic.Bool
			var wg sync.WaitGroup
			errs := make(chan string, 4)
			for range 3 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					var dst []*Binding
					for !done.Load() {
						dst = cur.Load().t.route(dst[:0], "a.b", amqp091.Table{"n": int32(1)})
						found := 0
						for _, b := range dst {
							if b == anchor {
								found++
							}
						}
						if found != 1 {
							errs <- fmt.Sprintf("anchor routed %d times", found)
							return
						}
					}
				}()
			}
			patterns := []string{"a.b", "a.*", "#", "a.#", "*.b", "x"}
			var bound []*Binding
			for i := range 2000 {
				if i%3 == 2 && len(bound) > 0 {
					tbl, _ = tbl.without(bound[0])
					bound = bound[1:]
				} else {
					b := &Binding{Destination: routeQ(i), Key: patterns[i%len(patterns)], Args: amqp091.Table{"n": int32(i % 2)}}
					tbl, _ = tbl.with(b)
					bound = append(bound, b)
				}
				cur.Store(&routeSnapshotBox{tbl})
			}
			done.Store(true)
			wg.Wait()
			close(errs)
			for e := range errs {
				t.Error(e)
			}
		})
	}
}

// routeSnapshotBox lets a test keep a routeTable in an atomic.Pointer, as the broker does.
type routeSnapshotBox struct{ t routeTable }
