package netns

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warren-mq/warren/internal/amqpserver"
	"github.com/warren-mq/warren/internal/broker"
	"github.com/warren-mq/warren/internal/testbroker"
)

// clientEnv, when set, makes the test binary an amqp091-go client of the URL
// it holds (run inside the namespace) instead of running tests.
const clientEnv = "WARREN_NETNS_CLIENT_URL"

func TestMain(m *testing.M) {
	if u := os.Getenv(clientEnv); u != "" {
		if err := roundTrip(u); err != nil {
			fmt.Println("ERROR", err)
			os.Exit(1)
		}
		fmt.Println("OK")
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// roundTrip logs in at url, declares a queue, publishes to it and gets the message back.
func roundTrip(url string) error {
	c, err := amqp.DialConfig(url, amqp.Config{Dial: amqp.DefaultDial(10 * time.Second)})
	if err != nil {
		return err
	}
	defer c.Close()
	ch, err := c.Channel()
	if err != nil {
		return err
	}
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		return err
	}
	if err := ch.PublishWithContext(context.Background(), "", q.Name, false, false, amqp.Publishing{Body: []byte("from the namespace")}); err != nil {
		return err
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		m, ok, err := ch.Get(q.Name, true)
		if err != nil {
			return err
		}
		if ok {
			if string(m.Body) != "from the namespace" {
				return fmt.Errorf("got %q", m.Body)
			}
			return nil
		}
		time.Sleep(10 * time.Millisecond) // polling for the routed message, bounded by the deadline
	}
	return fmt.Errorf("message not routed")
}

// netns is a namespace joined to the host by a veth pair.
type netns struct {
	name, hostIP, nsIP string
}

func run(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// newNetns makes a namespace with a private subnet unlikely to be in use
// (10.231.N.0/24, N from the pid), removed when the test ends.
func newNetns(t *testing.T) *netns {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace (run as root, as .ci/run does)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs the ip command (iproute2) to create a network namespace")
	}
	id := os.Getpid() % 10000
	n := &netns{name: fmt.Sprintf("warren-netns-%d", id)}
	subnet := fmt.Sprintf("10.231.%d", 1+id%250)
	n.hostIP, n.nsIP = subnet+".1", subnet+".2"
	hostIf, nsIf := fmt.Sprintf("wrn%da", id), fmt.Sprintf("wrn%db", id)
	if out, err := exec.Command("ip", "netns", "add", n.name).CombinedOutput(); err != nil {
		t.Skipf("cannot create a network namespace here (a container without CAP_SYS_ADMIN?): %v %s", err, out)
	}
	t.Cleanup(func() {
		_ = exec.Command("ip", "link", "del", hostIf).Run()
		_ = exec.Command("ip", "netns", "del", n.name).Run()
	})
	if out, err := exec.Command("ip", "link", "add", hostIf, "type", "veth", "peer", "name", nsIf).CombinedOutput(); err != nil {
		t.Skipf("cannot create a veth pair here (no veth support in this kernel or container?): %v %s", err, out)
	}
	run(t, "ip", "link", "set", nsIf, "netns", n.name)
	run(t, "ip", "addr", "add", n.hostIP+"/24", "dev", hostIf)
	run(t, "ip", "link", "set", hostIf, "up")
	run(t, "ip", "netns", "exec", n.name, "ip", "addr", "add", n.nsIP+"/24", "dev", nsIf)
	run(t, "ip", "netns", "exec", n.name, "ip", "link", "set", nsIf, "up")
	run(t, "ip", "netns", "exec", n.name, "ip", "link", "set", "lo", "up")
	return n
}

// exec runs a command inside the namespace and returns its combined output.
func (n *netns) exec(env []string, args ...string) (string, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", n.name}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

const pikaScript = `
import sys, pika
host, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
try:
    c = pika.BlockingConnection(pika.ConnectionParameters(host, port, "/", pika.PlainCredentials(user, password), socket_timeout=10))
except pika.exceptions.ProbableAuthenticationError as e:
    print("REFUSED", e)
    sys.exit(0)
except Exception as e:
    print("REFUSED", type(e).__name__, e)
    sys.exit(0)
ch = c.channel()
q = ch.queue_declare("", exclusive=True).method.queue
ch.basic_publish("", q, b"from pika")
for _ in range(1000):
    m, props, body = ch.basic_get(q, auto_ack=True)
    if m:
        print("OK" if body == b"from pika" else "BAD " + repr(body))
        break
    c.sleep(0.01)
else:
    print("NOT ROUTED")
c.close()
`

// A non-guest user logs in from another address with pika and amqp091-go;
// guest is refused there (loopback_users), and the log says why.
func TestNetnsLoginFromRemoteAddress(t *testing.T) {
	n := newNetns(t)
	logs := &testbroker.SyncBuffer{}
	b, err := broker.New(broker.Config{Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	if err := b.AddUser("netuser", "net-pass", "management"); err != nil {
		t.Fatal(err)
	}
	if err := b.SetPermissions("netuser", "/", broker.Permission{Configure: ".*", Write: ".*", Read: ".*"}); err != nil {
		t.Fatal(err)
	}
	srv := amqpserver.New(b, amqpserver.Config{})
	l, err := net.Listen("tcp", net.JoinHostPort(n.hostIP, "0"))
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	_, port, _ := net.SplitHostPort(l.Addr().String())

	t.Run("pika", func(t *testing.T) {
		if _, err := os.Stat("/usr/bin/python3"); err != nil {
			t.Skip("no /usr/bin/python3 (python3-pika)")
		}
		script := t.TempDir() + "/client.py"
		if err := os.WriteFile(script, []byte(pikaScript), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := n.exec(nil, "/usr/bin/python3", script, n.hostIP, port, "netuser", "net-pass")
		if err != nil || strings.TrimSpace(out) != "OK" {
			t.Fatalf("pika as netuser from %s: %v\n%s", n.nsIP, err, out)
		}
		out, err = n.exec(nil, "/usr/bin/python3", script, n.hostIP, port, "guest", "guest")
		if err != nil || !strings.HasPrefix(out, "REFUSED") {
			t.Fatalf("pika as guest from %s: %v\n%s", n.nsIP, err, out)
		}
	})
	t.Run("amqp091-go", func(t *testing.T) {
		self, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		out, err := n.exec([]string{clientEnv + "=amqp://netuser:net-pass@" + net.JoinHostPort(n.hostIP, port) + "/"}, self)
		if err != nil || strings.TrimSpace(out) != "OK" {
			t.Fatalf("amqp091-go as netuser from %s: %v\n%s", n.nsIP, err, out)
		}
		out, err = n.exec([]string{clientEnv + "=amqp://guest:guest@" + net.JoinHostPort(n.hostIP, port) + "/"}, self)
		if err == nil || !strings.Contains(out, "403") {
			t.Fatalf("amqp091-go as guest from %s: %v\n%s", n.nsIP, err, out)
		}
	})
	if !strings.Contains(logs.String(), "user may only connect via localhost (loopback_users)") || !strings.Contains(logs.String(), n.nsIP) {
		t.Fatalf("the refusal's reason and address are not in the log:\n%s", logs.String())
	}
}
