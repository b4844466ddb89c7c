package main

import (
	"log/slog"
	"syscall"
	"time"

	"github.com/warren-mq/warren/internal/amqpserver"
)

// connFlags are the flags that keep clients from exhausting the process:
// the connection limit and the handshake deadline.
type connFlags struct {
	maxConns  *int
	handshake *time.Duration
}

func addConnFlags(r *registry) *connFlags {
	f := &connFlags{maxConns: new(int), handshake: new(time.Duration)}
	r.Int(f.maxConns, "max-connections", -1, "most AMQP client connections open at once; more are closed on accept (default -1: the open-file limit less a reserve for the store's files; 0 = no limit)")
	r.Duration(f.handshake, "handshake-timeout", 10*time.Second, "time from accept to connection.open before an unauthenticated client is dropped")
	return f
}

// apply raises the open-file limit and sets the connection limits in cfg.
func (f *connFlags) apply(cfg *amqpserver.Config, log *slog.Logger) {
	files := raiseFileLimit(log)
	cfg.HandshakeTimeout = *f.handshake
	cfg.MaxConnections = *f.maxConns
	if cfg.MaxConnections < 0 {
		cfg.MaxConnections = connectionsFor(files)
	}
	log.Info("connection limits", "max_connections", cfg.MaxConnections, "open_files_limit", files, "handshake_timeout", cfg.HandshakeTimeout)
}

// raiseFileLimit lifts the soft RLIMIT_NOFILE to the hard limit, as servers
// do (Go's runtime does it too at start-up; doing it here makes it explicit
// and logged), and returns the soft limit in force, 0 if unknown.
func raiseFileLimit(log *slog.Logger) uint64 {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		log.Warn("cannot read the open-file limit", "err", err)
		return 0
	}
	if lim.Cur < lim.Max {
		soft := lim.Cur
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			log.Warn("cannot raise the open-file limit", "soft", soft, "hard", lim.Max, "err", err)
			return soft
		}
	}
	return lim.Cur
}

// connectionsFor is the default connection limit for an open-file limit: the
// store, the listeners and the runtime keep a reserve (an eighth, at least 64
// files) so a flood of sockets is refused before accept or the store fails
// with EMFILE.
func connectionsFor(files uint64) int {
	if files == 0 || files > 1<<30 {
		return 0 // unknown or unlimited
	}
	reserve := max(64, files/8)
	if files <= reserve {
		return 1
	}
	return int(files - reserve)
}
