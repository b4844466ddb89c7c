// Package testfs has file-system helpers for tests.
package testfs

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// CopyLive copies the directory tree src to dst (which must not exist)
// while a process may still be writing it, as a kill -9 would leave it at
// some moment: a file that vanishes between being listed and being opened
// (a temporary file renamed meanwhile) is left out, as if the copy had
// been taken a moment before it was created.
func CopyLive(dst, src string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		in, err := os.Open(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
}
