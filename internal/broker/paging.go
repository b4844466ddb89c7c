package broker

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/warren-mq/warren/internal/store"
)

type atomicBits = atomic.Uint32

// Paging: when the messages held in queues pass half the memory limit, the
// bodies of newly queued messages are written to the store as transient
// records under a pseudo-queue and dropped from memory; deliveries read them
// back. The rest of a message (routing data, properties) and each queue's
// entries stay in memory. Transient records are dropped at recovery.

// pageQueue is the store pseudo-queue that holds paged-out bodies.
const pageQueue = "\x00paged"

// pageState tracks one message's paging with bits, so that the publisher
// (who pages out), the store (who reports the write) and the last queue to
// let go (who releases) need no lock:
//   - the page record is acked exactly once, by whichever of pageOut and
//     release sees the other's bit;
//   - the body is dropped only if the message was not released first, and
//     release subtracts the body from the memory count only if it was dropped.
type pageState struct {
	bits   atomicBits
	id     uint64
	vhost  string
	broker *Broker
	// queue is set for a message recovered at boot: its body is in that
	// queue's own persistent record (which the queue acks), not a page record.
	queue string
}

const (
	pageIssued   = 1 << iota // pageOut began
	pageAppended             // AppendMessages returned
	pageDropped              // the body left memory
	pageReleased             // no queue holds the message any more
)

// pagingNeeded reports whether new messages should be paged out: memory is
// past half the alarm's limit, and the disk is not low (paging would take
// the space the store needs for acks and confirmed messages).
func (b *Broker) pagingNeeded() bool {
	return b.memHigh > 0 && b.canPage && b.MemoryUsed() > b.memHigh/2 && !b.alarm.diskOn.Load()
}

// memoryTight reports whether memory is past three quarters of the alarm's
// limit (with a store on disk): queues' windows shrink to the least.
func (b *Broker) memoryTight() bool {
	return b.memHigh > 0 && b.canPage && b.MemoryUsed() > b.memHigh/4*3
}

// sweepEvery is how often a sweep over every queue may run while paging:
// most of what it looks at is paged out already.
const sweepEvery = time.Second

// maybeSweep starts sweepPaging on its own goroutine when paging is needed,
// at most once per sweepEvery: a publish pages out its own message, the
// sweep those queued before paging started, which would otherwise stay in
// memory for as long as they are queued (half the limit's worth).
func (b *Broker) maybeSweep() {
	if nowNano()-b.lastSweep.Load() >= int64(sweepEvery) {
		b.startSweep()
	}
}

// startSweep starts a sweep unless one is running. While the memory alarm
// holds publishers, none publishes to start the next one, so the sweep goes
// on every sweepEvery for as long as it finds bodies to page out.
func (b *Broker) startSweep() {
	if b.sweeping.Load() || b.sweeping.Swap(true) {
		return
	}
	go func() {
		defer b.sweeping.Store(false)
		for {
			paged := b.sweepPaging()
			b.lastSweep.Store(nowNano())
			if paged == 0 || !b.alarm.memOn.Load() {
				return
			}
			select {
			case <-time.After(sweepEvery):
			case <-b.stop:
				return
			}
		}
	}()
}

// sweepBatch is how many bodies a sweep pages out before it waits for them
// to be written: a sweep over a long backlog must not hold all of its bodies,
// records and index slots in flight at once (that is the memory it frees).
const sweepBatch = 2048

// sweepPaging pages out the bodies still in memory of messages that wait in
// queues, newest first (the oldest are delivered soonest), a batch at a time
// under one queue lock, until paging is no longer needed. It returns how
// many it paged out.
func (b *Broker) sweepPaging() (paged int) {
	b.mu.RLock()
	vhosts := make([]*VHost, 0, len(b.vhosts))
	for _, v := range b.vhosts {
		vhosts = append(vhosts, v)
	}
	b.mu.RUnlock()
	for _, v := range vhosts {
		v.mu.RLock()
		queues := make([]*Queue, 0, len(v.queues))
		for _, q := range v.queues {
			queues = append(queues, q)
		}
		v.mu.RUnlock()
		for _, q := range queues {
			for level := range q.ready.levels {
				// from counts entries from the tail: publishes in between
				// only make a batch look at a few entries again.
				for from, more := 0, true; more; {
					var wg sync.WaitGroup
					var n int
					from, n, more = q.pageOutReady(level, from, &wg)
					wg.Wait()
					if paged += n; !b.pagingNeeded() {
						return paged
					}
				}
			}
		}
	}
	return paged
}

// pageOutReady pages out up to sweepBatch bodies of one priority level's
// ready messages, starting from entries from its tail; it returns where to
// go on, how many it paged out and whether there is more.
func (q *Queue) pageOutReady(level, from int, wg *sync.WaitGroup) (next, issued int, more bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	f := &q.ready.levels[level]
	for ; from < f.count; from++ {
		if issued == sweepBatch {
			return from, issued, true
		}
		m := f.at(f.count - 1 - from).Msg
		if m.page.queue != "" {
			if q.vhost.broker.dropStoredBody(m) {
				issued++
			}
		} else if m.page.bits.Load() == 0 && q.vhost.broker.pageOut(q.vhost.Name, m, wg) {
			issued++
		}
	}
	return from, issued, false
}

// pageMinBody is the smallest body worth paging out: a paged body costs
// an index slot in the store (storeSlotCost) for as long as it is queued.
const pageMinBody = 2 * storeSlotCost

// pageOut writes m's body to the store and drops it from memory once
// written; it reports whether it wrote, and wg (if not nil) is done when the
// write is.
func (b *Broker) pageOut(vhost string, m *Message, wg *sync.WaitGroup) bool {
	if m.BodySize < pageMinBody {
		return false
	}
	p := &m.page
	if !p.bits.CompareAndSwap(0, pageIssued) {
		return false
	}
	body := m.body.Load()
	if body == nil {
		return false
	}
	if wg != nil {
		wg.Add(1)
	}
	p.id, p.vhost, p.broker = b.pageSeq.Add(1), vhost, b
	b.addMemory(storeSlotCost) // the page record's index slot, until ackPage
	rec := []store.MessageRecord{{VHost: vhost, Queue: pageQueue, ID: p.id, Transient: true, Data: *body}}
	b.store.AppendMessages(rec, func(err error) {
		if wg != nil {
			defer wg.Done()
		}
		if err != nil {
			return // keep the body in memory
		}
		for {
			old := p.bits.Load()
			if old&pageReleased != 0 {
				return
			}
			if p.bits.CompareAndSwap(old, old|pageDropped) {
				break
			}
		}
		m.body.Store(nil)
		b.addMemory(-int64(m.BodySize))
	})
	if old := p.bits.Or(pageAppended); old&pageReleased != 0 {
		b.ackPage(p)
	}
	return true
}

// dropStoredBody drops the body of a message read back from its queue's
// tail: its queue's own record holds it (page.queue), so it goes without a
// page record and comes back from that record on delivery.
func (b *Broker) dropStoredBody(m *Message) bool {
	const inMemory = pageIssued | pageAppended
	if m.BodySize < pageMinBody || !m.page.bits.CompareAndSwap(inMemory, inMemory|pageDropped) {
		return false
	}
	m.body.Store(nil)
	b.addMemory(-int64(m.BodySize))
	return true
}

// released is called when the last queue lets go of m; it returns the bytes
// to take off the memory count.
func (p *pageState) released(m *Message) int64 {
	old := p.bits.Or(pageReleased)
	if old&pageAppended != 0 && p.queue == "" {
		p.broker.ackPage(p)
	}
	return m.messageCost(old&pageDropped == 0)
}

func (b *Broker) ackPage(p *pageState) {
	b.addMemory(-storeSlotCost)
	if err := b.store.Ack(p.vhost, pageQueue, []uint64{p.id}); err != nil {
		b.log.Error("store: ack of a paged-out body failed", "err", err)
	}
}

// load reads a paged-out body back.
func (p *pageState) load() ([]byte, error) {
	if p.queue != "" {
		rec, err := p.broker.store.ReadMessage(p.vhost, p.queue, p.id)
		if err != nil {
			return nil, err
		}
		r, err := splitRecord(rec.Data)
		return r.body, err
	}
	rec, err := p.broker.store.ReadMessage(p.vhost, pageQueue, p.id)
	if err != nil {
		return nil, err
	}
	return rec.Data, nil
}
