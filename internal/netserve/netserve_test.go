package netserve

import (
	"bytes"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"
)

// flakyListener fails with err n times, then returns conn.
type flakyListener struct {
	net.Listener
	n    int
	err  error
	conn net.Conn
}

func (l *flakyListener) Accept() (net.Conn, error) {
	if l.n > 0 {
		l.n--
		return nil, l.err
	}
	return l.conn, nil
}

func TestNetserveAcceptRetriesTransientFailures(t *testing.T) {
	var logged bytes.Buffer
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	a := &Acceptor{Closed: func() bool { return false }, ErrClosed: errors.New("closed"),
		Log: slog.New(slog.NewTextHandler(&logged, nil)), Msg: "accept failed"}
	nc, err := a.Accept(&flakyListener{n: 3, err: errors.New("too many open files"), conn: c1})
	if err != nil || nc != c1 {
		t.Fatalf("Accept = %v, %v; want the connection after the failures", nc, err)
	}
	if got := strings.Count(logged.String(), "accept failed"); got != 1 {
		t.Fatalf("logged %d warnings for 3 failures in a row, want 1:\n%s", got, logged.String())
	}
}

func TestNetserveAcceptStopsWhenClosed(t *testing.T) {
	errClosed := errors.New("server closed")
	a := &Acceptor{Closed: func() bool { return true }, ErrClosed: errClosed, Log: slog.Default(), Msg: "x"}
	if _, err := a.Accept(&flakyListener{n: 1, err: errors.New("boom")}); err != errClosed {
		t.Fatalf("Accept on a closed server = %v, want %v", err, errClosed)
	}
	a.Closed = func() bool { return false }
	if _, err := a.Accept(&flakyListener{n: 1, err: net.ErrClosed}); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept on a closed listener = %v, want net.ErrClosed", err)
	}
}

func TestNetserveRateLog(t *testing.T) {
	var l RateLog
	if n, ok := l.Allow(); !ok || n != 0 {
		t.Fatalf("first Allow = %d, %v; want 0, true", n, ok)
	}
	for range 3 {
		if _, ok := l.Allow(); ok {
			t.Fatal("Allow within the interval logged again")
		}
	}
	l.last = l.last.Add(-LogInterval)
	if n, ok := l.Allow(); !ok || n != 3 {
		t.Fatalf("Allow after the interval = %d, %v; want 3 suppressed, true", n, ok)
	}
}
