// Command warren-perf is a load generator for any AMQP 0-9-1 broker, modelled on
// RabbitMQ PerfTest: same flag names, one line of rates and latencies per
// second, a summary at the end.
//
//	warren-perf -h amqp://guest:guest@localhost:5672/ -x 1 -y 1 -s 16 -z 10
//	warren-perf -x 4 -y 4 --queues 4 -f persistent -c 500 -z 15 --json
//	warren-perf -e amq.fanout -t fanout -x 1 -y 10 -z 10
//	warren-perf --idle-connections 1000 --channels-per-connection 2 -z 30
//	warren-perf -u backlog --await-messages 1000000 -z 120   # time a restart
//
// It has its own lean client rather than a general-purpose library, because a
// load generator must not be the bottleneck: each producer's goroutine copies a
// pre-encoded message into a batch and writes thousands per syscall; each
// consumer decodes deliveries in place from its read buffer and acks a whole
// read's worth with one write. Bodies carry a sequence number and the send time,
// so consumers measure end-to-end latency (same machine clock) into a
// log-linear histogram that costs one atomic add per sample.
//
// Exit status: 0 after a completed run, 1 on a connection or broker error,
// 2 on a command line error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"syscall"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is main with its outputs as parameters, for tests.
func run(args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "warren-perf:", err)
		return 2
	}
	cfg.events = &events{w: stderr}
	if cfg.cpuProfile != "" {
		f, err := os.Create(cfg.cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(stderr, "warren-perf: --cpuprofile:", err)
			return 2
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	if cfg.awaitMessages > 0 {
		if err := runAwait(ctx, cfg, stdout); err != nil {
			fmt.Fprintln(stderr, "warren-perf:", err)
			return 1
		}
		return 0
	}
	if cfg.idleConns > 0 {
		if err := runIdle(ctx, cfg, stdout); err != nil {
			fmt.Fprintln(stderr, "warren-perf:", err)
			return 1
		}
		return 0
	}
	if _, err := execute(ctx, cfg, newReporter(stdout, cfg)); err != nil {
		fmt.Fprintln(stderr, "warren-perf:", err)
		return 1
	}
	return 0
}

// events collects what reader goroutines notice about the broker: blocked
// publishing (connection.blocked), printed to stderr as it happens and counted
// for the summary.
type events struct {
	mu      sync.Mutex
	w       io.Writer
	blocked atomic.Int64
}

func (e *events) notice(format string, args ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	fmt.Fprintf(e.w, "warren-perf: "+format+"\n", args...)
}
