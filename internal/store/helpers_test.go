package store

import (
	"io"
	"log/slog"
	"testing"
)

// quietLogger drops logs below warnings so test output stays readable.
func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// openTest opens a File store that is closed when the test ends.
func openTest(t testing.TB, dir string, opts Options) *File {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
