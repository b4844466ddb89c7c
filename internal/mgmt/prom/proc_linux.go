package prom

import (
	"bytes"
	"os"
	"strconv"
	"syscall"
)

// procStats are the process's own figures RabbitMQ reports for its node.
type procStats struct {
	rss, openFDs, maxFDs   float64
	rssOK, fdsOK, maxFDsOK bool
}

// readProcStats reads them from /proc and the file descriptor limit.
func readProcStats() procStats {
	var p procStats
	if b, err := os.ReadFile("/proc/self/statm"); err == nil {
		// size resident shared ... in pages
		if f := bytes.Fields(b); len(f) > 1 {
			if n, err := strconv.ParseUint(string(f[1]), 10, 64); err == nil {
				p.rss, p.rssOK = float64(n*uint64(os.Getpagesize())), true
			}
		}
	}
	if d, err := os.Open("/proc/self/fd"); err == nil {
		names, err := d.Readdirnames(-1)
		d.Close()
		if err == nil {
			p.openFDs, p.fdsOK = float64(len(names)-1), true // less the one reading it
		}
	}
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) == nil {
		p.maxFDs, p.maxFDsOK = float64(rl.Cur), true
	}
	return p
}
