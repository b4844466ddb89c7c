package broker

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/warren-mq/warren/internal/amqp091"
)

// Words for realistic topic patterns and keys: service.region.entity.action and shorter forms.
var (
	routeBenchServices = func() []string {
		s := make([]string, 50)
		for i := range s {
			s[i] = "svc" + strconv.Itoa(i)
		}
		return s
	}()
	routeBenchRegions  = []string{"eu", "us", "ap", "sa"}
	routeBenchEntities = []string{"user", "order", "invoice", "payment", "profile", "cart", "item", "stock",
		"shipment", "refund", "coupon", "review", "session", "device", "address", "token", "report", "job", "task", "event"}
	routeBenchActions = []string{"created", "updated", "deleted"}
)

func routeBenchPick(rng *rand.Rand, words []string) string { return words[rng.IntN(len(words))] }

// routeBenchTopicPatterns returns n distinct binding keys in the shapes applications use:
// "svc.user.*", "svc.#", "*.eu.#", "svc.eu.order.created", "svc.*.user.#", "#.deleted".
func routeBenchTopicPatterns(n int) []string {
	rng := rand.New(rand.NewPCG(5, 6))
	seen := map[string]bool{}
	var out []string
	for len(out) < n {
		s, r, e, a := routeBenchPick(rng, routeBenchServices), routeBenchPick(rng, routeBenchRegions),
			routeBenchPick(rng, routeBenchEntities), routeBenchPick(rng, routeBenchActions)
		var p string
		switch rng.IntN(10) {
		case 0:
			p = s + "." + e + ".*"
		case 1, 2:
			p = s + "." + e + "." + a
		case 3:
			p = s + ".#"
		case 4:
			p = "*." + r + ".#"
		case 5:
			p = s + ".*." + e + ".#"
		case 6:
			p = "#." + a
		default:
			p = s + "." + r + "." + e + "." + a
		}
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}

// routeBenchTopicKeys returns n routing keys of the shapes the patterns above are written for.
func routeBenchTopicKeys(n int, seed uint64) []string {
	rng := rand.New(rand.NewPCG(seed, 7))
	out := make([]string, n)
	for i := range out {
		s, r, e, a := routeBenchPick(rng, routeBenchServices), routeBenchPick(rng, routeBenchRegions),
			routeBenchPick(rng, routeBenchEntities), routeBenchPick(rng, routeBenchActions)
		if rng.IntN(2) == 0 {
			out[i] = s + "." + e + "." + a
		} else {
			out[i] = s + "." + r + "." + e + "." + a
		}
	}
	return out
}

func routeBenchTopicTable(n int) *topicTable {
	var tbl routeTable = newTopicTable(nil, 0)
	for i, p := range routeBenchTopicPatterns(n) {
		tbl, _ = tbl.with(&Binding{Destination: "q" + strconv.Itoa(i), Key: p})
	}
	return tbl.(*topicTable)
}

func BenchmarkRouteDirect10k(b *testing.B) {
	var tbl routeTable = &directTable{}
	keys := make([]string, 10000)
	for i := range keys {
		keys[i] = fmt.Sprintf("rpc.reply.%08x", i*2654435761)
		tbl, _ = tbl.with(&Binding{Destination: "q" + strconv.Itoa(i), Key: keys[i]})
	}
	dst := make([]*Binding, 0, 16)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		dst = tbl.route(dst[:0], keys[i%len(keys)], nil)
		i++
	}
	if len(dst) != 1 {
		b.Fatalf("routed to %d", len(dst))
	}
}

func BenchmarkRouteTopic10k(b *testing.B) {
	tbl := routeBenchTopicTable(10000)
	b.Run("hit", func(b *testing.B) {
		keys := routeBenchTopicKeys(1000, 1)
		dst := make([]*Binding, 0, 64)
		for _, k := range keys {
			tbl.route(dst[:0], k, nil) // warm the cache
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			dst = tbl.route(dst[:0], keys[i%len(keys)], nil)
			i++
		}
	})
	b.Run("miss", func(b *testing.B) {
		// A fresh snapshot per 4096 keys and distinct keys: every call matches and fills a slot.
		keys := routeBenchTopicKeys(4096, 2)
		dst := make([]*Binding, 0, 64)
		fresh := newTopicTable(tbl.root, tbl.n)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if i%len(keys) == 0 {
				b.StopTimer()
				fresh = newTopicTable(tbl.root, tbl.n)
				b.StartTimer()
			}
			dst = fresh.route(dst[:0], keys[i%len(keys)], nil)
			i++
		}
	})
	b.Run("trie", func(b *testing.B) {
		// The trie walk alone, as a miss costs before its result is cached.
		keys := routeBenchTopicKeys(1000, 3)
		dst := make([]*Binding, 0, 64)
		matched := 0
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			dst = tbl.match(dst[:0], keys[i%len(keys)])
			matched += len(dst)
			i++
		}
		b.ReportMetric(float64(matched)/float64(i), "bindings/op")
	})
	b.Run("hit-parallel", func(b *testing.B) {
		keys := routeBenchTopicKeys(1000, 1)
		for _, k := range keys {
			tbl.route(nil, k, nil)
		}
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			dst := make([]*Binding, 0, 64)
			i := 0
			for pb.Next() {
				dst = tbl.route(dst[:0], keys[i%len(keys)], nil)
				i++
			}
		})
	})
}

func BenchmarkRouteFanout10(b *testing.B) {
	var tbl routeTable = &fanoutTable{}
	for i := range 10 {
		tbl, _ = tbl.with(&Binding{Destination: "q" + strconv.Itoa(i)})
	}
	dst := make([]*Binding, 0, 16)
	b.ReportAllocs()
	for b.Loop() {
		dst = tbl.route(dst[:0], "key", nil)
	}
}

func BenchmarkRouteHeaders100(b *testing.B) {
	rng := rand.New(rand.NewPCG(8, 9))
	var tbl routeTable = &headersTable{}
	for i := range 100 {
		args := amqp091.Table{"x-match": []string{"all", "any"}[i%2]}
		for range 1 + rng.IntN(3) {
			switch rng.IntN(3) {
			case 0:
				args["region"] = routeBenchPick(rng, routeBenchRegions)
			case 1:
				args["entity"] = routeBenchPick(rng, routeBenchEntities)
			default:
				args["priority"] = int32(rng.IntN(5))
			}
		}
		tbl, _ = tbl.with(&Binding{Destination: "q" + strconv.Itoa(i), Args: args})
	}
	headers := amqp091.Table{"region": "eu", "entity": "order", "priority": int64(3),
		"content-kind": "json", "x-trace": "abc"}
	dst := make([]*Binding, 0, 128)
	b.ReportAllocs()
	for b.Loop() {
		dst = tbl.route(dst[:0], "", headers)
	}
	b.ReportMetric(float64(len(dst)), "bindings/op")
}

// BenchmarkRouteTopicBind10k binds 10,000 patterns one by one, each bind making a new snapshot
// as the broker does; one op is the whole series.
func BenchmarkRouteTopicBind10k(b *testing.B) {
	patterns := routeBenchTopicPatterns(10000)
	bindings := make([]*Binding, len(patterns))
	for i, p := range patterns {
		bindings[i] = &Binding{Destination: "q" + strconv.Itoa(i), Key: p}
	}
	b.ReportAllocs()
	for b.Loop() {
		var tbl routeTable = newTopicTable(nil, 0)
		for _, bd := range bindings {
			tbl, _ = tbl.with(bd)
		}
	}
}

// BenchmarkRouteDirectBind10k is the same for a direct exchange (10,000 reply queues, say).
func BenchmarkRouteDirectBind10k(b *testing.B) {
	bindings := make([]*Binding, 10000)
	for i := range bindings {
		bindings[i] = &Binding{Destination: "q" + strconv.Itoa(i), Key: "key" + strconv.Itoa(i)}
	}
	b.ReportAllocs()
	for b.Loop() {
		var tbl routeTable = &directTable{}
		for _, bd := range bindings {
			tbl, _ = tbl.with(bd)
		}
	}
}
