package streamlog

import (
	"os"
	"time"
)

// retentionCheckInterval is how often the writer applies MaxAge when
// nothing else wakes it (Kafka's log.retention.check.interval.ms is 5 min).
const retentionCheckInterval = 30 * time.Second

// runMaintenance makes the writer apply retention (and compaction) now and
// waits until it did; for tests and SetOptions' callers.
func (l *Log) runMaintenance() {
	ch := make(chan struct{})
	select {
	case l.maintc <- ch:
		<-ch
	case <-l.stopped:
	}
	l.waitCompaction()
}

// maintain runs on the writer goroutine between rounds: it applies
// retention by whole segments, oldest first, never the active one (an
// expired active segment is rolled first so that it can go).
func (l *Log) maintain() {
	if l.usable() != nil {
		return
	}
	o := l.options()
	if o.MaxAge > 0 {
		l.rollExpired(o.MaxAge)
	}
	if l.compactMu.TryLock() {
		if drop := retained(l.view.Load(), o, l.now()); drop > 0 {
			l.dropOldest(drop)
		}
		l.compactMu.Unlock()
	} else {
		l.w.retentionDue = true // after the compaction pass
	}
	l.maybeCompact(o)
}

// rollExpired rolls a non-empty active segment whose newest record is
// older than maxAge.
func (l *Log) rollExpired(maxAge time.Duration) {
	w := &l.w
	if w.size <= fileHeaderSize || w.maxTs < 0 || !expired(w.maxTs, maxAge, l.now()) {
		return
	}
	if err := l.roll(); err != nil {
		l.fail(err)
	}
	w.rolled = false
}

func expired(maxTs int64, maxAge time.Duration, now time.Time) bool {
	return maxTs < now.Add(-maxAge).UnixMilli()
}

// retained returns how many of the oldest sealed segments retention drops.
func retained(v *view, o Options, now time.Time) int {
	drop := 0
	if o.MaxAge > 0 {
		for drop < len(v.sealed) {
			ts := v.sealed[drop].maxTs
			if ts < 0 {
				// No timestamps (maxTimestamp -1): the file's
				// modification time is when it was last written.
				if fi, err := os.Stat(v.sealed[drop].seg.path); err == nil {
					ts = fi.ModTime().UnixMilli()
				}
			}
			if !expired(ts, o.MaxAge, now) {
				break
			}
			drop++
		}
	}
	if o.MaxBytes > 0 {
		// Kafka's rule: drop the oldest while what stays is still at
		// least MaxBytes.
		total := v.active.size
		for _, si := range v.sealed[drop:] {
			total += si.size
		}
		for drop < len(v.sealed) && total-v.sealed[drop].size >= o.MaxBytes {
			total -= v.sealed[drop].size
			drop++
		}
	}
	return drop
}

// dropOldest removes the n oldest sealed segments from the log. Their files
// go when the last chunk reading them is closed.
func (l *Log) dropOldest(n int) {
	l.mu.Lock()
	v := l.view.Load()
	gone := v.sealed[:n]
	start := v.sealed[n-1].next
	ab := l.w.prod.aborted
	k := 0
	for k < len(ab) && ab[k].LastOffset < start {
		k++
	}
	l.w.prod.aborted = ab[k:]
	l.publishLocked(l.newView(v.sealed[n:]))
	l.mu.Unlock()
	for _, si := range gone {
		l.log.Info("streamlog: retention deleted segment", "segment", si.seg.base, "bytes", si.size)
		si.seg.remove.Store(true)
		si.seg.release()
	}
}
