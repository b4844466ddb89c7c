package broker

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"github.com/warren-mq/warren/internal/amqp091"
	"github.com/warren-mq/warren/internal/store"
)

// skewClock moves the broker's clock d further on until the test ends.
func skewClock(t testing.TB, d time.Duration) {
	clockSkew.Add(int64(d))
	t.Cleanup(func() { clockSkew.Add(-int64(d)) })
}

// testMessage is message i (its body is i, 8 bytes) with the given
// properties (persistent: delivery mode 2; priority; expiration, "" for none).
func testMessage(t testing.TB, key string, i int, persistent bool, priority uint8, expiration string) *Message {
	t.Helper()
	p := amqp091.Properties{DeliveryMode: 1, Priority: priority, Expiration: expiration}
	if persistent {
		p.DeliveryMode = 2
	}
	m, err := NewMessage("", key, p.Append(nil), binary.BigEndian.AppendUint64(nil, uint64(i)))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// publishMsg publishes m through the default exchange.
func (n *tailNode) publishMsg(m *Message) PublishResult {
	ex, _ := n.v.Exchange("")
	return n.v.Publish(&n.r, ex, m, nil)
}

// recordV1 encodes a message record as Warren wrote it before records held
// their enqueue time (format 1).
func recordV1(exchange, key string, props, body []byte) []byte {
	var b []byte
	for _, s := range []string{exchange, key} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = binary.AppendUvarint(b, uint64(len(props)))
	b = append(b, props...)
	return append(b, body...)
}

// TestQueueRecordFormat: a record holds its enqueue time and decodes with
// the rest as before; format 1 records decode with no time; no format 1
// record begins with format 2's marker; recordBodyLen agrees with the
// decoder and is -1 for a corrupt record.
func TestQueueRecordFormat(t *testing.T) {
	before := nowNano() / int64(time.Millisecond) * int64(time.Millisecond)
	m := testMessage(t, "key", 7, true, 0, "1000")
	m.Exchange = "ex"
	rec := m.record()
	after := nowNano()
	r, err := splitRecord(rec)
	if err != nil {
		t.Fatal(err)
	}
	if r.enqueued < before || r.enqueued > after {
		t.Fatalf("enqueued %d, not in [%d, %d]", r.enqueued, before, after)
	}
	body, _ := m.Body()
	if string(r.exchange) != "ex" || string(r.routingKey) != "key" || !bytes.Equal(r.props, m.Props) || !bytes.Equal(r.body, body) {
		t.Fatalf("decoded %+v", r)
	}
	if got := recordBodyLen(rec); got != int64(len(body)) {
		t.Fatalf("recordBodyLen %d, want %d", got, len(body))
	}
	v1 := recordV1("ex", "key", m.Props, body)
	r1, err := splitRecord(v1)
	if err != nil || r1.enqueued != 0 || string(r1.exchange) != "ex" || string(r1.routingKey) != "key" || !bytes.Equal(r1.props, m.Props) || !bytes.Equal(r1.body, body) {
		t.Fatalf("format 1: %+v, %v", r1, err)
	}
	if got := recordBodyLen(v1); got != int64(len(body)) {
		t.Fatalf("format 1: recordBodyLen %d", got)
	}
	for n := range 256 { // exchange names are at most 255 bytes
		if b := binary.AppendUvarint(nil, uint64(n)); len(b) > 1 && b[0] == recordMark0 && b[1] == recordMark1 {
			t.Fatalf("a format 1 record with a %d-byte exchange begins with the marker", n)
		}
	}
	for _, bad := range [][]byte{{recordMark0, recordMark1}, {recordMark0, recordMark1, 0x80}, {5, 'a'}, {0, 0, 3, 1}, {}} {
		if _, err := splitRecord(bad); err == nil {
			t.Fatalf("%x decodes", bad)
		}
		if got := recordBodyLen(bad); got != -1 {
			t.Fatalf("recordBodyLen(%x) = %d", bad, got)
		}
	}
}

// TestQueueTTLRestart: TTLs count from the enqueue time stored in each
// record, so after a restart (clean or a crash) with the clock moved past
// them, messages in the window and in the disk tail are gone — dead-lettered
// where the queue has a dead-letter exchange — and never delivered, while
// those not yet due are delivered in order. Per-queue TTL and per-message
// expiration alike.
func TestQueueTTLRestart(t *testing.T) {
	for _, crash := range []bool{false, true} {
		n := newTailNode(t, true)
		dlq := n.declare("dlq", true, nil)
		q1 := n.declare("q1", true, amqp091.Table{"x-message-ttl": int64(60_000),
			"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "dlq"})
		n.declare("q2", true, nil)
		n.declare("q3", true, amqp091.Table{"x-message-ttl": int64(3_600_000)})
		const total = tailWindow + 3000
		const short = tailWindow + 1000 // q2's first: 1 min, the rest 2 h
		for i := range total {
			n.publish("q1", i, true, nil)
			n.publish("q3", i, true, nil)
			exp := "7200000"
			if i < short {
				exp = "60000"
			}
			n.publishMsg(testMessage(t, "q2", i, true, 0, exp))
		}
		if _, tl := tailState(q1); tl == 0 {
			t.Fatal("no tail")
		}
		n.reopen(crash)
		if m, _ := n.queue("dlq").Counts(); m != 0 {
			t.Fatalf("crash %v: %d dead letters before the TTLs passed", crash, m)
		}
		skewClock(t, 2*time.Minute)
		n.reopen(crash)
		q1, dlq = n.queue("q1"), n.queue("dlq")
		waitFor(t, "q1 to expire", func() bool { m, _ := q1.Counts(); return m == 0 })
		waitFor(t, "dead letters", func() bool { m, _ := dlq.Counts(); return m == total })
		checkOrder(t, consume(t, dlq, total, nil), 0)
		q2 := n.queue("q2")
		checkOrder(t, consume(t, q2, total-short, nil), short)
		if m, _ := q2.Counts(); m != 0 {
			t.Fatalf("crash %v: q2 holds %d after its messages were consumed", crash, m)
		}
		checkOrder(t, consume(t, n.queue("q3"), total, nil), 0) // 2 min < 1 h
	}
}

// TestQueueTTLFormat1: records written before records held their time
// (format 1) count as enqueued at the restart: a TTL not yet passed since
// then keeps them, one passed since then expires them, window and tail alike.
func TestQueueTTLFormat1(t *testing.T) {
	n := newTailNode(t, true)
	n.declare("old", true, amqp091.Table{"x-message-ttl": int64(60_000)})
	n.b.Close()
	st, err := store.Open(n.dir, store.Options{Sync: store.SyncNever, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	const total = tailWindow + 2000
	props := []byte{0x10, 0, 2}
	for i := range total {
		data := recordV1("", "old", props, binary.BigEndian.AppendUint64(nil, uint64(i)))
		st.AppendMessages([]store.MessageRecord{{VHost: "/", Queue: "old", ID: uint64(i), Data: data}}, func(error) {})
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	skewClock(t, 30*time.Minute) // long before the restart: counts for nothing
	n.open()
	q := n.queue("old")
	if m, _ := q.Counts(); m != total {
		t.Fatalf("%d messages after the restart, want %d", m, total)
	}
	skewClock(t, 30*time.Second) // the TTL has not passed since the restart
	const half = total / 2
	checkOrder(t, consume(t, q, half, nil), 0)
	skewClock(t, time.Minute) // now it has
	waitFor(t, "expiry", func() bool {
		if e, _, _, ok, _ := q.Get(true); ok {
			t.Fatalf("got #%d after its TTL", bodyIndex(t, e))
		}
		m, _ := q.Counts()
		return m == 0
	})
}
