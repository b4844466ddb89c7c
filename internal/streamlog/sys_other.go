//go:build !linux

package streamlog

import "os"

func fdatasync(f *os.File) error { return f.Sync() }
