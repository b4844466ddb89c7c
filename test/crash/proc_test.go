package crash

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// buildWarren compiles cmd/warren into a temporary directory and returns the
// binary's path. The test package lives inside the module, so the package
// path resolves from the test's working directory.
func buildWarren(t *testing.T) string {
	t.Helper()
	// go test puts its own GOROOT/bin first on PATH.
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go not on PATH: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "warren")
	start := time.Now()
	out, err := exec.Command(goBin, "build", "-o", bin, "github.com/warren-mq/warren/cmd/warren").CombinedOutput()
	if err != nil {
		t.Fatalf("go build ./cmd/warren: %v\n%s", err, out)
	}
	t.Logf("built %s in %v", bin, time.Since(start).Round(time.Millisecond))
	return bin
}

// warren is the broker binary run as a child process on one data directory,
// started and killed again and again.
type warren struct {
	t      *testing.T
	bin    string
	dir    string // data directory, shared by every run
	logDir string
	extra  []string // more command-line flags

	runs int // how many times it was started
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has been waited for
	err  error         // cmd.Wait's result, valid after done
	log  string        // this run's log file
	addr string
	// started is when the current process was started; ready is how long it
	// took from then until it accepted an AMQP connection.
	started time.Time
	ready   time.Duration
	// peak is the highest peak RSS (VmHWM) of any run, read just before
	// each run was signalled to end.
	peak uint64
}

// notePeak adds the running process's peak RSS to w.peak.
func (w *warren) notePeak() {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", w.cmd.Process.Pid))
	if err != nil {
		return // already gone
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			if kb, err := strconv.ParseUint(f[1], 10, 64); err == nil {
				w.peak = max(w.peak, kb<<10)
			}
		}
	}
}

func newWarren(t *testing.T, bin, dir string, extra ...string) *warren {
	logDir := t.TempDir()
	if keep := os.Getenv("WARREN_CRASH_DIR"); keep != "" {
		logDir = filepath.Clean(keep) + ".logs"
		if err := os.RemoveAll(logDir); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(logDir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	w := &warren{t: t, bin: bin, dir: dir, logDir: logDir, extra: extra}
	t.Cleanup(func() {
		w.terminate()
	})
	return w
}

// URL is the AMQP URL of the running process.
func (w *warren) URL() string { return "amqp://guest:guest@" + w.addr + "/" }

// freePort asks the kernel for a free loopback port. Another process may take
// it before Warren binds it; start then retries with a new one.
func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	return addr, l.Close()
}

// start runs the binary and waits until it accepts AMQP connections.
func (w *warren) start() {
	w.t.Helper()
	for attempt := 1; ; attempt++ {
		err := w.tryStart()
		if err == nil {
			return
		}
		if attempt < 5 && strings.Contains(w.logText(), "address already in use") {
			w.t.Logf("port %s was taken, retrying: %v", w.addr, err)
			continue
		}
		w.t.Fatalf("warren run %d did not come up: %v\n%s", w.runs, err, w.logTail(60))
	}
}

func (w *warren) tryStart() error {
	if err := w.launch(); err != nil {
		return err
	}
	if err := w.waitReady(60 * time.Second); err != nil {
		w.terminate()
		return err
	}
	w.ready = time.Since(w.started)
	return nil
}

// launch starts the process on a fresh port with its own log file.
func (w *warren) launch() error {
	addr, err := freePort()
	if err != nil {
		return err
	}
	w.runs++
	w.addr = addr
	w.log = filepath.Join(w.logDir, fmt.Sprintf("run-%02d.log", w.runs))
	lf, err := os.Create(w.log)
	if err != nil {
		return err
	}
	args := append([]string{"--amqp-addr", addr, "--data-dir", w.dir}, w.extra...)
	cmd := exec.Command(w.bin, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	w.started = time.Now()
	if err := cmd.Start(); err != nil {
		lf.Close()
		return err
	}
	w.cmd, w.done = cmd, make(chan struct{})
	done := w.done
	go func() {
		w.err = cmd.Wait()
		lf.Close()
		close(done)
	}()
	return nil
}

// killDuringStartup starts the process and kills it after delay, ready or
// not: recovery itself must survive a crash. A process that exits by itself
// before the kill fails the test.
func (w *warren) killDuringStartup(delay time.Duration) {
	w.t.Helper()
	if err := w.launch(); err != nil {
		w.t.Fatal(err)
	}
	select {
	case <-w.done:
	case <-time.After(delay): // a random kill moment, not synchronisation
	}
	w.kill()
}

// termThenKill asks for a clean shutdown and kills the process if it is still
// running after delay: a shutdown cut short (say by a supervisor's timeout).
// It reports whether the kill was needed.
func (w *warren) termThenKill(delay time.Duration) bool {
	w.t.Helper()
	w.notePeak()
	_ = w.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-w.done:
		w.cmd = nil
		if w.err != nil {
			w.t.Errorf("warren run %d exited with %v after SIGTERM\n%s", w.runs, w.err, w.logTail(60))
		}
		return false
	case <-time.After(delay): // a random kill moment, not synchronisation
	}
	_ = w.cmd.Process.Signal(syscall.SIGKILL)
	<-w.done
	w.cmd = nil
	if w.err != nil && !exitedBySignal(w.err) {
		w.t.Errorf("warren run %d exited with %v during shutdown\n%s", w.runs, w.err, w.logTail(60))
	}
	return true
}

// waitReady polls until an AMQP handshake succeeds, the process exits or the
// timeout passes. Recovering a big store can take a while, hence the bound.
func (w *warren) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := amqp.DialConfig(w.URL(), amqp.Config{Dial: amqp.DefaultDial(time.Second)})
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-w.done:
			return fmt.Errorf("exited before accepting connections: %v", w.err)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not accepting AMQP connections after %v: %v", timeout, err)
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not synchronisation
	}
}

// kill sends SIGKILL and waits until the process is gone. A process that
// was already gone, or died of something else, crashed on its own: that
// fails the test.
func (w *warren) kill() {
	if w.cmd == nil {
		return
	}
	w.terminate()
	if !exitedBySignal(w.err) {
		w.t.Errorf("warren run %d ended by itself before SIGKILL: %v\n%s", w.runs, w.err, w.logTail(60))
	}
}

// terminate sends SIGKILL, whatever state the process is in, and waits.
func (w *warren) terminate() {
	if w.cmd == nil {
		return
	}
	w.notePeak()
	_ = w.cmd.Process.Signal(syscall.SIGKILL)
	<-w.done
	w.cmd = nil
}

// stop asks for a clean shutdown with SIGTERM and fails the test if the
// process does not exit with status 0 within the bound.
func (w *warren) stop() {
	w.t.Helper()
	if w.cmd == nil {
		return
	}
	w.notePeak()
	_ = w.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-w.done:
	case <-time.After(30 * time.Second):
		w.kill()
		w.t.Fatalf("warren run %d ignored SIGTERM for 30s\n%s", w.runs, w.logTail(60))
	}
	w.cmd = nil
	if w.err != nil {
		w.t.Errorf("warren run %d exited with %v after SIGTERM\n%s", w.runs, w.err, w.logTail(60))
	}
}

func (w *warren) logText() string {
	b, _ := os.ReadFile(w.log)
	return string(b)
}

// logTail returns the last n lines of the current run's log.
func (w *warren) logTail(n int) string {
	lines := strings.Split(strings.TrimRight(w.logText(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// snapshot copies the data directory, as the last kill left it, to
// <data dir>.<name> for a post-mortem.
func (w *warren) snapshot(name string) {
	w.t.Helper()
	dst := filepath.Clean(w.dir) + "." + name
	if err := os.RemoveAll(dst); err != nil {
		w.t.Fatal(err)
	}
	if err := os.CopyFS(dst, os.DirFS(w.dir)); err != nil {
		w.t.Fatalf("snapshot: %v", err)
	}
}

// logRecovery copies the broker's own account of its recovery (lines
// mentioning recover) from the current run's log into the test log.
func (w *warren) logRecovery() {
	w.t.Helper()
	for _, line := range strings.Split(w.logText(), "\n") {
		if strings.Contains(line, "recover") {
			w.t.Logf("run %d log: %s", w.runs, line)
		}
	}
}

// badLogMarkers are what must never appear in a broker log: a runtime panic,
// a recovered connection panic, a fatal runtime error, and any error-level
// line (Warren logs errors only for real failures: a failed store, an
// unreadable segment, a failed ack).
var badLogMarkers = []string{"panic", "fatal error:", "DATA RACE", "level=ERROR"}

// checkLogs fails t for every run whose log shows a panic or an error, and
// logs the recovery warnings (torn tails cut off) seen in each run and how
// many segments the store compacted (debug level).
func (w *warren) checkLogs() {
	w.t.Helper()
	compactions := 0
	defer func() { w.t.Logf("store compactions over all runs: %d", compactions) }()
	for i := 1; i <= w.runs; i++ {
		path := filepath.Join(w.logDir, fmt.Sprintf("run-%02d.log", i))
		b, err := os.ReadFile(path)
		if err != nil {
			w.t.Errorf("run %d log: %v", i, err)
			continue
		}
		for _, m := range badLogMarkers {
			if bytes.Contains(b, []byte(m)) {
				w.t.Errorf("run %d log contains %q:\n%s", i, m, excerpt(b, m))
			}
		}
		compactions += bytes.Count(b, []byte("compacting segment"))
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, "level=WARN") {
				w.t.Logf("run %d: %s", i, line)
			}
		}
	}
}

// excerpt returns the line holding the first occurrence of m in b and up to
// 40 lines after it (a panic's stack).
func excerpt(b []byte, m string) string {
	i := bytes.Index(b, []byte(m))
	if i < 0 {
		return ""
	}
	from := bytes.LastIndexByte(b[:i], '\n') + 1
	lines := strings.SplitN(string(b[from:]), "\n", 42)
	return strings.Join(lines[:min(len(lines), 41)], "\n")
}

// exitedBySignal reports whether err says the process died from SIGKILL,
// which is what kill expects.
func exitedBySignal(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}
