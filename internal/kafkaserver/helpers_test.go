package kafkaserver

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/warren-mq/warren/internal/testbroker"
)

// kafkaBroker is an in-process Warren with a Kafka listener.
type kafkaBroker struct {
	*testbroker.Instance
	Kafka     *Server
	KafkaAddr string
	stop      func()
	once      sync.Once
}

// startKafka starts a broker with its data in a temporary directory and a
// Kafka listener on 127.0.0.1:0, both stopped when t ends.
func startKafka(t testing.TB, cfg Config) *kafkaBroker {
	t.Helper()
	return startKafkaIn(t, t.TempDir(), cfg)
}

// startKafkaIn is startKafka on data directory dir, so a test can restart
// the broker on the same data (Stop first).
func startKafkaIn(t testing.TB, dir string, cfg Config) *kafkaBroker {
	t.Helper()
	inst := testbroker.Start(t, testbroker.Options{DataDir: dir})
	s := New(cfg, inst.Broker, nil)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Serve(l) }()
	k := &kafkaBroker{Instance: inst, Kafka: s, KafkaAddr: l.Addr().String()}
	k.stop = func() { s.Close(); <-done; inst.Stop() }
	t.Cleanup(k.Stop)
	return k
}

// Stop stops the listener and the broker; safe to call twice.
func (k *kafkaBroker) Stop() {
	k.once.Do(k.stop)
}

// client is a kgo client of k, closed when t ends.
func (k *kafkaBroker) client(t testing.TB, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(k.KafkaAddr)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// admin is a kadm client of k.
func (k *kafkaBroker) admin(t testing.TB, opts ...kgo.Opt) *kadm.Client {
	return kadm.NewClient(k.client(t, opts...))
}

// rawConn is a hand-driven Kafka connection for bad-input tests.
type rawConn struct {
	t    testing.TB
	nc   net.Conn
	br   *bufio.Reader
	corr int32
	f    *kmsg.RequestFormatter
}

func (k *kafkaBroker) raw(t testing.TB) *rawConn {
	t.Helper()
	nc, err := net.Dial("tcp", k.KafkaAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(20 * time.Second))
	return &rawConn{t: t, nc: nc, br: bufio.NewReader(nc), f: kmsg.NewRequestFormatter(kmsg.FormatterClientID("raw"))}
}

// send writes req at its version and returns its correlation id.
func (r *rawConn) send(req kmsg.Request) int32 {
	r.t.Helper()
	r.corr++
	if _, err := r.nc.Write(r.f.AppendRequest(nil, req, r.corr)); err != nil {
		r.t.Fatal(err)
	}
	return r.corr
}

// writeBytes writes b as is.
func (r *rawConn) writeBytes(b []byte) {
	r.t.Helper()
	if _, err := r.nc.Write(b); err != nil {
		r.t.Fatal(err)
	}
}

// readFrame reads one response frame: correlation id and the rest.
func (r *rawConn) readFrame() (int32, []byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r.br, hdr[:]); err != nil {
		return 0, nil, err
	}
	b := make([]byte, binary.BigEndian.Uint32(hdr[:]))
	if _, err := io.ReadFull(r.br, b); err != nil {
		return 0, nil, err
	}
	return int32(binary.BigEndian.Uint32(b)), b[4:], nil
}

// roundTrip sends req and decodes its response.
func (r *rawConn) roundTrip(req kmsg.Request) kmsg.Response {
	r.t.Helper()
	corr := r.send(req)
	got, body, err := r.readFrame()
	if err != nil {
		r.t.Fatalf("reading the %s response: %v", kmsg.NameForKey(req.Key()), err)
	}
	if got != corr {
		r.t.Fatalf("correlation id %d, want %d", got, corr)
	}
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	if resp.IsFlexible() && resp.Key() != int16(kmsg.ApiVersions) {
		if body, err = skipTags(body); err != nil {
			r.t.Fatal(err)
		}
	}
	if err := resp.ReadFrom(body); err != nil {
		r.t.Fatalf("decoding the %s response: %v", kmsg.NameForKey(req.Key()), err)
	}
	return resp
}

// expectClosed fails unless the broker closes the connection.
func (r *rawConn) expectClosed() {
	r.t.Helper()
	_ = r.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, _, err := r.readFrame(); err == nil {
		r.t.Fatal("got a response, want the connection closed")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		r.t.Fatal("connection still open after 10 s, want it closed")
	}
}
