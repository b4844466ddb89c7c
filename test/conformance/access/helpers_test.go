package access

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warren-mq/warren/internal/amqp091"
	"github.com/warren-mq/warren/internal/broker"
	"github.com/warren-mq/warren/internal/testbroker"
)

const waitTimeout = 10 * time.Second

// admin sets up users, vhosts, permissions and limits: rabbitmqctl for an
// external RabbitMQ, the broker's API for an in-process Warren.
type admin interface {
	addVHost(name string) error
	deleteVHost(name string) error
	addUser(name, pass string, tags ...string) error
	deleteUser(name string) error
	setPermissions(user, vhost, conf, write, read string) error
	clearPermissions(user, vhost string) error
	setTopicPermissions(user, vhost, exchange, write, read string) error
	setVHostLimits(vhost, limits string) error
	setUserLimits(user, limits string) error
}

// ctl drives a RabbitMQ on this machine.
type ctl struct{}

func (ctl) run(args ...string) error {
	out, err := exec.Command("rabbitmqctl", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("rabbitmqctl %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

func (c ctl) addVHost(name string) error    { return c.run("add_vhost", name) }
func (c ctl) deleteVHost(name string) error { return c.run("delete_vhost", name) }
func (c ctl) addUser(name, pass string, tags ...string) error {
	if err := c.run("add_user", name, pass); err != nil {
		return err
	}
	return c.run(append([]string{"set_user_tags", name}, tags...)...)
}
func (c ctl) deleteUser(name string) error { return c.run("delete_user", name) }
func (c ctl) setPermissions(user, vhost, conf, write, read string) error {
	return c.run("set_permissions", "-p", vhost, user, conf, write, read)
}
func (c ctl) clearPermissions(user, vhost string) error {
	return c.run("clear_permissions", "-p", vhost, user)
}
func (c ctl) setTopicPermissions(user, vhost, exchange, write, read string) error {
	return c.run("set_topic_permissions", "-p", vhost, user, exchange, write, read)
}
func (c ctl) setVHostLimits(vhost, limits string) error {
	return c.run("set_vhost_limits", "-p", vhost, limits)
}
func (c ctl) setUserLimits(user, limits string) error { return c.run("set_user_limits", user, limits) }

// api drives an in-process Warren.
type api struct{ b *broker.Broker }

func (a api) addVHost(name string) error {
	_, err := a.b.PutVHost(name, broker.VHostInfo{})
	return err
}
func (a api) deleteVHost(name string) error { return a.b.DeleteVHost(name) }
func (a api) addUser(name, pass string, tags ...string) error {
	return a.b.AddUser(name, pass, tags...)
}
func (a api) deleteUser(name string) error { return a.b.DeleteUser(name) }
func (a api) setPermissions(user, vhost, conf, write, read string) error {
	return a.b.SetPermissions(user, vhost, broker.Permission{Configure: conf, Write: write, Read: read})
}
func (a api) clearPermissions(user, vhost string) error { return a.b.ClearPermissions(user, vhost) }
func (a api) setTopicPermissions(user, vhost, exchange, write, read string) error {
	return a.b.SetTopicPermissions(user, vhost, broker.TopicPermission{Exchange: exchange, Write: write, Read: read})
}
func (a api) setVHostLimits(vhost, limits string) error {
	l, err := broker.ParseLimits(limits, false)
	if err != nil {
		return err
	}
	return a.b.SetVHostLimits(vhost, l)
}
func (a api) setUserLimits(user, limits string) error {
	l, err := broker.ParseLimits(limits, true)
	if err != nil {
		return err
	}
	return a.b.SetUserLimits(user, l)
}

// fixture is one test's broker, its own vhost (where guest may do anything)
// and its users, all removed when the test ends.
type fixture struct {
	t     *testing.T
	adm   admin
	addr  string // host:port
	vhost string
}

func setup(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{t: t}
	if u := os.Getenv("WARREN_TEST_URL"); u != "" {
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := exec.LookPath("rabbitmqctl"); err != nil {
			t.Skip("WARREN_TEST_URL is set but rabbitmqctl is not on PATH: cannot set up users")
		}
		f.adm, f.addr = ctl{}, pu.Host
	} else {
		inst := testbroker.Start(t, testbroker.Options{})
		f.adm, f.addr = api{inst.Broker}, inst.Addr
	}
	f.vhost = f.name("v")
	f.must(f.adm.addVHost(f.vhost))
	t.Cleanup(func() { _ = f.adm.deleteVHost(f.vhost) })
	f.must(f.adm.setPermissions("guest", f.vhost, ".*", ".*", ".*"))
	return f
}

func (f *fixture) must(err error) {
	f.t.Helper()
	if err != nil {
		f.t.Fatal(err)
	}
}

// name returns a name unique to this run.
func (f *fixture) name(label string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "acc-" + strings.ReplaceAll(f.t.Name(), "/", ".") + "-" + label + "-" + hex.EncodeToString(b[:])
}

// user creates a user with password "pw" and the given permissions on the
// test's vhost (none if perms is nil), deleted when the test ends.
func (f *fixture) user(perms []string, tags ...string) string {
	f.t.Helper()
	u := f.name("u")
	f.must(f.adm.addUser(u, "pw", tags...))
	f.t.Cleanup(func() { _ = f.adm.deleteUser(u) })
	if perms != nil {
		f.must(f.adm.setPermissions(u, f.vhost, perms[0], perms[1], perms[2]))
	}
	return u
}

func (f *fixture) url(user, vhost string) string {
	return "amqp://" + url.UserPassword(user, "pw").String() + "@" + f.addr + "/" + url.PathEscape(vhost)
}

// dial opens a connection as user ("guest" logs in with guest) to the test's vhost.
func (f *fixture) dial(user string) *amqp.Connection {
	f.t.Helper()
	u := f.url(user, f.vhost)
	if user == "guest" {
		u = "amqp://guest:guest@" + f.addr + "/" + url.PathEscape(f.vhost)
	}
	c, err := amqp.Dial(u)
	if err != nil {
		f.t.Fatalf("dial as %s: %v", user, err)
	}
	f.t.Cleanup(func() { c.Close() })
	return c
}

func (f *fixture) channel(c *amqp.Connection) *amqp.Channel {
	f.t.Helper()
	ch, err := c.Channel()
	if err != nil {
		f.t.Fatal(err)
	}
	return ch
}

// expect checks that err is the AMQP error code with text.
func (f *fixture) expect(what string, err error, code int, text string) {
	f.t.Helper()
	var ae *amqp.Error
	if !errors.As(err, &ae) {
		f.t.Fatalf("%s: got %v, want %d %s", what, err, code, text)
	}
	if ae.Code != code || ae.Reason != text {
		f.t.Fatalf("%s: got %d %q, want %d %q", what, ae.Code, ae.Reason, code, text)
	}
}

// refused is RabbitMQ's 403 text for user on a resource of the test's vhost.
func (f *fixture) refused(kind, name, user string) string {
	return fmt.Sprintf("ACCESS_REFUSED - access to %s '%s' in vhost '%s' refused for user '%s'", kind, name, f.vhost, user)
}

// closeErr waits for the connection's close and returns its error.
func closeErr(t *testing.T, ch <-chan *amqp.Error) *amqp.Error {
	t.Helper()
	select {
	case e := <-ch:
		return e
	case <-time.After(waitTimeout):
		t.Fatal("connection not closed")
		return nil
	}
}

// openRaw runs a handshake as user/pass up to connection.open on vhost and
// returns the connection.close the broker answered with (nil for open-ok);
// amqp091-go hides the text of a refused open.
func openRaw(t *testing.T, addr, user, pass, vhost string) *amqp091.ConnectionClose {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(waitTimeout))
	fr := amqp091.NewFrameReader(nc, 1<<20)
	next := func() amqp091.Method {
		t.Helper()
		for {
			fm, err := fr.ReadFrame()
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			if fm.Type != amqp091.FrameMethod {
				continue
			}
			m, err := amqp091.DecodeMethod(fm.Payload)
			if err != nil {
				t.Fatal(err)
			}
			return m
		}
	}
	send := func(m amqp091.Method) {
		if _, err := nc.Write(amqp091.AppendMethodFrame(nil, 0, m)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := nc.Write(amqp091.ProtocolHeader); err != nil {
		t.Fatal(err)
	}
	next() // connection.start
	caps := amqp091.Table{"capabilities": amqp091.Table{"authentication_failure_close": true}}
	send(&amqp091.ConnectionStartOk{ClientProperties: caps, Mechanism: "PLAIN", Response: "\x00" + user + "\x00" + pass, Locale: "en_US"})
	m := next()
	tune, ok := m.(*amqp091.ConnectionTune)
	if !ok {
		t.Fatalf("after start-ok: %s %+v", m.Name(), m)
	}
	send(&amqp091.ConnectionTuneOk{ChannelMax: tune.ChannelMax, FrameMax: tune.FrameMax})
	send(&amqp091.ConnectionOpen{VirtualHost: vhost})
	switch m := next().(type) {
	case *amqp091.ConnectionOpenOk:
		send(&amqp091.ConnectionClose{ReplyCode: 200, ReplyText: "bye"})
		return nil
	case *amqp091.ConnectionClose:
		send(&amqp091.ConnectionCloseOk{})
		return m
	default:
		t.Fatalf("after open: %s", m.Name())
		return nil
	}
}

// jsonLimits writes a limits object.
func jsonLimits(kv map[string]int) string {
	var b bytes.Buffer
	_ = json.NewEncoder(&b).Encode(kv)
	return strings.TrimSpace(b.String())
}
