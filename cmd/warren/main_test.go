package main

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warren-mq/warren/internal/store"
	"github.com/warren-mq/warren/internal/testcerts"
)

// lockedBuffer is an io.Writer the broker's goroutines and the test share.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newTestLogger(w *lockedBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// runResult is the outcome of run() called in-process.
type runResult struct {
	code           int
	stdout, stderr string
}

func runNow(args []string, env map[string]string) runResult {
	var out, errb lockedBuffer
	code := run(args, envOf(env), &out, &errb, nil)
	return runResult{code, out.String(), errb.String()}
}

func TestRunHelpVersionAndUsageErrors(t *testing.T) {
	for _, arg := range []string{"--help", "-h", "-help"} {
		r := runNow([]string{arg}, nil)
		if r.code != 0 {
			t.Errorf("%s: exit %d, stderr %q", arg, r.code, r.stderr)
		}
		for _, want := range []string{
			"Warren is a message broker", "--amqp-addr ADDR", "WARREN_AMQP_ADDR", `default ":5672"`,
			"--tls-verify verify_none|verify_peer", "WARREN_TLS_CERT", "CONFIG FILE", "key = value",
			"SIGHUP", "SIGTERM", "DATA DIRECTORY", "holds DIR/LOCK", "cp -a DIR DIR.bak", "EXIT STATUS",
		} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("%s: help lacks %q", arg, want)
			}
		}
	}
	if r := runNow([]string{"--version"}, nil); r.code != 0 || !regexp.MustCompile(`^warren \d+\.\d+\.\d+\n$`).MatchString(r.stdout) {
		t.Errorf("--version: exit %d, stdout %q", r.code, r.stdout)
	}
	for _, args := range [][]string{{"--no-such-flag"}, {"serve"}, {"--sync", "sometimes"}, {"--amqp-addr"}} {
		r := runNow(args, nil)
		if r.code != 2 || !strings.HasPrefix(r.stderr, "warren: ") {
			t.Errorf("%v: exit %d, stderr %q; want 2 and a message", args, r.code, r.stderr)
		}
	}
	bad := writeConfig(t, "nope = 1\n")
	if r := runNow(nil, map[string]string{"WARREN_CONFIG": bad}); r.code != 2 || !strings.Contains(r.stderr, bad+":1: unknown key") {
		t.Errorf("bad config file: exit %d, stderr %q", r.code, r.stderr)
	}
	// --help and --version work whatever the file or the environment holds.
	for _, arg := range []string{"--help", "--version"} {
		if r := runNow([]string{"--config", bad, arg}, map[string]string{"WARREN_SYNC": "sometimes"}); r.code != 0 || r.stdout == "" {
			t.Errorf("%s with a bad config file: exit %d, stderr %q", arg, r.code, r.stderr)
		}
	}
}

// started runs warren in-process until the test ends and returns the
// listener addresses it logged.
type started struct {
	sig    chan os.Signal
	done   chan int
	stderr *lockedBuffer
	amqp   string
	amqps  string
}

func startRun(t *testing.T, args []string, env map[string]string) *started {
	t.Helper()
	s := &started{sig: make(chan os.Signal, 1), done: make(chan int, 1), stderr: &lockedBuffer{}}
	go func() { s.done <- run(args, envOf(env), &lockedBuffer{}, s.stderr, s.sig) }()
	re := regexp.MustCompile(`msg="Warren started" amqp=(\S+)(?: amqps=(\S+))?`)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m := re.FindStringSubmatch(s.stderr.String()); m != nil {
			s.amqp, s.amqps = m[1], m[2]
			break
		}
		select {
		case code := <-s.done:
			t.Fatalf("warren exited %d before starting:\n%s", code, s.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("warren did not start within 30 s:\n%s", s.stderr.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Cleanup(func() {
		select {
		case s.sig <- syscall.SIGTERM:
		default:
		}
		select {
		case <-s.done:
		case <-time.After(20 * time.Second):
			t.Error("warren did not stop within 20 s of SIGTERM")
		}
	})
	return s
}

// stop sends SIGTERM and returns the exit status.
func (s *started) stop(t *testing.T) int {
	t.Helper()
	s.sig <- syscall.SIGTERM
	select {
	case code := <-s.done:
		s.done <- code // for Cleanup
		return code
	case <-time.After(20 * time.Second):
		t.Fatal("warren did not stop within 20 s of SIGTERM")
		return -1
	}
}

func TestRunStartsLogsEffectiveConfigAndStops(t *testing.T) {
	dir := t.TempDir()
	file := writeConfig(t, "sync = never\n")
	s := startRun(t, []string{"--data-dir", dir, "--amqp-addr", "127.0.0.1:0", "--config", file},
		map[string]string{"WARREN_LOG_LEVEL": "debug"})
	c, err := amqp.Dial("amqp://guest:guest@" + s.amqp + "/")
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	log := s.stderr.String()
	for _, want := range []string{
		`key=log-level value=debug from="env WARREN_LOG_LEVEL"`,
		`key=data-dir value=` + dir + ` from=flag`,
		`key=sync value=never from="file ` + file + `:1"`,
		`key=disk-free-limit value=50MB from=default`,
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %s", want)
		}
	}
	if n := strings.Count(log, "key=amqp-addr "); n != 1 {
		t.Errorf("amqp-addr printed %d times, want once", n)
	}
	if code := s.stop(t); code != 0 {
		t.Errorf("exit %d after SIGTERM", code)
	}
}

func TestRunTLSListenerReloadsOnSIGHUP(t *testing.T) {
	certs := t.TempDir()
	ca, err := testcerts.NewCA(certs, "Warren test CA")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ca.Server("server", "server-1")
	if err != nil {
		t.Fatal(err)
	}
	s := startRun(t, []string{"--data-dir", t.TempDir(), "--amqp-addr", "127.0.0.1:0", "--amqps-addr", "127.0.0.1:0",
		"--tls-cert", srv.CertFile, "--tls-key", srv.KeyFile}, nil)
	if s.amqps == "" {
		t.Fatalf("no amqps listener logged:\n%s", s.stderr.String())
	}
	tc := &tls.Config{RootCAs: ca.Pool, ServerName: "localhost"}
	serverCN := func() string {
		c, err := tls.Dial("tcp", s.amqps, tc)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	old, err := amqp.DialTLS("amqps://guest:guest@"+s.amqps+"/", tc)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if cn := serverCN(); cn != "server-1" {
		t.Fatalf("server certificate %q, want server-1", cn)
	}
	if _, err := ca.Server("server", "server-2"); err != nil {
		t.Fatal(err)
	}
	s.sig <- syscall.SIGHUP
	deadline := time.Now().Add(10 * time.Second)
	for serverCN() != "server-2" {
		if time.Now().After(deadline) {
			t.Fatalf("still the old certificate 10 s after SIGHUP:\n%s", s.stderr.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	ch, err := old.Channel()
	if err != nil {
		t.Fatalf("connection opened before SIGHUP: %v", err)
	}
	if _, err := ch.QueueDeclare("", false, true, true, false, nil); err != nil {
		t.Fatalf("connection opened before SIGHUP: %v", err)
	}
	if code := s.stop(t); code != 0 {
		t.Errorf("exit %d after SIGTERM", code)
	}
}

func TestRunDataDirErrorsSayWhatToDo(t *testing.T) {
	base := t.TempDir()
	locked := filepath.Join(base, "locked")
	st, err := store.Open(locked, store.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	file := filepath.Join(base, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	corrupt := filepath.Join(base, "corrupt")
	if err := os.MkdirAll(corrupt, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(corrupt, "meta.log"), []byte("not a meta log at all"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A record with a valid checksum that is no metadata record (type 99): the
	// record framing is in internal/store/doc.go.
	undecodable := filepath.Join(base, "undecodable")
	st2, err := store.Open(undecodable, store.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	st2.Close()
	meta := filepath.Join(undecodable, "meta.log")
	b, err := os.ReadFile(meta)
	if err != nil {
		t.Fatal(err)
	}
	off := len(b)
	payload := []byte{99, 'x'} // type, payload
	rec := binary.LittleEndian.AppendUint32(nil, uint32(len(payload)))
	crc := crc32.Update(crc32.Checksum(rec, crc32.MakeTable(crc32.Castagnoli)), crc32.MakeTable(crc32.Castagnoli), payload)
	rec = binary.LittleEndian.AppendUint32(rec, crc)
	if err := os.WriteFile(meta, append(append(b, rec...), payload...), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, dir string
		want      []string
	}{
		{"locked", locked, []string{"another warren process", "holds " + filepath.Join(locked, "LOCK"), "stop it", "--data-dir"}},
		{"not a directory", file, []string{file + " is not a directory", "--data-dir"}},
		{"path through a file", filepath.Join(file, "sub"), []string{"not a directory", "fix --data-dir"}},
		{"corrupt", corrupt, []string{"cannot recover data directory " + corrupt, "meta.log", "cp -a", "warren --help"}},
		{"undecodable record", undecodable, []string{"cannot recover data directory " + undecodable, fmt.Sprintf("meta.log at offset %d", off), "cp -a", "warren --help"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := runNow([]string{"--data-dir", c.dir, "--amqp-addr", "127.0.0.1:0"}, nil)
			t.Logf("stderr: %s", r.stderr)
			if r.code != 1 {
				t.Fatalf("exit %d, want 1; stderr %q", r.code, r.stderr)
			}
			for _, w := range c.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr %q lacks %q", r.stderr, w)
				}
			}
		})
	}
}

func TestRunDataDirPermissionDenied(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "data")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() != 0 {
		if err := os.Chmod(dir, 0); err != nil {
			t.Fatal(err)
		}
		defer os.Chmod(dir, 0o700)
		r := runNow([]string{"--data-dir", dir, "--amqp-addr", "127.0.0.1:0"}, nil)
		checkPermissionMessage(t, r.code, r.stderr, dir)
		return
	}
	// Root reads everything: run the binary as nobody on a directory root
	// owns, in a temporary directory others can search (t.TempDir's is 0700).
	base, err := os.MkdirTemp("", "warren-perm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	dir = filepath.Join(base, "data")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Dir(base)); err != nil || fi.Mode().Perm()&0o001 == 0 {
		t.Skipf("%s is not searchable by other users", filepath.Dir(base))
	}
	bin := filepath.Join(base, "warren")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "--data-dir", dir, "--amqp-addr", "127.0.0.1:0")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	checkPermissionMessage(t, code, stderr.String(), dir)
}

func checkPermissionMessage(t *testing.T, code int, stderr, dir string) {
	t.Helper()
	if code != 1 {
		t.Fatalf("exit %d, want 1; stderr %q", code, stderr)
	}
	for _, w := range []string{"cannot open data directory " + dir, "permission denied", "chown -R USER " + dir, "--data-dir"} {
		if !strings.Contains(stderr, w) {
			t.Errorf("stderr %q lacks %q", stderr, w)
		}
	}
}
