package amqpserver

import (
	"bufio"
	"encoding/json"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warren-mq/warren/internal/amqp091"
	"github.com/warren-mq/warren/internal/broker"
)

// jsonLog is a server logging JSON into a buffer, for tests to read back
// records with their attributes.
type jsonLog struct{ logBuffer }

func (l *jsonLog) records(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(l.String()))
	for sc.Scan() {
		var r map[string]any
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("log line is not JSON: %q: %v", sc.Text(), err)
		}
		out = append(out, r)
	}
	return out
}

// want waits for a record with msg and level whose attributes include attrs.
func (l *jsonLog) want(t *testing.T, level, msg string, attrs map[string]any) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, r := range l.records(t) {
			if r["msg"] != msg || r["level"] != level {
				continue
			}
			ok := true
			for k, v := range attrs {
				if r[k] != v {
					ok = false
				}
			}
			if ok {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s record %q with %v in:\n%s", level, msg, attrs, l.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func startJSONLogged(t *testing.T) (*jsonLog, *broker.Broker, string) {
	t.Helper()
	logs := &jsonLog{}
	log := jsonLogger(&logs.logBuffer)
	_, b, addr := startServerWith(t, broker.Config{Logger: log}, Config{Logger: log}, "")
	return logs, b, addr
}

// dialNamed dials with a client-provided connection name and returns the
// connection with its name as Warren gives it.
func dialNamed(t *testing.T, addr, vhost, clientName string) (*amqp.Connection, net.Conn, string, error) {
	t.Helper()
	var nc net.Conn
	c, err := amqp.DialConfig("amqp://guest:guest@"+addr+"/"+vhost, amqp.Config{
		Properties: amqp.Table{"connection_name": clientName},
		Dial: func(network, a string) (net.Conn, error) {
			var err error
			nc, err = net.Dial(network, a)
			return nc, err
		},
	})
	name := ""
	if nc != nil {
		name = nc.LocalAddr().String() + " -> " + nc.RemoteAddr().String()
	}
	return c, nc, name, err
}

// TestServerLogConnectionLifecycle: accepted, authenticated, channel error
// and closed lines as RabbitMQ words them, with their attributes.
func TestServerLogConnectionLifecycle(t *testing.T) {
	logs, _, addr := startJSONLogged(t)
	c, _, name, err := dialNamed(t, addr, "", "app-1")
	if err != nil {
		t.Fatal(err)
	}
	logs.want(t, "INFO", "accepting AMQP connection ("+name+")", map[string]any{"connection": name})
	logs.want(t, "INFO", "connection ("+name+" - app-1): user 'guest' authenticated and granted access to vhost '/'",
		map[string]any{"connection": name, "vhost": "/", "user": "guest", "client_name": "app-1", "mechanism": "PLAIN"})

	ch, err := c.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclarePassive("no-such-queue", false, false, false, false, nil); err == nil {
		t.Fatal("passive declare of a missing queue succeeded")
	}
	logs.want(t, "ERROR", "Channel error on connection ("+name+" - app-1, vhost: '/', user: 'guest'), channel 1: "+
		"operation queue.declare caused a channel exception not_found: no queue 'no-such-queue' in vhost '/'",
		map[string]any{"connection": name, "vhost": "/", "user": "guest", "code": float64(404)})

	c.Close()
	logs.want(t, "INFO", "closing AMQP connection ("+name+" - app-1, vhost: '/', user: 'guest')", map[string]any{"connection": name})
}

// TestServerLogConnectionEnds: why a connection ended, in each way it can.
func TestServerLogConnectionEnds(t *testing.T) {
	logs, b, addr := startJSONLogged(t)

	// The client goes away without connection.close.
	_, nc, name, err := dialNamed(t, addr, "", "gone")
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()
	logs.want(t, "WARN", "closing AMQP connection ("+name+" - gone, vhost: '/', user: 'guest'): client unexpectedly closed TCP connection",
		map[string]any{"reason": "client unexpectedly closed TCP connection"})

	// A connection exception during the handshake.
	_, _, name, err = dialNamed(t, addr, "no-such-vhost", "lost")
	if err == nil {
		t.Fatal("connected to a missing vhost")
	}
	logs.want(t, "ERROR", "Error on AMQP connection ("+name+" - lost, user: 'guest', state: opening), channel 0: "+
		"operation connection.open caused a connection exception not_allowed: vhost no-such-vhost not found", map[string]any{"code": float64(530)})
	logs.want(t, "INFO", "closing AMQP connection ("+name+" - lost, user: 'guest'): NOT_ALLOWED - vhost no-such-vhost not found", nil)

	// Closed by an operator through the session registry.
	c, _, name, err := dialNamed(t, addr, "", "closed-by-admin")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The server registers the session just after sending open-ok.
	checkFor(t, 10*time.Second, "the session registered", func() bool {
		for _, s := range b.Sessions() {
			if s.Info.Name == name {
				s.Session.Close("Closed via management plugin")
				return true
			}
		}
		return false
	})
	logs.want(t, "WARN", `Error on AMQP connection (`+name+`): operation none caused a connection exception connection_forced: "Closed via management plugin"`,
		map[string]any{"connection": name, "reason": "Closed via management plugin"})
	logs.want(t, "INFO", "closing AMQP connection ("+name+" - closed-by-admin, vhost: '/', user: 'guest'): connection forced", nil)
}

// TestServerLogPolicyAndAlarm: policy changes and alarms in RabbitMQ's words.
func TestServerLogPolicyAndAlarm(t *testing.T) {
	logs := &jsonLog{}
	var free atomic.Uint64
	free.Store(1 << 30)
	b, err := broker.New(broker.Config{Logger: jsonLogger(&logs.logBuffer), DiskFreeLimit: 1 << 20, DiskCheckInterval: time.Millisecond,
		FreeDisk: func() (uint64, error) { return free.Load(), nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.SetPolicy(broker.Policy{VHost: "/", Name: "ttl", Pattern: "^t\\.", ApplyTo: "queues", Definition: []byte(`{"message-ttl":1000}`)}); err != nil {
		t.Fatal(err)
	}
	logs.want(t, "INFO", `Successfully set policy 'ttl' matching queues names in virtual host '/' using pattern '^t\.'`,
		map[string]any{"vhost": "/", "policy": "ttl", "operator": false})
	if err := b.ClearPolicy("/", "ttl", false); err != nil {
		t.Fatal(err)
	}
	logs.want(t, "INFO", "Successfully cleared policy 'ttl' in virtual host '/'", map[string]any{"vhost": "/", "policy": "ttl"})

	// (The line for the alarm clearing is held back when it follows the
	// setting within 10 s: see alarmLogEvery.)
	free.Store(1 << 10)
	logs.want(t, "WARN", "disk resource limit alarm set: publishers will be blocked until it clears",
		map[string]any{"free": float64(1 << 10), "limit": float64(1 << 20)})
}

func jsonLogger(w *logBuffer) *slog.Logger { return slog.New(slog.NewJSONHandler(w, nil)) }

// TestServerLogHeartbeatsAndHardErrors: a silent client and a connection
// exception while running, over the raw protocol.
func TestServerLogHeartbeatsAndHardErrors(t *testing.T) {
	logs, _, addr := startJSONLogged(t)

	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	name := nc.LocalAddr().String() + " -> " + nc.RemoteAddr().String()
	c := &rawConn{t: t, nc: nc, fr: amqp091.NewFrameReader(nc, 0)}
	if _, err := nc.Write(amqp091.ProtocolHeader); err != nil {
		t.Fatal(err)
	}
	c.expect("connection.start")
	c.send(0, &amqp091.ConnectionStartOk{Mechanism: "PLAIN", Response: "\x00guest\x00guest", Locale: "en_US"})
	c.expect("connection.tune")
	c.send(0, &amqp091.ConnectionTuneOk{ChannelMax: 2047, FrameMax: 131072, Heartbeat: 1})
	c.send(0, &amqp091.ConnectionOpen{VirtualHost: "/"})
	c.expect("connection.open-ok")
	// Silence: the server gives up after two intervals.
	logs.want(t, "WARN", "closing AMQP connection ("+name+", vhost: '/', user: 'guest'): missed heartbeats from client, timeout: 1s", nil)

	r := dialRaw(t, addr, 0)
	defer r.nc.Close()
	name = r.nc.LocalAddr().String() + " -> " + r.nc.RemoteAddr().String()
	r.send(0, &amqp091.ConnectionTuneOk{ChannelMax: 2047, FrameMax: 131072})
	r.expect("connection.close")
	logs.want(t, "ERROR", "Error on AMQP connection ("+name+", vhost: '/', user: 'guest', state: running), channel 0: "+
		"operation connection.tune-ok caused a connection exception channel_error: unexpected method in connection state running",
		map[string]any{"code": float64(504)})
}
