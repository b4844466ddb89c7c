package amqpserver

import (
	"net"
	"sync/atomic"
	"syscall"
	"time"
)

// peerWatch notices, while a connection's reader is parked (a publisher
// blocked by a resource alarm), that the client closed or reset the
// connection, without reading what it sent: that stays in the socket for the
// reader, and TCP keeps holding the client back. It waits for the socket to
// become readable (new data, FIN, RST) and asks the kernel for the
// connection's state each time, so data already waiting in the socket does
// not hide a FIN behind it.
type peerWatch struct {
	nc      net.Conn // the TCP connection (under TLS, the one it runs over)
	rd      *deadlineReader
	gone    chan struct{} // closed when the peer has closed or reset the connection
	done    chan struct{} // closed when the watch goroutine has ended
	stopped atomic.Bool
}

// watchPeer starts a peerWatch on c's socket; rd's read deadline is restored
// by stop. Only the connection's reader calls it, and it calls stop before it
// reads again. Where the socket's state cannot be asked for, gone never closes.
func watchPeer(c net.Conn, rd *deadlineReader) *peerWatch {
	if tc, ok := c.(*tlsConn); ok {
		c = tc.NetConn()
	}
	w := &peerWatch{nc: c, rd: rd, gone: make(chan struct{}), done: make(chan struct{})}
	sc, ok := c.(syscall.Conn)
	var raw syscall.RawConn
	if ok {
		raw, _ = sc.SyscallConn()
	}
	if raw == nil || c.SetReadDeadline(time.Time{}) != nil {
		close(w.done)
		return w
	}
	go func() {
		defer close(w.done)
		closed := false
		err := raw.Read(func(fd uintptr) bool {
			closed = peerClosed(fd)
			return closed // false: wait until the socket is readable again
		})
		if closed || err != nil && !w.stopped.Load() {
			close(w.gone)
		}
	}()
	return w
}

// stop ends the watch and gives the socket back to the reader.
func (w *peerWatch) stop() {
	w.stopped.Store(true)
	_ = w.nc.SetReadDeadline(time.Now()) // wakes the watch's wait
	<-w.done
	if w.rd.timeout.Load() == 0 {
		_ = w.nc.SetReadDeadline(time.Time{})
	} // else the reader sets its deadline before each read
}
