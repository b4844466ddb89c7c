package kafkaserver

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/warren-mq/warren/internal/broker"
)

// conn is one client connection. The fields without a comment belong to the
// reader goroutine (handlers run on it); the others say who may touch them.
type conn struct {
	srv  *Server
	nc   net.Conn
	name string // "peer -> local", as the management API names connections
	log  *slog.Logger
	br   *bufio.Reader

	loopback bool
	// user is the authenticated user (nil before); also read by Info and
	// closeWhere, hence atomic.
	user   atomic.Pointer[broker.User]
	vhost  *broker.VHost
	access *broker.Access
	sasl   saslState
	// served is set once a request other than ApiVersions or SASL was
	// answered: SASL can no longer start.
	served       bool
	lastClientID string
	// The client's names, for Info (under infoMu): the header's client id
	// and what ApiVersions v3+ named the client library.
	infoMu                   sync.Mutex
	clientID, clientSoftware string
	// mechanism is how the user authenticated ("PLAIN", "SCRAM-SHA-256",
	// "ANONYMOUS"), under infoMu.
	mechanism string

	slots     chan *slot    // answers in request order, to the writer
	done      chan struct{} // closed once the connection ends
	closeOnce sync.Once
	reason    atomic.Pointer[string] // why it was closed, first reason wins

	connectedAt time.Time
	unregister  func()
	recvBytes   atomic.Uint64
	sendBytes   atomic.Uint64
	recvReqs    atomic.Uint64
	sendResps   atomic.Uint64
}

// slot is one request's place in the response order. A handler that answers
// later fills it from another goroutine and closes ready.
type slot struct {
	corr    int32
	key     int16
	version int16
	ready   chan struct{} // nil when filled before it was queued

	// mu orders a late answer with the connection's end: an answer that
	// arrives for an abandoned slot is released at once (abandon releases
	// one that came before).
	mu        sync.Mutex
	abandoned bool

	resp kmsg.Response
	// frame, if set, writes the whole response frame itself (Fetch, for
	// sendfile) instead of resp.
	frame func(w *bufio.Writer, corr int32) error
	// none: no response at all (acks=0 produce).
	none bool
	// err, if set, closes the connection instead of answering (after
	// writing resp, if there is one).
	err error
}

// abandon gives up a slot that will not be written (the connection ended)
// and releases what its answer holds.
func (s *slot) abandon() {
	s.mu.Lock()
	s.abandoned = true
	resp := s.resp
	s.resp = nil
	s.mu.Unlock()
	releaseResponse(resp)
}

// releaser is an answer that holds resources until written (a fetch's
// segment chunks).
type releaser interface{ release() }

func releaseResponse(resp kmsg.Response) {
	if r, ok := resp.(releaser); ok {
		r.release()
	}
}

// abandonQueued abandons the slots the writer left (it has ended).
func (c *conn) abandonQueued() {
	for {
		select {
		case s, ok := <-c.slots:
			if !ok {
				return
			}
			s.abandon()
		default:
			return
		}
	}
}

// errCloseAfter, returned by a handler with a response, sends the response
// and then closes the connection (a failed SASL authentication).
var errCloseAfter = errors.New("kafkaserver: close after response")

func newConn(s *Server, nc net.Conn) *conn {
	c := &conn{
		srv: s, nc: nc,
		name:        nc.RemoteAddr().String() + " -> " + nc.LocalAddr().String(),
		br:          bufio.NewReaderSize(nc, 64<<10),
		slots:       make(chan *slot, s.cfg.MaxInFlight),
		done:        make(chan struct{}),
		connectedAt: time.Now(),
	}
	if tcp, ok := nc.RemoteAddr().(*net.TCPAddr); ok {
		c.loopback = tcp.IP.IsLoopback()
	}
	c.log = s.log.With("connection", c.name, "protocol", "kafka")
	return c
}

// Close ends the connection; reason is logged. It does not wait.
func (c *conn) Close(reason string) {
	c.closeOnce.Do(func() {
		c.reason.Store(&reason)
		close(c.done)
		c.nc.Close()
	})
}

func (c *conn) userName() string {
	if u := c.user.Load(); u != nil {
		return u.Name
	}
	return ""
}

// serve runs the reader; the writer runs beside it until both end.
func (c *conn) serve() {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.writeLoop()
	}()
	defer func() {
		if p := recover(); p != nil {
			c.srv.panics.Add(1)
			c.log.Error("panic handling a Kafka request, closing the connection", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			c.Close("internal error")
		}
		c.Close("client closed the connection")
		wg.Wait()
		c.abandonQueued()
		if c.unregister != nil {
			c.unregister()
		}
		lvl := slog.LevelDebug
		if c.user.Load() != nil {
			lvl = slog.LevelInfo
		}
		c.log.Log(context.Background(), lvl, "closing Kafka connection", "reason", *c.reason.Load())
	}()
	if tc, ok := c.nc.(*tls.Conn); ok {
		// One deadline for the TLS handshake, however the client trickles bytes.
		_ = tc.SetDeadline(time.Now().Add(tlsHandshakeTimeout))
		if err := tc.Handshake(); err != nil {
			c.Close("TLS handshake failed: " + err.Error())
			return
		}
		_ = tc.SetDeadline(time.Time{})
	}
	c.anonymous()
	for {
		err := c.readOne()
		if err == nil {
			continue
		}
		if errors.Is(err, errDrain) {
			// The last answer closes the connection once written: let the
			// writer send what is queued first.
			close(c.slots)
			wg.Wait()
		}
		c.Close(err.Error())
		return
	}
}

// tlsHandshakeTimeout bounds a TLS client's handshake.
const tlsHandshakeTimeout = 10 * time.Second

// errDrain stops the reader after a handler asked to close the connection.
var errDrain = errors.New("closed after the response")

// requestLimit is the largest request the connection accepts now.
func (c *conn) requestLimit() int {
	if c.user.Load() == nil {
		return c.srv.cfg.MaxUnauthRequestSize
	}
	return c.srv.cfg.MaxRequestSize
}

// errTooLarge closes a connection whose request exceeds the limit; Kafka
// closes it too (InvalidReceiveException), without reading the body.
type errTooLarge struct{ size, limit int }

func (e errTooLarge) Error() string {
	return fmt.Sprintf("request of %d bytes exceeds the limit of %d", e.size, e.limit)
}

// readFrame reads one size-prefixed request. The buffer grows as bytes
// arrive, so a client that announces a large request and sends nothing
// holds little memory.
func (c *conn) readFrame() ([]byte, error) {
	_ = c.nc.SetReadDeadline(time.Now().Add(c.srv.cfg.IdleTimeout))
	var hdr [4]byte
	if _, err := io.ReadFull(c.br, hdr[:]); err != nil {
		return nil, err
	}
	size := int(int32(binary.BigEndian.Uint32(hdr[:])))
	if limit := c.requestLimit(); size < 0 || size > limit {
		c.log.Warn("Kafka request too large, closing the connection", "size", size, "limit", limit, "authenticated", c.user.Load() != nil)
		return nil, errTooLarge{size, limit}
	}
	body := make([]byte, 0, min(size, 1<<20))
	for len(body) < size {
		if len(body) == cap(body) {
			body = append(body, make([]byte, min(cap(body), size-len(body)))...)[:len(body)]
		}
		n, err := c.br.Read(body[len(body):min(cap(body), size)])
		body = body[:len(body)+n]
		if err != nil && len(body) < size {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	c.recvBytes.Add(uint64(4 + size))
	c.recvReqs.Add(1)
	return body, nil
}

// reqHeader is a request header (v1, or v2 with tagged fields).
type reqHeader struct {
	key, version int16
	corr         int32
	clientID     string
}

var errTruncated = errors.New("truncated request header")

// parseHeader reads the fixed part of a request header; the tagged fields of
// header v2 are skipped by skipTags once the version says they are there.
func parseHeader(b []byte) (reqHeader, []byte, error) {
	var h reqHeader
	if len(b) < 10 {
		return h, nil, errTruncated
	}
	h.key = int16(binary.BigEndian.Uint16(b))
	h.version = int16(binary.BigEndian.Uint16(b[2:]))
	h.corr = int32(binary.BigEndian.Uint32(b[4:]))
	n := int(int16(binary.BigEndian.Uint16(b[8:])))
	b = b[10:]
	if n > 0 {
		if n > len(b) {
			return h, nil, errTruncated
		}
		h.clientID, b = string(b[:n]), b[n:]
	}
	return h, b, nil
}

// skipTags skips a tagged field section.
func skipTags(b []byte) ([]byte, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 {
		return nil, errTruncated
	}
	b = b[k:]
	for ; n > 0; n-- {
		if _, k = binary.Uvarint(b); k <= 0 {
			return nil, errTruncated
		}
		b = b[k:]
		size, k := binary.Uvarint(b)
		if k <= 0 || size > uint64(len(b)-k) {
			return nil, errTruncated
		}
		b = b[k+int(size):]
	}
	return b, nil
}

// decodeRequest turns a request frame into its header and kmsg request.
// A request with an API key or version Warren does not serve comes back with
// a nil request and errUnsupported (the header is valid: ApiVersions answers
// it); a malformed one with another error.
func decodeRequest(body []byte) (reqHeader, kmsg.Request, error) {
	h, rest, err := parseHeader(body)
	if err != nil {
		return h, nil, err
	}
	a := lookupAPI(h.key)
	if a == nil {
		return h, nil, errUnknownKey
	}
	if h.version < a.min || h.version > a.max {
		return h, nil, errUnsupported
	}
	req := kmsg.RequestForKey(h.key)
	req.SetVersion(h.version)
	if req.IsFlexible() {
		if rest, err = skipTags(rest); err != nil {
			return h, nil, err
		}
	}
	if err := req.ReadFrom(rest); err != nil {
		return h, nil, fmt.Errorf("malformed %s v%d request: %w", kmsg.NameForKey(h.key), h.version, err)
	}
	return h, req, nil
}

var (
	errUnknownKey  = errors.New("unknown API key")
	errUnsupported = errors.New("unsupported API version")
)

// readOne reads, decodes and dispatches one request. An error ends the
// connection.
func (c *conn) readOne() error {
	body, err := c.readFrame()
	if err != nil {
		return err
	}
	if c.sasl.raw && !c.sasl.done {
		return c.rawSaslToken(body)
	}
	h, req, err := decodeRequest(body)
	switch {
	case errors.Is(err, errUnsupported) && h.key == int16(kmsg.ApiVersions):
		// Kafka answers in v0 with the versions it has, so the client can
		// pick one (KIP-511).
		return c.queue(&slot{corr: h.corr, key: h.key, version: 0, resp: c.apiVersionsResponse(0, kerr.UnsupportedVersion.Code)})
	case err != nil:
		c.log.Warn("bad Kafka request, closing the connection", "api_key", h.key, "api", kmsg.NameForKey(h.key), "version", h.version, "err", err)
		return err
	}
	if h.clientID != c.lastClientID {
		c.lastClientID = h.clientID
		c.infoMu.Lock()
		c.clientID = h.clientID
		c.infoMu.Unlock()
	}
	a := lookupAPI(h.key)
	if c.user.Load() == nil && !a.preAuth {
		// Kafka's SASL listener: anything but the handshake before
		// authentication is an illegal SASL state and closes the connection.
		c.log.Warn("Kafka request before authentication, closing the connection", "api", kmsg.NameForKey(h.key))
		return fmt.Errorf("%s request before SASL authentication", kmsg.NameForKey(h.key))
	}
	if !a.preAuth {
		c.served = true
	}
	s := &slot{corr: h.corr, key: h.key, version: h.version}
	if a.async != nil {
		s.ready = make(chan struct{})
		if err := c.queue(s); err != nil {
			return err
		}
		c.callAsync(a, req, s)
		return nil
	}
	resp, err := a.sync(c, req)
	c.fill(s, resp, err)
	if err := c.queue(s); err != nil {
		return err
	}
	if s.err != nil {
		return fmt.Errorf("%w: %w", errDrain, s.err)
	}
	return nil
}

// callAsync runs an answer-later handler; it must call done exactly once.
func (c *conn) callAsync(a *api, req kmsg.Request, s *slot) {
	var once sync.Once
	a.async(c, req, func(resp kmsg.Response, err error) {
		once.Do(func() {
			s.mu.Lock()
			if s.abandoned {
				s.mu.Unlock()
				releaseResponse(resp)
				return
			}
			c.fill(s, resp, err)
			s.mu.Unlock()
			close(s.ready)
		})
	})
}

func (c *conn) fill(s *slot, resp kmsg.Response, err error) {
	s.resp, s.err = resp, err
	if resp == nil && err == nil {
		s.none = true
	}
	if resp != nil {
		resp.SetVersion(s.version)
	}
}

// queue hands a slot to the writer, waiting while MaxInFlight answers are
// pending.
func (c *conn) queue(s *slot) error {
	select {
	case c.slots <- s:
		return nil
	case <-c.done:
		return errors.New("connection closed")
	}
}

// writeLoop writes the answers in request order, coalescing those that are
// ready into one flush.
func (c *conn) writeLoop() {
	w := bufio.NewWriterSize(&countWriter{c: c}, 64<<10)
	var buf []byte
	for {
		var s *slot
		var ok bool
		select {
		case s, ok = <-c.slots:
			if !ok {
				return
			}
		case <-c.done:
			return
		}
		if s.ready != nil {
			select {
			case <-s.ready:
			case <-c.done:
				s.abandon()
				return
			}
		}
		_ = c.nc.SetWriteDeadline(time.Now().Add(c.srv.cfg.WriteTimeout))
		var err error
		switch {
		case s.frame != nil:
			err = s.frame(w, s.corr)
		case s.resp != nil:
			if fa, ok := s.resp.(*fetchAnswer); ok {
				err = fa.write(c, w, s.corr)
				fa.release()
				break
			}
			buf = appendResponse(buf[:0], s.corr, s.resp)
			_, err = w.Write(buf)
			if cap(buf) > 1<<20 {
				buf = nil // a one-off large answer is not kept
			}
		}
		if err == nil && !s.none {
			c.sendResps.Add(1)
		}
		if err == nil && s.err != nil {
			err = w.Flush()
			if err == nil {
				err = s.err
			}
		}
		if err == nil && len(c.slots) == 0 {
			err = w.Flush()
		}
		if err != nil {
			c.Close(err.Error())
			return
		}
	}
}

// appendResponse frames resp: size, correlation id, the header's tagged
// fields (response header v1, for flexible versions except ApiVersions,
// whose header stays v0 so any client can read it), the body.
func appendResponse(dst []byte, corr int32, resp kmsg.Response) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst = binary.BigEndian.AppendUint32(dst, uint32(corr))
	if resp.IsFlexible() && resp.Key() != int16(kmsg.ApiVersions) {
		dst = append(dst, 0)
	}
	dst = resp.AppendTo(dst)
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-4))
	return dst
}

// countWriter counts the bytes sent, for the session's send_oct.
type countWriter struct{ c *conn }

func (w *countWriter) Write(p []byte) (int, error) {
	n, err := w.c.nc.Write(p)
	w.c.sendBytes.Add(uint64(n))
	return n, err
}

// isTLS reports whether the connection came through a TLS listener.
func (c *conn) isTLS() bool {
	_, ok := c.nc.(*tls.Conn)
	return ok
}
