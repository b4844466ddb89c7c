package main

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"
)

// idleDialers is how many connections idle mode opens at once.
const idleDialers = 8

// idleResult is the line idle mode prints once its connections are open.
type idleResult struct {
	Requested   int    `json:"requested"`
	Connections int    `json:"connections"`
	Channels    int    `json:"channels"`
	Error       string `json:"error,omitempty"`
}

// runIdle opens --idle-connections connections with --channels-per-connection
// channels each, prints one "idle:" line, and holds them without sending
// anything until -z seconds pass or ctx ends: the broker's memory per idle
// connection and channel is measured from outside meanwhile. It stops opening
// at the first failure (e.g. the broker's file descriptor limit), still holds
// what it opened, and returns that failure at the end.
func runIdle(ctx context.Context, cfg *config, stdout io.Writer) error {
	u, err := parseURI(cfg.uri)
	if err != nil {
		return err
	}
	var (
		mu       sync.Mutex
		conns    []*conn
		firstErr error
		next     int
	)
	take := func() (int, bool) {
		mu.Lock()
		defer mu.Unlock()
		if firstErr != nil || next >= cfg.idleConns || ctx.Err() != nil {
			return 0, false
		}
		next++
		return next, true
	}
	var wg sync.WaitGroup
	for range idleDialers {
		wg.Go(func() {
			for {
				i, ok := take()
				if !ok {
					return
				}
				c, err := openIdle(cfg, u, i)
				mu.Lock()
				if err != nil {
					if firstErr == nil {
						firstErr = fmt.Errorf("connection %d: %w", i, err)
					}
				} else {
					conns = append(conns, c)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	res := idleResult{Requested: cfg.idleConns, Connections: len(conns), Channels: len(conns) * cfg.idleChannels}
	if firstErr != nil {
		res.Error = firstErr.Error()
	}
	if cfg.json {
		(&reporter{out: stdout}).writeJSON(struct {
			Idle idleResult `json:"idle"`
		}{res})
	} else {
		fmt.Fprintf(stdout, "idle: %d connections, %d channels open (%d requested)\n", res.Connections, res.Channels, res.Requested)
	}
	if d := cfg.runTime(); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	} else {
		<-ctx.Done()
	}
	var cwg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for _, c := range conns {
		sem <- struct{}{}
		cwg.Go(func() {
			defer func() { <-sem }()
			c.closeSync(closeTimeout)
		})
	}
	cwg.Wait()
	return firstErr
}

func openIdle(cfg *config, u amqpURI, i int) (*conn, error) {
	c, err := dial(u, fmt.Sprintf("warren-perf idle %d", i), cfg.events, 10*time.Second)
	if err != nil {
		return nil, err
	}
	_ = c.nc.SetDeadline(time.Now().Add(10 * time.Second))
	for ch := 1; ch <= cfg.idleChannels; ch++ {
		if err := c.openChannel(uint16(ch)); err != nil {
			c.nc.Close()
			return nil, err
		}
	}
	_ = c.nc.SetDeadline(time.Time{})
	return c, nil
}
