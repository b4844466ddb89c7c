package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/warren-mq/warren/internal/amqp091"
)

// awaitPoll is how often --await-messages retries.
const awaitPoll = 50 * time.Millisecond

// runAwait implements --await-messages: it polls the broker, connecting anew
// while it is down, until queue -u exists and holds at least cfg.awaitMessages
// messages, then prints how long that took. bench/run.sh times broker restarts
// with it. -z bounds the wait (default 300 s).
func runAwait(ctx context.Context, cfg *config, stdout io.Writer) error {
	u, err := parseURI(cfg.uri)
	if err != nil {
		return err
	}
	limit := cfg.runTime()
	if limit == 0 {
		limit = 300 * time.Second
	}
	start := time.Now()
	deadline := start.Add(limit)
	var last error
	var count uint32
	for {
		count, err = queueDepth(cfg, u)
		if err == nil && uint64(count) >= uint64(cfg.awaitMessages) {
			break
		}
		last = err
		if err == nil {
			last = fmt.Errorf("queue %q holds %d messages", cfg.queue, count)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("gave up after %v: %w", limit, last)
		}
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), last)
		case <-time.After(awaitPoll):
		}
	}
	secs := time.Since(start).Seconds()
	if cfg.json {
		(&reporter{out: stdout}).writeJSON(struct {
			Await awaitResult `json:"await"`
		}{awaitResult{round3(secs), count}})
	} else {
		fmt.Fprintf(stdout, "ready: %.3fs, queue %s holds %d messages\n", secs, cfg.queue, count)
	}
	return nil
}

// awaitResult is the JSON form of the await mode's result.
type awaitResult struct {
	Seconds  float64 `json:"seconds"`
	Messages uint32  `json:"messages"`
}

// queueDepth returns the message count of queue -u via a passive declare.
func queueDepth(cfg *config, u amqpURI) (uint32, error) {
	c, err := dial(u, "warren-perf await", cfg.events, 5*time.Second)
	if err != nil {
		return 0, err
	}
	defer c.closeSync(closeTimeout)
	if err := c.openChannel(1); err != nil {
		return 0, err
	}
	ok, err := expect[*amqp091.QueueDeclareOk](c, 1, &amqp091.QueueDeclare{Queue: cfg.queue, Passive: true})
	if err != nil {
		return 0, err
	}
	return ok.MessageCount, nil
}
