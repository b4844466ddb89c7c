package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/warren-mq/warren/internal/testbroker"
)

// perfRun parses args against a private in-process Warren and runs them,
// recording every counted body's sequence number per consumer.
func perfRun(t *testing.T, url string, args ...string) (result, map[int][]uint32, string) {
	t.Helper()
	cfg, err := parseFlags(append([]string{"-h", url}, args...), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cfg.events = &events{w: &stderr}
	var mu sync.Mutex
	seqs := map[int][]uint32{}
	cfg.onBody = func(consumer int, body []byte) {
		mu.Lock()
		seqs[consumer] = append(seqs[consumer], binary.BigEndian.Uint32(body))
		mu.Unlock()
	}
	var out bytes.Buffer
	res, err := execute(context.Background(), cfg, newReporter(&out, cfg))
	if err != nil {
		t.Fatalf("run %v: %v\n%s", args, err, stderr.String())
	}
	return res, seqs, out.String()
}

// exactlyOnce checks that got holds each of 1..n once.
func exactlyOnce(t *testing.T, what string, got []uint32, n int) {
	t.Helper()
	seen := make([]bool, n+1)
	for _, s := range got {
		if s < 1 || int(s) > n {
			t.Fatalf("%s: sequence number %d outside 1..%d", what, s, n)
		}
		if seen[s] {
			t.Fatalf("%s: message %d received twice", what, s)
		}
		seen[s] = true
	}
	if len(got) != n {
		t.Fatalf("%s: received %d messages, want %d", what, len(got), n)
	}
}

func TestPerfRunConfirmsExactlyOnce(t *testing.T) {
	url := testbroker.Start(t, testbroker.Options{}).URL
	res, seqs, out := perfRun(t, url, "-x", "1", "-y", "1", "-C", "1000", "-D", "1000", "-c", "64", "-s", "100", "-f", "persistent")
	if res.sent != 1000 || res.confirmed != 1000 || res.nacked != 0 || res.received != 1000 {
		t.Fatalf("result %+v", res)
	}
	exactlyOnce(t, "consumer 1", seqs[1], 1000)
	for _, want := range []string{"summary: duration:", "sent: 1000 msg, received: 1000 msg", "confirmed: 1000 msg, nacked: 0 msg"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestPerfRunAckModes(t *testing.T) {
	url := testbroker.Start(t, testbroker.Options{}).URL
	for i, args := range [][]string{
		{"-q", "10", "-A", "50"}, // multi-ack above the prefetch must not stall
		{"-q", "100", "-A", "7"},
		{"-a"},
		{"-q", "1"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			args = append(args, "-u", fmt.Sprintf("acks-%d", i), "-C", "500", "-D", "500", "--cleanup")
			res, seqs, _ := perfRun(t, url, args...)
			if res.sent != 500 || res.received != 500 {
				t.Fatalf("result %+v", res)
			}
			exactlyOnce(t, "consumer 1", seqs[1], 500)
		})
	}
}

func TestPerfRunQueuesSpread(t *testing.T) {
	url := testbroker.Start(t, testbroker.Options{}).URL
	res, seqs, _ := perfRun(t, url, "-x", "3", "-y", "3", "--queues", "3", "-C", "300", "-D", "300", "-c", "50")
	if res.sent != 900 || res.confirmed != 900 || res.received != 900 {
		t.Fatalf("result %+v", res)
	}
	for k := 1; k <= 3; k++ {
		exactlyOnce(t, fmt.Sprintf("consumer %d", k), seqs[k], 300)
	}
}

func TestPerfRunFanout(t *testing.T) {
	url := testbroker.Start(t, testbroker.Options{}).URL
	res, seqs, _ := perfRun(t, url, "-t", "fanout", "-e", "perf-fanout", "-x", "1", "-y", "4", "-C", "200", "-D", "200", "-c", "20", "--cleanup")
	if res.sent != 200 || res.received != 800 {
		t.Fatalf("result %+v", res)
	}
	for k := 1; k <= 4; k++ {
		exactlyOnce(t, fmt.Sprintf("consumer %d", k), seqs[k], 200)
	}
	// --cleanup deleted the exchange: publishing to it now fails.
	var stderr bytes.Buffer
	if code := run([]string{"-h", url, "-p", "-t", "fanout", "-e", "perf-fanout", "-y", "0", "-C", "1", "-c", "1"}, io.Discard, &stderr); code != 1 ||
		!strings.Contains(stderr.String(), "404 NOT_FOUND - no exchange 'perf-fanout'") {
		t.Fatalf("publish after cleanup: exit %d, stderr %s", code, stderr.String())
	}
}

func TestPerfRunLargeBodies(t *testing.T) {
	url := testbroker.Start(t, testbroker.Options{}).URL
	// Larger than frame_max (131072): each body spans several frames.
	res, seqs, _ := perfRun(t, url, "-s", "300000", "-C", "20", "-D", "20", "-c", "5")
	if res.sent != 20 || res.confirmed != 20 || res.received != 20 {
		t.Fatalf("result %+v", res)
	}
	exactlyOnce(t, "consumer 1", seqs[1], 20)
}

func TestPerfRunMandatoryReturns(t *testing.T) {
	url := testbroker.Start(t, testbroker.Options{}).URL
	// Nothing is bound to the routing key: every message comes back, and the
	// confirms the producer waits for follow the returns.
	res, _, out := perfRun(t, url, "-e", "amq.direct", "-u", "unbound", "-p", "-y", "0", "-C", "50", "-c", "10", "-f", "mandatory")
	if res.sent != 50 || res.returned != 50 || res.confirmed != 50 {
		t.Fatalf("result %+v", res)
	}
	if !strings.Contains(out, "summary: returned: 50 msg") {
		t.Fatalf("output:\n%s", out)
	}
}

func TestPerfRunJSON(t *testing.T) {
	url := testbroker.Start(t, testbroker.Options{}).URL
	var out, stderr bytes.Buffer
	code := run([]string{"-h", url, "--json", "-C", "100", "-D", "100", "-c", "10"}, &out, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var last struct {
		Summary *summaryJSON `json:"summary"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil || last.Summary == nil {
		t.Fatalf("last line %q: %v", lines[len(lines)-1], err)
	}
	s := last.Summary
	if s.Sent != 100 || s.Received != 100 || s.Confirmed == nil || *s.Confirmed != 100 || s.ConsumerLatency.Count != 100 || s.ConfirmLatency == nil || s.ConfirmLatency.Count != 100 {
		t.Fatalf("summary %+v", s)
	}
	for _, l := range lines[:len(lines)-1] {
		var iv intervalJSON
		if err := json.Unmarshal([]byte(l), &iv); err != nil {
			t.Fatalf("interval line %q: %v", l, err)
		}
	}
}

func TestPerfRunErrors(t *testing.T) {
	url := testbroker.Start(t, testbroker.Options{}).URL
	var stderr bytes.Buffer
	// Consuming a queue that does not exist: the broker closes the channel.
	if code := run([]string{"-h", url, "-p", "-u", "no-such-queue", "-x", "0", "-D", "1"}, io.Discard, &stderr); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if !strings.Contains(stderr.String(), "404 NOT_FOUND") {
		t.Fatalf("stderr: %s", stderr.String())
	}
	stderr.Reset()
	if code := run([]string{"-h", "amqp://guest:wrong@" + strings.TrimPrefix(url, "amqp://guest:guest@"), "-C", "1"}, io.Discard, &stderr); code != 1 {
		t.Fatalf("bad password: exit %d, want 1", code)
	}
	if !strings.Contains(stderr.String(), "403 ACCESS_REFUSED") {
		t.Fatalf("bad password: stderr: %s", stderr.String())
	}
	stderr.Reset()
	// Nothing listens on a port just given up.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	if code := run([]string{"-h", "amqp://" + addr + "/", "-C", "1"}, io.Discard, &stderr); code != 1 {
		t.Fatalf("connection refused: exit %d, want 1 (%s)", code, stderr.String())
	}
}

func TestPerfIdleConnections(t *testing.T) {
	url := testbroker.Start(t, testbroker.Options{}).URL
	var out, stderr bytes.Buffer
	code := run([]string{"-h", url, "--idle-connections", "20", "--channels-per-connection", "3", "-z", "0.01"}, &out, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if got := strings.TrimSpace(out.String()); got != "idle: 20 connections, 60 channels open (20 requested)" {
		t.Fatalf("output %q", got)
	}
}

func TestPerfAwaitMessages(t *testing.T) {
	url := testbroker.Start(t, testbroker.Options{}).URL
	res, _, _ := perfRun(t, url, "-u", "await", "-y", "0", "-C", "10", "-c", "10")
	if res.confirmed != 10 {
		t.Fatalf("result %+v", res)
	}
	var out, stderr bytes.Buffer
	if code := run([]string{"-h", url, "-u", "await", "--await-messages", "10"}, &out, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if !strings.HasPrefix(out.String(), "ready: ") || !strings.Contains(out.String(), "queue await holds 10 messages") {
		t.Fatalf("output %q", out.String())
	}
	// More than the queue holds: gives up at -z and says why.
	stderr.Reset()
	if code := run([]string{"-h", url, "-u", "await", "--await-messages", "11", "-z", "0.1"}, io.Discard, &stderr); code != 1 ||
		!strings.Contains(stderr.String(), `queue "await" holds 10 messages`) {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
}
