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
	live   int
	bytes  int64
	closed bool
}

type memMessage struct {
	data      []byte
	transient bool
	delivered bool
}

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory { return &Memory{queues: map[qkey]map[uint64]*memMessage{}} }

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
	for _, r := range recs {
		k := qkey{r.VHost, r.Queue}
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
	return nil
}

// Recover implements Store. It works on a snapshot, so fn may call the store.
func (m *Memory) Recover(fn func(rec MessageRecord, delivered bool) error) error {
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
	for _, it := range items {
		if err := fn(it.rec, it.delivered); err != nil {
			return err
		}
	}
	return nil
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
	return Stats{LiveMessages: m.live, LiveBytes: m.bytes}
}

// FreeDisk implements Store: memory has no disk to fill.
func (m *Memory) FreeDisk() (uint64, error) { return math.MaxUint64, nil }

// Close implements Store.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	m.queues = nil
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
