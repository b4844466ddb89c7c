//go:build !linux

package streamlog

import "os"

func fdatasync(f *os.File) error { return f.Sync() }

// lockDir only creates the lock file: Warren runs on Linux in production.
func lockDir(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
}
