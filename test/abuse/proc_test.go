package abuse

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// binary is the warren binary TestMain builds once for every test here.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "warren-abuse-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "warren")
	// go test puts its own GOROOT/bin first on PATH.
	goBin, err := exec.LookPath("go")
	if err != nil {
		fmt.Fprintln(os.Stderr, "go not on PATH:", err)
		os.Exit(1)
	}
	if out, err := exec.Command(goBin, "build", "-o", binary, "github.com/warren-mq/warren/cmd/warren").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build ./cmd/warren: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// warren is one run of the binary as a child process.
type warren struct {
	t    *testing.T
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has been waited for
	err  error         // its exit, valid after done
	log  string        // its log file
	addr string
}

// startWarren runs the binary with the open-file limit (soft and hard) set to
// nofile, 0 for the inherited one, and waits until it serves AMQP.
func startWarren(t *testing.T, nofile int, extra ...string) *warren {
	t.Helper()
	for attempt := 1; ; attempt++ {
		w, err := launch(t, nofile, extra)
		if err == nil {
			return w
		}
		if attempt < 5 && strings.Contains(w.logText(), "address already in use") {
			continue // another process took the free port first
		}
		t.Fatalf("warren did not come up: %v\n%s", err, w.logText())
	}
}

func launch(t *testing.T, nofile int, extra []string) (*warren, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	w := &warren{t: t, addr: l.Addr().String(), log: filepath.Join(t.TempDir(), "warren.log"), done: make(chan struct{})}
	l.Close()
	args := append([]string{"--amqp-addr", w.addr, "--data-dir", t.TempDir(), "--sync", "never"}, extra...)
	if nofile > 0 {
		// ulimit in the shell sets both limits, so warren cannot raise the soft
		// one past it; exec keeps the pid, so signals reach warren itself.
		args = append([]string{"-c", fmt.Sprintf(`ulimit -n %d && exec "$0" "$@"`, nofile), binary}, args...)
		w.cmd = exec.Command("/bin/sh", args...)
	} else {
		w.cmd = exec.Command(binary, args...)
	}
	lf, err := os.Create(w.log)
	if err != nil {
		t.Fatal(err)
	}
	w.cmd.Stdout, w.cmd.Stderr = lf, lf
	if err := w.cmd.Start(); err != nil {
		lf.Close()
		t.Fatal(err)
	}
	go func() { w.err = w.cmd.Wait(); lf.Close(); close(w.done) }()
	t.Cleanup(w.kill)
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := amqp.DialConfig(w.URL(), amqp.Config{Dial: amqp.DefaultDial(time.Second)})
		if err == nil {
			c.Close()
			return w, nil
		}
		if w.exited() {
			return w, fmt.Errorf("exited: %v", w.err)
		}
		if time.Now().After(deadline) {
			w.kill()
			return w, err
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
}

// URL is the broker's AMQP URL for guest.
func (w *warren) URL() string { return "amqp://guest:guest@" + w.addr + "/" }

func (w *warren) exited() bool {
	select {
	case <-w.done:
		return true
	default:
		return false
	}
}

func (w *warren) signal(s syscall.Signal) {
	w.t.Helper()
	if err := w.cmd.Process.Signal(s); err != nil {
		w.t.Fatalf("signal %v: %v", s, err)
	}
}

func (w *warren) kill() {
	_ = w.cmd.Process.Signal(syscall.SIGCONT) // a stopped process dies only once resumed
	_ = w.cmd.Process.Kill()
	<-w.done
}

// checkUp fails the test if the process has exited, and if its log shows a
// panic or an error-level line.
func (w *warren) checkUp() {
	w.t.Helper()
	if w.exited() {
		w.t.Fatalf("warren exited: %v\n%s", w.err, tail(w.logText(), 40))
	}
	log := w.logText()
	for _, bad := range []string{"panic", "fatal error:", "level=ERROR", "DATA RACE"} {
		if strings.Contains(log, bad) {
			w.t.Fatalf("warren log contains %q:\n%s", bad, tail(log, 40))
		}
	}
}

func (w *warren) logText() string {
	b, _ := os.ReadFile(w.log)
	return string(b)
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// isClosed reports whether err means the peer closed the connection.
func isClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
