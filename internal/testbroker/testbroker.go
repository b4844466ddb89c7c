// Package testbroker gives tests a broker to talk to: by default a Warren started
// in-process on 127.0.0.1:0 with a temporary data directory; with WARREN_TEST_URL set,
// that external broker instead, so the same suite can be checked against RabbitMQ.
package testbroker

import (
	"os"
	"testing"
	"time"
)

// External reports whether tests run against an external broker (WARREN_TEST_URL).
func External() bool { return os.Getenv("WARREN_TEST_URL") != "" }

// URL returns the AMQP URL of a broker for t, stopped when t ends.
func URL(t testing.TB) string {
	t.Helper()
	if u := os.Getenv("WARREN_TEST_URL"); u != "" {
		return u
	}
	t.Skip("in-process Warren not wired yet")
	return ""
}

// CheckFor polls fn until it returns true or timeout passes, then fails t.
func CheckFor(t testing.TB, timeout time.Duration, fn func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !fn() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
