package amqpserver

import (
	"math/rand/v2"
	"sort"
	"testing"

	"github.com/warren-mq/warren/internal/broker"
)

// TestUnackedListModel drives unackedList with random pushes, single and
// multiple takes (known and unknown tags), takeAll and restore, checking every
// answer against a plain sorted set.
func TestUnackedListModel(t *testing.T) {
	q := &broker.Queue{}
	for seed := uint64(0); seed < 12; seed++ {
		r := rand.New(rand.NewPCG(seed, 7))
		var l unackedList
		model := map[uint64]bool{}
		next := uint64(0)
		tags := func() []uint64 {
			var ts []uint64
			for tg := range model {
				ts = append(ts, tg)
			}
			sort.Slice(ts, func(i, j int) bool { return ts[i] < ts[j] })
			return ts
		}
		for step := 0; step < 3000; step++ {
			switch op := r.IntN(10); {
			case op < 5:
				for k := r.IntN(50); k >= 0; k-- {
					next++
					l.push(unackedRec{tag: next, queue: q})
					model[next] = true
				}
			case op < 8:
				tag := uint64(r.IntN(int(next) + 2))
				multiple := r.IntN(3) == 0
				got, ok := l.take(nil, tag, multiple)
				wantOK := model[tag] || (multiple && tag == 0)
				if ok != wantOK {
					t.Fatalf("seed %d step %d: take(%d, %v) ok=%v, want %v", seed, step, tag, multiple, ok, wantOK)
				}
				var want []uint64
				if ok {
					for _, tg := range tags() {
						if tg == tag || (multiple && (tag == 0 || tg < tag)) {
							want = append(want, tg)
							delete(model, tg)
						}
					}
				}
				if len(got) != len(want) {
					t.Fatalf("seed %d step %d: take(%d, %v) returned %d records, want %d", seed, step, tag, multiple, len(got), len(want))
				}
				for i := range got {
					if got[i].tag != want[i] {
						t.Fatalf("seed %d step %d: record %d has tag %d, want %d", seed, step, i, got[i].tag, want[i])
					}
				}
				if r.IntN(4) == 0 && len(got) > 0 { // a rolled-back transaction gives them back
					l.restore(got)
					for _, g := range got {
						model[g.tag] = true
					}
				}
			case op < 9:
				if r.IntN(20) == 0 {
					l.takeAll(nil)
					clear(model)
				}
			}
			if l.len() != len(model) {
				t.Fatalf("seed %d step %d: len %d, want %d", seed, step, l.len(), len(model))
			}
		}
	}
}
