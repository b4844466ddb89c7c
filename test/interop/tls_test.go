package interop

import (
	"crypto/tls"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/warren-mq/warren/internal/testbroker"
	"github.com/warren-mq/warren/internal/testcerts"
)

var build struct {
	once sync.Once
	bin  string
	err  error
	out  []byte
}

// warrenBinary builds cmd/warren once per test binary.
func warrenBinary(t *testing.T) string {
	t.Helper()
	build.once.Do(func() {
		dir, err := os.MkdirTemp("", "warren-interop-")
		if err != nil {
			build.err = err
			return
		}
		build.bin = filepath.Join(dir, "warren")
		build.out, build.err = exec.Command("go", "build", "-o", build.bin, "../../cmd/warren").CombinedOutput()
	})
	if build.err != nil {
		t.Fatalf("go build: %v\n%s", build.err, build.out)
	}
	return build.bin
}

// broker is a warren process started by a test.
type broker struct {
	cmd   *exec.Cmd
	log   *testbroker.SyncBuffer
	amqps string
}

// startWarren runs the binary with args and waits for its AMQPS address.
func startWarren(t *testing.T, args ...string) *broker {
	t.Helper()
	args = append([]string{"--data-dir", t.TempDir(), "--amqp-addr", "127.0.0.1:0", "--amqps-addr", "127.0.0.1:0"}, args...)
	b := &broker{cmd: exec.Command(warrenBinary(t), args...), log: &testbroker.SyncBuffer{}}
	b.cmd.Stdout, b.cmd.Stderr = b.log, b.log
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- b.cmd.Wait() }()
	t.Cleanup(func() {
		_ = b.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("warren exited with %v after SIGTERM\n%s", err, b.log.String())
			}
		case <-time.After(20 * time.Second):
			_ = b.cmd.Process.Kill()
			t.Errorf("warren still running 20 s after SIGTERM")
		}
	})
	re := regexp.MustCompile(`msg="Warren started" .*amqps=(\S+)`)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m := re.FindStringSubmatch(b.log.String()); m != nil {
			b.amqps = m[1]
			return b
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("warren exited (%v) before starting:\n%s", err, b.log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("warren did not start within 30 s:\n%s", b.log.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// certs writes what pika_tls.py and gencerts agree on: ca.pem, server.pem,
// server-key.pem, client.pem and client-key.pem, the client being clientCN.
func certs(t *testing.T, clientCN string) (*testcerts.CA, string) {
	t.Helper()
	dir := t.TempDir()
	ca, err := testcerts.NewCA(dir, "Warren interop CA")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.Server("server", "server-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := ca.Client("client", clientCN); err != nil {
		t.Fatal(err)
	}
	return ca, dir
}

func tlsArgs(dir string, extra ...string) []string {
	return append([]string{
		"--tls-cert", filepath.Join(dir, "server.pem"), "--tls-key", filepath.Join(dir, "server-key.pem"),
		"--tls-ca", filepath.Join(dir, "ca.pem"), "--tls-verify", "verify_peer",
	}, extra...)
}

func TestInteropPikaTLS(t *testing.T) {
	if err := exec.Command("/usr/bin/python3", "-c", "import pika").Run(); err != nil {
		t.Skip("python3-pika not installed (apt-get install python3-pika)")
	}
	// A user other than guest, created at the first start; its certificate
	// names it for EXTERNAL, and PLAIN takes its password.
	const user, pass = "tls-user", "tls-secret"
	_, dir := certs(t, user)
	for _, c := range []struct {
		name  string
		extra []string
	}{
		{"verify_peer", nil},
		{"fail_if_no_peer_cert", []string{"--tls-fail-if-no-peer-cert", "--cert-required"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			brokerArgs, scriptArgs := c.extra, []string(nil)
			if len(c.extra) > 0 {
				brokerArgs, scriptArgs = c.extra[:1], c.extra[1:]
			}
			b := startWarren(t, tlsArgs(dir, append(brokerArgs, "--default-user", user, "--default-pass", pass)...)...)
			host, port := splitHostPort(t, b.amqps)
			args := append([]string{"pika_tls.py", host, port, dir, "--user", user, "--password", pass}, scriptArgs...)
			cmd := exec.Command("/usr/bin/python3", args...)
			out, err := cmd.CombinedOutput()
			t.Logf("pika_tls.py:\n%s", out)
			if err != nil {
				t.Fatalf("pika_tls.py: %v\nbroker log:\n%s", err, b.log.String())
			}
		})
	}
}

func TestInteropTLSReloadOnSIGHUP(t *testing.T) {
	ca, dir := certs(t, "guest")
	b := startWarren(t, tlsArgs(dir)...)
	tc := &tls.Config{RootCAs: ca.Pool, ServerName: "localhost"}
	serverCN := func() string {
		c, err := tls.Dial("tcp", b.amqps, tc)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	open, err := tls.Dial("tcp", b.amqps, tc)
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	if cn := serverCN(); cn != "server-1" {
		t.Fatalf("server certificate %q, want server-1", cn)
	}
	if _, err := ca.Server("server", "server-2"); err != nil {
		t.Fatal(err)
	}
	if err := b.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for serverCN() != "server-2" {
		if time.Now().After(deadline) {
			t.Fatalf("old certificate still served 10 s after SIGHUP\n%s", b.log.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The connection made before the reload is still served: the broker
	// answers its protocol header with connection.start.
	_ = open.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := open.Write([]byte("AMQP\x00\x00\x09\x01")); err != nil {
		t.Fatal(err)
	}
	var frame [8]byte
	if _, err := open.Read(frame[:]); err != nil || frame[0] != 1 {
		t.Fatalf("connection opened before SIGHUP: read %v, %x", err, frame)
	}
}

func splitHostPort(t *testing.T, addr string) (string, string) {
	t.Helper()
	i := len(addr) - 1
	for i >= 0 && addr[i] != ':' {
		i--
	}
	if i < 0 {
		t.Fatalf("bad address %q", addr)
	}
	return addr[:i], addr[i+1:]
}
