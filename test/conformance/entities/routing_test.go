package entities

import (
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

func TestRouteDirect(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ch := f.channel()
	x := f.exchange(ch, "x", "direct", nil)
	q1 := f.queue(ch, "q1", nil)
	q2 := f.queue(ch, "q2", nil)
	bind(t, ch, q1, x, "a", nil)
	bind(t, ch, q1, x, "b", nil)
	bind(t, ch, q2, x, "b", nil)
	bind(t, ch, q2, x, "", nil)
	for _, key := range []string{"a", "b", "c", "", "A", "a.b"} {
		publishBody(t, ch, x, key, "key:"+key)
	}
	wantDrain(t, ch, q1, "key:a", "key:b")
	wantDrain(t, ch, q2, "key:b", "key:")
}

func TestRouteFanoutIgnoresKey(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ch := f.channel()
	x := f.exchange(ch, "x", "fanout", nil)
	q1 := f.queue(ch, "q1", nil)
	q2 := f.queue(ch, "q2", nil)
	bind(t, ch, q1, x, "", nil)
	bind(t, ch, q2, x, "some-key", nil)
	publishBody(t, ch, x, "", "one")
	publishBody(t, ch, x, "other-key", "two")
	wantDrain(t, ch, q1, "one", "two")
	wantDrain(t, ch, q2, "one", "two")
}

// Fanout binding keys are part of the binding's identity: two keys are two bindings,
// yet the queue gets one copy.
func TestRouteFanoutTwoBindingsOneCopy(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ch := f.channel()
	x := f.exchange(ch, "x", "fanout", nil)
	q := f.queue(ch, "q", nil)
	bind(t, ch, q, x, "a", nil)
	bind(t, ch, q, x, "b", nil)
	publishBody(t, ch, x, "", "once")
	if err := ch.QueueUnbind(q, "a", x, nil); err != nil {
		t.Fatalf("unbind a: %v", err)
	}
	publishBody(t, ch, x, "", "still-bound-by-b")
	wantDrain(t, ch, q, "once", "still-bound-by-b")
}

func TestRouteTopicPatterns(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ch := f.channel()
	x := f.exchange(ch, "x", "topic", nil)
	keys := []string{"", "a", "b", "a.b", "a.b.c", "a.b.c.d", "a.", "a..b", "a.x.b", "a.x.y.b",
		"x.y.a", "b.a", "A.b", "a*.b", "ab.b", "abc", "a.b.b"}
	cases := []struct {
		pattern string
		want    []string // keys that match, in publish order
	}{
		{"a.b.c", []string{"a.b.c"}},
		{"a.*", []string{"a.", "a.b"}},
		{"*", []string{"a", "b", "abc"}},
		{"#", keys},
		{"a.#", []string{"a", "a.b", "a.b.c", "a.b.c.d", "a.", "a..b", "a.x.b", "a.x.y.b", "a.b.b"}},
		{"#.a", []string{"a", "x.y.a", "b.a"}},
		{"a.#.b", []string{"a.b", "a..b", "a.x.b", "a.x.y.b", "a.b.b"}},
		{"*.#", []string{"a", "b", "a.b", "a.b.c", "a.b.c.d", "a.", "a..b", "a.x.b", "a.x.y.b", "x.y.a", "b.a", "A.b", "a*.b", "ab.b", "abc", "a.b.b"}},
		{"#.*", []string{"a", "b", "a.b", "a.b.c", "a.b.c.d", "a.", "a..b", "a.x.b", "a.x.y.b", "x.y.a", "b.a", "A.b", "a*.b", "ab.b", "abc", "a.b.b"}},
		{"#.#", keys},
		{"a.*.#", []string{"a.b", "a.b.c", "a.b.c.d", "a.", "a..b", "a.x.b", "a.x.y.b", "a.b.b"}},
		{"a.*.b", []string{"a..b", "a.x.b", "a.b.b"}},
		{"*.*", []string{"a.b", "a.", "A.b", "a*.b", "ab.b", "b.a"}},
		{"a..b", []string{"a..b"}},
		{"", []string{""}},
		{"a*.b", []string{"a*.b"}},
		{"#.b.#", []string{"b", "a.b", "a.b.c", "a.b.c.d", "a..b", "a.x.b", "a.x.y.b", "b.a", "A.b", "a*.b", "ab.b", "a.b.b"}},
	}
	queues := make([]string, len(cases))
	for i, c := range cases {
		queues[i] = f.queue(ch, "q", nil)
		bind(t, ch, queues[i], x, c.pattern, nil)
	}
	for _, k := range keys {
		publishBody(t, ch, x, k, "key:"+k)
	}
	for i, c := range cases {
		got := drain(t, ch, queues[i])
		want := make([]string, 0, len(c.want))
		for _, k := range keys { // expected in publish order
			for _, w := range c.want {
				if w == k {
					want = append(want, "key:"+k)
				}
			}
		}
		if !equalStrings(got, want) {
			t.Errorf("pattern %q matched %q, want %q", c.pattern, got, want)
		}
	}
}

// A queue whose several bindings match the same message gets one copy.
func TestRouteTopicOverlappingBindingsOneCopy(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ch := f.channel()
	x := f.exchange(ch, "x", "topic", nil)
	q := f.queue(ch, "q", nil)
	for _, p := range []string{"a.b", "a.*", "#", "a.#", "*.b"} {
		bind(t, ch, q, x, p, nil)
	}
	publishBody(t, ch, x, "a.b", "once")
	wantDrain(t, ch, q, "once")
}

func TestRouteHeaders(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ch := f.channel()
	x := f.exchange(ch, "x", "headers", nil)
	bindings := []struct {
		name string
		args amqp.Table
	}{
		{"all", amqp.Table{"x-match": "all", "a": "1", "b": "2"}},
		{"any", amqp.Table{"x-match": "any", "a": "1", "b": "2"}},
		{"default-is-all", amqp.Table{"a": "1", "b": "2"}},
		{"empty-all", amqp.Table{"x-match": "all"}},
		{"empty-any", amqp.Table{"x-match": "any"}},
		// Integer types compare by value across widths; strings never equal integers.
		{"int", amqp.Table{"x-match": "all", "n": int32(1)}},
		// A void value asks only for the header's presence.
		{"void", amqp.Table{"x-match": "all", "p": nil}},
		// all/any ignore binding arguments starting with "x-" ...
		{"x-ignored", amqp.Table{"x-match": "all", "x-foo": "1"}},
		{"x-ignored-any", amqp.Table{"x-match": "any", "x-foo": "1"}},
		// ... all-with-x/any-with-x include them.
		{"all-with-x", amqp.Table{"x-match": "all-with-x", "x-foo": "1"}},
		{"any-with-x", amqp.Table{"x-match": "any-with-x", "x-foo": "1", "a": "9"}},
	}
	messages := []struct {
		body    string
		headers amqp.Table
	}{
		{"ab", amqp.Table{"a": "1", "b": "2"}},
		{"a", amqp.Table{"a": "1"}},
		{"a-b3", amqp.Table{"a": "1", "b": "3"}},
		{"none", nil},
		{"int64", amqp.Table{"n": int64(1)}},
		{"int8", amqp.Table{"n": int8(1)}},
		{"string1", amqp.Table{"n": "1"}},
		{"p", amqp.Table{"p": "anything"}},
		{"x-foo", amqp.Table{"x-foo": "1"}},
		{"abc", amqp.Table{"a": "1", "b": "2", "c": "3"}},
		{"b-int", amqp.Table{"a": "1", "b": int32(2)}},
	}
	want := map[string][]string{
		"all":            {"ab", "abc"},
		"any":            {"ab", "a", "a-b3", "abc", "b-int"},
		"default-is-all": {"ab", "abc"},
		"empty-all":      {"ab", "a", "a-b3", "none", "int64", "int8", "string1", "p", "x-foo", "abc", "b-int"},
		"empty-any":      {},
		"int":            {"int64", "int8"},
		"void":           {"p"},
		"x-ignored":      {"ab", "a", "a-b3", "none", "int64", "int8", "string1", "p", "x-foo", "abc", "b-int"},
		"x-ignored-any":  {},
		"all-with-x":     {"x-foo"},
		"any-with-x":     {"x-foo"},
	}
	queues := make([]string, len(bindings))
	for i, b := range bindings {
		queues[i] = f.queue(ch, "q", nil)
		bind(t, ch, queues[i], x, "", b.args)
	}
	for i, m := range messages {
		// The routing key plays no part in headers routing.
		key := []string{"", "k", "a.b"}[i%3]
		publish(t, ch, x, key, amqp.Publishing{Headers: m.headers, Body: []byte(m.body)})
	}
	for i, b := range bindings {
		got := drain(t, ch, queues[i])
		if !equalStrings(got, want[b.name]) {
			t.Errorf("binding %s %v matched %q, want %q", b.name, b.args, got, want[b.name])
		}
	}
}

func TestRouteHeadersInvalidMatch(t *testing.T) {
	t.Parallel()
	f := setup(t)
	conn, ch := f.connChannel()
	x := f.exchange(ch, "x", "headers", nil)
	q := f.queue(ch, "q", nil)
	err := ch.QueueBind(q, "", x, false, amqp.Table{"x-match": "foo"})
	wantChannelError(t, conn, ch, err, amqp.PreconditionFailed,
		`PRECONDITION_FAILED - Invalid x-match field value <<"foo">>; expected all, any, all-with-x, or any-with-x`)
}

// Publishing to "amq.default" does not reach the default exchange: the name does not exist.
func TestRouteAmqDefaultNotFound(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ch := f.channel()
	q := f.queue(ch, "q", nil)
	closed := notifyClose(ch)
	publishBody(t, ch, "amq.default", q, "x")
	wantClosed(t, closed, amqp.NotFound, "NOT_FOUND - no exchange 'amq.default' in vhost '/'")
}

func TestRouteExchangeToExchangeChain(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ch := f.channel()
	x1 := f.exchange(ch, "x1", "topic", nil)
	x2 := f.exchange(ch, "x2", "direct", nil)
	x3 := f.exchange(ch, "x3", "fanout", nil)
	if err := ch.ExchangeBind(x2, "a.*", x1, false, nil); err != nil {
		t.Fatalf("bind x2<-x1: %v", err)
	}
	if err := ch.ExchangeBind(x3, "a.b", x2, false, nil); err != nil {
		t.Fatalf("bind x3<-x2: %v", err)
	}
	q := f.queue(ch, "q", nil)
	bind(t, ch, q, x3, "", nil)
	// Each hop applies its own exchange type to the unchanged routing key.
	publishBody(t, ch, x1, "a.b", "passes")
	publishBody(t, ch, x1, "a.c", "stopped-at-x2")
	publishBody(t, ch, x1, "b.b", "stopped-at-x1")
	wantDrain(t, ch, q, "passes")

	d := getAfterPublish(t, ch, x1, "a.b", q)
	if d.Exchange != x1 || d.RoutingKey != "a.b" {
		t.Fatalf("delivery says exchange %q key %q, want the publish's %q %q", d.Exchange, d.RoutingKey, x1, "a.b")
	}

	if err := ch.ExchangeUnbind(x3, "a.b", x2, false, nil); err != nil {
		t.Fatalf("exchange.unbind: %v", err)
	}
	publishBody(t, ch, x1, "a.b", "after-unbind")
	wantDrain(t, ch, q)
}

// getAfterPublish publishes a marker through exchange and returns it from queue.
func getAfterPublish(t *testing.T, ch *amqp.Channel, exchange, key, queue string) amqp.Delivery {
	t.Helper()
	publishBody(t, ch, exchange, key, "marker")
	ds := getN(t, ch, queue, 1)
	if string(ds[0].Body) != "marker" {
		t.Fatalf("got %q, want marker", ds[0].Body)
	}
	return ds[0]
}

// Exchanges bound to each other in a cycle deliver each message once, not forever.
func TestRouteExchangeToExchangeCycle(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ch := f.channel()
	x1 := f.exchange(ch, "x1", "fanout", nil)
	x2 := f.exchange(ch, "x2", "fanout", nil)
	if err := ch.ExchangeBind(x2, "", x1, false, nil); err != nil {
		t.Fatalf("bind x2<-x1: %v", err)
	}
	if err := ch.ExchangeBind(x1, "", x2, false, nil); err != nil {
		t.Fatalf("bind x1<-x2: %v", err)
	}
	if err := ch.ExchangeBind(x1, "", x1, false, nil); err != nil {
		t.Fatalf("bind x1<-x1: %v", err)
	}
	q1 := f.queue(ch, "q1", nil)
	q2 := f.queue(ch, "q2", nil)
	bind(t, ch, q1, x1, "", nil)
	bind(t, ch, q2, x2, "", nil)
	publishBody(t, ch, x1, "", "from-x1")
	publishBody(t, ch, x2, "", "from-x2")
	wantDrain(t, ch, q1, "from-x1", "from-x2")
	wantDrain(t, ch, q2, "from-x1", "from-x2")
}

// A queue reachable by two paths gets one copy.
func TestRouteExchangeToExchangeDiamond(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ch := f.channel()
	top := f.exchange(ch, "top", "fanout", nil)
	left := f.exchange(ch, "left", "direct", nil)
	right := f.exchange(ch, "right", "topic", nil)
	if err := ch.ExchangeBind(left, "k", top, false, nil); err != nil {
		t.Fatalf("bind left: %v", err)
	}
	if err := ch.ExchangeBind(right, "#", top, false, nil); err != nil {
		t.Fatalf("bind right: %v", err)
	}
	q := f.queue(ch, "q", nil)
	bind(t, ch, q, left, "k", nil)
	bind(t, ch, q, right, "k", nil)
	bind(t, ch, q, top, "", nil)
	publishBody(t, ch, top, "k", "once")
	wantDrain(t, ch, q, "once")
}

// Deleting a destination exchange removes the bindings to it; publishing still works.
func TestRouteExchangeToExchangeDestinationDeleted(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ch := f.channel()
	src := f.exchange(ch, "src", "fanout", nil)
	dst := f.exchange(ch, "dst", "fanout", nil)
	q := f.queue(ch, "q", nil)
	if err := ch.ExchangeBind(dst, "", src, false, nil); err != nil {
		t.Fatalf("exchange.bind: %v", err)
	}
	bind(t, ch, q, src, "", nil)
	if err := ch.ExchangeDelete(dst, false, false); err != nil {
		t.Fatalf("delete dst: %v", err)
	}
	publishBody(t, ch, src, "", "still-routes")
	wantDrain(t, ch, q, "still-routes")
}

func TestRouteAlternateExchange(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ch := f.channel()
	ae := f.exchange(ch, "ae", "fanout", nil)
	x := f.exchange(ch, "x", "direct", amqp.Table{"alternate-exchange": ae})
	q := f.queue(ch, "q", nil)
	aq := f.queue(ch, "aq", nil)
	bind(t, ch, q, x, "k", nil)
	bind(t, ch, aq, ae, "", nil)
	publishBody(t, ch, x, "k", "routed")
	publishBody(t, ch, x, "z", "unroutable")
	wantDrain(t, ch, q, "routed")
	wantDrain(t, ch, aq, "unroutable")
	// The message keeps the exchange and key it was published with.
	d := getAfterPublish(t, ch, x, "zz", aq)
	if d.Exchange != x || d.RoutingKey != "zz" {
		t.Fatalf("alternate-routed delivery says exchange %q key %q, want %q %q", d.Exchange, d.RoutingKey, x, "zz")
	}
}

// An alternate exchange may have its own: the chain is followed.
func TestRouteAlternateExchangeChain(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ch := f.channel()
	ae2 := f.exchange(ch, "ae2", "fanout", nil)
	ae1 := f.exchange(ch, "ae1", "direct", amqp.Table{"alternate-exchange": ae2})
	x := f.exchange(ch, "x", "direct", amqp.Table{"alternate-exchange": ae1})
	aq := f.queue(ch, "aq", nil)
	bind(t, ch, aq, ae2, "", nil)
	publishBody(t, ch, x, "z", "two-hops")
	wantDrain(t, ch, aq, "two-hops")
}

// Alternate exchanges naming each other do not loop.
func TestRouteAlternateExchangeCycle(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ch := f.channel()
	a, b := f.exchangeName("a"), f.exchangeName("b")
	if err := ch.ExchangeDeclare(a, "direct", false, false, false, false, amqp.Table{"alternate-exchange": b}); err != nil {
		t.Fatalf("declare a: %v", err)
	}
	if err := ch.ExchangeDeclare(b, "direct", false, false, false, false, amqp.Table{"alternate-exchange": a}); err != nil {
		t.Fatalf("declare b: %v", err)
	}
	q := f.queue(ch, "q", nil)
	bind(t, ch, q, b, "k", nil)
	publishBody(t, ch, a, "z", "dropped")
	publishBody(t, ch, a, "k", "via-b")
	wantDrain(t, ch, q, "via-b")
}

// The alternate exchange is used only when the exchange itself matched nothing: a
// matching exchange-to-exchange binding counts as routed even if nothing lies beyond.
func TestRouteAlternateExchangeNotUsedWhenExchangeBindingMatches(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ch := f.channel()
	ae := f.exchange(ch, "ae", "fanout", nil)
	x := f.exchange(ch, "x", "fanout", amqp.Table{"alternate-exchange": ae})
	dead := f.exchange(ch, "deadend", "fanout", nil)
	if err := ch.ExchangeBind(dead, "", x, false, nil); err != nil {
		t.Fatalf("exchange.bind: %v", err)
	}
	aq := f.queue(ch, "aq", nil)
	bind(t, ch, aq, ae, "", nil)
	publishBody(t, ch, x, "k", "lost")
	wantDrain(t, ch, aq)
}

// confirmChannel opens a channel in confirm mode that also listens for returns.
// RabbitMQ sends basic.return before the basic.ack of the same message, so once the ack
// is in, a missing return really is missing.
func confirmChannel(t *testing.T, f *fixture) (*amqp.Channel, chan amqp.Confirmation, chan amqp.Return) {
	t.Helper()
	ch := f.channel()
	if err := ch.Confirm(false); err != nil {
		t.Fatalf("confirm.select: %v", err)
	}
	returns := ch.NotifyReturn(make(chan amqp.Return, 16))
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, 16))
	return ch, confirms, returns
}

// publishMandatory publishes a mandatory message and waits for its confirm, returning
// the basic.return that preceded it, if any.
func publishMandatory(t *testing.T, ch *amqp.Channel, confirms chan amqp.Confirmation, returns chan amqp.Return, exchange, key, body string) (amqp.Return, bool) {
	t.Helper()
	if err := ch.Publish(exchange, key, true, false, amqp.Publishing{Body: []byte(body)}); err != nil {
		t.Fatalf("publish: %v", err)
	}
	var ret amqp.Return
	returned := false
	for {
		select {
		case r := <-returns:
			ret, returned = r, true
		case c := <-confirms:
			if !c.Ack {
				t.Fatalf("message %q nacked", body)
			}
			// amqp091-go queues a basic.return before the basic.ack that follows it
			// on the wire, so a return not yet taken by the select is already here.
			select {
			case r := <-returns:
				ret, returned = r, true
			default:
			}
			return ret, returned
		case <-time.After(waitTimeout):
			t.Fatalf("no confirm for %q", body)
		}
	}
}

func TestRouteMandatoryUnroutableReturned(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ch, confirms, returns := confirmChannel(t, f)
	x := f.exchange(ch, "x", "direct", nil)
	r, ok := publishMandatory(t, ch, confirms, returns, x, "nowhere", "m")
	if !ok {
		t.Fatal("unroutable mandatory message was not returned")
	}
	if r.ReplyCode != 312 || r.ReplyText != "NO_ROUTE" || r.Exchange != x || r.RoutingKey != "nowhere" || string(r.Body) != "m" {
		t.Fatalf("return = %d %q exchange %q key %q body %q, want 312 NO_ROUTE %q nowhere m",
			r.ReplyCode, r.ReplyText, r.Exchange, r.RoutingKey, r.Body, x)
	}
}

// A mandatory message the alternate exchange routes is not returned.
func TestRouteMandatoryWithAlternateExchangeNotReturned(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ch, confirms, returns := confirmChannel(t, f)
	ae := f.exchange(ch, "ae", "fanout", nil)
	x := f.exchange(ch, "x", "direct", amqp.Table{"alternate-exchange": ae})
	aq := f.queue(ch, "aq", nil)
	bind(t, ch, aq, ae, "", nil)
	if r, ok := publishMandatory(t, ch, confirms, returns, x, "z", "m"); ok {
		t.Fatalf("message returned %d %q although the alternate exchange routed it", r.ReplyCode, r.ReplyText)
	}
	wantDrain(t, ch, aq, "m")
}

// When the alternate exchange routes nowhere either (or does not exist), a mandatory
// message is returned.
func TestRouteMandatoryAlternateExchangeUnroutableReturned(t *testing.T) {
	t.Parallel()
	for _, aeExists := range []bool{true, false} {
		name := "AlternateMissing"
		if aeExists {
			name = "AlternateRoutesNowhere"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := setup(t)
			ch, confirms, returns := confirmChannel(t, f)
			ae := f.exchangeName("ae")
			if aeExists {
				if err := ch.ExchangeDeclare(ae, "direct", false, false, false, false, nil); err != nil {
					t.Fatalf("declare ae: %v", err)
				}
			}
			x := f.exchange(ch, "x", "direct", amqp.Table{"alternate-exchange": ae})
			r, ok := publishMandatory(t, ch, confirms, returns, x, "z", "m")
			if !ok {
				t.Fatal("message not returned")
			}
			if r.ReplyCode != 312 || r.ReplyText != "NO_ROUTE" || r.Exchange != x {
				t.Fatalf("return = %d %q exchange %q, want 312 NO_ROUTE %q", r.ReplyCode, r.ReplyText, r.Exchange, x)
			}
		})
	}
}
