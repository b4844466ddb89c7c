package crash

import (
	"encoding/binary"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

// The load's topology: three durable queues, one fed through the default
// exchange and two through a durable direct exchange, one of whose keys
// routes to both (so one publish makes two copies and is confirmed only when
// both are durable). crash.q2 is a priority queue (x-max-priority 4), and
// every message carries a priority (priorityOf), so that its backlog is on
// disk a tail per priority level.
var queueNames = []string{"crash.q0", "crash.q1", "crash.q2"}

// queueArgs are the queues' declare arguments.
var queueArgs = []amqp.Table{nil, nil, {"x-max-priority": int32(4)}}

// priorityOf is message id's priority, 0 to 5 (5 counts as 4 in crash.q2).
func priorityOf(id uint64) uint8 { return uint8(mix(id^0x2545f491) % 6) }

const exchangeName = "crash.direct"

type route struct {
	exchange, key string
	queues        []int
}

var routes = []route{
	{"", "crash.q0", []int{0}},
	{exchangeName, "one", []int{1}},
	{exchangeName, "two", []int{2}},
	{exchangeName, "both", []int{1, 2}},
}

// bindings are (queue, key) pairs on exchangeName.
var bindings = []struct {
	queue int
	key   string
}{{1, "one"}, {1, "both"}, {2, "two"}, {2, "both"}}

// mix is the splitmix64 finaliser: routes and bodies are functions of the
// message id, so a consumer can check both without shared state.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

func routeOf(id uint64) route { return routes[mix(id)%uint64(len(routes))] }

// msgID names a message by publisher (high half, unique over all rounds) and
// sequence number.
func msgID(pub, seq uint32) uint64 { return uint64(pub)<<32 | uint64(seq) }

func fmtID(id uint64) string { return fmt.Sprintf("p%d#%d", id>>32, uint32(id)) }

var (
	msgMagic  = []byte("WMSG")
	fenceBody = []byte("FENCE")
)

// messageBody is magic | id | filler, 12 bytes to about 4 KiB, the filler
// derived from the id so that any corruption of a recovered body shows.
func messageBody(id uint64) []byte {
	n := int(mix(id^0x5bd1e995) % 4096)
	b := make([]byte, 12, 12+n+8)
	copy(b, msgMagic)
	binary.LittleEndian.PutUint64(b[4:], id)
	for x := id; len(b) < 12+n; {
		x = mix(x)
		b = binary.LittleEndian.AppendUint64(b, x)
	}
	return b[:12+n]
}

type bodyKind int

const (
	bodyMessage bodyKind = iota
	bodyFence
	bodyCorrupt
)

// parseBody tells a load message (and its id) from a fence, and both from a
// body that is neither or does not match its id.
func parseBody(b []byte) (uint64, bodyKind) {
	if string(b) == string(fenceBody) {
		return 0, bodyFence
	}
	if len(b) < 12 || string(b[:4]) != string(msgMagic) {
		return 0, bodyCorrupt
	}
	id := binary.LittleEndian.Uint64(b[4:])
	if string(b) != string(messageBody(id)) {
		return id, bodyCorrupt
	}
	return id, bodyMessage
}

// copyKey is one copy of a message: a publish routed to two queues makes two.
type copyKey struct {
	q  int
	id uint64
}

// copyState is what the clients know about one copy. The broker's promise is
// checked against it.
type copyState struct {
	confirmed bool // the publisher got basic.ack for it
	acked     bool // a consumer sent (or tried to send) basic.ack for a delivery of it
	// ackDurable: an ack for it was sent, then a basic.qos round trip
	// completed, then a fence publish on the same channel was confirmed.
	// Warren's reader defers acks, but hands them to the queues (and the
	// queues to the store) before it handles another method or reads
	// again, so they reached the store before qos-ok was sent and before
	// the fence was appended; the store writes acks in the group-commit
	// round of the appends after them or an earlier one, and sends the
	// confirm after that round's write: the ack survives a kill. Without
	// the round trip an ack and the publish after it can be read together
	// and the publish appended first (AMQP promises no order here either).
	ackDurable bool
	// markDurable: a delivery of it reached the client before a confirmed
	// fence to the same queue from the same channel (the delivery mark is
	// queued under the queue lock the fence's enqueue takes later, so the
	// same argument holds), or it came back redelivered=true after a
	// restart, which means the mark was read back from the disk.
	markDurable bool
	deliveries  int
	lastRun     int // run of the last delivery; 0 if none
	sentRun     int // run it was published in
}

// ledger is the clients' record of every copy, shared by all goroutines of
// the load.
type ledger struct {
	mu     sync.Mutex
	copies map[copyKey]*copyState
	counts counts
	// violations by kind, with up to maxExamples examples each.
	violations map[string][]string
	vcount     map[string]int
}

// counts are the totals the test reports.
type counts struct {
	published, confirmed, unconfirmed int
	deliveries, acks                  int
	// repeats are deliveries of a copy already delivered in an earlier run,
	// split by the redelivered flag; ackedRepeats are those of copies the
	// client had acked.
	repeatsTrue, repeatsFalse           int
	ackedRepeatsTrue, ackedRepeatsFalse int
	// firstTrue are first deliveries flagged redelivered: the broker had
	// delivered them before a kill but the client never got them.
	firstTrue int
	// coveredAcks and coveredMarks count copies made ackDurable/markDurable
	// by fences.
	coveredAcks, coveredMarks int
}

func (c counts) repeats() int {
	return c.repeatsTrue + c.repeatsFalse + c.ackedRepeatsTrue + c.ackedRepeatsFalse
}

const maxExamples = 8

func newLedger() *ledger {
	return &ledger{copies: map[copyKey]*copyState{}, violations: map[string][]string{}, vcount: map[string]int{}}
}

func (l *ledger) violateLocked(kind, format string, args ...any) {
	l.vcount[kind]++
	if len(l.violations[kind]) < maxExamples {
		l.violations[kind] = append(l.violations[kind], fmt.Sprintf(format, args...))
	}
}

func (l *ledger) violate(kind, format string, args ...any) {
	l.mu.Lock()
	l.violateLocked(kind, format, args...)
	l.mu.Unlock()
}

// sent records a publish about to be sent in run.
func (l *ledger) sent(run int, id uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.counts.published++
	for _, q := range routeOf(id).queues {
		l.copies[copyKey{q, id}] = &copyState{sentRun: run}
	}
}

// settled records the outcome of a publish: confirmed (basic.ack arrived)
// or not (nacked, or the connection died first).
func (l *ledger) settled(id uint64, acked bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !acked {
		l.counts.unconfirmed++
		return
	}
	l.counts.confirmed++
	for _, q := range routeOf(id).queues {
		l.copies[copyKey{q, id}].confirmed = true
	}
}

// delivered checks one delivery against what is known of its copy.
func (l *ledger) delivered(run, q int, id uint64, redelivered bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.counts.deliveries++
	c := l.copies[copyKey{q, id}]
	if c == nil {
		l.violateLocked("delivered a message never published to that queue", "run %d %s: %s", run, queueNames[q], fmtID(id))
		return
	}
	where := fmt.Sprintf("run %d %s: %s redelivered=%v (published in run %d; delivered %d times before, last in run %d; confirmed=%v acked=%v)",
		run, queueNames[q], fmtID(id), redelivered, c.sentRun, c.deliveries, c.lastRun, c.confirmed, c.acked)
	switch {
	case c.lastRun == run:
		// No consumer of the load rejects, nacks or closes its channel
		// while the broker lives, so nothing is requeued within a run.
		l.violateLocked("delivered twice in one run", "%s", where)
	case c.ackDurable:
		l.violateLocked("delivered again after an ack a confirmed fence covered", "%s", where)
	case c.markDurable && !redelivered:
		l.violateLocked("redelivered=false after a durable delivery mark", "%s", where)
	case redelivered && c.sentRun == run:
		// Within a run only a requeue sets the flag, and nothing is requeued.
		l.violateLocked("redelivered=true for a message of this run never requeued", "%s", where)
	}
	if c.deliveries == 0 {
		if redelivered {
			l.counts.firstTrue++
		}
	} else {
		switch {
		case c.acked && redelivered:
			l.counts.ackedRepeatsTrue++
		case c.acked:
			l.counts.ackedRepeatsFalse++
		case redelivered:
			l.counts.repeatsTrue++
		default:
			l.counts.repeatsFalse++
		}
	}
	if redelivered {
		// Nothing is requeued within a run: the flag came from the store.
		c.markDurable = true
	}
	c.deliveries++
	c.lastRun = run
}

// acked records that a consumer is about to ack a delivery of the copy.
func (l *ledger) acked(q int, id uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.counts.acks++
	if c := l.copies[copyKey{q, id}]; c != nil {
		c.acked = true
	}
}

// covered records what a confirmed fence proved durable: the delivery marks
// of delivered and the acks of acked (both ids of queue q).
func (l *ledger) covered(q int, delivered, acked []uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, id := range delivered {
		if c := l.copies[copyKey{q, id}]; c != nil && !c.markDurable {
			c.markDurable = true
			l.counts.coveredMarks++
		}
	}
	for _, id := range acked {
		if c := l.copies[copyKey{q, id}]; c != nil && !c.ackDurable {
			c.ackDurable = true
			l.counts.coveredAcks++
		}
	}
}

// uncovered counts the copies delivered in run whose ack (of those acked) or
// delivery mark no confirmed fence proved durable: what the kill may undo.
func (l *ledger) uncovered(run int) (acks, marks int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.copies {
		if c.lastRun != run {
			continue
		}
		if c.acked && !c.ackDurable {
			acks++
		}
		if !c.markDurable {
			marks++
		}
	}
	return acks, marks
}

func (l *ledger) snapshot() counts {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.counts
}

// checkFinal applies THE assertion after the final drain (run finalRun):
// every confirmed copy that no consumer ever acked was delivered in the drain.
// It also counts unconfirmed copies that survived.
func (l *ledger) checkFinal(finalRun int) (lost []copyKey, unconfirmedSurvived, unconfirmedGone int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, c := range l.copies {
		switch {
		case c.confirmed && !c.acked && c.lastRun != finalRun:
			lost = append(lost, k)
		case !c.confirmed && c.deliveries > 0:
			unconfirmedSurvived++
		case !c.confirmed:
			unconfirmedGone++
		}
	}
	slices.SortFunc(lost, func(a, b copyKey) int {
		if a.id != b.id {
			if a.id < b.id {
				return -1
			}
			return 1
		}
		return a.q - b.q
	})
	return lost, unconfirmedSurvived, unconfirmedGone
}

// describe says what is known of one copy, for a failure report.
func (l *ledger) describe(k copyKey) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.copies[k]
	return fmt.Sprintf("%s %s: %+v", queueNames[k.q], fmtID(k.id), *c)
}

// report fails t for every violation, listing examples.
func (l *ledger) report(t *testing.T) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	kinds := make([]string, 0, len(l.vcount))
	for k := range l.vcount {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		t.Errorf("VIOLATION %s: %d time(s), e.g.\n  %s", k, l.vcount[k], strings.Join(l.violations[k], "\n  "))
	}
}
