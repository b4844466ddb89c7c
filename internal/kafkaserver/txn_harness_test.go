package kafkaserver

import (
	"bufio"
	"context"
	"encoding/binary"
	"io"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/warren-mq/warren/internal/testbroker"
)

// kafkaProxy forwards Kafka connections to the current broker, so clients
// keep one address across broker restarts, and can swallow Produce
// responses (closing the connection instead) to force a client's retry.
type kafkaProxy struct {
	ln net.Listener

	mu          sync.Mutex
	backend     string
	conns       map[net.Conn]struct{}
	dropProduce int // Produce responses still to swallow
	dropped     int
}

func newKafkaProxy(t testing.TB) *kafkaProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &kafkaProxy{ln: ln, conns: map[net.Conn]struct{}{}}
	go p.serve()
	t.Cleanup(func() { ln.Close(); p.closeAll() })
	return p
}

func (p *kafkaProxy) addr() string { return p.ln.Addr().String() }

func (p *kafkaProxy) setBackend(addr string) {
	p.mu.Lock()
	p.backend = addr
	p.mu.Unlock()
}

// swallowProduce makes the proxy drop the next n Produce responses.
func (p *kafkaProxy) swallowProduce(n int) {
	p.mu.Lock()
	p.dropProduce = n
	p.mu.Unlock()
}

func (p *kafkaProxy) droppedCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dropped
}

func (p *kafkaProxy) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
}

func (p *kafkaProxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *kafkaProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.handle(c)
	}
}

func readKafkaFrame(r io.Reader) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	b := make([]byte, 4+binary.BigEndian.Uint32(hdr[:]))
	copy(b, hdr[:])
	_, err := io.ReadFull(r, b[4:])
	return b, err
}

func (p *kafkaProxy) handle(c net.Conn) {
	p.mu.Lock()
	addr := p.backend
	p.mu.Unlock()
	up, err := net.Dial("tcp", addr)
	if err != nil {
		c.Close()
		return
	}
	p.track(c, up)
	var mu sync.Mutex
	produces := map[int32]bool{} // correlation ids of Produce requests in flight
	closeBoth := func() { c.Close(); up.Close() }
	go func() { // client -> broker
		defer closeBoth()
		for {
			f, err := readKafkaFrame(c)
			if err != nil || len(f) < 12 {
				return
			}
			if binary.BigEndian.Uint16(f[4:]) == 0 { // Produce
				mu.Lock()
				produces[int32(binary.BigEndian.Uint32(f[8:]))] = true
				mu.Unlock()
			}
			if _, err := up.Write(f); err != nil {
				return
			}
		}
	}()
	defer closeBoth()
	for { // broker -> client
		f, err := readKafkaFrame(up)
		if err != nil || len(f) < 8 {
			return
		}
		corr := int32(binary.BigEndian.Uint32(f[4:]))
		mu.Lock()
		isProduce := produces[corr]
		delete(produces, corr)
		mu.Unlock()
		if isProduce {
			p.mu.Lock()
			drop := p.dropProduce > 0
			if drop {
				p.dropProduce--
				p.dropped++
			}
			p.mu.Unlock()
			if drop {
				return // the record was written; the client never hears so
			}
		}
		if _, err := c.Write(f); err != nil {
			return
		}
	}
}

// txnKafka is a broker with a Kafka listener on a data directory that
// survives restarts, reached through a proxy whose address clients keep
// (and which Metadata advertises).
type txnKafka struct {
	t     testing.TB
	dir   string
	proxy *kafkaProxy
	inst  *testbroker.Instance
	srv   *Server
	done  chan struct{}
}

func newTxnKafka(t testing.TB) *txnKafka {
	k := &txnKafka{t: t, dir: t.TempDir(), proxy: newKafkaProxy(t)}
	k.start()
	t.Cleanup(k.stop)
	return k
}

func (k *txnKafka) start() {
	k.inst = testbroker.Start(k.t, testbroker.Options{DataDir: filepath.Join(k.dir, "data")})
	k.srv = New(Config{AdvertisedAddr: k.proxy.addr()}, k.inst.Broker, nil)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		k.t.Fatal(err)
	}
	k.done = make(chan struct{})
	go func(done chan struct{}) { defer close(done); _ = k.srv.Serve(l) }(k.done)
	k.proxy.setBackend(l.Addr().String())
}

func (k *txnKafka) stop() {
	if k.srv == nil {
		return
	}
	k.srv.Close()
	<-k.done
	k.inst.Stop()
	k.proxy.closeAll()
	k.srv = nil
}

// restart stops the broker cleanly and starts it again on the same data.
func (k *txnKafka) restart() {
	k.stop()
	k.start()
}

func (k *txnKafka) client(opts ...kgo.Opt) *kgo.Client {
	k.t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(k.proxy.addr())}, opts...)...)
	if err != nil {
		k.t.Fatal(err)
	}
	k.t.Cleanup(cl.Close)
	return cl
}

// raw is a hand-driven connection to the broker itself.
func (k *txnKafka) raw() *rawConn {
	k.t.Helper()
	nc, err := net.Dial("tcp", k.proxy.addr())
	if err != nil {
		k.t.Fatal(err)
	}
	k.t.Cleanup(func() { nc.Close() })
	return &rawConn{t: k.t, nc: nc, br: bufio.NewReader(nc), f: kmsg.NewRequestFormatter(kmsg.FormatterClientID("raw"))}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// The transaction APIs are advertised up to the versions before KIP-890
// part 2, and producer ids stay unique across a restart.
func TestKafkaTxnProducerIDsAcrossRestart(t *testing.T) {
	k := newTxnKafka(t)
	ctx := testCtx(t)
	r := k.raw()
	vs := r.roundTrip(kmsg.NewPtrApiVersionsRequest()).(*kmsg.ApiVersionsResponse)
	want := map[kmsg.Key]int16{kmsg.InitProducerID: 4, kmsg.AddPartitionsToTxn: 3, kmsg.AddOffsetsToTxn: 3, kmsg.EndTxn: 3, kmsg.TxnOffsetCommit: 3}
	for _, a := range vs.ApiKeys {
		if max, ok := want[kmsg.Key(a.ApiKey)]; ok {
			if a.MaxVersion != max {
				t.Fatalf("%s advertised up to v%d, want v%d", kmsg.NameForKey(a.ApiKey), a.MaxVersion, max)
			}
			delete(want, kmsg.Key(a.ApiKey))
		}
	}
	if len(want) > 0 {
		t.Fatalf("not advertised: %v", want)
	}
	seen := map[int64]bool{}
	initID := func() {
		t.Helper()
		resp, err := kmsg.NewPtrInitProducerIDRequest().RequestWith(ctx, k.client())
		if err != nil || resp.ErrorCode != 0 || resp.ProducerEpoch != 0 || seen[resp.ProducerID] {
			t.Fatalf("InitProducerId: %+v %v (seen %v)", resp, err, seen)
		}
		seen[resp.ProducerID] = true
	}
	initID()
	initID()
	k.restart()
	initID()
}
