package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/warren-mq/warren/internal/amqp091"
)

// closeTimeout bounds waiting for connection.close-ok at the end of a run.
const closeTimeout = 3 * time.Second

// result is what a finished run measured; tests check it.
type result struct {
	sent, confirmed, nacked, returned, received int64
	elapsed                                     time.Duration
}

// execute runs one load test: declare, connect consumers, connect producers,
// then publish and consume until the time limit, the message counts or ctx
// ends it, reporting every second. A broker or connection error ends the run
// early and is returned.
func execute(ctx context.Context, cfg *config, rep *reporter) (result, error) {
	u, err := parseURI(cfg.uri)
	if err != nil {
		return result{}, err
	}
	names := cfg.queueNames()
	if !cfg.predeclared {
		if err := declare(cfg, u, names); err != nil {
			return result{}, err
		}
	}
	routingKey := func(i int) string {
		if cfg.fanout() {
			return ""
		}
		return names[i%len(names)]
	}
	var consumers []*consumer
	var producers []*producer
	closeAll := func() {
		for _, k := range consumers {
			k.c.nc.Close()
		}
		for _, p := range producers {
			p.c.nc.Close()
		}
	}
	for i := range cfg.consumers {
		k, err := newConsumer(i+1, cfg, u, routingKey(i))
		if err != nil {
			closeAll()
			return result{}, err
		}
		consumers = append(consumers, k)
	}
	for i := range cfg.producers {
		p, err := newProducer(i+1, cfg, u, routingKey(i))
		if err != nil {
			closeAll()
			return result{}, err
		}
		producers = append(producers, p)
	}

	stop := make(chan struct{})
	fatal := make(chan error, 1)
	fail := func(err error) {
		select {
		case fatal <- err:
		default:
		}
	}
	var readers, writers sync.WaitGroup
	producersDone := make(chan struct{})
	for _, k := range consumers {
		readers.Go(func() {
			if err := k.run(); !isCleanEnd(err) && !stopped(stop) {
				fail(fmt.Errorf("consumer %d: %w", k.id, err))
			}
		})
	}
	rep.begin(producers, consumers)
	for _, p := range producers {
		readers.Go(func() {
			if err := p.read(); !isCleanEnd(err) && !stopped(stop) {
				fail(fmt.Errorf("producer %d: %w", p.id, err))
			}
		})
		writers.Go(func() {
			if err := p.run(stop); err != nil {
				fail(err)
			}
		})
	}
	go func() {
		writers.Wait()
		close(producersDone)
	}()

	// The run is over when every producer and consumer with a message count
	// has reached it, provided nothing unlimited is running; or at -z.
	finished := make(chan struct{})
	go func() {
		if cfg.producers > 0 {
			if cfg.pmessages == 0 {
				return
			}
			select {
			case <-producersDone:
			case <-stop:
				return
			}
		}
		if cfg.consumers > 0 && cfg.cmessages == 0 {
			return
		}
		for _, k := range consumers {
			select {
			case <-k.done:
			case <-stop:
				return
			}
		}
		close(finished)
	}()
	var deadline <-chan time.Time
	if d := cfg.runTime(); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		deadline = t.C
	}
	ticker := time.NewTicker(time.Second)
	defer ticker.Stop()
	var runErr error
loop:
	for {
		select {
		case now := <-ticker.C:
			rep.tick(now)
		case <-deadline:
			break loop
		case <-finished:
			break loop
		case <-ctx.Done():
			break loop
		case runErr = <-fatal:
			break loop
		}
	}
	end := time.Now()
	close(stop)
	// A producer may be blocked in a write the broker is not reading (flow
	// control); an expired deadline ends that write.
	for _, p := range producers {
		_ = p.c.nc.SetWriteDeadline(time.Now())
	}
	writers.Wait()
	res := rep.finish(end)

	for _, k := range consumers {
		k.c.closeAsync()
	}
	for _, p := range producers {
		if p.cut {
			p.c.nc.Close() // mid-frame: the broker could not parse a close
			continue
		}
		_ = p.c.nc.SetWriteDeadline(time.Time{})
		p.c.closeAsync()
	}
	waitTimeout(&readers, closeTimeout)
	closeAll()
	if runErr == nil && cfg.cleanup {
		runErr = cleanup(cfg, u, names)
	}
	return res, runErr
}

func stopped(stop <-chan struct{}) bool {
	select {
	case <-stop:
		return true
	default:
		return false
	}
}

func waitTimeout(wg *sync.WaitGroup, d time.Duration) {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(d):
	}
}

// declare creates the exchange and named queues, durable when messages are
// persistent, and binds each queue with its own name as routing key.
func declare(cfg *config, u amqpURI, names []string) error {
	c, err := dial(u, "warren-perf setup", cfg.events, 10*time.Second)
	if err != nil {
		return err
	}
	defer c.closeSync(closeTimeout)
	if err := c.openChannel(1); err != nil {
		return err
	}
	ex := cfg.exchange
	if ex != "" && !strings.HasPrefix(ex, "amq.") {
		if _, err := expect[*amqp091.ExchangeDeclareOk](c, 1, &amqp091.ExchangeDeclare{Exchange: ex, Type: cfg.exchangeType, Durable: cfg.persistent}); err != nil {
			return err
		}
	}
	for _, q := range names {
		if _, err := expect[*amqp091.QueueDeclareOk](c, 1, &amqp091.QueueDeclare{Queue: q, Durable: cfg.persistent, AutoDelete: cfg.autoDelete}); err != nil {
			return err
		}
		if ex != "" {
			if _, err := expect[*amqp091.QueueBindOk](c, 1, &amqp091.QueueBind{Queue: q, Exchange: ex, RoutingKey: q}); err != nil {
				return err
			}
		}
	}
	return nil
}

// cleanup deletes the named queues and a non-predefined exchange after a run
// (--cleanup), whoever declared them; missing ones are skipped.
func cleanup(cfg *config, u amqpURI, names []string) error {
	c, err := dial(u, "warren-perf cleanup", cfg.events, 10*time.Second)
	if err != nil {
		return err
	}
	defer c.closeSync(closeTimeout)
	if err := c.openChannel(1); err != nil {
		return err
	}
	// run tolerates 404 NOT_FOUND, which closes the channel, and reopens it.
	run := func(m amqp091.Method) error {
		_, err := c.call(1, m)
		var bc *brokerClosed
		if errors.As(err, &bc) && bc.channel && bc.err.Code == amqp091.NotFound {
			return c.openChannel(1)
		}
		return err
	}
	for _, q := range names {
		if err := run(&amqp091.QueueDelete{Queue: q}); err != nil {
			return err
		}
	}
	if ex := cfg.exchange; ex != "" && !strings.HasPrefix(ex, "amq.") {
		return run(&amqp091.ExchangeDelete{Exchange: ex})
	}
	return nil
}
