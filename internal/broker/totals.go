package broker

import (
	"sync"
	"sync/atomic"
)

// Totals that outlive the objects they count. Metrics sum the counters of the
// queues and sessions that exist at scrape time; when a queue is deleted or a
// session closes, its counters move here so that those sums never go
// backwards. Nothing here is touched per message: a queue retires once, when
// it is destroyed, a session when it unregisters.

// Totals is a snapshot of the broker's lifetime counters.
type Totals struct {
	// QueuesDeclared counts queue.declare requests (passive ones included),
	// QueuesCreated the queues that came into existence, QueuesDeleted those
	// destroyed, since the broker started (as RabbitMQ's queues_*_total).
	QueuesDeclared, QueuesCreated, QueuesDeleted uint64
	// ConnectionsOpened and ConnectionsClosed count registered sessions.
	ConnectionsOpened, ConnectionsClosed uint64
	// ChannelsOpened and ChannelsClosed count what front ends report with
	// CountChannel.
	ChannelsOpened, ChannelsClosed uint64
	// DeletedQueues holds the message counters deleted queues had.
	DeletedQueues MessageStats
	// ClosedSessions holds the counters closed sessions had (see
	// SessionStats for how their unroutable messages are split).
	ClosedSessions MessageStats
	// Bytes and frames in and out of closed sessions.
	ClosedRecvOct, ClosedSendOct, ClosedRecvCnt, ClosedSendCnt uint64
}

// totals is the broker's accumulator behind Totals.
type totals struct {
	queuesDeclared, queuesCreated, queuesDeleted atomic.Uint64
	connsOpened, connsClosed                     atomic.Uint64
	chansOpened, chansClosed                     atomic.Uint64

	mu                                 sync.Mutex // a leaf
	queues                             MessageStats
	sessions                           MessageStats
	recvOct, sendOct, recvCnt, sendCnt uint64
}

// Totals returns the broker's lifetime counters.
func (b *Broker) Totals() Totals {
	t := &b.totals
	out := Totals{
		QueuesDeclared: t.queuesDeclared.Load(), QueuesCreated: t.queuesCreated.Load(), QueuesDeleted: t.queuesDeleted.Load(),
		ConnectionsOpened: t.connsOpened.Load(), ConnectionsClosed: t.connsClosed.Load(),
		ChannelsOpened: t.chansOpened.Load(), ChannelsClosed: t.chansClosed.Load(),
	}
	t.mu.Lock()
	out.DeletedQueues, out.ClosedSessions = t.queues, t.sessions
	out.ClosedRecvOct, out.ClosedSendOct, out.ClosedRecvCnt, out.ClosedSendCnt = t.recvOct, t.sendOct, t.recvCnt, t.sendCnt
	t.mu.Unlock()
	return out
}

// CountChannel counts a channel opened (true) or closed (false) by a front
// end, for the channels_opened/closed totals.
func (b *Broker) CountChannel(opened bool) {
	if opened {
		b.totals.chansOpened.Add(1)
	} else {
		b.totals.chansClosed.Add(1)
	}
}

// retireQueueLocked keeps a destroyed queue's counters; q.mu is held.
func (q *Queue) retireQueueLocked() {
	t := &q.vhost.broker.totals
	t.queuesDeleted.Add(1)
	t.mu.Lock()
	t.queues.Add(q.stats)
	t.mu.Unlock()
}

// retireSession keeps an unregistering session's counters. The session's
// Info must not wait for anything the caller of unregister holds.
func (b *Broker) retireSession(s Session) {
	in := s.Info()
	st := SessionStats(in, s.Channels())
	t := &b.totals
	t.connsClosed.Add(1)
	t.mu.Lock()
	t.sessions.Add(st)
	t.recvOct += in.RecvOct
	t.sendOct += in.SendOct
	t.recvCnt += in.RecvCnt
	t.sendCnt += in.SendCnt
	t.mu.Unlock()
}

// SessionStats returns a session's message counters as MessageStats.
// SessionInfo counts returned and dropped unroutable messages together; the
// open channels' Stats tell how many were returned, and the rest count as
// dropped (the split of channels closed earlier is not kept).
func SessionStats(in SessionInfo, chans []ChannelInfo) MessageStats {
	st := MessageStats{
		Publish: in.MessagesPublished, Confirm: in.MessagesConfirmed, DropUnroutable: in.MessagesUnroutable,
		Deliver: in.MessagesDelivered, DeliverNoAck: in.MessagesDeliveredNoAck, Get: in.MessagesGet, GetNoAck: in.MessagesGetNoAck,
		GetEmpty: in.MessagesGetEmpty, Redeliver: in.MessagesRedelivered, Ack: in.MessagesAcknowledged,
	}
	var returned uint64
	for i := range chans {
		returned += chans[i].Stats.ReturnUnroutable
	}
	if returned <= st.DropUnroutable {
		st.ReturnUnroutable, st.DropUnroutable = returned, st.DropUnroutable-returned
	}
	return st
}

// FreeDisk returns the free space on the store's file system.
func (b *Broker) FreeDisk() (uint64, error) {
	if b.freeDisk != nil {
		return b.freeDisk()
	}
	return b.store.FreeDisk()
}

// Limits returns the configured memory limit and free disk limit (bytes; 0
// when unset), as Config gave them.
func (b *Broker) Limits() (memory, diskFree int64) {
	return b.cfg.MemoryLimit, b.cfg.DiskFreeLimit
}
