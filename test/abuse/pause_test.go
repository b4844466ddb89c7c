package abuse

import (
	"net"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warren-mq/warren/internal/amqp091"
)

// rawClient is a hand-driven AMQP connection, so the test decides exactly
// when heartbeats are sent and does not time the server out itself (amqp091-go
// would, after 1.5 heartbeat intervals of silence from a stopped server).
type rawClient struct {
	t  *testing.T
	nc net.Conn
	fr *amqp091.FrameReader
}

// dialRaw logs in as guest and opens vhost "/" with the given heartbeat.
func dialRaw(t *testing.T, addr string, heartbeat uint16) *rawClient {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	c := &rawClient{t: t, nc: nc, fr: amqp091.NewFrameReader(nc, 131072)}
	c.write(amqp091.ProtocolHeader)
	c.expect(&amqp091.ConnectionStart{})
	c.send(0, &amqp091.ConnectionStartOk{ClientProperties: amqp091.Table{}, Mechanism: "PLAIN", Response: "\x00guest\x00guest", Locale: "en_US"})
	c.expect(&amqp091.ConnectionTune{})
	c.send(0, &amqp091.ConnectionTuneOk{ChannelMax: 2047, FrameMax: 131072, Heartbeat: heartbeat})
	c.send(0, &amqp091.ConnectionOpen{VirtualHost: "/"})
	c.expect(&amqp091.ConnectionOpenOk{})
	return c
}

func (c *rawClient) write(b []byte) {
	c.t.Helper()
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *rawClient) send(channel uint16, m amqp091.Method) {
	c.t.Helper()
	c.write(amqp091.AppendMethodFrame(nil, channel, m))
}

// expect reads frames, skipping heartbeats, until a method, which must be of
// want's type.
func (c *rawClient) expect(want amqp091.Method) {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			c.t.Fatalf("waiting for %s: %v", want.Name(), err)
		}
		if f.Type == amqp091.FrameHeartbeat {
			continue
		}
		m, err := amqp091.DecodeMethod(f.Payload)
		if err != nil {
			c.t.Fatal(err)
		}
		if m.Name() != want.Name() {
			c.t.Fatalf("got %s, want %s", m.Name(), want.Name())
		}
		return
	}
}

// heartbeat sends a heartbeat frame every interval until stop is closed or
// a write fails.
func (c *rawClient) heartbeat(interval time.Duration, stop <-chan struct{}) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		if _, err := c.nc.Write(amqp091.AppendHeartbeat(nil)); err != nil {
			return
		}
	}
}

// TestAbusePauseLongerThanHeartbeatTimeout: warren stopped (SIGSTOP) for
// longer than two heartbeat intervals keeps, once resumed, a client whose
// heartbeats kept arriving in the socket meanwhile, as RabbitMQ does; a
// client that really fell silent is still dropped.
func TestAbusePauseLongerThanHeartbeatTimeout(t *testing.T) {
	const heartbeat = 1 // s: the server drops a client after 2 s of silence
	const pause = 5 * time.Second
	w := startWarren(t, 0)
	alive := dialRaw(t, w.addr, heartbeat)
	stop := make(chan struct{})
	defer close(stop)
	go alive.heartbeat(250*time.Millisecond, stop)
	silent := dialRaw(t, w.addr, heartbeat)

	w.signal(syscall.SIGSTOP)
	time.Sleep(pause) // the scenario: the whole process stopped this long
	w.signal(syscall.SIGCONT)

	alive.send(1, &amqp091.ChannelOpen{})
	alive.expect(&amqp091.ChannelOpenOk{})
	_ = silent.nc.SetReadDeadline(time.Now().Add(15 * time.Second))
	for {
		f, err := silent.fr.ReadFrame()
		if err != nil {
			if !isClosed(err) {
				t.Fatalf("silent client: %v, want the server to close it", err)
			}
			break
		}
		if f.Type != amqp091.FrameHeartbeat {
			t.Fatalf("silent client got frame type %d", f.Type)
		}
	}
	c, err := amqp.Dial(w.URL())
	if err != nil {
		t.Fatalf("new client after the pause: %v", err)
	}
	c.Close()
	w.checkUp()
}
