package main

import (
	"encoding/json"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRunLogFormatJSON: --log-format json makes every line a JSON object.
func TestRunLogFormatJSON(t *testing.T) {
	sig := make(chan os.Signal, 1)
	done := make(chan int, 1)
	stderr := &lockedBuffer{}
	go func() {
		done <- run([]string{"--data-dir", t.TempDir(), "--amqp-addr", "127.0.0.1:0", "--prometheus-addr", "", "--log-format", "json"}, envOf(nil), &lockedBuffer{}, stderr, sig)
	}()
	var started map[string]any
	deadline := time.Now().Add(30 * time.Second)
	for started == nil {
		for _, line := range strings.Split(stderr.String(), "\n") {
			var rec map[string]any
			if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == "Warren started" {
				started = rec
			}
		}
		select {
		case code := <-done:
			t.Fatalf("warren exited %d:\n%s", code, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no JSON \"Warren started\" line within 30 s:\n%s", stderr.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if started["level"] != "INFO" || started["amqp"] == nil || started["prometheus"] != nil {
		t.Errorf("start record %v: want level INFO, the amqp address and no prometheus listener", started)
	}
	sig <- syscall.SIGTERM
	if code := <-done; code != 0 {
		t.Errorf("exit %d after SIGTERM", code)
	}
	for _, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		if !json.Valid([]byte(line)) {
			t.Errorf("not a JSON line: %q", line)
		}
	}
}
