package wire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"syscall"
	"testing"
	"time"

	"github.com/warren-mq/warren/internal/testbroker"
)

// waitTimeout bounds every wait for a reaction the broker should send
// promptly; it is a failure deadline, never a synchronisation device.
const waitTimeout = 10 * time.Second

// Frame types and the frame-end octet from the 0-9-1 specification.
const (
	frameMethod    = 1
	frameHeader    = 2
	frameBody      = 3
	frameHeartbeat = 8
	frameEnd       = 0xCE
)

// protocolHeader is what a 0-9-1 client sends first, and what the server
// answers with when it does not like the client's header.
const protocolHeader = "AMQP\x00\x00\x09\x01"

// frame is one decoded frame.
type frame struct {
	typ     byte
	channel uint16
	payload []byte
}

// rawConn is a bare TCP connection to the broker with just enough AMQP to
// build and parse frames by hand.
type rawConn struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
	// user and pass are the broker URL's credentials.
	user, pass string
	// frameMax is what this client sent in tune-ok, for splitting bodies.
	frameMax uint32
}

// dialRaw opens a TCP connection to the broker under test, without sending
// anything.
func dialRaw(t *testing.T) *rawConn {
	t.Helper()
	u, err := url.Parse(testbroker.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "5672")
	}
	nc, err := net.DialTimeout("tcp", host, waitTimeout)
	if err != nil {
		t.Fatalf("dial %s: %v", host, err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	pass, _ := u.User.Password()
	return &rawConn{t: t, conn: nc, r: bufio.NewReader(nc), user: u.User.Username(), pass: pass}
}

// write sends raw bytes.
func (c *rawConn) write(b []byte) {
	c.t.Helper()
	_ = c.conn.SetWriteDeadline(time.Now().Add(waitTimeout))
	if _, err := c.conn.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// encodeFrame builds a frame with the correct frame-end octet.
func encodeFrame(typ byte, channel uint16, payload []byte) []byte {
	b := make([]byte, 0, 8+len(payload))
	b = append(b, typ)
	b = binary.BigEndian.AppendUint16(b, channel)
	b = binary.BigEndian.AppendUint32(b, uint32(len(payload)))
	b = append(b, payload...)
	return append(b, frameEnd)
}

// writeFrame sends one well-formed frame.
func (c *rawConn) writeFrame(typ byte, channel uint16, payload []byte) {
	c.t.Helper()
	c.write(encodeFrame(typ, channel, payload))
}

// writeMethod sends a method frame.
func (c *rawConn) writeMethod(channel uint16, m []byte) {
	c.t.Helper()
	c.writeFrame(frameMethod, channel, m)
}

// readFrame reads one frame, failing on a bad frame end; err is the read
// error (EOF, reset, timeout) so callers can expect a closed socket.
func (c *rawConn) readFrame(timeout time.Duration) (frame, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(timeout))
	var hdr [7]byte
	if _, err := io.ReadFull(c.r, hdr[:]); err != nil {
		return frame{}, err
	}
	f := frame{typ: hdr[0], channel: binary.BigEndian.Uint16(hdr[1:3])}
	size := binary.BigEndian.Uint32(hdr[3:7])
	if size > 16<<20 {
		return frame{}, fmt.Errorf("server frame of %d bytes (header % x)", size, hdr)
	}
	buf := make([]byte, size+1)
	if _, err := io.ReadFull(c.r, buf); err != nil {
		return frame{}, err
	}
	if buf[size] != frameEnd {
		return frame{}, fmt.Errorf("server frame end 0x%02x", buf[size])
	}
	f.payload = buf[:size]
	return f, nil
}

// nextFrame reads the next frame other than a heartbeat.
func (c *rawConn) nextFrame() frame {
	c.t.Helper()
	for {
		f, err := c.readFrame(waitTimeout)
		if err != nil {
			c.t.Fatalf("read frame: %v", err)
		}
		if f.typ != frameHeartbeat {
			return f
		}
	}
}

// method is a decoded method frame.
type method struct {
	channel         uint16
	class, methodID uint16
	args            *decoder
}

func (m method) String() string {
	return fmt.Sprintf("method %d.%d on channel %d", m.class, m.methodID, m.channel)
}

// nextMethod reads the next frame and requires it to be a method.
func (c *rawConn) nextMethod() method {
	c.t.Helper()
	f := c.nextFrame()
	if f.typ != frameMethod || len(f.payload) < 4 {
		c.t.Fatalf("got frame type %d (%d bytes) on channel %d, want a method", f.typ, len(f.payload), f.channel)
	}
	return method{
		channel:  f.channel,
		class:    binary.BigEndian.Uint16(f.payload),
		methodID: binary.BigEndian.Uint16(f.payload[2:]),
		args:     &decoder{b: f.payload[4:]},
	}
}

// expectMethod reads the next method and requires class.method on channel.
func (c *rawConn) expectMethod(channel, class, methodID uint16) *decoder {
	c.t.Helper()
	m := c.nextMethod()
	if m.channel != channel || m.class != class || m.methodID != methodID {
		if m.class == 10 && m.methodID == 50 || m.class == 20 && m.methodID == 40 {
			c.t.Fatalf("got close %d %q (for %d.%d) on channel %d, want %d.%d on channel %d",
				m.args.short(), m.args.shortstr(), m.args.short(), m.args.short(), m.channel, class, methodID, channel)
		}
		c.t.Fatalf("got %v, want %d.%d on channel %d", m, class, methodID, channel)
	}
	return m.args
}

// closeReason is the content of a connection.close or channel.close.
type closeReason struct {
	code            uint16
	text            string
	class, methodID uint16
}

func (r closeReason) String() string {
	return fmt.Sprintf("%d %q (method %d.%d)", r.code, r.text, r.class, r.methodID)
}

// expectConnectionClose reads until connection.close, checks it, answers
// close-ok and checks that the server then closes the socket.
func (c *rawConn) expectConnectionClose(want closeReason) {
	c.t.Helper()
	args := c.expectMethod(0, 10, 50)
	got := closeReason{args.short(), args.shortstr(), args.short(), args.short()}
	if got != want {
		c.t.Fatalf("connection.close %v, want %v", got, want)
	}
	c.writeMethod(0, methodBytes(10, 51))
	c.expectEOF()
}

// expectEOF requires the server to close the socket with nothing more sent
// (heartbeats aside) within the timeout.
func (c *rawConn) expectEOF() {
	c.t.Helper()
	c.expectEOFWithin(waitTimeout)
}

// expectEOFWithin is expectEOF with an explicit bound.
func (c *rawConn) expectEOFWithin(timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		f, err := c.readFrame(time.Until(deadline))
		if err == nil {
			if f.typ == frameHeartbeat {
				continue
			}
			c.t.Fatalf("got frame type %d on channel %d (% x), want the socket closed", f.typ, f.channel, f.payload)
		}
		if isClosed(err) {
			return
		}
		c.t.Fatalf("want the socket closed, got %v", err)
	}
}

// readAll reads raw bytes until the server closes the socket and returns them.
func (c *rawConn) readAll(timeout time.Duration) []byte {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(timeout))
	b, err := io.ReadAll(c.r)
	if err != nil && !isClosed(err) {
		c.t.Fatalf("after %q: %v, want the socket closed", b, err)
	}
	return b
}

// isClosed reports whether err means the peer closed the connection.
func isClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// handshakeOpts adjusts the handshake.
type handshakeOpts struct {
	channelMax uint16
	frameMax   uint32
	heartbeat  uint16
}

// defaultOpts are the values a typical client settles on, with heartbeats
// off so they do not get in the way of tests.
var defaultOpts = handshakeOpts{channelMax: 2047, frameMax: 131072, heartbeat: 0}

// serverTune is what the server proposed in connection.tune.
type serverTune struct {
	channelMax uint16
	frameMax   uint32
	heartbeat  uint16
}

// start reads connection.start after sending the protocol header.
func (c *rawConn) start() *decoder {
	c.t.Helper()
	c.write([]byte(protocolHeader))
	return c.expectMethod(0, 10, 10)
}

// login sends the protocol header and a PLAIN start-ok advertising
// authentication_failure_close, and returns the server's tune.
func (c *rawConn) login(user, pass string) serverTune {
	c.t.Helper()
	c.start()
	c.writeMethod(0, startOk("PLAIN", "\x00"+user+"\x00"+pass, true))
	args := c.expectMethod(0, 10, 30)
	return serverTune{args.short(), args.long(), args.short()}
}

// handshake runs the whole connection handshake to open-ok on vhost "/".
func (c *rawConn) handshake(o handshakeOpts) serverTune {
	c.t.Helper()
	tune := c.login(c.user, c.pass)
	c.writeMethod(0, tuneOk(o.channelMax, o.frameMax, o.heartbeat))
	c.frameMax = o.frameMax
	c.writeMethod(0, connectionOpen("/"))
	c.expectMethod(0, 10, 41)
	return tune
}

// openChannel opens channel n and waits for open-ok.
func (c *rawConn) openChannel(n uint16) {
	c.t.Helper()
	c.writeMethod(n, methodBytes(20, 10, shortstr("")))
	c.expectMethod(n, 20, 11)
}

// ready returns a connection past the handshake with channel 1 open.
func ready(t *testing.T) *rawConn {
	t.Helper()
	c := dialRaw(t)
	c.handshake(defaultOpts)
	c.openChannel(1)
	return c
}

// closeCleanly runs the client side of connection.close. The server answers
// close-ok and leaves closing the socket to the client, as the initiator.
func (c *rawConn) closeCleanly() {
	c.t.Helper()
	c.writeMethod(0, methodBytes(10, 50, u16(200), shortstr("bye"), u16(0), u16(0)))
	c.expectMethod(0, 10, 51)
	_ = c.conn.Close()
}

// declareTempQueue declares a server-named exclusive queue on channel ch and
// returns its name; it goes away with the connection.
func (c *rawConn) declareTempQueue(ch uint16) string {
	c.t.Helper()
	c.writeMethod(ch, queueDeclare("", declareExclusive, table()))
	return c.expectMethod(ch, 50, 11).shortstr()
}

// publish sends basic.publish, a content header with an empty property list
// and the body split into frames that fit the negotiated frame_max.
func (c *rawConn) publish(ch uint16, exchange, key string, body []byte) {
	c.t.Helper()
	c.publishWith(ch, exchange, key, 0, nil, body)
}

// publishWith is publish with raw property flags and property list.
func (c *rawConn) publishWith(ch uint16, exchange, key string, propFlags uint16, props, body []byte) {
	c.t.Helper()
	c.writeMethod(ch, basicPublish(exchange, key, 0))
	c.writeFrame(frameHeader, ch, contentHeader(60, uint64(len(body)), propFlags, props))
	max := int(c.frameMax) - 8
	for len(body) > 0 {
		n := min(len(body), max)
		c.writeFrame(frameBody, ch, body[:n])
		body = body[n:]
	}
}
