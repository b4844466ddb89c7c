// Command manyq is the load driver of bench/backlog.sh's scenario k, many
// queues: N durable queues bound to one fanout exchange, each filled with M
// persistent messages, then drained by one consumer per queue. It uses
// amqp091-go and prints one JSON object, the step's summary, on stdout
// (progress goes to stderr every 10 s).
//
//	manyq declare -uri URI -queues N           # the exchange, N queues, their bindings
//	manyq fill    -uri URI -queues N -messages M -size S -window W
//	manyq await   -uri URI -queues N -messages M   # until every queue reports M ready
//	manyq drain   -uri URI -queues N -messages M -prefetch P -conns C
//
// Every message body starts with its 8-byte big-endian sequence number
// 0..M-1; fill publishes each once to the fanout exchange, so every queue
// holds the same sequence, and drain checks that each queue delivers it in
// order. Drain also reports how fairly the queues were served: when 10, 50 and
// 90 % of the N×M messages have arrived it takes each queue's share of its M
// and reports the lowest, median and highest, and Jain's index over the
// counts, (Σx)² / (n·Σx²), 1 when every queue has had as many.
package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// channelsPerConn keeps drain under Warren's channel_max (2047) per connection.
const channelsPerConn = 2000

type options struct {
	uri, prefix, exchange string
	queues, messages      int
	size, window          int
	prefetch, conns       int
	parallel, ackEvery    int
	probe                 bool
	timeout               time.Duration
}

func (o options) name(i int) string { return fmt.Sprintf("%s%05d", o.prefix, i) }

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: manyq declare|fill|await|drain [flags]")
		os.Exit(2)
	}
	var o options
	fs := flag.NewFlagSet("manyq "+os.Args[1], flag.ExitOnError)
	fs.StringVar(&o.uri, "uri", "amqp://guest:guest@127.0.0.1:5672/", "AMQP URI")
	fs.StringVar(&o.prefix, "prefix", "warren-bench-manyq-", "queue name prefix; queue i is PREFIX%05d")
	fs.StringVar(&o.exchange, "exchange", "warren-bench-manyq", "durable fanout exchange every queue is bound to")
	fs.IntVar(&o.queues, "queues", 10000, "number of queues")
	fs.IntVar(&o.messages, "messages", 10000, "messages per queue (fanout publishes)")
	fs.IntVar(&o.size, "size", 16, "body bytes (at least 8: the sequence number)")
	fs.IntVar(&o.window, "window", 100, "fill: unconfirmed publishes in flight (each is N queue records)")
	fs.IntVar(&o.prefetch, "prefetch", 100, "drain: basic.qos prefetch count per queue's channel")
	fs.IntVar(&o.conns, "conns", 4, "drain: connections (at least one per 2,000 queues)")
	fs.IntVar(&o.parallel, "parallel", 8, "declare, await, drain setup: channels issuing synchronous methods at once")
	fs.IntVar(&o.ackEvery, "ack-every", 50, "drain: acknowledge with multiple=true every this many deliveries (at most prefetch/2)")
	fs.BoolVar(&o.probe, "probe", true, "drain: at each fairness snapshot also ask the broker (passive declares on another connection) what it has delivered of each queue")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Minute, "give up after this long and report what was done")
	_ = fs.Parse(os.Args[2:])
	if o.size < 8 {
		o.size = 8
	}
	o.parallel = max(o.parallel, 1)
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	var res any
	var err error
	switch os.Args[1] {
	case "declare":
		res, err = declare(ctx, o)
	case "fill":
		res, err = fill(ctx, o)
	case "await":
		res, err = await(ctx, o)
	case "drain":
		res, err = drain(ctx, o)
	default:
		fmt.Fprintf(os.Stderr, "manyq: unknown step %q (want declare, fill, await or drain)\n", os.Args[1])
		os.Exit(2)
	}
	_ = json.NewEncoder(os.Stdout).Encode(res)
	if err != nil {
		fmt.Fprintln(os.Stderr, "manyq "+os.Args[1]+":", err)
		os.Exit(1)
	}
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "manyq %s: "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// every calls fn every 10 s until the returned stop is called.
func every(fn func()) (stop func()) {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				fn()
			}
		}
	}()
	return func() { close(done) }
}

func seconds(t0 time.Time) float64 { return math.Round(time.Since(t0).Seconds()*1000) / 1000 }

// --- declare ------------------------------------------------------------------

type declareResult struct {
	Queues  int64   `json:"queues"`
	Seconds float64 `json:"seconds"`
	Error   string  `json:"error,omitempty"`
}

func declare(ctx context.Context, o options) (declareResult, error) {
	t0 := time.Now()
	var done atomic.Int64
	res := func(err error) (declareResult, error) {
		r := declareResult{Queues: done.Load(), Seconds: seconds(t0)}
		if err != nil {
			r.Error = err.Error()
		}
		return r, err
	}
	conn, err := amqp.Dial(o.uri)
	if err != nil {
		return res(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return res(err)
	}
	if err := ch.ExchangeDeclare(o.exchange, "fanout", true, false, false, false, nil); err != nil {
		return res(err)
	}
	stop := every(func() { progress("declared %d of %d queues", done.Load(), o.queues) })
	defer stop()
	err = eachQueue(ctx, conn, o, func(ch *amqp.Channel, i int) error {
		q := o.name(i)
		if _, err := ch.QueueDeclare(q, true, false, false, false, nil); err != nil {
			return fmt.Errorf("declare %s: %w", q, err)
		}
		if err := ch.QueueBind(q, "", o.exchange, false, nil); err != nil {
			return fmt.Errorf("bind %s: %w", q, err)
		}
		done.Add(1)
		return nil
	})
	return res(err)
}

// eachQueue calls fn for every queue index, spread over o.parallel channels
// of conn (amqp091's calls are synchronous: one channel would take a round
// trip per queue in turn), and returns the first error, or ctx's.
func eachQueue(ctx context.Context, conn *amqp.Connection, o options, fn func(ch *amqp.Channel, i int) error) error {
	errs := make(chan error, o.parallel)
	var wg sync.WaitGroup
	for w := range o.parallel {
		wg.Go(func() {
			ch, err := conn.Channel()
			if err != nil {
				errs <- err
				return
			}
			defer ch.Close()
			for i := w; i < o.queues && ctx.Err() == nil; i += o.parallel {
				if err := fn(ch, i); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return errors.Join(ctx.Err(), <-errs)
}

// --- fill ---------------------------------------------------------------------

type fillResult struct {
	Published      int64   `json:"published"`
	Confirmed      int64   `json:"confirmed"`
	Nacked         int64   `json:"nacked"`
	Seconds        float64 `json:"seconds"`
	MsgsPS         float64 `json:"msgs_per_s"`
	QueueRecordsPS float64 `json:"queue_records_per_s"`
	BlockedSeconds float64 `json:"blocked_seconds"`
	Error          string  `json:"error,omitempty"`
}

func fill(ctx context.Context, o options) (fillResult, error) {
	t0 := time.Now()
	var published, acked, nacked atomic.Int64
	var blockedNs atomic.Int64
	res := func(err error) (fillResult, error) {
		r := fillResult{Published: published.Load(), Confirmed: acked.Load(), Nacked: nacked.Load(), Seconds: seconds(t0),
			BlockedSeconds: math.Round(float64(blockedNs.Load())/1e6) / 1e3}
		if r.Seconds > 0 {
			r.MsgsPS = math.Round(float64(r.Confirmed) / r.Seconds)
			r.QueueRecordsPS = math.Round(float64(r.Confirmed) * float64(o.queues) / r.Seconds)
		}
		if err != nil {
			r.Error = err.Error()
		}
		return r, err
	}
	conn, err := amqp.Dial(o.uri)
	if err != nil {
		return res(err)
	}
	defer conn.Close()
	go func() { // time spent blocked by the broker's memory or disk alarm
		var since time.Time
		for b := range conn.NotifyBlocked(make(chan amqp.Blocking, 16)) {
			if b.Active && since.IsZero() {
				since = time.Now()
				progress("publisher blocked by the broker: %s", b.Reason)
			} else if !b.Active && !since.IsZero() {
				blockedNs.Add(int64(time.Since(since)))
				since = time.Time{}
				progress("publisher unblocked")
			}
		}
	}()
	ch, err := conn.Channel()
	if err != nil {
		return res(err)
	}
	if err := ch.Confirm(false); err != nil {
		return res(err)
	}
	window := make(chan struct{}, max(o.window, 1))
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, cap(window)+1))
	allConfirmed := make(chan struct{})
	go func() {
		for c := range confirms {
			if c.Ack {
				acked.Add(1)
			} else {
				nacked.Add(1)
			}
			<-window
			if acked.Load()+nacked.Load() == int64(o.messages) {
				close(allConfirmed)
			}
		}
	}()
	stop := every(func() {
		progress("published %d, confirmed %d, nacked %d of %d (%.0f msg/s)", published.Load(), acked.Load(), nacked.Load(),
			o.messages, float64(acked.Load())/time.Since(t0).Seconds())
	})
	defer stop()
	body := make([]byte, o.size)
	for i := 8; i < len(body); i++ {
		body[i] = 'a' + byte(i%26)
	}
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	for seq := range o.messages {
		select {
		case window <- struct{}{}:
		case <-ctx.Done():
			return res(ctx.Err())
		case e := <-closed:
			return res(fmt.Errorf("connection closed: %v", e))
		}
		binary.BigEndian.PutUint64(body, uint64(seq))
		// Publish writes the body out before it returns, so body is reused.
		if err := ch.PublishWithContext(ctx, o.exchange, "", false, false,
			amqp.Publishing{DeliveryMode: amqp.Persistent, Body: body}); err != nil {
			return res(err)
		}
		published.Add(1)
	}
	if o.messages == 0 {
		return res(nil)
	}
	select {
	case <-allConfirmed:
	case <-ctx.Done():
		return res(ctx.Err())
	case e := <-closed:
		return res(fmt.Errorf("connection closed: %v", e))
	}
	if n := nacked.Load(); n > 0 {
		return res(fmt.Errorf("%d publishes nacked", n))
	}
	return res(nil)
}

// --- await --------------------------------------------------------------------

type awaitResult struct {
	Seconds     float64 `json:"seconds"`
	Ready       bool    `json:"ready"`
	Total       int64   `json:"total"`
	QueuesReady int     `json:"queues_ready"`
	QueuesOver  int     `json:"queues_over"` // holding more than M: duplicates
	Rounds      int     `json:"rounds"`
	Error       string  `json:"error,omitempty"`
}

// await declares every queue passively, over and over (reconnecting when the
// broker is not up yet or drops the connection), until each reports at least
// M messages ready.
func await(ctx context.Context, o options) (awaitResult, error) {
	t0 := time.Now()
	counts := make([]atomic.Int64, o.queues)
	var r awaitResult
	tally := func() {
		r.Total, r.QueuesReady, r.QueuesOver = 0, 0, 0
		for i := range counts {
			n := counts[i].Load()
			r.Total += n
			if n >= int64(o.messages) {
				r.QueuesReady++
			}
			if n > int64(o.messages) {
				r.QueuesOver++
			}
		}
		r.Ready = r.QueuesReady == o.queues
	}
	stop := every(func() {
		var t, k int64
		for i := range counts {
			n := counts[i].Load()
			t += n
			if n >= int64(o.messages) {
				k++
			}
		}
		progress("%d of %d queues report their backlog, %d messages in all", k, o.queues, t)
	})
	defer stop()
	var lastErr error
	for ctx.Err() == nil {
		conn, err := amqp.Dial(o.uri)
		if err != nil {
			lastErr = err
			sleep(ctx, 100*time.Millisecond)
			continue
		}
		for ctx.Err() == nil && !conn.IsClosed() {
			r.Rounds++
			var wg sync.WaitGroup
			for w := range o.parallel {
				wg.Go(func() {
					var ch *amqp.Channel
					defer func() {
						if ch != nil {
							ch.Close()
						}
					}()
					for i := w; i < o.queues && ctx.Err() == nil; i += o.parallel {
						if counts[i].Load() >= int64(o.messages) {
							continue
						}
						if ch == nil || ch.IsClosed() {
							c, err := conn.Channel()
							if err != nil {
								return
							}
							ch = c
						}
						q, err := ch.QueueDeclarePassive(o.name(i), true, false, false, false, nil)
						if err == nil {
							counts[i].Store(int64(q.Messages))
						}
					}
				})
			}
			wg.Wait()
			tally()
			if r.Ready {
				conn.Close()
				r.Seconds = seconds(t0)
				return r, nil
			}
			sleep(ctx, 100*time.Millisecond)
		}
		conn.Close()
	}
	tally()
	r.Seconds = seconds(t0)
	err := errors.Join(ctx.Err(), lastErr)
	r.Error = err.Error()
	return r, err
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// --- drain --------------------------------------------------------------------

type fairness struct {
	Min    float64 `json:"min"`
	Median float64 `json:"median"`
	Max    float64 `json:"max"`
	Jain   float64 `json:"jain"`
	Total  int64   `json:"total"` // messages received when the snapshot was taken
	// Broker is the same measure of what the broker had delivered (M less
	// what each queue reports ready), taken by passive declares right after
	// the snapshot: a queue the broker has delivered nothing to has its
	// consumer's whole prefetch free, so unfairness seen there is the
	// broker's, not the driver's.
	Broker *brokerView `json:"broker,omitempty"`
}

type brokerView struct {
	Min       float64 `json:"min"`
	Median    float64 `json:"median"`
	Max       float64 `json:"max"`
	Jain      float64 `json:"jain"`
	Untouched int     `json:"untouched"` // queues still reporting all M ready
	Seconds   float64 `json:"seconds"`   // how long the passive declares took
}

// spread is the lowest, median and highest of counts/m and Jain's index over
// counts; it sorts counts.
func spread(counts []int64, m int64) (lo, med, hi, jain float64) {
	var sum, sumsq float64
	for _, c := range counts {
		sum += float64(c)
		sumsq += float64(c) * float64(c)
	}
	slices.Sort(counts)
	if n := len(counts); n > 0 && m > 0 {
		lo = round4(float64(counts[0]) / float64(m))
		med = round4(float64(counts[n/2]) / float64(m))
		hi = round4(float64(counts[n-1]) / float64(m))
	}
	if sumsq > 0 {
		jain = round4(sum * sum / (float64(len(counts)) * sumsq))
	}
	return
}

// probe reports what the broker has delivered of each queue's m messages.
func probe(ctx context.Context, o options) (*brokerView, error) {
	t0 := time.Now()
	conn, err := amqp.Dial(o.uri)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	delivered := make([]int64, o.queues)
	err = eachQueue(ctx, conn, o, func(ch *amqp.Channel, i int) error {
		q, err := ch.QueueDeclarePassive(o.name(i), true, false, false, false, nil)
		delivered[i] = int64(o.messages) - int64(q.Messages)
		return err
	})
	if err != nil {
		return nil, err
	}
	b := &brokerView{Seconds: seconds(t0)}
	for _, d := range delivered {
		if d == 0 {
			b.Untouched++
		}
	}
	b.Min, b.Median, b.Max, b.Jain = spread(delivered, int64(o.messages))
	return b, nil
}

type violation struct {
	Queue    int    `json:"queue"`
	Index    int64  `json:"index"` // the queue's nth delivery (0-based)
	Expected uint64 `json:"expected"`
	Got      int64  `json:"got"` // -1: body shorter than 8 bytes
}

type drainResult struct {
	Received        int64                `json:"received"`
	Expected        int64                `json:"expected"`
	QueuesDone      int64                `json:"queues_done"`
	Connections     int                  `json:"connections"`
	SetupSeconds    float64              `json:"setup_seconds"` // opening channels, basic.qos
	Seconds         float64              `json:"seconds"`       // from the first basic.consume to the last message
	MsgsPS          float64              `json:"msgs_per_s"`
	FirstSeconds    float64              `json:"first_seconds"` // from the first basic.consume to the first message
	OrderViolations int64                `json:"order_violations"`
	FirstViolations []violation          `json:"first_violations,omitempty"`
	Redelivered     int64                `json:"redelivered"`
	Fair            map[string]*fairness `json:"fair"`
	Error           string               `json:"error,omitempty"`
}

// queueState is one queue's consumer's: received is read by fairness
// snapshots and progress, the rest only by the queue's own goroutine.
type queueState struct {
	received atomic.Int64
	_        [56]byte // a cache line each: the counters are written per message
}

var fairPoints = [...]struct {
	key string
	pct int64
}{{"10", 10}, {"50", 50}, {"90", 90}}

func drain(ctx context.Context, o options) (drainResult, error) {
	tSetup := time.Now()
	n, m := o.queues, int64(o.messages)
	expected := int64(n) * m
	nconn := max(o.conns, (n+channelsPerConn-1)/channelsPerConn, 1)
	ackEvery := max(1, o.ackEvery)
	if o.prefetch > 0 {
		ackEvery = max(1, min(ackEvery, o.prefetch/2))
	}
	qs := make([]queueState, n)
	var total, queuesDone, violations, redelivered atomic.Int64
	var firstNs atomic.Int64
	var mu sync.Mutex // guards fair, firstViolations, errs
	fair := map[string]*fairness{}
	var firstViolations []violation
	var errs []error
	fail := func(err error) {
		mu.Lock()
		if len(errs) < 10 {
			errs = append(errs, err)
		}
		mu.Unlock()
	}
	var t0 time.Time
	var wgSetup time.Duration
	res := func() (drainResult, error) {
		mu.Lock()
		defer mu.Unlock()
		r := drainResult{Received: total.Load(), Expected: expected, QueuesDone: queuesDone.Load(), Connections: nconn,
			SetupSeconds: math.Round(wgSetup.Seconds()*1000) / 1000, OrderViolations: violations.Load(),
			FirstViolations: firstViolations, Redelivered: redelivered.Load(), Fair: map[string]*fairness{}}
		for k, f := range fair { // copies: a probe may still be filling one in
			c := *f
			if f.Broker != nil {
				b := *f.Broker
				c.Broker = &b
			}
			r.Fair[k] = &c
		}
		if !t0.IsZero() {
			r.Seconds = seconds(t0)
			r.FirstSeconds = math.Round(float64(firstNs.Load())/1e6) / 1e3
			if r.Seconds > 0 {
				r.MsgsPS = math.Round(float64(r.Received) / r.Seconds)
			}
		}
		// A snapshot taken when a threshold was crossed counts every queue's
		// deliveries, also those not yet acknowledged; total counts per ack.
		err := errors.Join(errs...)
		if r.Received < expected && err == nil {
			err = errors.Join(ctx.Err(), fmt.Errorf("received %d of %d", r.Received, expected))
		}
		if err != nil {
			r.Error = err.Error()
		}
		return r, err
	}
	var probes sync.WaitGroup
	snapshot := func(key string) {
		counts := make([]int64, n)
		f := &fairness{}
		for i := range qs {
			counts[i] = qs[i].received.Load()
			f.Total += counts[i]
		}
		f.Min, f.Median, f.Max, f.Jain = spread(counts, m)
		mu.Lock()
		fair[key] = f
		mu.Unlock()
		if o.probe {
			probes.Go(func() {
				b, err := probe(ctx, o)
				if err != nil {
					fail(fmt.Errorf("probe at %s %%: %w", key, err))
					return
				}
				mu.Lock()
				f.Broker = b
				mu.Unlock()
			})
		}
	}
	// counted adds k acknowledged deliveries to the total and takes the
	// fairness snapshots whose thresholds that crosses.
	counted := func(k int64) {
		after := total.Add(k)
		before := after - k
		for _, p := range fairPoints {
			if thr := (expected*p.pct + 99) / 100; before < thr && after >= thr {
				snapshot(p.key)
			}
		}
	}

	conns := make([]*amqp.Connection, nconn)
	for i := range conns {
		c, err := amqp.Dial(o.uri)
		if err != nil {
			fail(err)
			return res()
		}
		defer c.Close()
		conns[i] = c
	}
	// Open every queue's channel and set its prefetch first, then start all
	// consumers at once (basic.consume no-wait), so that no queue has a head
	// start of the seconds that 3 × N synchronous round trips take.
	chans := make([]*amqp.Channel, n)
	var opened atomic.Int64
	stop := every(func() { progress("opened %d of %d channels", opened.Load(), n) })
	var wg sync.WaitGroup
	for w := range o.parallel {
		wg.Go(func() {
			for i := w; i < n && ctx.Err() == nil; i += o.parallel {
				ch, err := conns[i%nconn].Channel()
				if err == nil {
					err = ch.Qos(o.prefetch, 0, false)
				}
				if err != nil {
					fail(fmt.Errorf("queue %s: %w", o.name(i), err))
					return
				}
				chans[i] = ch
				opened.Add(1)
			}
		})
	}
	wg.Wait()
	stop()
	wgSetup = time.Since(tSetup)
	if len(errs) > 0 || ctx.Err() != nil {
		return res()
	}

	allDone := make(chan struct{})
	queueDone := func() {
		if queuesDone.Add(1) == int64(n) {
			close(allDone)
		}
	}
	if n == 0 || m == 0 {
		close(allDone)
	}
	t0 = time.Now()
	for i := range n {
		ch := chans[i]
		deliveries, err := ch.Consume(o.name(i), "", false, false, false, true, nil)
		if err != nil {
			fail(fmt.Errorf("consume %s: %w", o.name(i), err))
			return res()
		}
		go func() {
			q := &qs[i]
			var rcv, next int64
			var unacked int64
			for d := range deliveries {
				if rcv == 0 && firstNs.Load() == 0 {
					firstNs.CompareAndSwap(0, int64(time.Since(t0)))
				}
				seq := int64(-1)
				if len(d.Body) >= 8 {
					seq = int64(binary.BigEndian.Uint64(d.Body))
				}
				if seq != next {
					if violations.Add(1) <= 10 {
						mu.Lock()
						firstViolations = append(firstViolations, violation{Queue: i, Index: rcv, Expected: uint64(next), Got: seq})
						mu.Unlock()
					}
				}
				next = seq + 1
				if d.Redelivered {
					redelivered.Add(1)
				}
				rcv++
				q.received.Store(rcv)
				unacked++
				if unacked >= int64(ackEvery) || rcv >= m {
					if err := ch.Ack(d.DeliveryTag, true); err != nil {
						fail(fmt.Errorf("ack %s: %w", o.name(i), err))
						return
					}
					counted(unacked)
					unacked = 0
				}
				if rcv >= m {
					queueDone()
					return
				}
			}
			fail(fmt.Errorf("queue %s: deliveries ended after %d of %d", o.name(i), rcv, m))
		}()
	}
	stop = every(func() {
		progress("received %d of %d (%.0f msg/s), %d of %d queues done, %d order violations", total.Load(), expected,
			float64(total.Load())/time.Since(t0).Seconds(), queuesDone.Load(), n, violations.Load())
	})
	defer stop()
	closed := make(chan error, nconn)
	for i, c := range conns {
		go func() {
			if e := <-c.NotifyClose(make(chan *amqp.Error, 1)); e != nil {
				closed <- fmt.Errorf("connection %d closed: %v", i, e)
			}
		}()
	}
	select {
	case <-allDone:
		probes.Wait() // every snapshot was taken before the last queue was done
	case <-ctx.Done():
	case err := <-closed:
		fail(err)
	}
	return res()
}

func round4(x float64) float64 { return math.Round(x*1e4) / 1e4 }
