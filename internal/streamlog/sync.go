package streamlog

import (
	"errors"
	"runtime"
)

// A sync runs in a goroutine of its own (it blocks) and covers every round
// written before it began. When it ends the writer publishes the active
// segment as of its start (with the sealed ones as they are then:
// compaction swaps rewritten ones in) and runs the done callbacks of those
// rounds; rounds written meanwhile wait for the next sync, which starts
// then. A round with an append waiting for durability waits for its sync
// (drainSyncs), as the writer always did, so that the producers it answers
// gather into the next round: starting the next sync as soon as one ends
// instead halves the appends per sync with 16 acks=-1 producers
// (BenchmarkStreamlogAppendWritten). A round of acks=1 appends only does
// not wait, so they are not held back by the disk. Rolls and retention run
// with no sync in flight: a sync never outlives its segment's time as the
// active one, and no view is published over a newer one.

// syncPipe is the writer goroutine's sync state.
type syncPipe struct {
	job *syncJob
	// waiting are the appends of the rounds taken since job began, in
	// order (written, refused or failed), for the next sync.
	waiting []*appendReq
	// dirty: bytes were written to the active segment since the last sync
	// began or the last roll synced it.
	dirty bool
}

// syncJob is one fdatasync in flight and what it releases.
type syncJob struct {
	reqs []*appendReq
	view *view // the active segment as of the sync's start, published when it succeeds
	err  error // set before done is closed
	done chan struct{}
}

// startSync starts a sync of the waiting appends if none is in flight. If
// nothing was written since the last one began, they need none: their
// callbacks run now (a duplicate's original was covered by an earlier sync,
// or the log failed and they get its error).
func (l *Log) startSync() {
	p := &l.sp
	if p.job != nil || len(p.waiting) == 0 {
		return
	}
	reqs := p.waiting
	p.waiting = nil
	err := l.usable()
	if errors.Is(err, ErrClosed) {
		err = nil // Close drains what was appended before it
	}
	if err != nil || !p.dirty {
		finishAppends(reqs, err)
		return
	}
	p.dirty = false
	j := &syncJob{reqs: reqs, view: l.newView(l.view.Load().sealed), done: make(chan struct{})}
	f, sync := l.w.seg.f, l.syncFile
	go func() {
		j.err = sync(f)
		close(j.done)
	}()
	p.job = j
}

// completeSync waits for the sync in flight, then publishes its view and
// runs its appends' callbacks; on failure the error sticks and they get it.
func (l *Log) completeSync() {
	j := l.sp.job
	<-j.done
	l.sp.job = nil
	if j.err != nil {
		l.fail(j.err)
	} else {
		l.syncs.Add(1)
		l.mu.Lock()
		// The sealed segments as they are now: compaction may have
		// swapped some meanwhile (no roll or retention ran).
		v := *j.view
		v.sealed = l.view.Load().sealed
		l.publishLocked(&v)
		l.mu.Unlock()
	}
	finishAppends(j.reqs, j.err)
}

// syncEnded completes the sync that ended and starts the next. The
// producers just answered may append again before the writer takes its
// next round, so that one round (and one sync) takes them all.
func (l *Log) syncEnded() {
	l.completeSync()
	l.startSync()
	runtime.Gosched()
}

// awaitSync completes the sync in flight, if any, and starts no other.
func (l *Log) awaitSync() {
	if l.sp.job != nil {
		l.completeSync()
	}
}

// drainSyncs syncs until every written append has had its callbacks.
func (l *Log) drainSyncs() {
	for l.sp.job != nil || len(l.sp.waiting) > 0 {
		if l.sp.job != nil {
			l.completeSync()
		} else {
			l.startSync()
		}
	}
}

// finishAppends runs the done callbacks of reqs in order; err is the sync's.
func finishAppends(reqs []*appendReq, err error) {
	for _, r := range reqs {
		switch {
		case r.err != nil:
			r.done(AppendResult{}, r.err)
		case err != nil:
			r.done(AppendResult{}, err)
		default:
			r.done(r.res, nil)
		}
	}
}
