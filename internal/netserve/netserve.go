// Package netserve holds what Warren's protocol front ends share to accept
// connections: an accept that rides out transient failures, and rate-limited
// logging of repeated operational warnings. It imports no Warren package, so
// the front ends (which never import each other) can both use it.
package netserve

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"
)

// LogInterval is how often a repeated operational warning is logged at most.
const LogInterval = 5 * time.Second

// RateLog rate-limits one kind of log line: a flood of failures logs once
// per LogInterval with the count of those not logged. The zero value is ready.
type RateLog struct {
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

// Allow reports whether to log now, and how many events were suppressed since
// the last line.
func (l *RateLog) Allow() (int, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now := time.Now(); l.last.IsZero() || now.Sub(l.last) >= LogInterval {
		n := l.suppressed
		l.last, l.suppressed = now, 0
		return n, true
	}
	l.suppressed++
	return 0, false
}

// Acceptor accepts a server's connections.
type Acceptor struct {
	// Closed reports whether the server is shutting down; a failure then
	// returns ErrClosed.
	Closed    func() bool
	ErrClosed error
	Log       *slog.Logger
	// Msg is the warning logged when accepting fails.
	Msg      string
	failures RateLog
}

// Accept returns l's next connection. Once the server is closed it returns
// a.ErrClosed, and a closed listener's error as it is. Anything else (EMFILE,
// ENFILE, ECONNABORTED, ENOBUFS, ENOMEM...) passes: it backs off from 5 ms to
// 1 s, so a process out of descriptors does not spin and keeps serving the
// connections it has, and tries again.
func (a *Acceptor) Accept(l net.Listener) (net.Conn, error) {
	var delay time.Duration
	for {
		nc, err := l.Accept()
		if err == nil {
			return nc, nil
		}
		if a.Closed() {
			return nil, a.ErrClosed
		}
		if errors.Is(err, net.ErrClosed) {
			return nil, err
		}
		delay = min(max(2*delay, 5*time.Millisecond), time.Second)
		if n, ok := a.failures.Allow(); ok {
			a.Log.Warn(a.Msg, "err", err, "backoff", delay, "failures_since_last_log", n)
		}
		time.Sleep(delay)
	}
}
