package entities

import (
	"maps"
	"slices"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// death is the expected content of one x-death entry.
type death struct {
	queue, reason, exchange string
	keys                    []string
	count                   int64
	originalExpiration      string // "" when the message had no expiration
}

// xDeath returns the message's x-death array, failing the test if it is missing or
// malformed.
func xDeath(t *testing.T, d amqp.Delivery) []amqp.Table {
	t.Helper()
	raw, ok := d.Headers["x-death"]
	if !ok {
		t.Fatalf("no x-death header in %v", d.Headers)
	}
	arr, ok := raw.([]any)
	if !ok {
		t.Fatalf("x-death is %T, want an array", raw)
	}
	out := make([]amqp.Table, len(arr))
	for i, e := range arr {
		if out[i], ok = e.(amqp.Table); !ok {
			t.Fatalf("x-death[%d] is %T, want a table", i, e)
		}
	}
	return out
}

// wantDeath checks one x-death entry field by field, including the field types
// RabbitMQ uses (count is a long, time a timestamp, routing-keys an array of longstr),
// and that it has no fields beyond these.
func wantDeath(t *testing.T, entry amqp.Table, want death) {
	t.Helper()
	fields := []string{"count", "exchange", "queue", "reason", "routing-keys", "time"}
	if want.originalExpiration != "" {
		fields = append(fields, "original-expiration")
	}
	slices.Sort(fields)
	if got := slices.Sorted(maps.Keys(entry)); !equalStrings(got, fields) {
		t.Fatalf("x-death entry has fields %q, want %q (entry %v)", got, fields, entry)
	}
	if c, ok := entry["count"].(int64); !ok || c != want.count {
		t.Errorf("x-death count = %#v, want int64 %d", entry["count"], want.count)
	}
	for _, f := range []struct{ key, want string }{
		{"queue", want.queue}, {"reason", want.reason}, {"exchange", want.exchange},
		{"original-expiration", want.originalExpiration},
	} {
		if f.key == "original-expiration" && f.want == "" {
			continue
		}
		if s, ok := entry[f.key].(string); !ok || s != f.want {
			t.Errorf("x-death %s = %#v, want %q", f.key, entry[f.key], f.want)
		}
	}
	arr, ok := entry["routing-keys"].([]any)
	keys := make([]string, 0, len(arr))
	for _, k := range arr {
		s, isStr := k.(string)
		ok = ok && isStr
		keys = append(keys, s)
	}
	if !ok || !equalStrings(keys, want.keys) {
		t.Errorf("x-death routing-keys = %#v, want %q", entry["routing-keys"], want.keys)
	}
	// A sanity check of the value, not a timing assertion: it is a real, recent clock
	// reading in seconds, not zero or milliseconds.
	if ts, ok := entry["time"].(time.Time); !ok || ts.Before(time.Now().Add(-time.Hour)) || ts.After(time.Now().Add(time.Hour)) {
		t.Errorf("x-death time = %#v, want a timestamp of now", entry["time"])
	}
	if t.Failed() {
		t.FailNow()
	}
}

// wantFirstDeath checks the x-first-death-* headers RabbitMQ adds on first dead-lettering.
func wantFirstDeath(t *testing.T, d amqp.Delivery, queue, reason, exchange string) {
	t.Helper()
	for _, h := range []struct{ key, want string }{
		{"x-first-death-queue", queue}, {"x-first-death-reason", reason}, {"x-first-death-exchange", exchange},
	} {
		if s, ok := d.Headers[h.key].(string); !ok || s != h.want {
			t.Fatalf("%s = %#v, want %q", h.key, d.Headers[h.key], h.want)
		}
	}
}

func TestDeadLetterReject(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ch := f.channel()
	dlx, dlq := deadLetterTarget(t, f, ch)
	x := f.exchange(ch, "x", "direct", nil)
	q := f.queue(ch, "q", amqp.Table{"x-dead-letter-exchange": dlx})
	bind(t, ch, q, x, "orig-key", nil)
	publish(t, ch, x, "orig-key", amqp.Publishing{
		Body: []byte("m"), Headers: amqp.Table{"app": "kept"}, CorrelationId: "corr", ContentType: "text/plain",
	})
	got := getOneManual(t, ch, q)
	if err := got.Reject(false); err != nil {
		t.Fatalf("reject: %v", err)
	}
	dead := getN(t, ch, dlq, 1)[0]
	if string(dead.Body) != "m" || dead.CorrelationId != "corr" || dead.ContentType != "text/plain" || dead.Headers["app"] != "kept" {
		t.Fatalf("dead-lettered message lost content: body %q corr %q type %q headers %v", dead.Body, dead.CorrelationId, dead.ContentType, dead.Headers)
	}
	// It is published anew by the dead-letter exchange, with the original routing key.
	if dead.Exchange != dlx || dead.RoutingKey != "orig-key" || dead.Redelivered {
		t.Fatalf("dead-lettered delivery: exchange %q key %q redelivered %v, want %q orig-key false", dead.Exchange, dead.RoutingKey, dead.Redelivered, dlx)
	}
	deaths := xDeath(t, dead)
	if len(deaths) != 1 {
		t.Fatalf("x-death has %d entries", len(deaths))
	}
	wantDeath(t, deaths[0], death{queue: q, reason: "rejected", exchange: x, keys: []string{"orig-key"}, count: 1})
	wantFirstDeath(t, dead, q, "rejected", x)
	if n := messageCount(t, ch, q); n != 0 {
		t.Fatalf("source queue still holds %d", n)
	}
}

func TestDeadLetterNackMultiple(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ch := f.channel()
	dlx, dlq := deadLetterTarget(t, f, ch)
	q := f.queue(ch, "q", amqp.Table{"x-dead-letter-exchange": dlx})
	for _, b := range []string{"1", "2", "3"} {
		publishBody(t, ch, "", q, b)
	}
	cch := f.channel()
	ds := consume(t, cch, q, "c", false, nil)
	var last amqp.Delivery
	for range 3 {
		last = recv(t, ds)
	}
	if err := last.Nack(true, false); err != nil {
		t.Fatalf("nack: %v", err)
	}
	dead := getN(t, ch, dlq, 3)
	if got := bodies(dead); !equalStrings(got, []string{"1", "2", "3"}) {
		t.Fatalf("dead-lettered %q, want 1 2 3", got)
	}
	for _, d := range dead {
		wantDeath(t, xDeath(t, d)[0], death{queue: q, reason: "rejected", exchange: "", keys: []string{q}, count: 1})
	}
}

// requeue=true puts the message back (redelivered) instead of dead-lettering it.
func TestDeadLetterRejectRequeueNotDeadLettered(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ch := f.channel()
	dlx, dlq := deadLetterTarget(t, f, ch)
	q := f.queue(ch, "q", amqp.Table{"x-dead-letter-exchange": dlx})
	publishBody(t, ch, "", q, "m")
	waitMessageCount(t, ch, q, 1)
	d, ok, err := ch.Get(q, false)
	if err != nil || !ok {
		t.Fatalf("get: ok=%v err=%v", ok, err)
	}
	if err := d.Reject(true); err != nil {
		t.Fatalf("reject: %v", err)
	}
	again := getN(t, ch, q, 1)[0]
	if string(again.Body) != "m" || !again.Redelivered || again.Headers["x-death"] != nil {
		t.Fatalf("requeued message %q redelivered=%v headers %v", again.Body, again.Redelivered, again.Headers)
	}
	wantDrain(t, ch, dlq)
}

// x-dead-letter-routing-key replaces the routing key; x-death keeps the original ones.
func TestDeadLetterRoutingKey(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ch := f.channel()
	dlx := f.exchange(ch, "dlx", "direct", nil)
	dlq := f.queue(ch, "dlq", nil)
	bind(t, ch, dlq, dlx, "dead", nil)
	q := f.queue(ch, "q", amqp.Table{"x-dead-letter-exchange": dlx, "x-dead-letter-routing-key": "dead"})
	publishBody(t, ch, "", q, "m")
	waitMessageCount(t, ch, q, 1)
	d, _, err := ch.Get(q, false)
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	if err := d.Nack(false, false); err != nil {
		t.Fatalf("nack: %v", err)
	}
	dead := getN(t, ch, dlq, 1)[0]
	if dead.RoutingKey != "dead" {
		t.Fatalf("dead-lettered with key %q, want dead", dead.RoutingKey)
	}
	wantDeath(t, xDeath(t, dead)[0], death{queue: q, reason: "rejected", exchange: "", keys: []string{q}, count: 1})
}

// CC routing keys are part of the message's routing keys and recorded in x-death.
func TestDeadLetterRoutingKeysIncludeCC(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ch := f.channel()
	dlx, dlq := deadLetterTarget(t, f, ch)
	x := f.exchange(ch, "x", "direct", nil)
	q := f.queue(ch, "q", amqp.Table{"x-dead-letter-exchange": dlx})
	bind(t, ch, q, x, "cc-key", nil)
	publish(t, ch, x, "main-key", amqp.Publishing{Body: []byte("m"), Headers: amqp.Table{"CC": []any{"cc-key"}}})
	waitMessageCount(t, ch, q, 1)
	d, _, err := ch.Get(q, false)
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	if err := d.Reject(false); err != nil {
		t.Fatalf("reject: %v", err)
	}
	dead := getN(t, ch, dlq, 1)[0]
	wantDeath(t, xDeath(t, dead)[0], death{queue: q, reason: "rejected", exchange: x, keys: []string{"main-key", "cc-key"}, count: 1})
}

// Dying again in the same queue for the same reason increments that entry's count and
// moves it to the front; x-first-death-* keep the first death.
func TestDeadLetterRepeatedCount(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ch := f.channel()
	q1, q2 := f.queueName("q1"), f.queueName("q2")
	// Each queue dead-letters into the other through the default exchange.
	for _, p := range [][2]string{{q1, q2}, {q2, q1}} {
		if _, err := ch.QueueDeclare(p[0], false, false, false, false, amqp.Table{
			"x-dead-letter-exchange": "", "x-dead-letter-routing-key": p[1],
		}); err != nil {
			t.Fatalf("declare %q: %v", p[0], err)
		}
	}
	publishBody(t, ch, "", q1, "m")
	var d amqp.Delivery
	for _, q := range []string{q1, q2, q1} {
		d = getOneManual(t, ch, q)
		if err := d.Reject(false); err != nil {
			t.Fatalf("reject: %v", err)
		}
	}
	d = getN(t, ch, q2, 1)[0]
	deaths := xDeath(t, d)
	if len(deaths) != 2 {
		t.Fatalf("x-death has %d entries, want 2: %v", len(deaths), deaths)
	}
	wantDeath(t, deaths[0], death{queue: q1, reason: "rejected", exchange: "", keys: []string{q1}, count: 2})
	wantDeath(t, deaths[1], death{queue: q2, reason: "rejected", exchange: "", keys: []string{q2}, count: 1})
	wantFirstDeath(t, d, q1, "rejected", "")
}

// getOneManual waits for one message on queue and returns it unacknowledged.
func getOneManual(t *testing.T, ch *amqp.Channel, queue string) amqp.Delivery {
	t.Helper()
	var d amqp.Delivery
	deadline := time.Now().Add(waitTimeout)
	for {
		var ok bool
		var err error
		if d, ok, err = ch.Get(queue, false); err != nil {
			t.Fatalf("get %q: %v", queue, err)
		} else if ok {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("no message in %q", queue)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A dead-letter exchange that does not exist drops the message without any error.
func TestDeadLetterMissingExchangeDrops(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ch := f.channel()
	q := f.queue(ch, "q", amqp.Table{"x-dead-letter-exchange": f.name("missing")})
	publishBody(t, ch, "", q, "m")
	d := getOneManual(t, ch, q)
	if err := d.Reject(false); err != nil {
		t.Fatalf("reject: %v", err)
	}
	wantDrain(t, ch, q)
	if ch.IsClosed() {
		t.Fatal("channel closed")
	}
}

// A message that would be dead-lettered back into the queue it expired from, with no
// rejection on the way, is not delivered there again: other destinations still get it.
func TestDeadLetterExpiryCycleDropped(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ch := f.channel()
	loopx := f.exchange(ch, "loopx", "fanout", nil)
	q := f.queue(ch, "loop", amqp.Table{"x-dead-letter-exchange": loopx})
	observer := f.queue(ch, "observer", nil)
	bind(t, ch, q, loopx, "", nil)
	bind(t, ch, observer, loopx, "", nil)
	publish(t, ch, "", q, amqp.Publishing{Body: []byte("m"), Expiration: "10"})
	d := getN(t, ch, observer, 1)[0]
	wantDeath(t, xDeath(t, d)[0], death{queue: q, reason: "expired", exchange: "", keys: []string{q}, count: 1, originalExpiration: "10"})
	// The copy for q would have been routed together with the observer's. Without an
	// expiration it would sit there for good.
	wantDrain(t, ch, q)
}

// A rejected message that carried an expiration loses it on dead-lettering; x-death
// records it as original-expiration.
func TestDeadLetterRejectKeepsOriginalExpiration(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ch := f.channel()
	dlx, dlq := deadLetterTarget(t, f, ch)
	q := f.queue(ch, "q", amqp.Table{"x-dead-letter-exchange": dlx})
	publish(t, ch, "", q, amqp.Publishing{Body: []byte("m"), Expiration: "600000"})
	d := getOneManual(t, ch, q)
	if d.Expiration != "600000" {
		t.Fatalf("delivered with expiration %q, want 600000", d.Expiration)
	}
	if err := d.Reject(false); err != nil {
		t.Fatalf("reject: %v", err)
	}
	dead := getN(t, ch, dlq, 1)[0]
	if dead.Expiration != "" {
		t.Fatalf("dead-lettered message keeps expiration %q", dead.Expiration)
	}
	wantDeath(t, xDeath(t, dead)[0], death{queue: q, reason: "rejected", exchange: "", keys: []string{q}, count: 1, originalExpiration: "600000"})
}
