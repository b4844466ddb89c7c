package broker

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestQueueFifoInsertKeepsOrder: requeued entries land at their place by Seq
// whichever side of the ring the insert shifts, across wrap-around and growth.
func TestQueueFifoInsertKeepsOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	m := &Message{}
	for round := range 200 {
		var f fifo
		var want []uint64
		next := uint64(1000)
		for range 300 {
			switch op := r.IntN(4); {
			case op == 0 && f.count > 0:
				if e := f.pop(); e.Seq != want[0] {
					t.Fatalf("round %d: pop %d, want %d", round, e.Seq, want[0])
				}
				want = want[1:]
			case op == 1:
				f.push(Entry{Msg: m, Seq: next})
				want = append(want, next)
				next++
			default:
				// A requeue: a Seq not in the fifo, below the newest.
				seq := uint64(r.IntN(int(next)))
				if _, found := slices.BinarySearch(want, seq); found {
					continue
				}
				f.insert(Entry{Msg: m, Seq: seq})
				i, _ := slices.BinarySearch(want, seq)
				want = slices.Insert(want, i, seq)
			}
			if f.count != len(want) {
				t.Fatalf("round %d: count %d, want %d", round, f.count, len(want))
			}
			for i, s := range want {
				if got := f.at(i).Seq; got != s {
					t.Fatalf("round %d: entry %d has seq %d, want %d", round, i, got, s)
				}
			}
		}
	}
}

// BenchmarkQueueRequeueAfterClose: a consumer that held a long run of unacked
// messages closes while the rest of the backlog is ready; Requeue puts them all
// back. Linear in the entries requeued, not quadratic.
func BenchmarkQueueRequeueAfterClose(b *testing.B) {
	const held, ready = 50_000, 50_000
	m := &Message{}
	es := make([]Entry, held)
	for i := range es {
		es[i] = Entry{Msg: m, Seq: uint64(i)}
	}
	for b.Loop() {
		b.StopTimer()
		v := &VHost{broker: &Broker{}}
		q := &Queue{ready: newReadyList(0), vhost: v, unacked: held}
		for i := range ready {
			q.ready.push(Entry{Msg: m, Seq: uint64(held + i)})
		}
		b.StartTimer()
		q.Requeue(es)
	}
}
