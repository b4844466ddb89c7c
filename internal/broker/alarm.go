package broker

import (
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"time"
)

// What a queued message costs beyond its body, properties and names, in
// bytes of Go heap. Measured with TestBrokerMemoryAccounting (the heap after
// a GC, over 200,000 messages of 16 B and 1 KB, transient and persistent);
// that test fails if the accounting falls behind the heap.
const (
	// messageOverhead is the Message itself (192 B), the box its body
	// pointer points to (24 B) and size-class rounding of the small slices.
	messageOverhead = 232
	// entryCost is one Entry (32 B) in a queue's ring, which doubles when
	// full and so is on average two-thirds full.
	entryCost = 48
	// storeSlotCost is the file store's index entry for one record (a 32 B
	// map entry with its share of the table): every persistent message in a
	// durable queue has one, and so does every paged-out body.
	storeSlotCost = 56
	// queueFixedCost is what an empty queue costs: the Queue, its ready
	// ring and maps (an estimate for the query side, not the alarm).
	queueFixedCost = 2048
)

// heapShare is the share of the memory limit that the live heap may take
// when the broker owns its process (Config.ProcessMemory): the rest is the
// garbage collector's headroom under the runtime's soft limit, which
// cmd/warren sets to the whole limit.
const heapShare = 0.8

// alarmLogEvery is how often an alarm may log a change of state; changes
// in between are counted and summed up in one line at the end of the interval.
const alarmLogEvery = 10 * time.Second

// heapSampleEvery is how often the heap watcher looks at the runtime's
// metrics. A sample is two atomic reads in the runtime; the value changes
// only when a garbage collection ends, and the broker's own accounting fills
// the gaps (see heapOther).
const heapSampleEvery = 25 * time.Millisecond

// alarm is the broker-wide resource alarm: while memory or free disk is past
// its limit, publishing connections block. Each alarm has hysteresis: it is
// set at its limit and cleared only once usage is clearly back (memory below
// 90% of its limit, free disk 10% above its), so that a broker hovering at a
// limit blocks publishers for a while rather than flapping.
type alarm struct {
	mu      sync.Mutex
	memory  bool
	disk    bool
	memOn   atomic.Bool   // mirrors memory, read without the lock
	diskOn  atomic.Bool   // mirrors disk, read without the lock
	cleared chan struct{} // closed when no alarm is set; replaced when one sets
	// events counts every change of either alarm, for tests.
	events atomic.Uint64

	memLog, diskLog alarmLog
}

// alarmLog rate-limits one alarm's log lines.
type alarmLog struct {
	last  time.Time
	held  int // changes not logged since last
	timer *time.Timer
}

// MemoryUsed returns the bytes the broker counts against its memory limit:
// what its queued messages cost (bodies in memory, properties, names, queue
// and index entries) and, with Config.ProcessMemory, the rest of the live
// heap as of the last garbage collection.
func (b *Broker) MemoryUsed() int64 { return b.mem.Load() + b.heapOther.Load() }

// AlarmChanges returns how many times a resource alarm was set or cleared.
func (b *Broker) AlarmChanges() uint64 { return b.alarm.events.Load() }

// Alarm returns why publishers must wait ("low on memory", "low on disk",
// "low on memory and disk"), or "" when they need not, and a channel closed
// once no alarm is set.
func (b *Broker) Alarm() (string, <-chan struct{}) {
	b.alarm.mu.Lock()
	defer b.alarm.mu.Unlock()
	switch {
	case b.alarm.memory && b.alarm.disk:
		return "low on memory and disk", b.alarm.cleared
	case b.alarm.memory:
		return "low on memory", b.alarm.cleared
	case b.alarm.disk:
		return "low on disk", b.alarm.cleared
	}
	return "", b.alarm.cleared
}

// setAlarmLocked turns one resource alarm on or off.
func (b *Broker) setAlarmLocked(disk, on bool) {
	before := b.alarm.memory || b.alarm.disk
	if disk {
		b.alarm.disk = on
		b.alarm.diskOn.Store(on)
	} else {
		b.alarm.memory = on
		b.alarm.memOn.Store(on)
	}
	b.alarm.events.Add(1)
	after := b.alarm.memory || b.alarm.disk
	switch {
	case after && !before:
		b.alarm.cleared = make(chan struct{})
	case !after && before:
		close(b.alarm.cleared)
	}
}

// logAlarmLocked logs an alarm's change of state, at most once per
// alarmLogEvery; the changes in between are summed up when it ends.
func (b *Broker) logAlarmLocked(l *alarmLog, what string, on bool, attrs ...any) {
	now := time.Now()
	if l.last.IsZero() || now.Sub(l.last) >= alarmLogEvery {
		l.last = now
		// RabbitMQ's words, which operators grep for.
		if on {
			b.log.Warn(what+" resource limit alarm set: publishers will be blocked until it clears", attrs...)
		} else {
			b.log.Warn(what+" resource limit alarm cleared", attrs...)
		}
		return
	}
	l.held++
	if l.timer == nil {
		l.timer = time.AfterFunc(l.last.Add(alarmLogEvery).Sub(now), func() {
			b.alarm.mu.Lock()
			defer b.alarm.mu.Unlock()
			on := b.alarm.memory
			if l == &b.alarm.diskLog {
				on = b.alarm.disk
			}
			state := "clear"
			if on {
				state = "set"
			}
			b.log.Warn(what+" resource limit alarm changed state repeatedly", "changes", l.held, "within", alarmLogEvery, "now", state)
			l.last, l.held, l.timer = time.Now(), 0, nil
		})
	}
}

// memoryLimits returns the usage at which the memory alarm sets and the one
// below which it clears.
func (b *Broker) memoryLimits() (high, low int64) {
	high = b.cfg.MemoryLimit
	if b.cfg.ProcessMemory {
		high = int64(float64(high) * heapShare)
	}
	return high, high - high/10
}

func (b *Broker) addMemory(n int64) {
	used := b.mem.Add(n)
	if b.memHigh <= 0 {
		return
	}
	b.checkMemory(used + b.heapOther.Load())
}

// checkMemory sets or clears the memory alarm for usage total. The common
// case, no change, takes no lock.
func (b *Broker) checkMemory(total int64) {
	if b.alarm.memOn.Load() {
		if total >= b.memLow {
			return
		}
	} else if total < b.memHigh {
		return
	}
	b.alarm.mu.Lock()
	defer b.alarm.mu.Unlock()
	total = b.MemoryUsed() // again, under the lock: another change may have won
	switch {
	case !b.alarm.memory && total >= b.memHigh:
		b.setAlarmLocked(false, true)
		b.logAlarmLocked(&b.alarm.memLog, "memory", true, "used", total, "limit", b.memHigh)
		if b.canPage {
			b.startSweep() // bodies still in memory may free enough to go on
		}
	case b.alarm.memory && total < b.memLow:
		b.setAlarmLocked(false, false)
		b.logAlarmLocked(&b.alarm.memLog, "memory", false, "used", total, "resume_below", b.memLow)
	}
}

// watchHeap keeps heapOther current: the live heap (as of the last garbage
// collection) that the broker's accounting does not explain, such as
// connection buffers, appends waiting for the store and the runtime's own.
// Between collections the accounting alone moves the total, so the alarm
// reacts to every message without the runtime being asked per message.
func (b *Broker) watchHeap(stop <-chan struct{}) {
	samples := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}, {Name: "/gc/heap/live:bytes"}}
	t := time.NewTicker(heapSampleEvery)
	defer t.Stop()
	var cycles uint64
	for {
		metrics.Read(samples)
		if samples[0].Value.Kind() == metrics.KindUint64 && samples[1].Value.Kind() == metrics.KindUint64 {
			if c := samples[0].Value.Uint64(); c != cycles {
				cycles = c
				used := b.mem.Load()
				other := max(int64(samples[1].Value.Uint64())-used, 0)
				b.heapOther.Store(other)
				b.checkMemory(used + other)
			}
		}
		select {
		case <-t.C:
		case <-stop:
			return
		}
	}
}

// checkDisk reads the free disk space and sets the disk alarm below the
// limit; it clears once free space is back 10% above the limit. The periodic
// watcher and the store's write path (after every few MB written) call it.
func (b *Broker) checkDisk() {
	b.diskMu.Lock()
	defer b.diskMu.Unlock()
	n, err := b.freeDisk()
	if err != nil {
		return
	}
	limit := uint64(b.cfg.DiskFreeLimit)
	b.alarm.mu.Lock()
	defer b.alarm.mu.Unlock()
	switch {
	case !b.alarm.disk && n < limit:
		b.setAlarmLocked(true, true)
		b.logAlarmLocked(&b.alarm.diskLog, "disk", true, "free", n, "limit", limit)
	case b.alarm.disk && n >= limit+limit/10:
		b.setAlarmLocked(true, false)
		b.logAlarmLocked(&b.alarm.diskLog, "disk", false, "free", n, "limit", limit)
	}
}

// watchDisk calls checkDisk every interval until stop is closed.
func (b *Broker) watchDisk(interval time.Duration, stop <-chan struct{}) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		b.checkDisk()
		select {
		case <-t.C:
		case <-stop:
			return
		}
	}
}

// writeWatcher is implemented by stores that can call back after every so
// many bytes written (store.File), so that the disk alarm follows the write
// rate instead of a clock.
type writeWatcher interface {
	WatchWrites(every int64, fn func())
}

// messageCost is what m costs in memory apart from its queue entries, with
// its body if it is in memory.
func (m *Message) messageCost(withBody bool) int64 {
	n := int64(messageOverhead + len(m.Props) + len(m.Exchange) + len(m.RoutingKey))
	if withBody {
		n += int64(m.BodySize)
	}
	return n
}

// hold accounts for a queue taking a reference to m; stored says the queue
// has m in the store (so the store holds an index slot for it).
func (b *Broker) hold(m *Message, stored bool) {
	n := int64(entryCost)
	if stored {
		n += storeSlotCost
	}
	if m.refs.Add(1) == 1 {
		// A message recovered at boot has its body left on disk.
		n += m.messageCost(m.page.bits.Load()&pageDropped == 0)
	}
	b.addMemory(n)
}

// release drops a queue's reference to m; stored as for hold.
func (b *Broker) release(m *Message, stored bool) {
	n := int64(entryCost)
	if stored {
		n += storeSlotCost
	}
	if m.refs.Add(-1) == 0 {
		n += m.page.released(m)
	}
	b.addMemory(-n)
}
