package broker

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"
)

// TestRouteMapModel drives the persistent map against a Go map with three hash functions: the
// real one, one with only 16 values (deep sub-nodes) and a constant (every key in one
// collision list). Every old version must keep its contents.
func TestRouteMapModel(t *testing.T) {
	hashes := map[string]func(string) uint64{
		"real":     routeHash,
		"narrow":   func(s string) uint64 { return routeHash(s) & 0xf000_0000_0000_000f },
		"constant": func(string) uint64 { return 42 },
	}
	for name, hash := range hashes {
		t.Run(name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(3, 4))
			var m routeMap[int]
			model := map[string]int{}
			type version struct {
				m     routeMap[int]
				model map[string]int
			}
			var versions []version
			for step := range 4000 {
				key := fmt.Sprint("k", rng.IntN(300))
				if rng.IntN(3) == 0 {
					var removed bool
					m, removed = m.without(hash(key), key)
					_, had := model[key]
					if removed != had {
						t.Fatalf("step %d: without(%s) removed=%v, model had=%v", step, key, removed, had)
					}
					delete(model, key)
				} else {
					m = m.with(hash(key), key, step)
					model[key] = step
				}
				if step%100 == 0 {
					versions = append(versions, version{m, maps.Clone(model)})
				}
			}
			versions = append(versions, version{m, model})
			for i, v := range versions {
				if v.m.len() != len(v.model) {
					t.Fatalf("version %d: len %d, want %d", i, v.m.len(), len(v.model))
				}
				for k, want := range v.model {
					if got, ok := v.m.get(hash(k), k); !ok || got != want {
						t.Fatalf("version %d: get(%s) = %d, %v; want %d", i, k, got, ok, want)
					}
				}
				if _, ok := v.m.get(hash("absent"), "absent"); ok {
					t.Fatalf("version %d: found an absent key", i)
				}
				seen := map[string]int{}
				v.m.each(func(k string, val int) { seen[k] = val })
				if !maps.Equal(seen, v.model) {
					t.Fatalf("version %d: each saw %v, want %v", i, seen, v.model)
				}
			}
			for k := range model {
				m, _ = m.without(hash(k), k)
			}
			if m.len() != 0 || m.root != nil {
				t.Fatalf("emptied map kept %d keys, root %v", m.len(), m.root)
			}
		})
	}
}
