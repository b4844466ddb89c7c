package broker

import (
	"errors"
	"strconv"
	"strings"
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
// A priority queue (x-max-priority) is a backlog per priority level, each
// with its own window (a share of the queue's, tailLevelMin at least) and
// tail, as RabbitMQ's priority queue is a queue per priority: a message
// goes to its level's tail when its level's window is full. IDs come from
// the queue's one counter, so each level's tail IDs are above its window
// IDs, and level L > 0 keeps its records in the store under the vhost name
// levelKey(vhost, L) (vhost names hold no NUL), level 0 under the queue's
// own, so that the store's rule holds per level. Delivery never passes over
// a level whose head is in its tail (readyList.head): it waits for the
// refill, which reads the highest levels first.
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
	// is short (paging): with thousands of queues each holding a backlog, a
	// full window each would be gigabytes (10,000 × 4,096 messages).
	tailWindowShort      = 128
	tailWindowShortBytes = 256 << 10
	// tailWindowLeast and tailWindowLeastBytes bound it while memory is
	// tight (three quarters of the limit) and while the queue has no
	// consumer: a queue nobody consumes from needs no read-ahead (a
	// consumer's arrival starts a refill, Kick), and 10,000 idle queues
	// recovered at boot hold 160,000 messages, not 1.3 M.
	tailWindowLeast      = 16
	tailWindowLeastBytes = 64 << 10
	// tailLevelMin is the least window a priority level gets, however many
	// levels share the queue's.
	tailLevelMin = 16
	// refillSlots is how many refills read the store at once, broker-wide:
	// thousands of queues whose consumers arrive together would otherwise
	// read their windows all at once, each sized by a memory count that
	// none of the others' reads are in yet, and the slowest would wait
	// longest. Slots are taken in turn, a batch at a time.
	refillSlots = 4
)

// tailLevel is one priority level's tail (a plain queue has one). Guarded
// by the queue's mu, except lost.
type tailLevel struct {
	key   string // the store's vhost name for the level's records (levelKey)
	count int    // ready messages in the level's tail
	bytes int64  // their body bytes
	stale int    // purged tail records not dropped yet (see backlog.stale)
	// next is, at boot, above every ID recovered at the level so far.
	next uint64
	// lost counts the level's tail appends that failed: counted in count,
	// never readable; a refill that finds nothing to read takes them off.
	lost atomic.Int64
	done func(error) // tailWritten for the level, allocated once
}

// levelKey returns the store's vhost name for priority level level of a
// queue in vhost: the vhost's own for level 0, else the vhost, a NUL and the
// level, which no vhost name has (PutVHost refuses NUL).
func levelKey(vhost string, level int) string {
	if level == 0 {
		return vhost
	}
	return vhost + "\x00" + strconv.Itoa(level)
}

// splitLevelKey is levelKey's inverse; level is -1 for a name levelKey does
// not make.
func splitLevelKey(key string) (vhost string, level int) {
	i := strings.IndexByte(key, 0)
	if i < 0 {
		return key, 0
	}
	l, err := strconv.Atoi(key[i+1:])
	if err != nil || l <= 0 || l > 255 || strconv.Itoa(l) != key[i+1:] {
		return key[:i], -1
	}
	return key[:i], l
}

// backlog is a queue's tail. Its fields are guarded by the queue's mu except
// the atomics, which the store's done callbacks touch.
type backlog struct {
	lv    []tailLevel // per priority level; one for a plain queue
	count int         // ready messages in the tail (all levels)
	bytes int64       // their body bytes
	// mem is what the tail costs in the broker's memory count: a store that
	// keeps records in memory (store.Memory) holds the tail there.
	mem int64
	// stale counts purged tail records the store could not drop yet (not
	// written when the purge came; all levels): the lowest of the tail,
	// which the next refill drops before it reads anything. Until then
	// enqueue goes on into the level's tail, so that no window ID is above
	// them.
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
}

// initTail sets up the tail of a new queue: a level per priority.
func (q *Queue) initTail() {
	q.tail.cond.L = &q.mu
	q.tail.lv = make([]tailLevel, len(q.ready.levels))
	for i := range q.tail.lv {
		lv := &q.tail.lv[i]
		lv.key = levelKey(q.vhost.Name, i)
		lv.done = func(err error) { q.tailWritten(lv, err) }
	}
	q.ready.tails = q.tail.lv
}

// levelOf returns the priority level of m in this queue (0 for a plain one).
func (q *Queue) levelOf(m *Message) int {
	return min(int(m.Priority), len(q.ready.levels)-1)
}

// storeKey returns the store's vhost name for the record of m in this queue:
// the one it was read from (recovered, or refilled from a tail), else its
// level's.
func (q *Queue) storeKey(m *Message) string {
	if m.page.queue != "" {
		return m.page.vhost
	}
	return q.tail.lv[q.levelOf(m)].key
}

// windowFullLocked reports whether level's window holds as much as it may: a
// message of the level enqueued now goes to its tail (as it does while the
// level's tail is not empty, since new IDs are the highest).
func (q *Queue) windowFullLocked(level int) bool {
	k := q.ready.levels[level].count
	if k < q.levelShare(tailWindowLeast) && q.readyBytes < tailWindowLeastBytes {
		return false // the common case, a short queue: no need to look at memory
	}
	n, nb := q.windowLimits()
	return k >= q.levelShare(n) || q.readyBytes >= nb
}

// levelShare returns a level's share of a window of n messages: the whole
// for a plain queue.
func (q *Queue) levelShare(n int) int {
	if l := len(q.ready.levels); l > 1 {
		return max(n/l, tailLevelMin)
	}
	return n
}

// windowLimits returns how many messages and body bytes the window may hold
// now: the least while memory is tight or no consumer reads ahead, the
// short one while memory is short, else the full one.
func (q *Queue) windowLimits() (int, int64) {
	b := q.vhost.broker
	switch {
	case len(q.consumers) == 0 || b.memoryTight():
		return tailWindowLeast, tailWindowLeastBytes
	case b.pagingNeeded():
		return tailWindowShort, tailWindowShortBytes
	}
	return tailWindow, tailWindowBytes
}

// startsTailLocked reports whether m, enqueued now, starts its level's tail:
// the window is full and m is written to the store anyway (a persistent
// message in a durable queue), or memory is short (paging). A transient
// backlog stays in memory while there is room, as it did before tails:
// writing it out and reading it back would halve a fast transient queue's
// rate (a fanout whose consumers lag a little, bench/run.sh (d) and (f)).
func (q *Queue) startsTailLocked(m *Message, level int) bool {
	return q.windowFullLocked(level) && (q.persists(m) || q.vhost.broker.pagingNeeded())
}

// enqueueTailLocked appends m to the store as a tail record and lets go of
// it: the queue holds nothing per tail message (other queues m was routed to
// keep theirs). A persistent message in a durable queue confirms through w
// once written and synced, as in the window; anything else is a transient
// record, written but dropped at a restart.
func (q *Queue) enqueueTailLocked(m *Message, w *durableWait, level int) {
	b := q.vhost.broker
	id := q.nextSeq
	q.nextSeq++
	persistent := q.persists(m)
	lv := &q.tail.lv[level]
	rec := []store.MessageRecord{{VHost: lv.key, Queue: q.Name, ID: id, Transient: !persistent, Tail: true, Data: m.record()}}
	done := lv.done
	if persistent && w != nil {
		w.add()
		done = func(err error) {
			w.release(err)
			q.tailWritten(lv, err)
		}
	}
	b.store.AppendMessages(rec, done)
	if !b.canPage {
		cost := int64(len(rec[0].Data)) + storeSlotCost
		q.tail.mem += cost
		b.addMemory(cost)
	}
	lv.count++
	lv.bytes += int64(m.BodySize)
	q.tail.count++
	q.tail.bytes += int64(m.BodySize)
	q.tail.used = true
	q.stats.Publish++
}

// tailWritten is the done of a tail append (on the store's goroutine, or
// under q.mu for store.Memory: it takes no lock). A refill that found the
// tail not yet written is restarted.
func (q *Queue) tailWritten(lv *tailLevel, err error) {
	if err != nil {
		lv.lost.Add(1)
	}
	q.tail.written.Add(1)
	if q.tail.want.Load() && q.tail.want.CompareAndSwap(true, false) {
		go q.kickTail()
	}
}

// refillWantedLocked reports whether a refill should start: a level's
// window is below half and its tail is not empty (or a tail has stale
// records to drop), and no refill runs or waits for writes.
func (q *Queue) refillWantedLocked() bool {
	return (q.tail.stale > 0 || q.tail.count > 0 && q.refillLevelLocked() >= 0) &&
		!q.tail.refilling && !q.tail.failed && !q.deleted && !q.tail.want.Load()
}

// refillLevelLocked returns the level a refill is to work on next: the
// highest with stale records to drop (those first), else the highest whose
// window is below half with a tail; -1 if none.
func (q *Queue) refillLevelLocked() int {
	lv := q.tail.lv
	if q.tail.stale > 0 {
		for i := len(lv) - 1; i >= 0; i-- {
			if lv[i].stale > 0 {
				return i
			}
		}
	}
	if q.tail.count == 0 {
		return -1
	}
	n, _ := q.windowLimits()
	half := q.levelShare(n) / 2
	for i := len(lv) - 1; i >= 0; i-- {
		if lv[i].count > 0 && q.ready.levels[i].count < half {
			return i
		}
	}
	return -1
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
	for !q.deleted {
		level := q.refillLevelLocked()
		if level < 0 {
			break
		}
		lv := &q.tail.lv[level]
		if lv.stale > 0 {
			if !q.dropStaleLocked(lv) {
				break
			}
			continue
		}
		// A slot first (in turn with other queues' refills), then the
		// limits as they are once it is ours.
		q.unlockPublish() // dead letters of the last batch go now, not all at the end
		b.refills <- struct{}{}
		q.mu.Lock()
		if level = q.refillLevelLocked(); q.deleted || level < 0 || q.tail.lv[level].stale > 0 {
			<-b.refills
			continue
		}
		lv = &q.tail.lv[level]
		// At most twice what the level's window holds (tailWindowLeast
		// at least): a window grows to its limit in a few batches, so
		// that thousands of queues whose consumers arrive together take
		// turns, none reading its whole backlog before the others start.
		n, nb := q.windowLimits()
		have := q.ready.levels[level].count
		n = min(q.levelShare(n)-have, max(2*have, tailWindowLeast))
		nb = max(nb-q.readyBytes, 1)
		epoch, written := q.tail.epoch, q.tail.written.Load()
		q.mu.Unlock()
		recs, err := b.store.ReadTail(lv.key, q.Name, n, nb)
		<-b.refills
		es, enqueued, cost := q.tailEntries(recs, lv.key)
		q.mu.Lock()
		if err != nil {
			q.tailFailedLocked("reading", err)
			break
		}
		if q.deleted {
			break // the store drops the queue's records (DeleteQueue)
		}
		if epoch != q.tail.epoch {
			q.ackTailEntries(es, lv.key) // purged while being read
			continue
		}
		if len(recs) == 0 {
			if lost := min(int(lv.lost.Swap(0)), lv.count); lost > 0 {
				q.vhost.broker.log.Warn("store: backlog appends failed; their messages are lost", "vhost", q.vhost.Name, "queue", q.Name, "messages", lost)
				q.tail.count -= lost
				if lv.count -= lost; lv.count == 0 {
					q.tail.bytes -= lv.bytes
					lv.bytes = 0
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
		q.pushTailLocked(es, enqueued, lv)
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
func (q *Queue) dropStaleLocked(lv *tailLevel) bool {
	b := q.vhost.broker
	n, written := lv.stale, q.tail.written.Load()
	q.unlockPublish()
	k, err := b.store.DropTail(lv.key, q.Name, n)
	q.mu.Lock()
	if err != nil {
		q.tailFailedLocked("dropping", err)
		return false
	}
	lv.stale -= k
	q.tail.stale -= k
	return k > 0 || !q.waitWrittenLocked(written)
}

// tailEntries turns records read from the tail into window entries (without
// q.mu: the messages are the refill's until pushed). Their bodies stay in
// memory; the store holds each as an ordinary record of the queue, which its
// ack removes (Message.page.queue). A record that does not decode gets a nil
// Msg: it is acknowledged, never delivered. cost is what the records cost
// in a store that keeps them in memory; enqueued[i] is when es[i] was
// enqueued (unix nanoseconds), which its TTL counts from. key is the store
// vhost name the records were read under.
func (q *Queue) tailEntries(recs []store.TailRecord, key string) (es []Entry, enqueued []int64, cost int64) {
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
			m.page = pageState{id: r.ID, vhost: key, queue: q.Name, broker: b}
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

// ackTailEntries acknowledges refilled entries, read under store vhost name
// key, that do not go to the window.
func (q *Queue) ackTailEntries(es []Entry, key string) {
	ids := make([]uint64, len(es))
	for i := range es {
		ids[i] = es[i].Seq
	}
	q.ackStored(key, ids)
}

// pushTailLocked puts entries refilled from lv's tail into the window:
// appended when they follow it (the rule), merged by ID otherwise, so the
// window stays sorted. Each expires its TTL after enqueued[i], when it was
// enqueued. (A record of another priority — one a priority queue wrote
// under level 0's key before its levels had tails — goes to its own level's
// window.)
func (q *Queue) pushTailLocked(es []Entry, enqueued []int64, lv *tailLevel) {
	var gone []Entry
	for i := range es {
		e := es[i]
		q.tail.count--
		lv.count--
		if e.Msg == nil {
			gone = append(gone, e) // undeliverable
			continue
		}
		q.tail.bytes -= int64(e.Msg.BodySize)
		lv.bytes -= int64(e.Msg.BodySize)
		q.vhost.broker.hold(e.Msg, true)
		e.Expires = q.expiresAt(e.Msg, enqueued[i])
		q.readyBytes += int64(e.Msg.BodySize)
		if f := q.ready.level(&e); f.count == 0 || f.at(f.count-1).Seq < e.Seq {
			q.ready.push(e)
		} else {
			q.ready.insert(e)
		}
	}
	q.ackTailEntries(gone, lv.key)
	if lv.count <= 0 {
		q.tail.count -= lv.count
		q.tail.bytes -= lv.bytes
		lv.count, lv.bytes = 0, 0
	}
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
		for i := range q.tail.lv {
			lv := &q.tail.lv[i]
			lv.stale += lv.count
		}
		if q.tail.stale += q.tail.count; q.refillWantedLocked() {
			q.startRefillLocked()
		}
	}
	if q.tail.mem != 0 {
		b.addMemory(-q.tail.mem)
		q.tail.mem = 0
	}
	for i := range q.tail.lv {
		q.tail.lv[i].count, q.tail.lv[i].bytes = 0, 0
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
			if q.tail.refilling || q.tail.count == 0 || q.ready.peek() != nil {
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

// recoverTail decides at boot whether recovered record rec, of priority
// level level (the one its store key names), stays in the level's tail:
// once the level's window is full (or its tail started), every higher ID
// does; a lower one (IDs out of order) is loaded into the window, as is a
// record of another priority (one a priority queue wrote under level 0's
// key before its levels had tails). A record the store holds in the tail
// already (rec.Tail: a store recovered again while open) stays there
// whatever the answer.
func (q *Queue) recoverTail(rec store.MessageRecord, level int) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	lv := &q.tail.lv[level]
	if !rec.Tail && (rec.ID < lv.next || lv.count == 0 && !q.windowFullLocked(level) ||
		len(q.tail.lv) > 1 && recordLevel(rec.Data, len(q.tail.lv)) != level) {
		lv.next = max(lv.next, rec.ID+1)
		return false
	}
	body := recordBodyLen(rec.Data)
	if body < 0 {
		return false // loaded, and reported as it is
	}
	q.recoveredTailLocked(lv, 1, body, rec.ID)
	return true
}

// recoverTailRun counts records the store put in level's tail in bulk at
// boot (Store.Recover's tail callback): nothing is read or built for them.
func (q *Queue) recoverTailRun(run store.TailRun, level int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.recoveredTailLocked(&q.tail.lv[level], run.Count, run.Bytes, run.LastID)
}

// recoveredTailLocked adds n recovered records of bytes body bytes, the
// highest with ID last, to lv's tail.
func (q *Queue) recoveredTailLocked(lv *tailLevel, n int, bytes int64, last uint64) {
	lv.count += n
	lv.bytes += bytes
	lv.next = max(lv.next, last+1)
	q.tail.count += n
	q.tail.bytes += bytes
	q.tail.used = true
	q.nextSeq = max(q.nextSeq, last+1)
}
