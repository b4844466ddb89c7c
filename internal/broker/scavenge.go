package broker

import (
	"runtime/debug"
	"time"
)

// The Go runtime keeps freed heap pages mapped and hands them back to the OS
// slowly, so after a large backlog drains the process would keep its peak RSS
// for minutes. The scavenger watches what queued messages cost (b.mem) and,
// once that has fallen well below its peak, returns the freed memory at once.
const (
	// scavengeEvery is how often the scavenger looks at b.mem.
	scavengeEvery = 2 * time.Second
	// scavengeMin is the drop from the peak worth a forced collection: the
	// collection costs a full mark of the live heap, so small drops wait for
	// the runtime's own background scavenger.
	scavengeMin = 64 << 20
)

// scavenge runs until stop is closed.
func (b *Broker) scavenge(stop <-chan struct{}) {
	t := time.NewTicker(scavengeEvery)
	defer t.Stop()
	peak := b.mem.Load()
	for {
		select {
		case <-t.C:
		case <-stop:
			return
		}
		used := b.mem.Load()
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
