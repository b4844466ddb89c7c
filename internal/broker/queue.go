package broker

import (
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warren-mq/warren/internal/amqp091"
	"github.com/warren-mq/warren/internal/store"
)

// Queue holds messages until consumers take them. Delivery runs on whichever
// goroutine made work or credit available (a publisher, an ack, a new consumer);
// a queue has no goroutine of its own.
type Queue struct {
	Name       string
	Durable    bool
	Exclusive  bool
	AutoDelete bool
	Args       amqp091.Table

	vhost    *VHost
	owner    any       // connection of an exclusive queue
	declared queueArgs // parsed from Args
	// pol are the policies that apply, replaced under the vhost's lock.
	pol atomic.Pointer[appliedPolicies]
	// consumerTimeout mirrors args.consumerTimeout for the front end's checks.
	consumerTimeout atomic.Int64

	mu           sync.Mutex
	args         queueArgs // in effect: declared merged with the policies
	ready        *readyList
	readyBytes   int64
	unacked      int
	unackedBytes int64 // body bytes of unacked entries
	nextSeq      uint64
	consumers    []*Consumer // highest priority first, then by arrival
	rr           int
	hadConsumer  bool
	deleted      bool
	ttlTimer     *time.Timer
	ttlAt        int64
	expiresTimer *time.Timer
	deadLetters  []deadLetter // dead letters to publish once the lock is released
	dlBusy       bool         // a goroutine is publishing deadLetters (unlockPublish)
	// tail is the backlog beyond the window, held only by the store
	// (backlog.go): a tail per priority level.
	tail backlog
	// stats count under mu, which every path they count holds anyway.
	stats MessageStats
}

// ConsumerSink is the receiving end of a consumer: an AMQP channel.
type ConsumerSink interface {
	// Deliver offers e to c from src. It runs with the source's lock held (a
	// queue's; a stream consumer's own), must not block and must not call
	// into the source. It returns false when c has no credit
	// (prefetch or output buffer full); the queue then tries another consumer.
	Deliver(c *Consumer, src Source, e *Entry) bool
	// Cancelled tells the sink the server cancelled c (its queue was deleted).
	Cancelled(c *Consumer)
}

// Consumer is one basic.consume on a queue.
type Consumer struct {
	Tag       string
	NoAck     bool
	Exclusive bool
	Priority  int
	Sink      ConsumerSink
	// Data belongs to the sink.
	Data any
	// Channel (its name), PrefetchCount and Args are for the query side.
	Channel       string
	PrefetchCount int
	Args          amqp091.Table
}

// newQueue makes a queue for a command being applied, with v.mu held (the
// queue takes the vhost's policies that apply to it). Its arguments were
// checked when the command was made; should a newer rule refuse them (a log
// written by an older Warren), the queue is kept with the arguments it can
// use rather than lost.
func newQueue(v *VHost, d QueueDecl) *Queue {
	a, err := parseQueueArgs(d.Name, v.Name, d.Args)
	if err != nil {
		v.broker.log.Warn("queue arguments no longer valid; ignoring them", "vhost", v.Name, "queue", d.Name, "err", err)
		a, _ = parseQueueArgs(d.Name, v.Name, nil)
	}
	q := &Queue{Name: d.Name, Durable: d.Durable, Exclusive: d.Exclusive, AutoDelete: d.AutoDelete, Args: d.Args, vhost: v, declared: a}
	if d.Exclusive {
		q.owner = d.Owner
	}
	ap := v.policiesForLocked(d.Name, policyClassicQueue)
	q.pol.Store(ap)
	q.args = a.withPolicy(ap.definition())
	q.consumerTimeout.Store(q.args.consumerTimeout)
	q.ready = newReadyList(a.maxPriority)
	q.initTail()
	return q
}

// policiesChanged recomputes the arguments in effect from new policies and
// applies them to what the queue holds, as RabbitMQ's classic queue does: a
// lower max-length drops (or dead-letters) the excess from the head unless
// the overflow mode rejects publishes instead; the x-expires clock restarts;
// a message TTL applies to messages enqueued from now on (each message's
// expiry is fixed when it is enqueued), so queued ones keep theirs.
func (q *Queue) policiesChanged(ap *appliedPolicies) {
	q.mu.Lock()
	if q.deleted {
		q.mu.Unlock()
		return
	}
	old := q.args
	q.args = q.declared.withPolicy(ap.definition())
	q.consumerTimeout.Store(q.args.consumerTimeout)
	// RabbitMQ sets the limits with the old overflow mode, then the new one,
	// dropping the excess whenever drop-head is in force.
	if old.overflow == overflowDropHead || q.args.overflow == overflowDropHead {
		q.trimLocked()
	}
	q.stopExpiresLocked()
	q.touchLocked()
	q.expireLocked(nowNano())
	q.unlock()
}

// trimLocked drops (or dead-letters) messages from the head until the queue
// is within its max-length and max-length-bytes.
func (q *Queue) trimLocked() {
	for q.ready.len() > 0 && q.overLimit(0, 0) {
		e := q.ready.popOldest()
		q.readyBytes -= int64(e.Msg.BodySize)
		q.dropLocked(e, "maxlen")
	}
}

// recovered applies the queue's limits to the messages recovered at boot,
// as a RabbitMQ queue does when it starts: a limit a policy lowered while
// the broker was down (or that the store holds more than) drops the excess,
// and the TTLs that passed meanwhile (counted from each record's enqueue
// time) expire their messages.
func (q *Queue) recovered() {
	q.mu.Lock()
	if q.args.overflow == overflowDropHead {
		q.trimLocked()
	}
	// Messages whose TTL passed while the broker was down go now (dead
	// letters included), not when the queue is next used.
	q.expireLocked(nowNano())
	q.unlock()
}

// EffectiveArgs returns the arguments that govern the queue: the declared
// ones merged with its policies.
func (q *Queue) EffectiveArgs() amqp091.Table {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.args.table(q.Args)
}

// ConsumerTimeout returns the delivery acknowledgement timeout in ms that
// the queue's argument or policy sets, or -1 when neither does (the
// server's default applies).
func (q *Queue) ConsumerTimeout() int64 { return q.consumerTimeout.Load() }

func (q *Queue) checkOwner(owner any) error {
	if q.owner != nil && q.owner != owner {
		return q.lockedError()
	}
	return nil
}

func (q *Queue) lockedError() error {
	{
		return amqp091.NewError(amqp091.ResourceLocked, "cannot obtain exclusive access to locked queue '%s' in vhost '%s'. It could be originally declared on another connection or the exclusive property value does not match that of the original declaration.", q.Name, q.vhost.Name)
	}
}

func (q *Queue) equivalent(d QueueDecl) error {
	what := "queue '" + q.Name + "' in vhost '" + q.vhost.Name + "'"
	if q.Durable != d.Durable {
		return inequivalent("durable", what, "'"+boolText(d.Durable)+"'", "'"+boolText(q.Durable)+"'")
	}
	if q.AutoDelete != d.AutoDelete {
		return inequivalent("auto_delete", what, "'"+boolText(d.AutoDelete)+"'", "'"+boolText(q.AutoDelete)+"'")
	}
	if q.Exclusive != d.Exclusive {
		return q.lockedError()
	}
	return argsEquivalent(what, q.Args, d.Args, queueArgKeys)
}

// unlock releases the queue lock, then publishes any dead letters collected
// while it was held (publishing takes other queues' locks). A queue with a
// tail whose window ran low starts a refill first.
func (q *Queue) unlock() {
	if q.tail.count > 0 && q.refillWantedLocked() {
		q.startRefillLocked()
	}
	q.unlockPublish()
}

// unlockPublish is unlock without the refill check. One goroutine at a
// time publishes a queue's dead letters, taking batches until none are
// left, so they leave in the order the queue let them go; another that
// finds it busy leaves its own to it.
func (q *Queue) unlockPublish() {
	if len(q.deadLetters) == 0 || q.dlBusy {
		q.mu.Unlock()
		return
	}
	q.dlBusy = true
	for len(q.deadLetters) > 0 {
		dl := q.deadLetters
		q.deadLetters = nil
		q.mu.Unlock()
		for _, d := range dl {
			q.vhost.deadLetter(q, d)
		}
		q.mu.Lock()
	}
	q.dlBusy = false
	q.mu.Unlock()
}

// Counts returns the ready message count (the tail's included) and the consumer count.
func (q *Queue) Counts() (messages, consumers int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.readyLocked(), len(q.consumers)
}

// readyLocked is the ready message count: the window's and the tail's.
func (q *Queue) readyLocked() int { return q.ready.len() + q.tail.count }

// persists reports whether m lives in the store across a restart while in this queue.
func (q *Queue) persists(m *Message) bool { return q.Durable && m.Persistent }

// stored reports whether the store holds a record of m under this queue's ID
// for it, which leaving the queue acknowledges: a persistent message, or one
// read back from the tail (transient records included).
func (q *Queue) stored(m *Message) bool { return q.persists(m) || m.page.queue != "" }

// storeAck tells the store that persistent entries left the queue for good
// (under each one's store key: a priority queue's levels have their own).
func (q *Queue) storeAck(es []Entry) {
	var ids []uint64
	key := ""
	for i := range es {
		m := es[i].Msg
		if !q.stored(m) {
			continue
		}
		if k := q.storeKey(m); k != key {
			q.ackStored(key, ids)
			key, ids = k, ids[:0]
		}
		ids = append(ids, es[i].Seq)
	}
	q.ackStored(key, ids)
}

// ackStored acknowledges the queue's records ids under store key key.
func (q *Queue) ackStored(key string, ids []uint64) {
	if len(ids) > 0 {
		if err := q.vhost.broker.store.Ack(key, q.Name, ids); err != nil {
			q.vhost.broker.log.Error("store ack failed", "queue", q.Name, "err", err)
		}
	}
}

// releaseLocked gives up the queue's hold on an entry's message (see
// Broker.hold), once the entry has left the queue and the store for good.
func (q *Queue) releaseLocked(e Entry) { q.vhost.broker.release(e.Msg, q.stored(e.Msg)) }

// restore puts a recovered message back at its place (recovery at boot);
// enqueued is when it was first enqueued (unix nanoseconds), which its TTL
// counts from.
func (q *Queue) restore(m *Message, id uint64, delivered bool, enqueued int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.vhost.broker.hold(m, true)
	e := Entry{Msg: m, Seq: id, Redelivered: delivered, Expires: q.expiresAt(m, enqueued)}
	q.ready.insert(e)
	q.readyBytes += int64(m.BodySize)
	if id >= q.nextSeq {
		q.nextSeq = id + 1
	}
}

// enqueue adds m; false if the queue refused it (reject-publish overflow). A
// persistent message in a durable queue is appended to the store before any
// consumer can see it, and w (if not nil) learns when it is durable.
func (q *Queue) enqueue(m *Message, w *durableWait) bool {
	q.mu.Lock()
	if q.deleted {
		q.mu.Unlock()
		return true
	}
	if q.overLimit(1, int64(m.BodySize)) {
		switch q.args.overflow {
		case overflowRejectPublish:
			q.mu.Unlock()
			return false
		case overflowRejectPublishDLX:
			body, _ := m.Body() // just published: in memory
			q.countDeadLocked("maxlen")
			q.deadLetterLocked(m, "maxlen", body)
			q.unlock()
			return false
		}
		// drop-head: make room by dropping the oldest
		for q.ready.len() > 0 && q.overLimit(1, int64(m.BodySize)) {
			e := q.ready.popOldest()
			q.readyBytes -= int64(e.Msg.BodySize)
			q.dropLocked(e, "maxlen")
		}
		// With the window empty and a tail, the oldest are on disk: the
		// queue goes over its limit until the refill (which trims) reads them.
		if q.tail.count == 0 && q.overLimit(1, int64(m.BodySize)) {
			// Even an empty queue cannot hold it (max-length 0 or a huge body).
			q.vhost.broker.hold(m, false)
			q.dropLocked(Entry{Msg: m, Seq: ^uint64(0)}, "maxlen")
			q.unlock()
			return true
		}
	}
	// Purged tail records the store has yet to drop (stale) still count as
	// a tail: a new ID in the window above them would break the rule that
	// tail IDs are above window IDs, which the store relies on.
	if level := q.levelOf(m); q.tail.lv[level].count|q.tail.lv[level].stale != 0 || q.startsTailLocked(m, level) {
		q.enqueueTailLocked(m, w, level)
		q.unlock()
		return true
	}
	q.vhost.broker.hold(m, q.persists(m))
	e := Entry{Msg: m, Seq: q.nextSeq}
	q.nextSeq++
	if q.persists(m) {
		done := func(error) {}
		if w != nil {
			w.add()
			done = w.release
		}
		q.vhost.broker.store.AppendMessages([]store.MessageRecord{{VHost: q.storeKey(m), Queue: q.Name, ID: e.Seq, Data: m.record()}}, done)
	}
	now := int64(0)
	if q.entryTTL(m) >= 0 {
		now = nowNano()
		e.Expires = q.expiresAt(m, now)
	}
	q.ready.push(e)
	q.readyBytes += int64(m.BodySize)
	q.stats.Publish++
	q.deliverLocked(now)
	if e.Expires != 0 {
		q.expireLocked(now)
	}
	q.unlock()
	return true
}

func (q *Queue) overLimit(extraMsgs int, extraBytes int64) bool {
	if q.args.maxLength >= 0 && int64(q.readyLocked()+extraMsgs) > q.args.maxLength {
		return true
	}
	return q.args.maxBytes >= 0 && q.readyBytes+q.tail.bytes+extraBytes > q.args.maxBytes
}

// entryTTL is the TTL in ms that applies to m in this queue, -1 for none.
func (q *Queue) entryTTL(m *Message) int64 {
	ttl := q.args.messageTTL
	if m.TTL >= 0 && (ttl < 0 || m.TTL < ttl) {
		ttl = m.TTL
	}
	return ttl
}

// expiresAt returns when an entry of m enqueued at (unix nanoseconds)
// expires in this queue, 0 for never. A TTL of 0 still lets a consumer that
// is ready right when it is enqueued take it.
func (q *Queue) expiresAt(m *Message, at int64) int64 {
	ttl := q.entryTTL(m)
	if ttl < 0 {
		return 0
	}
	return at + max(ttl*int64(time.Millisecond), 1)
}

// dropLocked removes an entry for good: dead-lettered when the queue has a
// dead-letter exchange, else discarded.
func (q *Queue) dropLocked(e Entry, reason string) {
	q.countDeadLocked(reason)
	if q.args.dlx != nil {
		// Read the body now: once acked and released it may be gone from the store.
		body, err := e.Msg.Body()
		if err != nil {
			q.vhost.broker.log.Error("dead-lettering: cannot read the body back", "queue", q.Name, "err", err)
		} else {
			q.deadLetterLocked(e.Msg, reason, body)
		}
	}
	stored := e.Seq != ^uint64(0)
	if stored {
		q.storeAck([]Entry{e})
	}
	q.vhost.broker.release(e.Msg, stored && q.stored(e.Msg))
}

// deliverLocked hands ready messages to consumers with credit. now is the
// current time in unix nanoseconds, or 0 to read the clock only if needed.
func (q *Queue) deliverLocked(now int64) {
	if len(q.consumers) == 0 {
		return
	}
	for q.ready.len() > 0 {
		e := q.ready.peek()
		if e == nil {
			return // the head is in a priority level's tail: after the refill
		}
		if e.Expires != 0 {
			if now == 0 {
				now = nowNano()
			}
			if q.expiredAtHead(e, now) {
				continue
			}
		}
		c := q.pickConsumer(e)
		if c == nil {
			return
		}
		v := q.ready.pop()
		q.readyBytes -= int64(v.Msg.BodySize)
		q.countDeliveryLocked(v, c.NoAck, false)
		q.settleDeliveredLocked(v, c.NoAck)
	}
}

// settleDeliveredLocked accounts for an entry handed to a consumer or basic.get:
// gone for good without acks, else unacked (and, if persistent, marked
// delivered so that it comes back redelivered after a restart).
func (q *Queue) settleDeliveredLocked(e Entry, noAck bool) {
	if noAck {
		q.storeAck([]Entry{e})
		q.releaseLocked(e)
		return
	}
	q.unacked++
	q.unackedBytes += int64(e.Msg.BodySize)
	if !e.Redelivered && q.persists(e.Msg) {
		_ = q.vhost.broker.store.MarkDelivered(q.storeKey(e.Msg), q.Name, []uint64{e.Seq})
	}
}

// expiredAtHead drops the expired head entry e; it reports whether it did.
func (q *Queue) expiredAtHead(e *Entry, now int64) bool {
	if !e.expired(now) {
		return false
	}
	v := q.ready.pop()
	q.readyBytes -= int64(v.Msg.BodySize)
	q.dropLocked(v, "expired")
	return true
}

// pickConsumer offers e to consumers, highest priority first, round-robin among
// equals, and returns the one that took it.
func (q *Queue) pickConsumer(e *Entry) *Consumer {
	if q.args.singleActive {
		if c := q.consumers[0]; c.Sink.Deliver(c, q, e) {
			return c
		}
		return nil
	}
	n := len(q.consumers)
	for start := 0; start < n; {
		end := start + 1
		for end < n && q.consumers[end].Priority == q.consumers[start].Priority {
			end++
		}
		size := end - start
		for i := 0; i < size; i++ {
			idx := start + (q.rr+i)%size
			c := q.consumers[idx]
			if c.Sink.Deliver(c, q, e) {
				q.rr = (q.rr + i + 1) % size
				return c
			}
		}
		start = end
	}
	return nil
}

// expireLocked drops expired entries at the head and arms the timer for the next.
func (q *Queue) expireLocked(now int64) {
	for {
		e := q.ready.peek()
		if e == nil || e.Expires == 0 {
			return
		}
		if !q.expiredAtHead(e, now) {
			q.armTTLTimer(e.Expires, now)
			return
		}
	}
}

func (q *Queue) armTTLTimer(at, now int64) {
	if q.ttlTimer != nil && q.ttlAt != 0 && q.ttlAt <= at {
		return // an earlier tick is already due; it re-arms
	}
	q.ttlAt = at
	d := time.Duration(at - now)
	if q.ttlTimer == nil {
		q.ttlTimer = time.AfterFunc(d, q.ttlTick)
	} else {
		q.ttlTimer.Reset(d)
	}
}

func (q *Queue) ttlTick() {
	q.mu.Lock()
	q.ttlAt = 0
	if !q.deleted {
		q.expireLocked(nowNano())
	}
	q.unlock()
}

// Kick retries delivery after a consumer got credit back.
func (q *Queue) Kick() {
	q.mu.Lock()
	if !q.deleted {
		q.deliverLocked(0)
	}
	q.unlock()
}

// Consume adds a consumer; c.Exclusive asks to be the queue's only consumer.
// Delivery starts at the next Kick, so the caller can answer consume-ok first.
func (q *Queue) Consume(c *Consumer) error {
	q.mu.Lock()
	if q.deleted {
		q.mu.Unlock()
		return q.vhost.errNoQueue(q.Name)
	}
	if len(q.consumers) > 0 && (c.Exclusive || q.consumers[0].Exclusive) {
		q.mu.Unlock()
		return amqp091.NewError(amqp091.AccessRefused, "queue '%s' in vhost '%s' in exclusive use", q.Name, q.vhost.Name)
	}
	if q.args.singleActive {
		q.consumers = append(q.consumers, c) // arrival order: the first is active
	} else {
		i := sort.Search(len(q.consumers), func(i int) bool { return q.consumers[i].Priority < c.Priority })
		q.consumers = append(q.consumers, nil)
		copy(q.consumers[i+1:], q.consumers[i:])
		q.consumers[i] = c
	}
	q.hadConsumer = true
	q.stopExpiresLocked()
	q.mu.Unlock()
	return nil
}

// Cancel removes a consumer. An auto-delete queue goes with its last consumer.
func (q *Queue) Cancel(c *Consumer) {
	q.mu.Lock()
	for i, x := range q.consumers {
		if x == c {
			q.consumers = slices.Delete(q.consumers, i, i+1) // clears the vacated slot: a cancelled consumer (and its channel) must not stay reachable
			break
		}
	}
	last := len(q.consumers) == 0
	autoDelete := last && q.AutoDelete && q.hadConsumer && !q.deleted
	if last && !q.deleted {
		q.armExpiresLocked()
	}
	if !last {
		q.deliverLocked(0) // a single active consumer's successor may take over
	}
	q.unlock()
	if autoDelete {
		_, _ = q.Delete(false, false)
	}
}

// Get takes one message for basic.get, with its body (read back from the
// store if it was paged out: before a no-ack get lets go of it). ok is false
// when the queue is empty; remaining is the ready count after the take.
func (q *Queue) Get(noAck bool) (e Entry, body []byte, remaining int, ok bool, err error) {
	q.mu.Lock()
	defer q.unlock()
	q.touchLocked()
	now := nowNano()
	for tries := 0; q.ready.len() > 0 || q.tail.count > 0; {
		h := q.ready.peek()
		if h == nil {
			// The head is in the tail: wait for a refill (a few, should
			// what it brings expire) rather than answer get-empty.
			if tries++; tries > 8 || q.deleted {
				break
			}
			q.awaitTailLocked()
			now = nowNano()
			continue
		}
		if h.Expires != 0 && q.expiredAtHead(h, now) {
			continue
		}
		if body, err = h.Msg.Body(); err != nil {
			return Entry{}, nil, q.readyLocked(), false, err
		}
		e = q.ready.pop()
		q.readyBytes -= int64(e.Msg.BodySize)
		q.countDeliveryLocked(e, noAck, true)
		q.settleDeliveredLocked(e, noAck)
		q.expireLocked(now)
		return e, body, q.readyLocked(), true, nil
	}
	q.stats.GetEmpty++
	return Entry{}, nil, 0, false, nil
}

// countDeliveryLocked counts a delivery (get: a basic.get-ok) in the stats.
func (q *Queue) countDeliveryLocked(e Entry, noAck, get bool) {
	switch {
	case get && noAck:
		q.stats.GetNoAck++
	case get:
		q.stats.Get++
	case noAck:
		q.stats.DeliverNoAck++
	default:
		q.stats.Deliver++
	}
	if e.Redelivered {
		q.stats.Redeliver++
	}
}

// unackedGoneLocked accounts for delivered entries being settled.
func (q *Queue) unackedGoneLocked(es []Entry) {
	q.unacked -= len(es)
	for _, e := range es {
		q.unackedBytes -= int64(e.Msg.BodySize)
	}
}

// Ack settles delivered entries for good.
func (q *Queue) Ack(es []Entry) {
	q.mu.Lock()
	q.unackedGoneLocked(es)
	q.stats.Ack += uint64(len(es))
	q.storeAck(es)
	for _, e := range es {
		q.releaseLocked(e)
	}
	q.mu.Unlock()
}

// Requeue puts delivered entries back at their original places, marked redelivered.
func (q *Queue) Requeue(es []Entry) {
	q.mu.Lock()
	q.unackedGoneLocked(es)
	if q.deleted {
		for _, e := range es {
			q.releaseLocked(e)
		}
		q.mu.Unlock()
		return
	}
	// Requeued entries stay in the store: they are still the queue's. They
	// come in delivery order; inserting the newest first makes each one a
	// push at the front when they are older than everything ready, instead
	// of shifting the ones already put back (quadratic for a consumer that
	// closes with a million unacked).
	for i := len(es) - 1; i >= 0; i-- {
		e := es[i]
		e.Redelivered = true
		q.ready.insert(e)
		q.readyBytes += int64(e.Msg.BodySize)
	}
	q.deliverLocked(0)
	q.expireLocked(nowNano())
	q.unlock()
}

// Reject settles delivered entries as rejected without requeue: they are
// dead-lettered if the queue has a dead-letter exchange.
func (q *Queue) Reject(es []Entry) {
	q.mu.Lock()
	q.unackedGoneLocked(es)
	for _, e := range es {
		q.dropLocked(e, "rejected")
	}
	q.unlock()
}

// Purge drops every ready message and returns how many there were.
func (q *Queue) Purge() int {
	q.mu.Lock()
	q.awaitRefillLocked()
	n := q.readyLocked()
	var gone []Entry
	q.ready.drain(func(e Entry) {
		if q.stored(e.Msg) {
			gone = append(gone, e)
		}
		q.releaseLocked(e)
	})
	q.storeAck(gone)
	q.readyBytes = 0
	q.dropTailLocked()
	q.mu.Unlock()
	return n
}

// Delete removes the queue: consumers are cancelled, ready messages dropped.
// It returns how many ready messages the queue held.
func (q *Queue) Delete(ifUnused, ifEmpty bool) (int, error) {
	v := q.vhost
	res, err := v.run([]string{queueKey(q.Name)}, func() (command, bool, any, error) {
		if cur, ok := v.Queue(q.Name); !ok || cur != q {
			return nil, false, 0, nil // deleted already
		}
		q.mu.Lock()
		inUse, ready := len(q.consumers) > 0, q.readyLocked()
		q.mu.Unlock()
		if ifUnused && inUse {
			return nil, false, 0, amqp091.NewError(amqp091.PreconditionFailed, "queue '%s' in vhost '%s' in use", q.Name, v.Name)
		}
		if ifEmpty && ready > 0 {
			return nil, false, 0, amqp091.NewError(amqp091.PreconditionFailed, "queue '%s' in vhost '%s' not empty", q.Name, v.Name)
		}
		return &deleteQueueCmd{VHost: v.Name, Name: q.Name}, q.Durable && !q.Exclusive, nil, nil
	})
	n, _ := res.(int)
	return n, err
}

// destroy applies a queue's deletion: consumers are cancelled, messages
// dropped (from the store too), the queue unlinked. It returns how many
// ready messages it held.
func (q *Queue) destroy(a *applier) int {
	q.mu.Lock()
	if q.deleted {
		q.mu.Unlock()
		return 0
	}
	q.deleted = true
	if !a.boot {
		q.retireQueueLocked()
	}
	// A refill reading now could take the records of a queue declared next
	// under this name: let it see deleted first.
	q.awaitRefillLocked()
	n := q.readyLocked()
	q.ready.drain(q.releaseLocked)
	q.readyBytes = 0
	q.dropTailLocked() // with deleted set: the store's DeleteQueue drops the records
	consumers := q.consumers
	q.consumers = nil
	if q.ttlTimer != nil {
		q.ttlTimer.Stop()
	}
	q.stopExpiresLocked()
	used := q.tail.used
	q.mu.Unlock()
	if (q.Durable || used) && !a.boot {
		for i := range q.tail.lv { // a priority queue's levels have their own keys
			if err := q.vhost.broker.store.DeleteQueue(q.tail.lv[i].key, q.Name); err != nil {
				q.vhost.broker.log.Error("store: delete queue failed", "queue", q.Name, "err", err)
			}
		}
	}
	q.vhost.removeQueue(a, q)
	for _, c := range consumers {
		c.Sink.Cancelled(c)
	}
	return n
}

// touch records use of the queue (declare, get), restarting its x-expires clock.
func (q *Queue) touch() {
	q.mu.Lock()
	q.touchLocked()
	q.mu.Unlock()
}

func (q *Queue) touchLocked() {
	if len(q.consumers) == 0 && !q.deleted {
		q.armExpiresLocked()
	}
}

func (q *Queue) armExpiresLocked() {
	if q.args.expires <= 0 {
		return
	}
	d := time.Duration(q.args.expires) * time.Millisecond
	if q.expiresTimer == nil {
		q.expiresTimer = time.AfterFunc(d, q.expiresTick)
	} else {
		q.expiresTimer.Reset(d)
	}
}

func (q *Queue) stopExpiresLocked() {
	if q.expiresTimer != nil {
		q.expiresTimer.Stop()
	}
}

func (q *Queue) expiresTick() {
	q.mu.Lock()
	idle := len(q.consumers) == 0 && !q.deleted
	q.mu.Unlock()
	if idle {
		_, _ = q.Delete(false, false)
	}
}
