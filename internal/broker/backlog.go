package broker

import (
	"errors"
	"sync"
	"sync/atomic"

	"github.com/warren-mq/warren/internal/store"
)

// The backlog. A classic queue keeps its oldest ready messages in memory (the
// window: Entry + Message, as any queue) and, once the window is full, the
// rest only in the store, as the queue's tail (store.MessageRecord.Tail) —
// persistent messages of a durable queue always, transient ones only while
// memory is short (see startsTailLocked): the
// broker holds a count and a byte total for them, nothing per message. So a
// queue with a hundred million queued messages costs what its window costs.
//
// Invariant: every tail ID is above every window ID that came from enqueue
// (a queue with a tail enqueues into it, and its new IDs are the highest);
// the File store relies on it (a tail run takes the queue's records by ID
// range), so tail records a purge could not drop yet (stale) still count as
// a tail for enqueue. When the window runs below half, a refill (one at a
// time, on its own goroutine, reading without q.mu) reads the lowest tail
// records back (store ReadTail), which the store then holds as ordinary
// records, and merges them into the window by ID; a recovery that met IDs
// out of order may have put a lower one in the window, and the merge keeps
// the window sorted. Limits count the tail; drop-head with the window empty
// lets the queue run over until the refill, which trims, reads the head.
//
// Priority queues (x-max-priority) keep every message in memory: a tail in
// ID order would not know which message is next by priority.
//
// A tail message's expiry comes from its record, which holds when it was
// enqueued (see record): a refilled message expires its TTL after that, in
// the same run or after a restart alike. The TTL is the one in force when it
// is read back (a policy changed since applies to it).

const (
	// tailWindow and tailWindowBytes bound the window: a queue whose window
	// holds this many ready messages, or bodies of this many bytes, enqueues
	// into its tail. A refill starts below half of tailWindow.
	tailWindow      = 4096
	tailWindowBytes = 8 << 20
	// tailWindowShort and tailWindowShortBytes bound it instead while memory
	// is short (paging) and while the queue has no consumer: with thousands
	// of queues each holding a backlog, a full window each would be
	// gigabytes (10,000 × 4,096 messages), and a queue nobody consumes from
	// needs no read-ahead (a consumer's arrival starts a refill, Kick).
	tailWindowShort      = 128
	tailWindowShortBytes = 256 << 10
)

// backlog is a queue's tail. Its fields are guarded by the queue's mu except
// the atomics, which the store's done callbacks touch.
type backlog struct {
	count int   // ready messages in the tail
	bytes int64 // their body bytes
	// mem is what the tail costs in the broker's memory count: a store that
	// keeps records in memory (store.Memory) holds the tail there.
	mem int64
	// stale counts purged tail records the store could not drop yet (not
	// written when the purge came): the lowest of the tail, which the next
	// refill drops before it reads anything. Until then enqueue goes on
	// into the tail, so that no window ID is above them.
	stale int
	// epoch changes when the whole tail goes (purge, delete): a refill that
	// read records before that discards them.
	epoch     uint64
	refilling bool // a refill is running (one at a time)
	failed    bool // ReadTail failed: the store is broken, stop refilling
	// used: the queue wrote tail records, so a non-durable queue has store
	// records to drop when it is deleted.
	used bool
	// cond (on the queue's mu) is broadcast when a refill ends, for a
	// basic.get waiting for the tail's head.
	cond sync.Cond
	// written counts tail appends whose done ran; want is set by a refill
	// that found nothing written yet, and the next done restarts it.
	written atomic.Uint64
	want    atomic.Bool
	// lost counts tail appends that failed (the store refused or failed
	// them): counted in count, never readable; a refill that finds nothing
	// to read takes them off.
	lost atomic.Int64
	done func(error) // tailWritten, allocated once
}

// initTail sets up the tail of a new queue; a priority queue never has one.
func (q *Queue) initTail() {
	q.canTail = q.declared.maxPriority == 0
	q.tail.cond.L = &q.mu
	q.tail.done = q.tailWritten
}

// windowFullLocked reports whether the window holds as much as it may: a
// message enqueued now goes to the tail (as it does while the tail is not
// empty, since new IDs are the highest).
func (q *Queue) windowFullLocked() bool {
	if q.ready.len() < tailWindowShort && q.readyBytes < tailWindowShortBytes {
		return false // the common case, a short queue: no need to look at memory
	}
	n, nb := q.windowLimits()
	return q.ready.len() >= n || q.readyBytes >= nb
}

// windowLimits returns how many messages and body bytes the window may hold
// now: the short window while memory is short or no consumer reads ahead,
// else the full one.
func (q *Queue) windowLimits() (int, int64) {
	if len(q.consumers) == 0 || q.vhost.broker.pagingNeeded() {
		return tailWindowShort, tailWindowShortBytes
	}
	return tailWindow, tailWindowBytes
}

// startsTailLocked reports whether m, enqueued now, starts the queue's tail:
// the window is full and m is written to the store anyway (a persistent
// message in a durable queue), or memory is short (paging). A transient
// backlog stays in memory while there is room, as it did before tails:
// writing it out and reading it back would halve a fast transient queue's
// rate (a fanout whose consumers lag a little, bench/run.sh (d) and (f)).
func (q *Queue) startsTailLocked(m *Message) bool {
	return q.windowFullLocked() && (q.persists(m) || q.vhost.broker.pagingNeeded())
}

// enqueueTailLocked appends m to the store as a tail record and lets go of
// it: the queue holds nothing per tail message (other queues m was routed to
// keep theirs). A persistent message in a durable queue confirms through w
// once written and synced, as in the window; anything else is a transient
// record, written but dropped at a restart.
func (q *Queue) enqueueTailLocked(m *Message, w *durableWait) {
	b := q.vhost.broker
	id := q.nextSeq
	q.nextSeq++
	persistent := q.persists(m)
	rec := []store.MessageRecord{{VHost: q.vhost.Name, Queue: q.Name, ID: id, Transient: !persistent, Tail: true, Data: m.record()}}
	done := q.tail.done
	if persistent && w != nil {
		w.add()
		done = func(err error) {
			w.release(err)
			q.tailWritten(err)
		}
	}
	b.store.AppendMessages(rec, done)
	if !b.canPage {
		cost := int64(len(rec[0].Data)) + storeSlotCost
		q.tail.mem += cost
		b.addMemory(cost)
	}
	q.tail.count++
	q.tail.bytes += int64(m.BodySize)
	q.tail.used = true
	q.stats.Publish++
}

// tailWritten is the done of a tail append (on the store's goroutine, or
// under q.mu for store.Memory: it takes no lock). A refill that found the
// tail not yet written is restarted.
func (q *Queue) tailWritten(err error) {
	if err != nil {
		q.tail.lost.Add(1)
	}
	q.tail.written.Add(1)
	if q.tail.want.Load() && q.tail.want.CompareAndSwap(true, false) {
		go q.kickTail()
	}
}

// refillWantedLocked reports whether a refill should start: the window is
// below half and the tail is not empty (or it has stale records to drop),
// and no refill runs or waits for writes.
func (q *Queue) refillWantedLocked() bool {
	return (q.tail.count > 0 && q.windowLowLocked() || q.tail.stale > 0) &&
		!q.tail.refilling && !q.tail.failed && !q.deleted && !q.tail.want.Load()
}

// windowLowLocked reports whether the window is below half of what it may
// hold, so that a refill is due.
func (q *Queue) windowLowLocked() bool {
	n, _ := q.windowLimits()
	return q.ready.len() < n/2
}

// kickTail starts a refill if one is wanted (after a tail write).
func (q *Queue) kickTail() {
	q.mu.Lock()
	if q.refillWantedLocked() {
		q.startRefillLocked()
	}
	q.mu.Unlock()
}

// awaitRefillLocked waits, releasing q.mu meanwhile, until no refill runs,
// so that the caller sees (and drops) the whole tail.
func (q *Queue) awaitRefillLocked() {
	for q.tail.refilling {
		q.tail.cond.Wait()
	}
}

func (q *Queue) startRefillLocked() {
	q.tail.refilling = true
	go q.refill()
}

// refill moves the lowest tail records into the window until the window is
// at least half full or the tail is empty. The store is read without q.mu
// (ReadTail never waits for the syncer: it stops at the first record not yet
// written, and that record's done restarts the refill).
func (q *Queue) refill() {
	b := q.vhost.broker
	q.mu.Lock()
	for !q.deleted && (q.tail.stale > 0 || q.tail.count > 0 && q.windowLowLocked()) {
		if q.tail.stale > 0 {
			if !q.dropStaleLocked() {
				break
			}
			continue
		}
		n, nb := q.windowLimits()
		n -= q.ready.len()
		nb = max(nb-q.readyBytes, 1)
		epoch, written := q.tail.epoch, q.tail.written.Load()
		q.unlockPublish() // dead letters of the last batch go now, not all at the end
		recs, err := b.store.ReadTail(q.vhost.Name, q.Name, n, nb)
		es, enqueued, cost := q.tailEntries(recs)
		q.mu.Lock()
		if err != nil {
			q.tailFailedLocked("reading", err)
			break
		}
		if q.deleted {
			break // the store drops the queue's records (DeleteQueue)
		}
		if epoch != q.tail.epoch {
			q.ackTailEntries(es) // purged while being read
			continue
		}
		if len(recs) == 0 {
			if lost := int(q.tail.lost.Swap(0)); lost > 0 {
				q.vhost.broker.log.Warn("store: backlog appends failed; their messages are lost", "vhost", q.vhost.Name, "queue", q.Name, "messages", lost)
				if q.tail.count = max(q.tail.count-lost, 0); q.tail.count == 0 {
					q.tail.bytes = 0
				}
				continue
			}
			if q.waitWrittenLocked(written) {
				break
			}
			continue
		}
		if !b.canPage {
			q.tail.mem -= cost
			b.addMemory(-cost)
		}
		q.pushTailLocked(es, enqueued)
		now := nowNano()
		if q.args.overflow == overflowDropHead {
			q.trimLocked()
		}
		q.deliverLocked(now)
		q.expireLocked(now)
	}
	q.tail.refilling = false
	q.tail.cond.Broadcast()
	q.unlockPublish()
}

// tailFailedLocked stops refills after a store error (sticky: the store
// fails every call until reopened), logging it unless the store was closed.
func (q *Queue) tailFailedLocked(what string, err error) {
	q.tail.failed = true
	if !errors.Is(err, store.ErrClosed) {
		q.vhost.broker.log.Error("store: "+what+" a queue's backlog failed", "vhost", q.vhost.Name, "queue", q.Name, "err", err)
	}
}

// waitWrittenLocked is for a refill that found nothing written past the
// tail appends whose done had run at written: the next done restarts the
// refill, so this one ends (true) — unless a done came in between.
func (q *Queue) waitWrittenLocked(written uint64) bool {
	q.tail.want.Store(true)
	return q.tail.written.Load() == written || !q.tail.want.CompareAndSwap(true, false)
}

// dropStaleLocked drops purged tail records the store could not drop at the
// purge; false if the refill is to end (waiting for writes, or failed).
func (q *Queue) dropStaleLocked() bool {
	b := q.vhost.broker
	n, written := q.tail.stale, q.tail.written.Load()
	q.unlockPublish()
	k, err := b.store.DropTail(q.vhost.Name, q.Name, n)
	q.mu.Lock()
	if err != nil {
		q.tailFailedLocked("dropping", err)
		return false
	}
	q.tail.stale -= k
	return k > 0 || !q.waitWrittenLocked(written)
}

// tailEntries turns records read from the tail into window entries (without
// q.mu: the messages are the refill's until pushed). Their bodies stay in
// memory; the store holds each as an ordinary record of the queue, which its
// ack removes (Message.page.queue). A record that does not decode gets a nil
// Msg: it is acknowledged, never delivered. cost is what the records cost
// in a store that keeps them in memory; enqueued[i] is when es[i] was
// enqueued (unix nanoseconds), which its TTL counts from.
func (q *Queue) tailEntries(recs []store.TailRecord) (es []Entry, enqueued []int64, cost int64) {
	b := q.vhost.broker
	es = make([]Entry, 0, len(recs))
	enqueued = make([]int64, 0, len(recs))
	var names [2]string // a queue's messages mostly share exchange and key
	for _, r := range recs {
		cost += int64(len(r.Data)) + storeSlotCost
		e := Entry{Seq: r.ID, Redelivered: r.Delivered}
		m, at, err := b.tailMessage(r.Data, &names)
		enqueued = append(enqueued, at)
		if err != nil {
			b.log.Error("store: a backlog record does not decode; dropped", "vhost", q.vhost.Name, "queue", q.Name, "id", r.ID, "err", err)
		} else {
			m.page = pageState{id: r.ID, vhost: q.vhost.Name, queue: q.Name, broker: b}
			m.page.bits.Store(pageIssued | pageAppended) // in memory, never paged out again
			e.Msg = m
		}
		es = append(es, e)
	}
	return es, enqueued, cost
}

// tailMessage rebuilds a message from its record, with its enqueue time (see
// enqueuedAt); props and body alias data, and exchange and routing key reuse
// names when they are the same.
func (b *Broker) tailMessage(data []byte, names *[2]string) (*Message, int64, error) {
	r, err := splitRecord(data)
	if err != nil {
		return nil, 0, err
	}
	for i, s := range [2][]byte{r.exchange, r.routingKey} {
		if string(s) != names[i] {
			names[i] = string(s)
		}
	}
	m, err := NewMessage(names[0], names[1], r.props, r.body)
	return m, b.enqueuedAt(r), err
}

// ackTailEntries acknowledges refilled entries that do not go to the window.
func (q *Queue) ackTailEntries(es []Entry) {
	ids := make([]uint64, len(es))
	for i := range es {
		ids[i] = es[i].Seq
	}
	if len(ids) > 0 {
		if err := q.vhost.broker.store.Ack(q.vhost.Name, q.Name, ids); err != nil {
			q.vhost.broker.log.Error("store ack failed", "queue", q.Name, "err", err)
		}
	}
}

// pushTailLocked puts refilled entries into the window: appended when they
// follow it (the rule), merged by ID otherwise, so the window stays sorted.
// Each expires its TTL after enqueued[i], when it was enqueued.
func (q *Queue) pushTailLocked(es []Entry, enqueued []int64) {
	f := &q.ready.levels[0]
	var gone []Entry
	for i := range es {
		e := es[i]
		q.tail.count--
		if e.Msg == nil {
			gone = append(gone, e) // undeliverable
			continue
		}
		q.tail.bytes -= int64(e.Msg.BodySize)
		q.vhost.broker.hold(e.Msg, true)
		e.Expires = q.expiresAt(e.Msg, enqueued[i])
		q.readyBytes += int64(e.Msg.BodySize)
		if t := f.count; t == 0 || f.at(t-1).Seq < e.Seq {
			q.ready.push(e)
		} else {
			q.ready.insert(e)
		}
	}
	q.ackTailEntries(gone)
	if q.tail.count <= 0 {
		q.tail.count, q.tail.bytes = 0, 0
	}
}

// dropTailLocked removes the whole tail (purge, delete) without reading it.
// The caller waited for any refill (awaitRefillLocked). A purged tail's
// records become stale, which the refill goroutine drops from the store
// (those not written yet once they are) before it reads anything.
func (q *Queue) dropTailLocked() {
	b := q.vhost.broker
	if q.tail.count > 0 && !q.deleted {
		// The store drops them on the refill goroutine, without q.mu:
		// DropTail reads the records' headers, which for a backlog of
		// millions takes seconds that publishers to the queue should not
		// wait. Until then they are stale: counted nowhere, dropped
		// before anything is read.
		if q.tail.stale += q.tail.count; q.refillWantedLocked() {
			q.startRefillLocked()
		}
	}
	if q.tail.mem != 0 {
		b.addMemory(-q.tail.mem)
		q.tail.mem = 0
	}
	q.tail.count, q.tail.bytes = 0, 0
	q.tail.epoch++
}

// awaitTailLocked waits, releasing q.mu meanwhile, for a refill to bring
// the tail's head into an empty window (basic.get). Records not written yet
// are waited for with the store's Sync, without q.mu.
func (q *Queue) awaitTailLocked() {
	if !q.tail.refilling {
		if q.tail.want.Load() {
			q.mu.Unlock()
			_ = q.vhost.broker.store.Sync()
			q.mu.Lock()
			if q.tail.refilling || q.tail.count == 0 || q.ready.len() > 0 {
				return
			}
			q.tail.want.Store(false)
		}
		if q.tail.failed || q.deleted {
			return
		}
		q.startRefillLocked()
	}
	q.tail.cond.Wait()
}

// recoverTail decides at boot whether recovered record rec stays in the
// tail: once the window is full (or the tail started), every higher ID
// does; a lower one (IDs out of order) is loaded into the window. A record
// the store holds in the tail already (rec.Tail: a store recovered again
// while open) stays there whatever the answer.
func (q *Queue) recoverTail(rec store.MessageRecord) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !rec.Tail && (!q.canTail || rec.ID < q.nextSeq || q.tail.count == 0 && !q.windowFullLocked()) {
		return false
	}
	body := recordBodyLen(rec.Data)
	if body < 0 {
		return false // loaded, and reported as it is
	}
	q.recoveredTailLocked(1, body, rec.ID)
	return true
}

// recoverTailRun counts records the store put in the tail in bulk at boot
// (Store.Recover's tail callback): nothing is read or built for them.
func (q *Queue) recoverTailRun(run store.TailRun) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.recoveredTailLocked(run.Count, run.Bytes, run.LastID)
}

// recoveredTailLocked adds n recovered records of bytes body bytes, the
// highest with ID last, to the tail.
func (q *Queue) recoveredTailLocked(n int, bytes int64, last uint64) {
	q.tail.count += n
	q.tail.bytes += bytes
	q.tail.used = true
	q.nextSeq = max(q.nextSeq, last+1)
}
