package amqpserver

import (
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warren-mq/warren/internal/amqp091"
	"github.com/warren-mq/warren/internal/broker"
)

// outbox is a connection's outbound buffer. Any goroutine appends encoded
// frames under mu; one writer goroutine swaps the buffer out and writes it, so
// many deliveries coalesce into one write syscall.
type outbox struct {
	mu      sync.Mutex
	buf     []byte
	spare   []byte
	closed  bool
	blocked map[broker.Source]struct{} // queues that stopped delivering because buf was full
	drained *sync.Cond                 // signalled after each write, for a reader waiting for room

	size   atomic.Int64 // len(buf), readable without mu
	signal chan struct{}
	wrote  atomic.Bool // a write happened since the last heartbeat tick
	// sentBytes and sentFrames count what was written to the socket, for the
	// management view.
	sentBytes, sentFrames atomic.Uint64
	limit                 int // deliveries stop above this many buffered bytes
	hardCap               int // the connection's reader waits above this

	// beforeWrite runs on the writer goroutine each time it wakes, before it
	// takes the buffer (the connection flushes confirms made durable meanwhile).
	beforeWrite func()
}

// wake makes the writer run even if nothing was appended.
func (o *outbox) wake() {
	select {
	case o.signal <- struct{}{}:
	default:
	}
}

func newOutbox(limit int) *outbox {
	o := &outbox{signal: make(chan struct{}, 1), limit: limit, hardCap: 4 * limit, blocked: map[broker.Source]struct{}{}}
	o.drained = sync.NewCond(&o.mu)
	return o
}

// appendLocked is called with mu held after adding to buf.
func (o *outbox) notifyLocked(wasEmpty bool) {
	o.size.Store(int64(len(o.buf)))
	if wasEmpty {
		select {
		case o.signal <- struct{}{}:
		default:
		}
	}
}

// send appends frames built by fn. It never blocks on the network.
func (o *outbox) send(fn func([]byte) []byte) {
	o.mu.Lock()
	if !o.closed {
		wasEmpty := len(o.buf) == 0
		o.buf = fn(o.buf)
		o.notifyLocked(wasEmpty)
	}
	o.mu.Unlock()
}

// sendMethod appends one method frame.
func (o *outbox) sendMethod(channel uint16, m amqp091.Method) {
	o.send(func(b []byte) []byte { return amqp091.AppendMethodFrame(b, channel, m) })
}

// full reports (with mu held) whether deliveries must pause; it registers q to
// be kicked once the writer drains the buffer.
func (o *outbox) fullLocked(q broker.Source) bool {
	if len(o.buf) < o.limit {
		return false
	}
	if q != nil {
		o.blocked[q] = struct{}{}
	}
	return true
}

// waitRoom blocks the caller (a connection's reader) while the buffer is over
// its hard cap, so a client that never reads cannot grow it without bound.
func (o *outbox) waitRoom() {
	if o.size.Load() < int64(o.hardCap) {
		return
	}
	o.mu.Lock()
	for len(o.buf) >= o.hardCap && !o.closed {
		o.drained.Wait()
	}
	o.mu.Unlock()
}

func (o *outbox) close() {
	o.mu.Lock()
	o.closed = true
	o.drained.Broadcast()
	o.mu.Unlock()
	select {
	case o.signal <- struct{}{}:
	default:
	}
}

// run is the writer goroutine. It returns when the outbox is closed (after a
// final flush) or a write fails. heartbeat 0 disables heartbeats.
func (o *outbox) run(nc net.Conn, heartbeat func() time.Duration, stop <-chan struct{}) error {
	var tick <-chan time.Time
	var ticker *time.Ticker
	defer func() {
		if ticker != nil {
			ticker.Stop()
		}
	}()
	for {
		if hb := heartbeat(); hb > 0 && ticker == nil {
			ticker = time.NewTicker(hb / 2)
			tick = ticker.C
		}
		select {
		case <-o.signal:
		case <-tick:
			if !o.wrote.Swap(false) {
				o.send(amqp091.AppendHeartbeat)
			}
			continue
		case <-stop:
		}
		if o.beforeWrite != nil {
			o.beforeWrite()
		}
		o.mu.Lock()
		b := o.buf
		o.buf = o.spare[:0]
		o.spare = nil
		o.size.Store(0)
		closed := o.closed
		o.mu.Unlock()
		if len(b) > 0 {
			o.wrote.Store(true)
			if err := writeAll(nc, b); err != nil {
				o.close()
				return err
			}
			o.sentBytes.Add(uint64(len(b)))
			o.sentFrames.Add(countFrames(b))
		}
		o.mu.Lock()
		if cap(b) <= 4*o.limit { // keep the buffer: regrowing it for every write costs
			o.spare = b[:0]
		}
		var kick []broker.Source
		if len(o.buf) < o.limit/2 && len(o.blocked) > 0 {
			for q := range o.blocked {
				kick = append(kick, q)
			}
			clear(o.blocked)
		}
		o.drained.Broadcast()
		more := len(o.buf) > 0
		o.mu.Unlock()
		for _, q := range kick {
			q.Kick()
		}
		if closed && !more {
			return nil
		}
		if more {
			select {
			case o.signal <- struct{}{}:
			default:
			}
		}
	}
}

// countFrames counts the whole frames in b, which holds nothing else: a
// walk over their headers, one step per frame.
func countFrames(b []byte) uint64 {
	var n uint64
	for len(b) >= 8 {
		size := int(b[3])<<24 | int(b[4])<<16 | int(b[5])<<8 | int(b[6])
		if size > len(b)-8 {
			break
		}
		b = b[8+size:]
		n++
	}
	return n
}

// writeAll writes b. There is no write deadline: a consumer that stops reading
// is held back by TCP and the outbox limit, and a dead peer is found by the
// reader (heartbeats, keepalive), which closes the socket and so this write.
func writeAll(nc net.Conn, b []byte) error {
	_, err := nc.Write(b)
	return err
}
