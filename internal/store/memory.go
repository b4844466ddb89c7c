package store

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Memory is a Store that keeps everything in memory and nothing across a
// restart. Within one instance it behaves like File, so tests and brokers
// without a data directory see the same semantics.
type Memory struct {
	// metaMu orders commits: held across the append and its done callback.
	metaMu   sync.Mutex
	snapshot func() [][]byte
	lastLive int

	mu     sync.Mutex
	meta   []MetaRecord
	queues map[qkey]map[uint64]*memMessage
	tails  map[qkey]*memTail
	live   int
	bytes  int64
	inTail int
	closed bool
}

// memTail is a queue's tail: records in ID order, oldest first, kept apart
// from the window (they are not known by ID, as in File).
type memTail struct{ recs []memTailRec }

type memTailRec struct {
	id  uint64
	msg *memMessage
}

type memMessage struct {
	data      []byte
	transient bool
	delivered bool
}

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory {
	return &Memory{queues: map[qkey]map[uint64]*memMessage{}, tails: map[qkey]*memTail{}}
}

// CommitMeta implements Store: done runs before it returns.
func (m *Memory) CommitMeta(rec []byte, done func(error)) {
	if len(rec) == 0 {
		done(ErrInvalid)
		return
	}
	m.metaMu.Lock()
	defer m.metaMu.Unlock()
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		done(ErrClosed)
		return
	}
	m.meta = append(m.meta, MetaRecord{Data: slices.Clone(rec), Where: "memory record " + strconv.Itoa(len(m.meta))})
	m.mu.Unlock()
	done(nil)
	if m.snapshot == nil || len(m.meta) < metaCompactMin || len(m.meta) <= 2*m.lastLive {
		return
	}
	snap := m.snapshot()
	recs := make([]MetaRecord, len(snap))
	for i, r := range snap {
		recs[i] = MetaRecord{Data: slices.Clone(r), Where: "memory record " + strconv.Itoa(i)}
	}
	m.mu.Lock()
	m.meta, m.lastLive = recs, len(recs)
	m.mu.Unlock()
}

// SetMetaSnapshot implements Store.
func (m *Memory) SetMetaSnapshot(fn func() [][]byte) {
	m.metaMu.Lock()
	m.snapshot = fn
	m.metaMu.Unlock()
}

// MetaLog implements Store.
func (m *Memory) MetaLog() ([]MetaRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	return slices.Clone(m.meta), nil
}

// AppendMessages implements Store. Nothing is written, so done runs before it
// returns.
func (m *Memory) AppendMessages(recs []MessageRecord, done func(error)) {
	if err := validRecords(recs); err != nil {
		done(err)
		return
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		done(ErrClosed)
		return
	}
	if !tailOrdered(recs, func(k qkey) (uint64, uint64, bool) {
		t := m.tails[k]
		if t == nil || len(t.recs) == 0 {
			return 0, 0, false
		}
		return t.recs[0].id, t.recs[len(t.recs)-1].id, true
	}) {
		m.mu.Unlock()
		done(ErrInvalid)
		return
	}
	for _, r := range recs {
		k := qkey{r.VHost, r.Queue}
		if r.Tail {
			t := m.tails[k]
			if t == nil {
				t = &memTail{}
				m.tails[k] = t
			}
			t.recs = append(t.recs, memTailRec{r.ID, &memMessage{data: slices.Clone(r.Data), transient: r.Transient}})
			m.live++
			m.inTail++
			m.bytes += int64(len(r.Data))
			continue
		}
		q := m.queues[k]
		if q == nil {
			q = map[uint64]*memMessage{}
			m.queues[k] = q
		}
		if old := q[r.ID]; old != nil {
			m.live--
			m.bytes -= int64(len(old.data))
		}
		q[r.ID] = &memMessage{data: slices.Clone(r.Data), transient: r.Transient}
		m.live++
		m.bytes += int64(len(r.Data))
	}
	m.mu.Unlock()
	done(nil)
}

// ReadTail implements Store.
func (m *Memory) ReadTail(vhost, queue string, max int, maxBytes int64) ([]TailRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	k := qkey{vhost, queue}
	t := m.tails[k]
	if t == nil {
		return nil, nil
	}
	var out []TailRecord
	var bytes int64
	n := 0
	for ; n < len(t.recs) && n < max; n++ {
		r := t.recs[n]
		if n > 0 && bytes+int64(len(r.msg.data)) > maxBytes {
			break
		}
		bytes += int64(len(r.msg.data))
		out = append(out, TailRecord{ID: r.id, Transient: r.msg.transient, Delivered: r.msg.delivered, Data: slices.Clone(r.msg.data)})
		q := m.queues[k]
		if q == nil {
			q = map[uint64]*memMessage{}
			m.queues[k] = q
		}
		if old := q[r.id]; old != nil {
			m.live--
			m.bytes -= int64(len(old.data))
		}
		q[r.id] = r.msg
	}
	m.dropTailLocked(k, t, n, false)
	return out, nil
}

// DropTail implements Store.
func (m *Memory) DropTail(vhost, queue string, n int) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return 0, ErrClosed
	}
	k := qkey{vhost, queue}
	t := m.tails[k]
	if t == nil || n <= 0 {
		return 0, nil
	}
	n = min(n, len(t.recs))
	m.dropTailLocked(k, t, n, true)
	return n, nil
}

// dropTailLocked removes the first n records of a tail; gone says they leave
// the store (rather than moving to the window).
func (m *Memory) dropTailLocked(k qkey, t *memTail, n int, gone bool) {
	for _, r := range t.recs[:n] {
		m.inTail--
		if gone {
			m.live--
			m.bytes -= int64(len(r.msg.data))
		}
	}
	clear(t.recs[:n])
	t.recs = t.recs[n:]
	if len(t.recs) == 0 {
		delete(m.tails, k)
	}
}

// ReadMessage implements Store.
func (m *Memory) ReadMessage(vhost, queue string, id uint64) (MessageRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return MessageRecord{}, ErrClosed
	}
	msg := m.queues[qkey{vhost, queue}][id]
	if msg == nil {
		return MessageRecord{}, ErrNotFound
	}
	return MessageRecord{VHost: vhost, Queue: queue, ID: id, Transient: msg.transient, Data: slices.Clone(msg.data)}, nil
}

// Ack implements Store.
func (m *Memory) Ack(vhost, queue string, ids []uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	k := qkey{vhost, queue}
	q := m.queues[k]
	for _, id := range ids {
		if msg := q[id]; msg != nil {
			delete(q, id)
			m.live--
			m.bytes -= int64(len(msg.data))
		}
	}
	if q != nil && len(q) == 0 {
		delete(m.queues, k)
	}
	return nil
}

// MarkDelivered implements Store.
func (m *Memory) MarkDelivered(vhost, queue string, ids []uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	q := m.queues[qkey{vhost, queue}]
	for _, id := range ids {
		if msg := q[id]; msg != nil {
			msg.delivered = true
		}
	}
	return nil
}

// DeleteQueue implements Store.
func (m *Memory) DeleteQueue(vhost, queue string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	k := qkey{vhost, queue}
	for _, msg := range m.queues[k] {
		m.live--
		m.bytes -= int64(len(msg.data))
	}
	delete(m.queues, k)
	if t := m.tails[k]; t != nil {
		m.dropTailLocked(k, t, len(t.recs), true)
	}
	return nil
}

// Recover implements Store. It works on a snapshot, so fn may call the store.
// Nothing survives a restart, so every record was appended by this instance
// and fn's tail answer changes nothing. With tail set, once fn has answered
// tail=true for a queue, the queue's following tail records go to tail in
// bulk (Bytes: len(Data)), as File's do at a restart.
func (m *Memory) Recover(fn RecordFunc, tail TailFunc) error {
	type item struct {
		rec       MessageRecord
		delivered bool
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return ErrClosed
	}
	var items []item
	for k, q := range m.queues {
		for id, msg := range q {
			if !msg.transient {
				items = append(items, item{MessageRecord{VHost: k.vhost, Queue: k.queue, ID: id, Data: msg.data}, msg.delivered})
			}
		}
	}
	for k, t := range m.tails {
		for _, r := range t.recs {
			if !r.msg.transient {
				items = append(items, item{MessageRecord{VHost: k.vhost, Queue: k.queue, ID: r.id, Tail: true, Data: r.msg.data}, r.msg.delivered})
			}
		}
	}
	m.mu.Unlock()
	slices.SortFunc(items, func(a, b item) int {
		if c := strings.Compare(a.rec.VHost, b.rec.VHost); c != 0 {
			return c
		}
		if c := strings.Compare(a.rec.Queue, b.rec.Queue); c != 0 {
			return c
		}
		return compareU64(a.rec.ID, b.rec.ID)
	})
	var bulk TailRun // the current queue's records reported in bulk, not yet flushed
	bulking := false // fn has answered tail=true for the current queue
	flush := func() error {
		if bulk.Count == 0 {
			return nil
		}
		run := bulk
		bulk = TailRun{}
		return tail(run)
	}
	for i, it := range items {
		if i > 0 && (it.rec.VHost != items[i-1].rec.VHost || it.rec.Queue != items[i-1].rec.Queue) {
			if err := flush(); err != nil {
				return err
			}
			bulking = false
		}
		if bulking && it.rec.Tail {
			bulk.VHost, bulk.Queue = it.rec.VHost, it.rec.Queue
			bulk.Count++
			bulk.Bytes += int64(len(it.rec.Data))
			bulk.LastID = it.rec.ID
			continue
		}
		if err := flush(); err != nil {
			return err
		}
		t, err := fn(it.rec, it.delivered)
		if err != nil {
			return err
		}
		bulking = t && tail != nil
	}
	return flush()
}

// Sync implements Store; there is nothing to sync.
func (m *Memory) Sync() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	return nil
}

// Stats implements Store.
func (m *Memory) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return Stats{LiveMessages: m.live, LiveBytes: m.bytes, TailMessages: m.inTail}
}

// FreeDisk implements Store: memory has no disk to fill.
func (m *Memory) FreeDisk() (uint64, error) { return math.MaxUint64, nil }

// Close implements Store.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	m.queues, m.tails = nil, nil
	return nil
}

// qkey names a queue.
type qkey struct{ vhost, queue string }

func compareU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// tailOrdered reports whether recs keep the tail rule: every Tail record's
// ID is above the tail IDs of its queue before it, and every other record's
// ID is below them (bounds says a queue tail's lowest and highest ID, if it
// has one). File reads a tail's runs by ID range: a window record with an ID
// inside it would be taken for a tail record.
func tailOrdered(recs []MessageRecord, bounds func(qkey) (lo, hi uint64, ok bool)) bool {
	type span struct{ lo, hi uint64 }
	var seen map[qkey]span
	for i := range recs {
		r := &recs[i]
		k := qkey{r.VHost, r.Queue}
		sp, ok := seen[k]
		if !ok {
			sp.lo, sp.hi, ok = bounds(k)
		}
		switch {
		case !r.Tail:
			if ok && r.ID >= sp.lo {
				return false
			}
			continue
		case ok && r.ID <= sp.hi:
			return false
		case !ok:
			sp.lo = r.ID
		}
		sp.hi = r.ID
		if seen == nil {
			seen = map[qkey]span{}
		}
		seen[k] = sp
	}
	return true
}

// validRecords checks what the on-disk format can hold, so that Memory
// refuses what File would.
func validRecords(recs []MessageRecord) error {
	for i := range recs {
		r := &recs[i]
		if len(r.VHost) > 255 || len(r.Queue) > 255 || len(r.Data) > MaxData {
			return ErrInvalid
		}
	}
	return nil
}
