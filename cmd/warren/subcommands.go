package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"

	"github.com/warren-mq/warren/internal/broker"
	"github.com/warren-mq/warren/internal/store"
)

// Subcommands act on the data directory of a stopped broker, until the
// management API can do the same on a running one: `warren NAME ...`. Each
// opens the directory as the broker would (the lock keeps a running broker's
// directory out of reach), makes its changes through the broker's operator
// API — the same durable commands a running broker commits — and closes it.

// subcommand is one `warren NAME ...` command.
type subcommand struct {
	summary string // one line for --help
	// run gets the arguments after the name and a flag set that already
	// has --data-dir; it returns the exit status.
	run func(fs *flag.FlagSet, args []string, env subEnv) int
}

// subEnv is what a subcommand runs with.
type subEnv struct {
	stdout, stderr io.Writer
	dataDir        *string
	getenv         func(string) string
}

var subcommands = map[string]subcommand{}

func registerSubcommand(name string, s subcommand) {
	if _, dup := subcommands[name]; dup {
		panic("warren: subcommand " + name + " registered twice")
	}
	subcommands[name] = s
}

// runSubcommand runs args[0] if it names a subcommand; ok is false if not.
func runSubcommand(args []string, getenv func(string) string, stdout, stderr io.Writer) (status int, ok bool) {
	if len(args) == 0 {
		return 0, false
	}
	s, ok := subcommands[args[0]]
	if !ok {
		return 0, false
	}
	fs := flag.NewFlagSet("warren "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	def := getenv("WARREN_DATA_DIR")
	if def == "" {
		def = "./data"
	}
	env := subEnv{stdout: stdout, stderr: stderr, getenv: getenv, dataDir: fs.String("data-dir", def, "data directory of the stopped broker (WARREN_DATA_DIR)")}
	return s.run(fs, args[1:], env), true
}

// subcommandHelp lists the subcommands for --help.
func subcommandHelp(w io.Writer) {
	if len(subcommands) == 0 {
		return
	}
	fmt.Fprintln(w, "SUBCOMMANDS (on the data directory of a stopped broker; --data-dir DIR or WARREN_DATA_DIR)")
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range subcommands {
			if !yield(n) {
				return
			}
		}
	})
	for _, n := range names {
		fmt.Fprintf(w, "  warren %-12s %s\n", n, subcommands[n].summary)
	}
	fmt.Fprintln(w)
}

// withBroker opens the data directory, runs fn on its broker and closes it.
// The broker is the full one minus listeners: it recovers messages too, so
// what fn changes is checked against everything the directory holds.
func (e subEnv) withBroker(fn func(b *broker.Broker) error) error {
	log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	st, err := openDataDir(*e.dataDir, store.Options{Logger: log})
	if err != nil {
		return err
	}
	b, err := broker.New(broker.Config{Store: st, Logger: log, StreamDir: filepath.Join(*e.dataDir, "streams")})
	if err != nil {
		st.Close()
		return dataDirError(*e.dataDir, err)
	}
	err = fn(b)
	if cerr := b.Close(); err == nil {
		err = cerr
	}
	return err
}

// fail prints a subcommand's error and returns status 1.
func (e subEnv) fail(name string, err error) int {
	fmt.Fprintf(e.stderr, "warren %s: %s\n", name, strings.TrimSpace(err.Error()))
	return 1
}
