package crash

import (
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warren-mq/warren/internal/broker"
	"github.com/warren-mq/warren/internal/store"
)

// topology opens a data directory in-process, as the next start would, and
// describes the durable metadata it recovers: one sorted line per vhost,
// exchange, queue and binding (predeclared exchanges left out).
func topology(t *testing.T, dir string) []string {
	t.Helper()
	st, err := store.Open(dir, store.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatalf("open %s: %v", dir, err)
	}
	b, err := broker.New(broker.Config{Store: st, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		st.Close()
		t.Fatalf("broker on %s: %v", dir, err)
	}
	defer b.Close()
	var out []string
	for _, v := range b.VHosts() {
		out = append(out, "vhost "+v.Name)
		for _, e := range v.Exchanges() {
			if e.Name == "" || strings.HasPrefix(e.Name, "amq.") {
				continue
			}
			out = append(out, fmt.Sprintf("exchange %s %s durable=%v auto_delete=%v internal=%v args=%v", e.Name, e.Kind, e.Durable, e.AutoDelete, e.Internal, e.Args))
			for _, bd := range e.Bindings() {
				out = append(out, bindingLine(e.Name, bd.Destination, bd.ToExchange, bd.Key))
			}
		}
		for _, q := range v.Queues() {
			out = append(out, fmt.Sprintf("queue %s durable=%v auto_delete=%v args=%v", q.Name, q.Durable, q.AutoDelete, q.Args))
		}
	}
	sort.Strings(out)
	return out
}

func bindingLine(src, dst string, toExchange bool, key string) string {
	kind := "q"
	if toExchange {
		kind = "e"
	}
	return fmt.Sprintf("binding %s -> %s:%s key=%q", src, kind, dst, key)
}

// TestCrashMetadataEveryKindSurvives declares every durable entity a client
// can create — a durable server-named queue among them, exchanges and queues
// with every argument, exchange-to-exchange and headers bindings — and checks
// they all come back after SIGTERM and after kill -9, with their arguments
// (a redeclare with other arguments is refused) and their bindings (messages
// still route), while transient ones are gone.
func TestCrashMetadataEveryKindSurvives(t *testing.T) {
	bin := buildWarren(t)
	for _, how := range []string{"SIGTERM", "kill -9"} {
		t.Run(strings.ReplaceAll(how, " ", ""), func(t *testing.T) {
			w := newWarren(t, bin, t.TempDir())
			w.start()
			ch := dialChannel(t, w.URL())
			exArgs := amqp.Table{"alternate-exchange": "ae"}
			qArgs := amqp.Table{
				"x-message-ttl": int32(60000), "x-expires": int32(3600000), "x-max-length": int32(100),
				"x-max-length-bytes": int64(1 << 20), "x-overflow": "reject-publish", "x-dead-letter-exchange": "dlx",
				"x-dead-letter-routing-key": "dead", "x-max-priority": int32(5), "x-single-active-consumer": true,
				"x-queue-mode": "lazy",
			}
			check(t, ch.ExchangeDeclare("ae", "fanout", true, false, false, false, nil))
			check(t, ch.ExchangeDeclare("dlx", "direct", true, false, false, false, nil))
			check(t, ch.ExchangeDeclare("events", "topic", true, false, false, false, exArgs))
			check(t, ch.ExchangeDeclare("internal", "direct", true, false, true, false, nil))
			check(t, ch.ExchangeDeclare("autodel", "fanout", true, true, false, false, nil))
			check(t, ch.ExchangeDeclare("hdrs", "headers", true, false, false, false, nil))
			check(t, ch.ExchangeDeclare("gone", "direct", false, false, false, false, nil))
			sn, err := ch.QueueDeclare("", true, false, false, false, nil) // durable, server-named
			check(t, err)
			_, err = ch.QueueDeclare("args", true, false, false, false, qArgs)
			check(t, err)
			_, err = ch.QueueDeclare("plain", true, true, false, false, nil) // durable, auto-delete
			check(t, err)
			_, err = ch.QueueDeclare("transient", false, false, false, false, nil)
			check(t, err)
			check(t, ch.QueueBind(sn.Name, "user.profile.*", "events", false, nil))
			check(t, ch.ExchangeBind("internal", "orders.#", "events", false, nil))
			check(t, ch.QueueBind("plain", "orders.new", "internal", false, nil))
			check(t, ch.QueueBind("plain", "", "autodel", false, nil))
			check(t, ch.QueueBind("plain", "", "hdrs", false, amqp.Table{"x-match": "all", "region": "eu"}))
			check(t, ch.QueueBind("transient", "#", "events", false, nil))
			if how == "SIGTERM" {
				w.stop()
			} else {
				w.kill()
			}
			got := topology(t, w.dir)
			for _, line := range []string{
				"exchange ae fanout durable=true auto_delete=false internal=false args=map[]",
				"exchange events topic durable=true auto_delete=false internal=false args=map[alternate-exchange:ae]",
				"exchange internal direct durable=true auto_delete=false internal=true args=map[]",
				"exchange autodel fanout durable=true auto_delete=true internal=false args=map[]",
				"queue " + sn.Name + " durable=true auto_delete=false args=map[]",
				"queue plain durable=true auto_delete=true args=map[]",
				bindingLine("events", sn.Name, false, "user.profile.*"),
				bindingLine("events", "internal", true, "orders.#"),
				bindingLine("internal", "plain", false, "orders.new"),
				bindingLine("autodel", "plain", false, ""),
				bindingLine("hdrs", "plain", false, ""),
			} {
				if !slices.Contains(got, line) {
					t.Errorf("missing after %s: %s\nrecovered:\n%s", how, line, strings.Join(got, "\n"))
				}
			}
			for _, line := range got {
				if strings.Contains(line, "gone") || strings.Contains(line, "transient") {
					t.Errorf("transient entity survived %s: %s", how, line)
				}
			}

			w.start()
			ch = dialChannel(t, w.URL())
			// Arguments survived: the same declare is accepted, another refused.
			_, err = ch.QueueDeclare("args", true, false, false, false, qArgs)
			check(t, err)
			if _, err := ch.QueueDeclare("args", true, false, false, false, amqp.Table{"x-max-length": int32(7)}); err == nil || !strings.Contains(err.Error(), "PRECONDITION_FAILED") {
				t.Fatalf("redeclare with other arguments after %s: %v", how, err)
			}
			ch = dialChannel(t, w.URL())
			// Bindings route: through the topic exchange, e2e, and headers.
			check(t, ch.Publish("events", "user.profile.update", false, false, amqp.Publishing{Body: []byte("p")}))
			check(t, ch.Publish("events", "orders.new", false, false, amqp.Publishing{Body: []byte("o")}))
			check(t, ch.Publish("hdrs", "", false, false, amqp.Publishing{Headers: amqp.Table{"region": "eu"}, Body: []byte("h")}))
			expectBodies(t, ch, sn.Name, "p")
			expectBodies(t, ch, "plain", "h", "o")
			w.stop()
		})
	}
}

func dialChannel(t *testing.T, url string) *amqp.Channel {
	t.Helper()
	c, err := amqp.Dial(url)
	check(t, err)
	t.Cleanup(func() { c.Close() })
	ch, err := c.Channel()
	check(t, err)
	return ch
}

func check(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// expectBodies gets every message of q and compares the bodies, sorted.
func expectBodies(t *testing.T, ch *amqp.Channel, q string, want ...string) {
	t.Helper()
	var got []string
	for {
		d, ok, err := ch.Get(q, true)
		check(t, err)
		if !ok {
			break
		}
		got = append(got, string(d.Body))
	}
	sort.Strings(got)
	if !slices.Equal(got, want) {
		t.Fatalf("queue %s holds %q, want %q", q, got, want)
	}
}

// metaModel is what a client's metadata operations should have left.
type metaModel struct {
	exchanges map[string]bool // name -> durable
	queues    map[string]bool
	bindings  map[[4]string]bool // source, destination, "q"/"e", key
}

var (
	modelExchanges = []struct {
		name, kind string
		durable    bool
	}{{"x0", "direct", true}, {"x1", "topic", true}, {"x2", "fanout", true}, {"x3", "direct", false}, {"x4", "topic", false}}
	modelQueues = []struct {
		name    string
		durable bool
	}{{"q0", true}, {"q1", true}, {"q2", true}, {"q3", true}, {"q4", false}, {"q5", false}}
	modelKeys = []string{"a", "b", "a.b", "#"}
)

// lines describes the durable part of the model as topology does.
func (m *metaModel) lines() []string {
	out := []string{"vhost /"}
	for _, x := range modelExchanges {
		if m.exchanges[x.name] && x.durable {
			out = append(out, fmt.Sprintf("exchange %s %s durable=true auto_delete=false internal=false args=map[]", x.name, x.kind))
		}
	}
	for q, durable := range m.queues {
		if durable {
			out = append(out, fmt.Sprintf("queue %s durable=true auto_delete=false args=map[]", q))
		}
	}
	for b := range m.bindings {
		if m.exchanges[b[0]] && m.durable(b[1], b[2]) && m.durable(b[0], "e") {
			out = append(out, bindingLine(b[0], b[1], b[2] == "e", b[3]))
		}
	}
	sort.Strings(out)
	return out
}

func (m *metaModel) durable(name, kind string) bool {
	if kind == "q" {
		return m.queues[name]
	}
	for _, x := range modelExchanges {
		if x.name == name {
			return x.durable && m.exchanges[name]
		}
	}
	return false
}

// restarted drops what a restart loses: transient entities and their bindings.
func (m *metaModel) restarted() {
	for _, x := range modelExchanges {
		if !x.durable {
			delete(m.exchanges, x.name)
		}
	}
	for q, durable := range m.queues {
		if !durable {
			delete(m.queues, q)
		}
	}
	for b := range m.bindings {
		_, srcOK := m.exchanges[b[0]]
		dstOK := false
		if b[2] == "q" {
			_, dstOK = m.queues[b[1]]
		} else {
			_, dstOK = m.exchanges[b[1]]
		}
		if !srcOK || !dstOK || !m.durable(b[0], "e") || !m.durable(b[1], b[2]) {
			delete(m.bindings, b)
		}
	}
}

// TestCrashMetadataModel runs random sequences of metadata operations
// against the binary, stops it at random points (SIGTERM or kill -9) and
// checks that the topology a restart recovers equals the model's.
func TestCrashMetadataModel(t *testing.T) {
	bin := buildWarren(t)
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	w := newWarren(t, bin, t.TempDir())
	m := &metaModel{exchanges: map[string]bool{}, queues: map[string]bool{}, bindings: map[[4]string]bool{}}
	serverNamed := 0
	for round := range 6 {
		w.start()
		ch := dialChannel(t, w.URL())
		for range 150 + rng.IntN(150) {
			metaStep(t, rng, ch, m, &serverNamed)
		}
		how := "SIGTERM"
		if rng.IntN(2) == 0 {
			how = "kill -9"
			w.kill()
		} else {
			w.stop()
		}
		m.restarted()
		got, want := topology(t, w.dir), m.lines()
		if !slices.Equal(got, want) {
			t.Fatalf("round %d (seed %d), after %s: recovered\n%s\nwant\n%s", round, seed, how, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
}

// metaStep performs one random operation whose outcome the model predicts.
func metaStep(t *testing.T, rng *rand.Rand, ch *amqp.Channel, m *metaModel, serverNamed *int) {
	t.Helper()
	x := modelExchanges[rng.IntN(len(modelExchanges))]
	q := modelQueues[rng.IntN(len(modelQueues))]
	key := modelKeys[rng.IntN(len(modelKeys))]
	switch op := rng.IntN(10); op {
	case 0:
		check(t, ch.ExchangeDeclare(x.name, x.kind, x.durable, false, false, false, nil))
		m.exchanges[x.name] = x.durable
	case 1:
		check(t, ch.ExchangeDelete(x.name, false, false))
		delete(m.exchanges, x.name)
		for b := range m.bindings {
			if b[0] == x.name || b[2] == "e" && b[1] == x.name {
				delete(m.bindings, b)
			}
		}
	case 2, 3:
		_, err := ch.QueueDeclare(q.name, q.durable, false, false, false, nil)
		check(t, err)
		m.queues[q.name] = q.durable
	case 4:
		_, err := ch.QueueDelete(q.name, false, false, false)
		check(t, err)
		deleteModelQueue(m, q.name)
	case 5, 6:
		if _, ok := m.exchanges[x.name]; !ok {
			return
		}
		if _, ok := m.queues[q.name]; !ok {
			return
		}
		check(t, ch.QueueBind(q.name, key, x.name, false, nil))
		m.bindings[[4]string{x.name, q.name, "q", key}] = true
	case 7:
		if _, ok := m.exchanges[x.name]; !ok {
			return
		}
		check(t, ch.QueueUnbind(q.name, key, x.name, nil))
		delete(m.bindings, [4]string{x.name, q.name, "q", key})
	case 8:
		y := modelExchanges[rng.IntN(len(modelExchanges))]
		_, okx := m.exchanges[x.name]
		_, oky := m.exchanges[y.name]
		if !okx || !oky {
			return
		}
		if rng.IntN(3) == 0 {
			check(t, ch.ExchangeUnbind(y.name, key, x.name, false, nil))
			delete(m.bindings, [4]string{x.name, y.name, "e", key})
			return
		}
		check(t, ch.ExchangeBind(y.name, key, x.name, false, nil))
		m.bindings[[4]string{x.name, y.name, "e", key}] = true
	case 9:
		// Durable server-named queues: declared, sometimes deleted again.
		if *serverNamed > 0 && rng.IntN(3) == 0 {
			for name := range m.queues {
				if strings.HasPrefix(name, "amq.gen-") {
					_, err := ch.QueueDelete(name, false, false, false)
					check(t, err)
					deleteModelQueue(m, name)
					*serverNamed--
					return
				}
			}
		}
		sq, err := ch.QueueDeclare("", true, false, false, false, nil)
		check(t, err)
		m.queues[sq.Name] = true
		*serverNamed++
		if _, ok := m.exchanges["x1"]; ok {
			check(t, ch.QueueBind(sq.Name, "a.b", "x1", false, nil))
			m.bindings[[4]string{"x1", sq.Name, "q", "a.b"}] = true
		}
	}
}

func deleteModelQueue(m *metaModel, name string) {
	delete(m.queues, name)
	for b := range m.bindings {
		if b[2] == "q" && b[1] == name {
			delete(m.bindings, b)
		}
	}
}
