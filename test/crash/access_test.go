package crash

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warren-mq/warren/internal/broker"
	"github.com/warren-mq/warren/internal/store"
)

// accessChildEnv names the data directory the access child process writes to.
const accessChildEnv = "WARREN_CRASH_ACCESS_DIR"

// rabbitHash is the password hash RabbitMQ 3.10 exported for "s3cret".
const rabbitHash = "saTMVKH1lBySYnuZaNdS5IY6/GjSMYqy8FpIa5w+ZSKKEsg0"

// accessWant is what accessState reports after the child's changes.
var accessWant = []string{
	"limits user alice [max-channels:7]",
	"limits vhost prod [max-connections:10 max-queues:5]",
	"permission alice / ^alice-final .* .*",
	"permission alice prod ^alice .* .*",
	"permission guest / .* .* .*",
	"topic alice prod amq.topic ^{username}\\. .*",
	"user alice rabbit_password_hashing_sha256 [monitoring] password",
	"user certuser rabbit_password_hashing_sha256 [] no-password",
	"user guest rabbit_password_hashing_sha256 [administrator] password",
	"user probe rabbit_password_hashing_sha256 [] password",
	"vhost / Default virtual host  ",
	"vhost prod Production a,b classic",
}

// TestCrashAccessChild is the process TestCrashAccessSurvives kills: it
// makes its changes through the broker's API on a file store, says READY and
// waits; SIGTERM closes the broker, kill -9 does not.
func TestCrashAccessChild(t *testing.T) {
	dir := os.Getenv(accessChildEnv)
	if dir == "" {
		t.Skip("run by TestCrashAccessSurvives")
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := store.Open(dir, store.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	b, err := broker.New(broker.Config{Store: st, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		if err != nil {
			fmt.Println("ERROR", err)
			os.Exit(1)
		}
	}
	_, err = b.PutVHost("prod", broker.VHostInfo{Description: "Production", Tags: "a,b", DefaultQueueType: "classic"})
	must(err)
	must(b.AddUser("alice", "alice-pw", "monitoring"))
	must(b.AddUser("certuser", ""))
	must(b.PutUser(broker.User{Name: "probe", PasswordHash: rabbitHash, HashAlgorithm: broker.HashSHA256}))
	must(b.SetPermissions("alice", "prod", broker.Permission{Configure: "^alice", Write: ".*", Read: ".*"}))
	// Enough changes for the store to compact its log to a snapshot.
	for i := range 300 {
		must(b.SetPermissions("alice", "/", broker.Permission{Configure: fmt.Sprintf("^alice-%d", i), Write: ".*", Read: ".*"}))
	}
	must(b.SetPermissions("alice", "/", broker.Permission{Configure: "^alice-final", Write: ".*", Read: ".*"}))
	must(b.SetTopicPermissions("alice", "prod", broker.TopicPermission{Exchange: "amq.topic", Write: "^{username}\\.", Read: ".*"}))
	must(b.SetVHostLimits("prod", map[string]int64{broker.LimitMaxQueues: 5, broker.LimitMaxConnections: 10}))
	must(b.SetUserLimits("alice", map[string]int64{broker.LimitMaxChannels: 7}))
	must(b.AddUser("gone", "x"))
	must(b.DeleteUser("gone"))
	_, err = b.PutVHost("tmp", broker.VHostInfo{})
	must(err)
	must(b.SetPermissions("alice", "tmp", broker.Permission{Configure: ".*"}))
	must(b.DeleteVHost("tmp"))
	fmt.Println("READY")
	<-term
	must(b.Close())
	os.Exit(0)
}

// accessState opens a data directory in-process and describes its users,
// permissions, topic permissions, limits and vhosts, one sorted line each.
func accessState(t *testing.T, dir string) []string {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := store.Open(dir, store.Options{Logger: quiet})
	if err != nil {
		t.Fatalf("open %s: %v", dir, err)
	}
	b, err := broker.New(broker.Config{Store: st, Logger: quiet})
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	defer b.Close()
	var out []string
	for _, u := range b.Users() {
		pw := "password"
		if u.PasswordHash == "" {
			pw = "no-password"
		}
		out = append(out, fmt.Sprintf("user %s %s %v %s", u.Name, u.HashAlgorithm, u.Tags, pw))
	}
	for _, p := range b.Permissions() {
		out = append(out, fmt.Sprintf("permission %s %s %s %s %s", p.User, p.VHost, p.Configure, p.Write, p.Read))
	}
	for _, p := range b.TopicPermissions() {
		out = append(out, fmt.Sprintf("topic %s %s %s %s %s", p.User, p.VHost, p.Exchange, p.Write, p.Read))
	}
	for v, l := range b.AllVHostLimits() {
		out = append(out, fmt.Sprintf("limits vhost %s %v", v, strings.TrimPrefix(fmt.Sprint(l), "map")))
	}
	for u, l := range b.AllUserLimits() {
		out = append(out, fmt.Sprintf("limits user %s %v", u, strings.TrimPrefix(fmt.Sprint(l), "map")))
	}
	for _, v := range b.VHosts() {
		i := v.Info()
		out = append(out, fmt.Sprintf("vhost %s %s %s %s", v.Name, i.Description, i.Tags, i.DefaultQueueType))
	}
	if _, err := b.Authenticate("alice", "alice-pw", false); err != nil {
		out = append(out, "alice cannot log in: "+err.Error())
	}
	if _, err := b.Authenticate("probe", "s3cret", false); err != nil {
		out = append(out, "probe cannot log in: "+err.Error())
	}
	slices.Sort(out)
	return out
}

// TestCrashAccessSurvives: users (with RabbitMQ's hashes), vhosts (with
// description, tags and default queue type), permissions, topic permissions
// and limits survive SIGTERM and kill -9 of the process that made them,
// across a log compaction; deleted users and vhosts stay deleted. Then the
// warren binary serves them: alice logs in with her password and is held to
// her permissions, before and after another kill -9.
func TestCrashAccessSurvives(t *testing.T) {
	bin := buildWarren(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, how := range []string{"SIGTERM", "kill -9"} {
		t.Run(strings.ReplaceAll(how, " ", ""), func(t *testing.T) {
			dir := t.TempDir()
			cmd := exec.Command(self, "-test.run=^TestCrashAccessChild$")
			cmd.Env = append(os.Environ(), accessChildEnv+"="+dir)
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			cmd.Stderr = os.Stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			line, _ := bufio.NewReader(stdout).ReadString('\n')
			if strings.TrimSpace(line) != "READY" {
				_ = cmd.Process.Kill()
				t.Fatalf("child: %q", line)
			}
			sig := syscall.SIGKILL
			if how == "SIGTERM" {
				sig = syscall.SIGTERM
			}
			_ = cmd.Process.Signal(sig)
			err = cmd.Wait()
			if how == "SIGTERM" && err != nil {
				t.Fatalf("child after SIGTERM: %v", err)
			}
			if got := accessState(t, dir); !slices.Equal(got, accessWant) {
				t.Fatalf("after %s:\n%s\nwant:\n%s", how, strings.Join(got, "\n"), strings.Join(accessWant, "\n"))
			}

			w := newWarren(t, bin, dir)
			w.start()
			checkAlice(t, "amqp://alice:alice-pw@"+w.addr+"/prod")
			w.kill()
			if got := accessState(t, dir); !slices.Equal(got, accessWant) {
				t.Fatalf("after the binary's kill -9:\n%s", strings.Join(got, "\n"))
			}
			w.start() // on a new port
			checkAlice(t, "amqp://alice:alice-pw@"+w.addr+"/prod")
			w.stop()
		})
	}
}

// checkAlice logs in as alice and checks her configure permission ^alice.
func checkAlice(t *testing.T, url string) {
	t.Helper()
	c, err := amqp.DialConfig(url, amqp.Config{Dial: amqp.DefaultDial(10 * time.Second)})
	if err != nil {
		t.Fatalf("alice: %v", err)
	}
	defer c.Close()
	ch, err := c.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare("alice-q", true, false, false, false, nil); err != nil {
		t.Fatalf("alice-q: %v", err)
	}
	_, err = ch.QueueDeclare("bob-q", true, false, false, false, nil)
	if err == nil || !strings.Contains(err.Error(), "access to queue 'bob-q' in vhost 'prod' refused for user 'alice'") {
		t.Fatalf("bob-q: %v", err)
	}
}
