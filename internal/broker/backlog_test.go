package broker

import "testing"

// TestQueueBacklogRingShrinks: a ready ring that grew for a long backlog
// shrinks as it drains, keeping order, so a drained queue gives its memory
// back; a small ring never reallocates.
func TestQueueBacklogRingShrinks(t *testing.T) {
	var f fifo
	m := &Message{}
	const n = 100_000
	for i := range n {
		f.push(Entry{Msg: m, Seq: uint64(i)})
	}
	peak := len(f.buf)
	for i := range n {
		if e := f.pop(); e.Seq != uint64(i) {
			t.Fatalf("pop %d returned seq %d", i, e.Seq)
		}
		if f.count > 0 && len(f.buf) < f.count {
			t.Fatalf("ring of %d holds %d", len(f.buf), f.count)
		}
	}
	if len(f.buf) > fifoShrinkMin || len(f.buf) >= peak {
		t.Fatalf("ring is %d entries after draining (peak %d)", len(f.buf), peak)
	}
	if !shouldScavenge(1<<30, 1<<20) || shouldScavenge(1<<30, 900<<20) || shouldScavenge(100<<20, 40<<20) {
		t.Fatal("shouldScavenge")
	}
}
