// Command warrenctl operates a running Warren (or any RabbitMQ) the way
// rabbitmqctl does, with rabbitmqctl's command names, arguments, output and
// exit codes, but it talks only to the management HTTP API, so it needs no
// Erlang cookie and works from any machine that can reach port 15672:
//
//	warrenctl list_queues name messages_ready messages_unacknowledged
//	warrenctl -p shop add_user alice secret
//	warrenctl --host broker1 --ssl --cacert ca.pem status
//	warrenctl help set_policy
//
// Connection settings come from flags, then WARRENCTL_* environment variables,
// then a config file (~/.warrenctl.conf or --config); see 'warrenctl help'.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// Exit codes are rabbitmqctl's (BSD sysexits), so scripts written for it
// keep working.
const (
	exitOK          = 0
	exitUsage       = 64 // EX_USAGE: bad arguments or options
	exitDataErr     = 65 // EX_DATAERR: e.g. the vhost does not exist
	exitNoUser      = 67 // EX_NOUSER: the user does not exist
	exitUnavailable = 69 // EX_UNAVAILABLE: cannot connect, or a health check failed
	exitSoftware    = 70 // EX_SOFTWARE: the API refused or failed the request
	exitTempFail    = 75 // EX_TEMPFAIL: the operation timed out
)

func main() {
	os.Exit(run(os.Args[1:], &ioEnv{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}))
}

// ioEnv is what a command reads and writes besides the network, passed in
// so tests run commands in-process.
type ioEnv struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
}

// cliError carries the exit code a failure maps to; its message is printed
// after "Error:" as rabbitmqctl does.
type cliError struct {
	code int
	msg  string
	api  *apiError // set when the API answered with an error status
}

func (e *cliError) Error() string { return e.msg }

func usageErr(format string, a ...any) error {
	return &cliError{code: exitUsage, msg: fmt.Sprintf(format, a...)}
}

// run is warrenctl's main with its surroundings passed in; it returns the
// exit status.
func run(args []string, e *ioEnv) int {
	o, pos, err := parseArgs(args)
	if err != nil {
		return fail(e, err, "")
	}
	if len(pos) == 0 {
		if o.help {
			writeOverview(e.stdout)
			return exitOK
		}
		writeOverview(e.stderr)
		return exitUsage
	}
	name, pos := pos[0], pos[1:]
	if name == "help" {
		return runHelp(e, pos)
	}
	cmd, ok := commands[name]
	if !ok {
		fmt.Fprintf(e.stderr, "\nCommand '%s' not found.\n\n", name)
		writeOverview(e.stderr)
		return exitUsage
	}
	if o.help {
		writeCommandHelp(e.stdout, name, cmd)
		return exitOK
	}
	if err := checkArgs(cmd, pos); err != nil {
		return fail(e, err, name)
	}
	if err := resolveConnection(o, e.getenv); err != nil {
		return fail(e, err, name)
	}
	timeout := o.timeout
	if timeout == 0 {
		timeout = cmd.defaultTimeout
		if timeout == 0 {
			timeout = 60 * time.Second
		}
		o.timeout = timeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := newClient(o)
	if err != nil {
		return fail(e, err, name)
	}
	// Nothing outlives a command: tests run thousands of them in one
	// process, and a broker's file descriptors are not ours to hold.
	defer c.hc.CloseIdleConnections()
	x := &cmdCtx{ctx: ctx, o: o, c: c, e: e, args: pos}
	if err := cmd.run(x); err != nil {
		return fail(e, err, name)
	}
	return exitOK
}

// fail prints err as rabbitmqctl prints errors and returns its exit code;
// usage errors also show the command's usage line.
func fail(e *ioEnv, err error, name string) int {
	code := exitSoftware
	var ce *cliError
	if errors.As(err, &ce) {
		code = ce.code
	}
	if code == exitUsage {
		fmt.Fprintf(e.stderr, "Error (argument validation): %s\n", err)
		if cmd, ok := commands[name]; ok {
			fmt.Fprintf(e.stderr, "\nUsage\n\nwarrenctl [--host <host>] [--port <port>] [--quiet] %s %s\n", name, cmd.usage)
			fmt.Fprintf(e.stderr, "\nRun 'warrenctl help %s' for details.\n", name)
		} else {
			fmt.Fprintln(e.stderr, "Run 'warrenctl help' for usage.")
		}
		return code
	}
	fmt.Fprintf(e.stderr, "Error:\n%s\n", err)
	return code
}

// checkArgs enforces the command's count of positional arguments.
func checkArgs(cmd *command, pos []string) error {
	if len(pos) < cmd.minArgs {
		return usageErr("not enough arguments.")
	}
	if cmd.maxArgs >= 0 && len(pos) > cmd.maxArgs {
		return usageErr("too many arguments.")
	}
	return nil
}

// cmdCtx is what a command runs with.
type cmdCtx struct {
	ctx  context.Context
	o    *options
	c    *client
	e    *ioEnv
	args []string
}

// info prints an informational line ("Listing queues ...") unless -q or -s
// asked for silence; rabbitmqctl prints these on standard output.
func (x *cmdCtx) info(format string, a ...any) {
	if x.o.quiet || x.o.silent || x.o.formatter == "json" {
		return
	}
	fmt.Fprintf(x.e.stdout, format+"\n", a...)
}

// command is one warrenctl command.
type command struct {
	group, summary, usage, help string
	minArgs, maxArgs            int // maxArgs -1: any number
	defaultTimeout              time.Duration
	run                         func(*cmdCtx) error
}

// commands is filled by the init functions of the files that define them.
var commands = map[string]*command{}
