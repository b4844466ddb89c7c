package crash

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Load shape.
const (
	publishers   = 3
	consumerConn = 2   // consumer connections, each with one channel per queue
	window       = 128 // unconfirmed publishes per publisher
	prefetch     = 50
	ackRatio     = 0.7 // share of deliveries acked at once; the rest are held
	heldMax      = 30  // held deliveries per channel before the oldest half is acked
	fenceEvery   = 40  // deliveries between fences
)

// shape is what a run's load does beyond the constants: how much each
// publisher may send and which queues have consumers.
type shape struct {
	// perRound caps what one publisher sends in a run, so that the backlog
	// (and the final drain) stays bounded however fast the broker gets.
	perRound uint32
	consumed func(run, q int) bool
	// runMin and runMax bound how long a run's load goes on before the kill.
	runMin, runMax time.Duration
}

// churn consumes each queue in two runs out of three: backlogs come and go.
var churn = shape{perRound: 20_000, consumed: func(run, q int) bool { return (run+q)%3 != 0 },
	runMin: 500 * time.Millisecond, runMax: 2 * time.Second}

// hoard never consumes crash.q0 before the final drain and the others as
// churn does, with more sent per run: a backlog that grows over the runs.
var hoard = shape{perRound: 150_000, consumed: func(run, q int) bool { return q != 0 && (run+q)%3 != 0 },
	runMin: 2 * time.Second, runMax: 5 * time.Second}

func dial(url string) (*amqp.Connection, error) {
	return amqp.DialConfig(url, amqp.Config{Dial: amqp.DefaultDial(5 * time.Second)})
}

// declareTopology declares the durable exchange, queues and bindings. After
// a restart it first checks with passive declares that they survived.
func declareTopology(t *testing.T, url string, restarted bool) {
	t.Helper()
	conn, err := dial(url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if restarted {
		if err := ch.ExchangeDeclarePassive(exchangeName, "direct", true, false, false, false, nil); err != nil {
			t.Fatalf("durable exchange %s lost in a crash: %v", exchangeName, err)
		}
		for _, q := range queueNames {
			if _, err := ch.QueueDeclarePassive(q, true, false, false, false, nil); err != nil {
				t.Fatalf("durable queue %s lost in a crash: %v", q, err)
			}
		}
	}
	if err := ch.ExchangeDeclare(exchangeName, "direct", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	for i, q := range queueNames {
		if _, err := ch.QueueDeclare(q, true, false, false, false, queueArgs[i]); err != nil {
			t.Fatal(err)
		}
	}
	for _, b := range bindings {
		if err := ch.QueueBind(queueNames[b.queue], b.key, exchangeName, false, nil); err != nil {
			t.Fatal(err)
		}
	}
}

// load is one round of clients against one broker process.
type load struct {
	run      int
	url      string
	l        *ledger
	perRound uint32
	killed   atomic.Bool // set just before SIGKILL: errors after it are expected
	wg       sync.WaitGroup

	mu   sync.Mutex
	errs []string // client errors seen while the broker was meant to be up
}

// fail records a client error unless the broker has been killed, after which
// every client error is expected.
func (ld *load) fail(format string, args ...any) {
	if ld.killed.Load() {
		return
	}
	ld.mu.Lock()
	ld.errs = append(ld.errs, fmt.Sprintf(format, args...))
	ld.mu.Unlock()
}

// consumed says whether queue q has consumers in run: each run leaves one
// queue unconsumed, so a backlog of confirmed messages that nobody acked is
// on disk at every kill and must come through the next recovery whole.

// startLoad starts the consumers and then the publishers of round run.
// Publisher numbers are unique over all rounds so every message id is.
func startLoad(url string, l *ledger, run int, seed uint64, sh shape) (*load, error) {
	ld := &load{run: run, url: url, l: l, perRound: sh.perRound}
	for c := 0; c < consumerConn; c++ {
		conn, err := dial(url)
		if err != nil {
			return nil, err
		}
		for q := range queueNames {
			if !sh.consumed(run, q) {
				continue
			}
			rng := rand.New(rand.NewPCG(seed, uint64(100+c*len(queueNames)+q)))
			ld.wg.Add(1)
			go func() {
				defer ld.wg.Done()
				ld.consume(conn, q, rng)
			}()
		}
		ld.wg.Add(1)
		go func() {
			defer ld.wg.Done()
			// The connection ends with the broker; close our side too.
			<-conn.NotifyClose(make(chan *amqp.Error, 1))
			conn.Close()
		}()
	}
	for p := 0; p < publishers; p++ {
		ld.wg.Add(1)
		go func() {
			defer ld.wg.Done()
			ld.publish(uint32(run*publishers + p))
		}()
	}
	return ld, nil
}

// wait waits, bounded, for every client goroutine to notice the broker died.
func (ld *load) wait(t *testing.T) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		ld.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("run %d: clients still running 30s after the kill", ld.run)
	}
}

// publish sends persistent messages with confirms until the connection dies,
// keeping up to window unconfirmed, and records each outcome.
func (ld *load) publish(pub uint32) {
	conn, err := dial(ld.url)
	if err != nil {
		ld.fail("publisher %d: dial: %v", pub, err)
		return
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err == nil {
		err = ch.Confirm(false)
	}
	if err != nil {
		ld.fail("publisher %d: %v", pub, err)
		return
	}
	type pending struct {
		id uint64
		dc *amqp.DeferredConfirmation
	}
	var inflight []pending
	settle := func(p pending) {
		<-p.dc.Done()
		// Done is closed by the confirm, or by the channel's shutdown with
		// ack=false for every confirm still pending: Acked then says
		// whether basic.ack arrived. A nack and "never confirmed" look the
		// same to amqp091-go, so both count as unconfirmed.
		acked := p.dc.Acked()
		ld.l.settled(p.id, acked)
	}
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	for seq := uint32(1); ; seq++ {
		if seq > ld.perRound {
			// Enough for this run: settle the rest and idle until the kill.
			for _, p := range inflight {
				settle(p)
			}
			inflight = nil
			<-closed
			return
		}
		id := msgID(pub, seq)
		r := routeOf(id)
		ld.l.sent(ld.run, id)
		dc, err := ch.PublishWithDeferredConfirm(r.exchange, r.key, false, false, amqp.Publishing{DeliveryMode: amqp.Persistent, Priority: priorityOf(id), Body: messageBody(id)})
		if err != nil {
			ld.l.settled(id, false)
			ld.fail("publisher %d: publish: %v", pub, err)
			break
		}
		inflight = append(inflight, pending{id, dc})
		for len(inflight) >= window || len(inflight) > 0 && isDone(inflight[0].dc) {
			settle(inflight[0])
			inflight = inflight[1:]
		}
	}
	conn.Close() // resolves every pending confirm
	for _, p := range inflight {
		settle(p)
	}
}

func isDone(dc *amqp.DeferredConfirmation) bool {
	select {
	case <-dc.Done():
		return true
	default:
		return false
	}
}

type heldDelivery struct {
	d  amqp.Delivery
	id uint64
}

type fence struct {
	dc     *amqp.DeferredConfirmation
	nd, na int // deliveries and acks on the channel before the fence was sent
}

// consume takes deliveries from queue q on its own channel until the
// connection dies. It acks ackRatio of them at once and holds the rest,
// acking the oldest half whenever heldMax are held (so prefetch credit never
// runs out and some deliveries are always unacked at the kill). Every
// fenceEvery deliveries it does a basic.qos round trip and then publishes a
// persistent fence message to q on the same channel; a confirmed fence proves
// the acks and delivery marks before it durable (see copyState).
func (ld *load) consume(conn *amqp.Connection, q int, rng *rand.Rand) {
	ch, err := conn.Channel()
	if err == nil {
		err = ch.Qos(prefetch, 0, false)
	}
	if err == nil {
		err = ch.Confirm(false)
	}
	var dels <-chan amqp.Delivery
	if err == nil {
		dels, err = ch.Consume(queueNames[q], "", false, false, false, false, nil)
	}
	if err != nil {
		ld.fail("consumer of %s: %v", queueNames[q], err)
		return
	}
	var dlog, alog []uint64
	var held []heldDelivery
	var fences []fence
	ack := func(d amqp.Delivery, id uint64) {
		// Recorded before sending: an ack that fails may still have reached
		// the broker, so the id counts as acked (the conservative side for
		// the no-loss assertion).
		alog = append(alog, id)
		ld.l.acked(q, id)
		if err := d.Ack(false); err != nil {
			ld.fail("consumer of %s: ack: %v", queueNames[q], err)
		}
	}
	since := 0
	for d := range dels {
		id, kind := parseBody(d.Body)
		switch kind {
		case bodyFence:
			if err := d.Ack(false); err != nil {
				ld.fail("consumer of %s: ack fence: %v", queueNames[q], err)
			}
			continue
		case bodyCorrupt:
			ld.l.violate("corrupt body", "run %d %s: %d bytes, id %s", ld.run, queueNames[q], len(d.Body), fmtID(id))
			continue
		}
		dlog = append(dlog, id)
		ld.l.delivered(ld.run, q, id, d.Redelivered)
		if rng.Float64() < ackRatio {
			ack(d, id)
		} else {
			held = append(held, heldDelivery{d, id})
		}
		if len(held) >= heldMax {
			for _, h := range held[:heldMax/2] {
				ack(h.d, h.id)
			}
			held = append(held[:0], held[heldMax/2:]...)
		}
		if since++; since >= fenceEvery {
			since = 0
			// A synchronous round trip first: Warren defers acks until
			// its reader has handled what it read (or meets a method other
			// than publish and ack), so an ack followed by a publish in the
			// same read may reach the store after that publish. Once
			// qos-ok is back, the acks before it have reached the store
			// and the fence can only come later.
			if err := ch.Qos(prefetch, 0, false); err != nil {
				ld.fail("consumer of %s: qos before fence: %v", queueNames[q], err)
				continue
			}
			dc, err := ch.PublishWithDeferredConfirm("", queueNames[q], false, false, amqp.Publishing{DeliveryMode: amqp.Persistent, Body: fenceBody})
			if err != nil {
				ld.fail("consumer of %s: fence: %v", queueNames[q], err)
				continue
			}
			fences = append(fences, fence{dc, len(dlog), len(alog)})
		}
	}
	if !ld.killed.Load() {
		ld.fail("consumer of %s: deliveries ended while the broker was up", queueNames[q])
	}
	ch.Close() // resolves every pending fence confirm
	nd, na := 0, 0
	for _, f := range fences {
		<-f.dc.Done()
		if f.dc.Acked() {
			nd, na = max(nd, f.nd), max(na, f.na)
		}
	}
	ld.l.covered(q, dlog[:nd], alog[:na])
}

// drain consumes every queue to the end after the final restart, with
// automatic acks: passive declare gives the count, a consumer takes that
// many, is cancelled, and whatever else still arrives is counted too (a
// duplicate shows up as a second delivery in the run). The queue must then
// be empty.
func drain(t *testing.T, url string, l *ledger, run int) (total int) {
	t.Helper()
	conn, err := dial(url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	for q, name := range queueNames {
		info, err := ch.QueueDeclarePassive(name, true, false, false, false, nil)
		if err != nil {
			t.Fatalf("drain: %s: %v", name, err)
		}
		want := info.Messages
		dels, err := ch.Consume(name, "drain", true, false, false, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		handle := func(d amqp.Delivery) {
			got++
			switch id, kind := parseBody(d.Body); kind {
			case bodyMessage:
				l.delivered(run, q, id, d.Redelivered)
			case bodyCorrupt:
				l.violate("corrupt body", "drain %s: %d bytes, id %s", name, len(d.Body), fmtID(id))
			}
		}
		timeout := time.After(60 * time.Second)
		for got < want {
			select {
			case d, ok := <-dels:
				if !ok {
					t.Fatalf("drain %s: deliveries ended after %d of %d", name, got, want)
				}
				handle(d)
			case <-timeout:
				t.Fatalf("drain %s: %d of %d messages after 60s", name, got, want)
			}
		}
		if err := ch.Cancel("drain", false); err != nil {
			t.Fatal(err)
		}
		for d := range dels { // closed once cancel-ok is in
			handle(d)
		}
		if got != want {
			t.Errorf("drain %s: passive declare said %d messages, %d were delivered", name, want, got)
		}
		info, err = ch.QueueDeclarePassive(name, true, false, false, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		if info.Messages != 0 {
			t.Errorf("drain %s: %d messages left after draining", name, info.Messages)
		}
		total += got
	}
	return total
}

// queueDepths returns the ready count of every load queue.
func queueDepths(t *testing.T, url string) []int {
	t.Helper()
	conn, err := dial(url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, name := range queueNames {
		info, err := ch.QueueDeclarePassive(name, true, false, false, false, nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out = append(out, info.Messages)
	}
	return out
}
