package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/warren-mq/warren/internal/store"
)

// openDataDir opens the store in dir. When that fails the error says what is
// wrong and what to do about it, since the person reading it is an operator
// whose broker just did not start.
func openDataDir(dir string, opts store.Options) (*store.File, error) {
	if fi, err := os.Stat(dir); err == nil && !fi.IsDir() {
		return nil, fmt.Errorf("data directory %s is not a directory: point --data-dir (WARREN_DATA_DIR) at a directory, or move the file away", dir)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, dataDirError(dir, err)
	}
	st, err := store.Open(dir, opts)
	if err != nil {
		return nil, dataDirError(dir, err)
	}
	return st, nil
}

// dataDirError explains err, which opening or recovering dir returned.
func dataDirError(dir string, err error) error {
	lock := filepath.Join(dir, "LOCK")
	switch {
	case errors.Is(err, syscall.EWOULDBLOCK):
		holder := "another warren process"
		if pid := lockHolder(lock); pid > 0 {
			holder = fmt.Sprintf("another warren process (pid %d)", pid)
		}
		return fmt.Errorf("%s holds %s, so it is using data directory %s: stop it, or give this one another --data-dir", holder, lock, dir)
	case errors.Is(err, os.ErrPermission):
		return fmt.Errorf("cannot open data directory %s: %v: warren runs as uid %d and needs to read and write it and every file in it: run warren as the directory's owner, or give that user access (chown -R USER %s), or use another --data-dir",
			dir, err, os.Getuid(), dir)
	case errors.Is(err, syscall.EROFS):
		return fmt.Errorf("cannot open data directory %s: %v: the file system is read-only: remount it read-write or use another --data-dir", dir, err)
	case errors.Is(err, syscall.ENOTDIR):
		return fmt.Errorf("cannot open data directory %s: %v: a part of that path is a file, not a directory: fix --data-dir", dir, err)
	case errors.Is(err, syscall.ENOSPC):
		return fmt.Errorf("cannot open data directory %s: %v: the disk is full: free space on it and start again", dir, err)
	}
	return fmt.Errorf("cannot recover data directory %s: %w\nBefore any repair keep a copy (cp -a %s %s.bak); \"DATA DIRECTORY\" in warren --help says what to do", dir, err, dir, dir)
}

// lockHolder returns the pid that holds an flock on path, from /proc/locks,
// or 0 if it cannot tell.
func lockHolder(path string) int {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0
	}
	dev := uint64(st.Dev)
	major := (dev>>8)&0xfff | (dev>>32)&^0xfff
	minor := dev&0xff | (dev>>12)&^0xff
	want := fmt.Sprintf("%02x:%02x:%d", major, minor, st.Ino)
	f, err := os.Open("/proc/locks")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// 1: FLOCK  ADVISORY  WRITE 12345 08:01:1234 0 EOF
		fields := strings.Fields(sc.Text())
		if len(fields) >= 6 && fields[1] == "FLOCK" && fields[5] == want {
			if pid, err := strconv.Atoi(fields[4]); err == nil {
				return pid
			}
		}
	}
	return 0
}
