package abuse

import (
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warren-mq/warren/internal/testbroker"
)

// The flood: more sockets than the process may open files, none of which
// finishes its handshake.
const (
	floodFiles    = 256 // warren's RLIMIT_NOFILE
	floodSilent   = 200 // connect and send nothing
	floodHeader   = 50  // send the protocol header, then nothing
	floodTrickle  = 50  // send the header one byte a second
	floodDeadline = 2 * time.Second
	// trickleMax is how many bytes a trickling client sends before the test
	// fails: at one a second, far past the handshake deadline (and past
	// the header, whose 8 bytes it never completes before then).
	trickleMax = 10
)

// floodConn is one hostile client.
type floodConn struct {
	nc     net.Conn
	closed chan struct{} // the server closed it
	sent   atomic.Int32
}

func dialFlood(t *testing.T, addr string, first string) *floodConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err) // the kernel's listen backlog takes them even when warren cannot accept
	}
	t.Cleanup(func() { nc.Close() })
	f := &floodConn{nc: nc, closed: make(chan struct{})}
	if first != "" {
		if _, err := nc.Write([]byte(first)); err != nil && !isClosed(err) {
			t.Fatal(err)
		}
	}
	go func() { defer close(f.closed); _, _ = io.Copy(io.Discard, nc) }()
	return f
}

// trickle writes one byte a second until the server closes the socket.
func (f *floodConn) trickle() {
	msg := "AMQP\x00\x00\x09\x01\x01\x00"
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for i := 0; i < len(msg); i++ {
		if _, err := f.nc.Write([]byte{msg[i]}); err != nil {
			return
		}
		f.sent.Add(1)
		select {
		case <-f.closed:
			return
		case <-t.C:
		}
	}
}

// TestAbuseFloodUnderLowFileLimit: with RLIMIT_NOFILE at 256, 300 sockets
// that never complete a handshake (silent, header only, one byte a second)
// neither kill warren nor outlive the handshake deadline, and a normal client
// is served throughout and can connect afterwards. With the default
// connection limit the sockets past it are closed on accept; with no limit
// accept fails with EMFILE and is retried.
func TestAbuseFloodUnderLowFileLimit(t *testing.T) {
	for name, extra := range map[string][]string{
		"connection limit": nil,
		"no limit EMFILE":  {"--max-connections", "0"},
	} {
		t.Run(name, func(t *testing.T) {
			w := startWarren(t, floodFiles, append([]string{"--handshake-timeout", floodDeadline.String()}, extra...)...)
			started := time.Now()
			ch, q := bystander(t, w)
			var flood []*floodConn
			for range floodSilent {
				flood = append(flood, dialFlood(t, w.addr, ""))
			}
			for range floodHeader {
				flood = append(flood, dialFlood(t, w.addr, "AMQP\x00\x00\x09\x01"))
			}
			var trickling []*floodConn
			for range floodTrickle {
				f := dialFlood(t, w.addr, "")
				go f.trickle()
				trickling = append(trickling, f)
			}
			flood = append(flood, trickling...)

			// The bystander's publish-get round trips go on while the flood is open.
			rounds := 0
			for open := len(flood); open > 0; {
				roundTrip(t, ch, q)
				rounds++
				open = 0
				for _, f := range flood {
					select {
					case <-f.closed:
					default:
						open++
					}
				}
				if time.Since(started) > 20*time.Second {
					t.Fatalf("%d of %d flood connections still open after 20 s", open, len(flood))
				}
			}
			for i, f := range trickling {
				if n := f.sent.Load(); n >= trickleMax {
					t.Errorf("trickling connection %d sent %d bytes before it was closed", i, n)
				}
			}
			t.Logf("flood of %d closed; %d bystander round trips meanwhile", len(flood), rounds)
			w.checkUp()
			testbroker.CheckFor(t, 10*time.Second, func() bool {
				c, err := amqp.Dial(w.URL())
				if err == nil {
					c.Close()
				}
				return err == nil
			})
			roundTrip(t, ch, q)
			w.checkUp()
			log := w.logText()
			// Rate-limited: at most one line per 5 s interval, plus the first.
			allowed := 2 + int(time.Since(started)/(5*time.Second))
			for _, line := range []string{"accepting connections failed", "connection limit reached"} {
				if n := strings.Count(log, line); n > allowed {
					t.Errorf("%q logged %d times in %v", line, n, time.Since(started).Round(time.Second))
				}
			}
		})
	}
}

// bystander is a normal client connected before the flood, with a queue.
func bystander(t *testing.T, w *warren) (*amqp.Channel, string) {
	t.Helper()
	c, err := amqp.Dial(w.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ch, err := c.Channel()
	if err != nil {
		t.Fatal(err)
	}
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	return ch, q.Name
}

// roundTrip publishes a message to q and gets it back.
func roundTrip(t *testing.T, ch *amqp.Channel, q string) {
	t.Helper()
	if err := ch.Publish("", q, false, false, amqp.Publishing{Body: []byte("ping")}); err != nil {
		t.Fatalf("bystander publish: %v", err)
	}
	for {
		m, ok, err := ch.Get(q, true)
		if err != nil {
			t.Fatalf("bystander get: %v", err)
		}
		if ok {
			if string(m.Body) != "ping" {
				t.Fatalf("bystander got %q", m.Body)
			}
			return
		}
	}
}
