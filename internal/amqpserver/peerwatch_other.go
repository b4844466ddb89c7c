//go:build !linux

package amqpserver

// peerClosed cannot ask the kernel for the TCP state outside Linux: a blocked
// publisher whose client went away is then noticed when the writer fails or
// the alarm clears.
func peerClosed(fd uintptr) bool { return false }
