package main

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"sync/atomic"
	"time"

	"github.com/warren-mq/warren/internal/amqp091"
)

// maxBatchBytes bounds one producer write: big enough that a syscall carries
// thousands of small messages, small enough to stay in cache.
const maxBatchBytes = 256 << 10

// producer publishes on channel 1 of its own connection. Its goroutine is the
// connection's writer: it copies a pre-encoded message (method, header and body
// frames) into a batch buffer once per message, patches the sequence number and
// timestamp into the body, and writes the whole batch with one syscall. A second
// goroutine reads publisher confirms, returns and closes.
type producer struct {
	id   int
	cfg  *config
	c    *conn
	tmpl []byte // one message's frames
	off  int    // offset of the body's sequence number in tmpl
	cut  bool   // the last write was cut short at the end of the run

	sent, confirmed, nacked, returned atomic.Int64

	// Confirm tracking. ring holds the send time of each unconfirmed sequence
	// number at seq&mask (0 once confirmed); the producer may use a slot only
	// once its previous occupant is confirmed, i.e. seq < low+len(ring).
	ring      []atomic.Int64
	mask      uint64
	published atomic.Uint64 // highest sequence number whose ring slot is written
	low       atomic.Uint64 // lowest sequence number not yet confirmed (reader-owned)
	resolved  atomic.Uint64 // acked + nacked
	wake      chan struct{} // a confirm arrived; 1-buffered
	hist      histogram     // confirm latency
}

// newProducer connects and prepares a producer that publishes to exchange with routingKey.
func newProducer(id int, cfg *config, u amqpURI, routingKey string) (*producer, error) {
	c, err := dial(u, fmt.Sprintf("warren-perf producer %d", id), cfg.events, 10*time.Second)
	if err != nil {
		return nil, err
	}
	p := &producer{id: id, cfg: cfg, c: c, wake: make(chan struct{}, 1)}
	if err := p.setup(routingKey); err != nil {
		c.nc.Close()
		return nil, fmt.Errorf("producer %d: %w", id, err)
	}
	return p, nil
}

func (p *producer) setup(routingKey string) error {
	if err := p.c.openChannel(1); err != nil {
		return err
	}
	if w := p.cfg.confirm; w > 0 {
		if _, err := expect[*amqp091.ConfirmSelectOk](p.c, 1, &amqp091.ConfirmSelect{}); err != nil {
			return err
		}
		size := uint64(1) << bits.Len64(uint64(2*w-1)) // power of two >= 2w
		p.ring = make([]atomic.Int64, size)
		p.mask = size - 1
		p.low.Store(1)
	}
	var props amqp091.Properties
	if p.cfg.persistent {
		props.DeliveryMode = 2
	}
	body := make([]byte, p.cfg.bodySize)
	b := amqp091.AppendMethodFrame(nil, 1, &amqp091.BasicPublish{Exchange: p.cfg.exchange, RoutingKey: routingKey, Mandatory: p.cfg.mandatory})
	b = amqp091.AppendHeaderFrame(b, 1, amqp091.ClassBasic, uint64(len(body)), props.Append(nil))
	p.off = len(b) + 7 // the first body frame's payload
	p.tmpl = amqp091.AppendBodyFrames(b, 1, body, p.c.frameMax)
	return nil
}

// run publishes until stop is closed or -C messages are published and confirmed.
func (p *producer) run(stop <-chan struct{}) error {
	limit := uint64(p.cfg.pmessages)
	window := uint64(p.cfg.confirm)
	perBatch := uint64(max(1, maxBatchBytes/len(p.tmpl)))
	buf := make([]byte, 0, int(perBatch)*len(p.tmpl))
	var seq uint64 // last published sequence number
	var timer *time.Timer
	wait := func(d time.Duration) bool {
		if timer == nil {
			timer = time.NewTimer(d)
		} else {
			timer.Reset(d)
		}
		select {
		case <-timer.C:
			return true
		case <-stop:
			return false
		}
	}
	start := time.Now()
	for {
		select {
		case <-stop:
			return nil
		default:
		}
		n := perBatch
		if limit > 0 {
			if seq >= limit {
				return p.awaitConfirms(seq, stop)
			}
			n = min(n, limit-seq)
		}
		if window > 0 {
			resolved := p.resolved.Load()
			room := min(window-(seq-resolved), p.low.Load()+uint64(len(p.ring))-1-seq)
			if room == 0 || room > window {
				select {
				case <-p.wake:
				case <-stop:
					return nil
				}
				continue
			}
			n = min(n, room)
		}
		if p.cfg.rate > 0 {
			elapsed := time.Since(start)
			allowed := uint64(p.cfg.rate*elapsed.Seconds()) + 1
			if allowed <= seq {
				next := time.Duration(float64(seq) / p.cfg.rate * float64(time.Second))
				if !wait(next - elapsed) {
					return nil
				}
				continue
			}
			n = min(n, allowed-seq)
		}
		buf = buf[:0]
		now := time.Now().UnixNano()
		for range n {
			seq++
			at := len(buf) + p.off
			buf = append(buf, p.tmpl...)
			binary.BigEndian.PutUint32(buf[at:], uint32(seq))
			binary.BigEndian.PutUint64(buf[at+4:], uint64(now))
			if window > 0 {
				p.ring[seq&p.mask].Store(now)
			}
		}
		if window > 0 {
			p.published.Store(seq)
		}
		if _, err := p.c.nc.Write(buf); err != nil {
			select {
			case <-stop:
				p.cut = true
				return nil // the write was cut short to end the run
			default:
			}
			return fmt.Errorf("producer %d: %w", p.id, err)
		}
		p.sent.Add(int64(n))
	}
}

// awaitConfirms waits for the confirms of everything published.
func (p *producer) awaitConfirms(seq uint64, stop <-chan struct{}) error {
	for p.cfg.confirm > 0 && p.resolved.Load() < seq {
		select {
		case <-p.wake:
		case <-stop:
			return nil
		}
	}
	return nil
}

// read handles what the broker sends a producer: confirms, returned messages,
// flow control and closes. It returns errCloseOk after a clean close.
func (p *producer) read() error {
	var lowLocal uint64 = 1
	for {
		f, err := p.c.fr.ReadFrame()
		if err != nil {
			return err
		}
		if f.Type != amqp091.FrameMethod {
			continue // a returned message's content, or a heartbeat
		}
		cls, mth, _ := amqp091.MethodIDs(f.Payload)
		switch {
		case cls == amqp091.ClassBasic && (mth == amqp091.MethodBasicAck || mth == amqp091.MethodBasicNack):
			if len(f.Payload) < 13 {
				return fmt.Errorf("producer %d: short basic.ack/nack frame", p.id)
			}
			tag := binary.BigEndian.Uint64(f.Payload[4:])
			multiple := f.Payload[12]&1 != 0
			lowLocal = p.confirm(tag, multiple, mth == amqp091.MethodBasicAck, lowLocal)
		case cls == amqp091.ClassBasic && mth == amqp091.MethodBasicReturn:
			p.returned.Add(1)
		default:
			if err := p.c.otherMethod(f); err != nil {
				return err
			}
		}
	}
}

// confirm resolves tag (and every earlier one if multiple) and returns the new
// lowest unconfirmed sequence number. Confirm latency is measured from the
// batch's send time to the read that brought the confirm.
func (p *producer) confirm(tag uint64, multiple, ack bool, low uint64) uint64 {
	if p.ring == nil {
		return low
	}
	now := p.c.src.now
	var n int64
	resolve := func(s uint64) {
		if t := p.ring[s&p.mask].Swap(0); t != 0 {
			p.hist.record(now - t)
			n++
		}
	}
	published := p.published.Load()
	tag = min(tag, published)
	if multiple {
		for s := low; s <= tag; s++ {
			resolve(s)
		}
	} else if tag >= low {
		resolve(tag)
	}
	for low <= published && p.ring[low&p.mask].Load() == 0 {
		low++
	}
	p.low.Store(low)
	if ack {
		p.confirmed.Add(n)
	} else {
		p.nacked.Add(n)
	}
	p.resolved.Add(uint64(n))
	select {
	case p.wake <- struct{}{}:
	default:
	}
	return low
}

// otherMethod handles connection- and channel-level methods a producer or
// consumer reader may see mid-run.
func (c *conn) otherMethod(f amqp091.Frame) error {
	cls, mth, _ := amqp091.MethodIDs(f.Payload)
	if cls != amqp091.ClassConnection && !(cls == amqp091.ClassChannel && mth == amqp091.MethodChannelClose) {
		return nil
	}
	m, err := amqp091.DecodeMethod(f.Payload)
	if err != nil {
		return err
	}
	if cl, ok := m.(*amqp091.ChannelClose); ok {
		_ = c.send(f.Channel, &amqp091.ChannelCloseOk{})
		return &brokerClosed{channel: true, err: &amqp091.Error{Code: cl.ReplyCode, Text: cl.ReplyText, ClassID: cl.FailingClassID, MethodID: cl.FailingMethodID}}
	}
	return c.connectionMethod(m)
}
