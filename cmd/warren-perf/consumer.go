package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/warren-mq/warren/internal/amqp091"
)

// consumer consumes one queue on channel 1 of its own connection. One goroutine
// does everything: it decodes deliveries from the read buffer in place, records
// latency from the timestamp in the body, and appends acks to a buffer that is
// written just before the next socket read, so a read's worth of deliveries is
// acknowledged with one write.
type consumer struct {
	id    int
	cfg   *config
	c     *conn
	queue string

	received atomic.Int64
	hist     histogram     // consumer latency
	done     chan struct{} // closed when -D messages have arrived

	ackEvery int
	acks     []byte // encoded basic.ack frames not yet written
	pending  int    // deliveries since the last ack
}

// newConsumer connects, declares its own queue if fanout, and starts consuming.
func newConsumer(id int, cfg *config, u amqpURI, queue string) (*consumer, error) {
	c, err := dial(u, fmt.Sprintf("warren-perf consumer %d", id), cfg.events, 10*time.Second)
	if err != nil {
		return nil, err
	}
	k := &consumer{id: id, cfg: cfg, c: c, queue: queue, done: make(chan struct{})}
	k.ackEvery = 1
	if cfg.multiAck > 1 {
		k.ackEvery = cfg.multiAck
		if cfg.prefetch > 0 {
			// Waiting for more deliveries than the prefetch allows would stall.
			k.ackEvery = min(k.ackEvery, cfg.prefetch)
		}
	}
	if err := k.setup(); err != nil {
		c.nc.Close()
		return nil, fmt.Errorf("consumer %d: %w", id, err)
	}
	c.src.before = k.flushAcks
	return k, nil
}

func (k *consumer) setup() error {
	c := k.c
	if err := c.openChannel(1); err != nil {
		return err
	}
	if k.cfg.fanout() {
		ok, err := expect[*amqp091.QueueDeclareOk](c, 1, &amqp091.QueueDeclare{Exclusive: true, AutoDelete: true})
		if err != nil {
			return err
		}
		k.queue = ok.Queue
		if _, err := expect[*amqp091.QueueBindOk](c, 1, &amqp091.QueueBind{Queue: k.queue, Exchange: k.cfg.exchange}); err != nil {
			return err
		}
	}
	if k.cfg.prefetch > 0 {
		if _, err := expect[*amqp091.BasicQosOk](c, 1, &amqp091.BasicQos{PrefetchCount: uint16(k.cfg.prefetch)}); err != nil {
			return err
		}
	}
	_, err := expect[*amqp091.BasicConsumeOk](c, 1, &amqp091.BasicConsume{Queue: k.queue, NoAck: k.cfg.autoAck})
	return err
}

// flushAcks writes the batched acks; it runs before every socket read.
func (k *consumer) flushAcks() error {
	if len(k.acks) == 0 {
		return nil
	}
	_, err := k.c.nc.Write(k.acks)
	k.acks = k.acks[:0]
	return err
}

// appendAck appends basic.ack for tag; multiple acks everything up to it.
func (k *consumer) appendAck(tag uint64, multiple bool) {
	var bit byte
	if multiple {
		bit = 1
	}
	k.acks = append(k.acks, amqp091.FrameMethod, 0, 1, 0, 0, 0, 13,
		0, amqp091.ClassBasic, 0, amqp091.MethodBasicAck)
	k.acks = binary.BigEndian.AppendUint64(k.acks, tag)
	k.acks = append(k.acks, bit, amqp091.FrameEnd)
}

// run reads deliveries until the connection ends; errCloseOk means a clean close.
func (k *consumer) run() error {
	limit := k.cfg.cmessages
	var (
		tag      uint64 // of the delivery whose content is arriving
		left     uint64 // body bytes still to come
		first    bool   // the next body frame is the message's first
		sentAt   int64
		counted  int64
		finished bool
	)
	complete := func() {
		if finished {
			return
		}
		counted++
		k.received.Store(counted)
		if sentAt != 0 {
			k.hist.record(k.c.src.now - sentAt)
		}
		if !k.cfg.autoAck {
			k.pending++
			if k.pending >= k.ackEvery {
				k.appendAck(tag, k.ackEvery > 1)
				k.pending = 0
			}
		}
		if limit > 0 && counted >= limit {
			finished = true
			if k.pending > 0 {
				k.appendAck(tag, true)
				k.pending = 0
			}
			_ = k.flushAcks()
			close(k.done)
		}
	}
	for {
		f, err := k.c.fr.ReadFrame()
		if err != nil {
			return err
		}
		switch f.Type {
		case amqp091.FrameMethod:
			cls, mth, _ := amqp091.MethodIDs(f.Payload)
			if cls == amqp091.ClassBasic && mth == amqp091.MethodBasicDeliver {
				p := f.Payload
				if len(p) < 5 || len(p) < 5+int(p[4])+8 {
					return fmt.Errorf("consumer %d: short basic.deliver frame", k.id)
				}
				tag = binary.BigEndian.Uint64(p[5+int(p[4]):])
				continue
			}
			if cls == amqp091.ClassBasic && mth == amqp091.MethodBasicCancel {
				return fmt.Errorf("consumer %d: consumer cancelled by broker (queue %q deleted?)", k.id, k.queue)
			}
			if err := k.c.otherMethod(f); err != nil {
				return err
			}
		case amqp091.FrameHeader:
			if len(f.Payload) < 12 {
				return fmt.Errorf("consumer %d: short content header", k.id)
			}
			left = binary.BigEndian.Uint64(f.Payload[4:])
			first, sentAt = true, 0
			if left == 0 {
				complete()
			}
		case amqp091.FrameBody:
			if first && len(f.Payload) >= minBodySize {
				sentAt = int64(binary.BigEndian.Uint64(f.Payload[4:]))
				if k.cfg.onBody != nil && !finished {
					k.cfg.onBody(k.id, f.Payload)
				}
			}
			first = false
			left -= min(left, uint64(len(f.Payload)))
			if left == 0 {
				complete()
			}
		}
	}
}

// isCleanEnd reports whether a reader ended because the run closed its connection.
func isCleanEnd(err error) bool { return err == nil || errors.Is(err, errCloseOk) }
