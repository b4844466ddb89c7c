package amqpserver

import (
	"encoding/binary"
	"syscall"
)

// tcpEstablished is TCP_ESTABLISHED from the kernel's tcp_states.h.
const tcpEstablished = 1

// peerClosed reports whether the TCP connection on fd is past ESTABLISHED:
// the peer sent FIN (CLOSE_WAIT) or RST (CLOSE). The state is the first byte
// of struct tcp_info; the kernel copies as much of it as asked for, here the
// four bytes of an int.
func peerClosed(fd uintptr) bool {
	v, err := syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_INFO)
	if err != nil {
		return true // not a socket the kernel can describe any more
	}
	return binary.NativeEndian.AppendUint32(nil, uint32(v))[0] != tcpEstablished
}
