package broker

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// The Go runtime keeps freed heap pages mapped and hands them back to the OS
// slowly, so after a large backlog drains the process would keep its peak RSS
// for minutes. The scavenger watches the live heap as of the last garbage
// collection (or what queued messages cost, b.mem, if that is more) and,
// once that has fallen well below its peak, returns the freed memory at once.
// The live heap, not b.mem alone: a queue's backlog beyond its window costs
// the broker nothing but the store's index, which b.mem does not count. The
// live heap is only known after a collection, and an idle broker collects
// rarely (every two minutes), so after scavengeIdle without one the
// scavenger runs one itself — once per idle spell.
const (
	// scavengeEvery is how often the scavenger looks at b.mem.
	scavengeEvery = 2 * time.Second
	// scavengeMin is the drop from the peak worth a forced collection: the
	// collection costs a full mark of the live heap, so small drops wait for
	// the runtime's own background scavenger.
	scavengeMin = 16 << 20
	// scavengeIdle is how long without a collection makes the live heap
	// worth measuring again.
	scavengeIdle = 10 * time.Second
)

// scavenge runs until stop is closed.
func (b *Broker) scavenge(stop <-chan struct{}) {
	t := time.NewTicker(scavengeEvery)
	defer t.Stop()
	samples := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/gc/cycles/total:gc-cycles"}}
	var cycles uint64
	sample := func() (used int64, gcs uint64) {
		used = b.mem.Load()
		metrics.Read(samples)
		if samples[0].Value.Kind() == metrics.KindUint64 && samples[1].Value.Kind() == metrics.KindUint64 {
			used = max(used, int64(samples[0].Value.Uint64()))
			gcs = samples[1].Value.Uint64()
		}
		return used, gcs
	}
	peak, cycles := sample()
	lastGC, forced := time.Now(), false
	for {
		select {
		case <-t.C:
		case <-stop:
			return
		}
		used, gcs := sample()
		if gcs != cycles {
			cycles, lastGC, forced = gcs, time.Now(), false
		} else if !forced && time.Since(lastGC) >= scavengeIdle && peak >= scavengeMin && !shouldScavenge(max(peak, used), used) {
			runtime.GC() // an idle spell after a peak: measure what is live now
			used, cycles = sample()
			forced = true
		}
		peak = max(peak, used)
		if shouldScavenge(peak, used) {
			debug.FreeOSMemory()
			peak = used
		}
	}
}

// shouldScavenge reports whether usage has dropped far enough from its peak
// (by scavengeMin, and to less than half of it) to return memory to the OS.
func shouldScavenge(peak, used int64) bool {
	return peak-used >= scavengeMin && used < peak/2
}
