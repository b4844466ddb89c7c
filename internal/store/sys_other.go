//go:build !linux

package store

import (
	"errors"
	"os"
)

func fdatasync(f *os.File) error { return f.Sync() }

// lockDir only creates the lock file: the store is run on Linux in production.
func lockDir(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
}

func freeDisk(string) (uint64, error) {
	return 0, errors.New("store: free disk space is only known on Linux")
}
