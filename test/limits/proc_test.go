// Package limits holds black-box tests of Warren's resource limits: they run
// the built binary and hold it to what --memory-limit and --disk-free-limit
// promise, measured from outside (the process's RSS, the data directory's
// file system), with real clients.
package limits

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

var built struct {
	once sync.Once
	bin  string
	err  error
}

// buildWarren compiles cmd/warren into a temporary directory, once per test
// binary, and returns its path; WARREN_LIMITS_BIN names a binary to use instead.
func buildWarren(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		if bin := os.Getenv("WARREN_LIMITS_BIN"); bin != "" {
			built.bin = bin // to measure another build (say, before a fix) with the same tests
			return
		}
		// go test puts its own GOROOT/bin first on PATH.
		goBin, err := exec.LookPath("go")
		if err != nil {
			built.err = fmt.Errorf("go not on PATH: %v", err)
			return
		}
		dir, err := os.MkdirTemp("", "warren-limits-")
		if err != nil {
			built.err = err
			return
		}
		built.bin = filepath.Join(dir, "warren")
		out, err := exec.Command(goBin, "build", "-o", built.bin, "github.com/warren-mq/warren/cmd/warren").CombinedOutput()
		if err != nil {
			built.err = fmt.Errorf("go build ./cmd/warren: %v\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.bin
}

// warren is one run of the broker binary.
type warren struct {
	t    *testing.T
	cmd  *exec.Cmd
	done chan struct{}
	err  error
	log  string
	addr string
}

// startWarren runs the binary on dataDir with extra flags and waits until it
// accepts AMQP connections. The process is killed when the test ends.
func startWarren(t *testing.T, dataDir string, extra ...string) *warren {
	t.Helper()
	bin := buildWarren(t)
	for attempt := 1; ; attempt++ {
		w, err := tryStart(t, bin, dataDir, extra)
		if err == nil {
			return w
		}
		if attempt < 5 && strings.Contains(w.logText(), "address already in use") {
			continue
		}
		t.Fatalf("warren did not come up: %v\n%s", err, w.logTail(40))
	}
}

func tryStart(t *testing.T, bin, dataDir string, extra []string) (*warren, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	w := &warren{t: t, addr: addr, done: make(chan struct{}), log: filepath.Join(t.TempDir(), "warren.log")}
	lf, err := os.Create(w.log)
	if err != nil {
		t.Fatal(err)
	}
	w.cmd = exec.Command(bin, append([]string{"--amqp-addr", addr, "--data-dir", dataDir}, extra...)...)
	w.cmd.Stdout, w.cmd.Stderr = lf, lf
	if err := w.cmd.Start(); err != nil {
		lf.Close()
		t.Fatal(err)
	}
	go func() {
		w.err = w.cmd.Wait()
		lf.Close()
		close(w.done)
	}()
	t.Cleanup(w.kill)
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := amqp.DialConfig(w.URL(), amqp.Config{Dial: amqp.DefaultDial(time.Second)})
		if err == nil {
			c.Close()
			return w, nil
		}
		select {
		case <-w.done:
			return w, fmt.Errorf("exited: %v", w.err)
		default:
		}
		if time.Now().After(deadline) {
			w.kill()
			return w, err
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not synchronisation
	}
}

// URL is the broker's AMQP URL.
func (w *warren) URL() string { return "amqp://guest:guest@" + w.addr + "/" }

// kill sends SIGKILL (a crash, not a shutdown) and waits for the process.
func (w *warren) kill() {
	if w.cmd == nil || w.cmd.Process == nil {
		return
	}
	_ = w.cmd.Process.Signal(syscall.SIGKILL)
	<-w.done
}

// stop sends SIGTERM (a clean shutdown) and waits for the process to exit.
func (w *warren) stop() {
	if w.cmd == nil || w.cmd.Process == nil {
		return
	}
	_ = w.cmd.Process.Signal(syscall.SIGTERM)
	<-w.done
}

// alive reports whether the process is still running.
func (w *warren) alive() bool {
	select {
	case <-w.done:
		return false
	default:
		return true
	}
}

func (w *warren) logText() string {
	b, _ := os.ReadFile(w.log)
	return string(b)
}

func (w *warren) logTail(n int) string {
	lines := strings.Split(strings.TrimRight(w.logText(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// status reads one "Name: value kB" field of /proc/PID/status, in bytes.
func (w *warren) status(field string) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", w.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == field+":" {
			kb, err := strconv.ParseUint(f[1], 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New(field + " not in /proc status")
}

// countBlocks counts the connection.blocked and connection.unblocked that
// conn receives. (amqp091-go stops reading while a notification channel is
// full, so it is drained at once.)
func countBlocks(conn *amqp.Connection) (blocked, unblocked *atomic.Int64) {
	blocked, unblocked = new(atomic.Int64), new(atomic.Int64)
	notes := conn.NotifyBlocked(make(chan amqp.Blocking, 16))
	go func() {
		for b := range notes {
			if b.Active {
				blocked.Add(1)
			} else {
				unblocked.Add(1)
			}
		}
	}()
	return blocked, unblocked
}

// checkFor polls fn until it is true or timeout passes.
func checkFor(t *testing.T, timeout time.Duration, what string, fn func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !fn() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not synchronisation
	}
}
