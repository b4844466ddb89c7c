package main

import (
	"fmt"
	"io"
	"strings"
)

const helpIntro = `Warren is a message broker that speaks AMQP 0-9-1 as RabbitMQ 3.x does:
clients written for RabbitMQ (amqp091-go, pika, amqplib, the Java client, ...)
connect to it unchanged. Durable exchanges, queues, bindings and persistent
messages are kept in the data directory and survive restarts and crashes.

Usage: warren [--flag value | --flag=value ...]
       warren users|vhosts|permissions|topic-permissions|limits ...
                (on a stopped broker's data directory; see USERS below)

Every setting below is a flag, an environment variable and a config file key.
Precedence: flag, then environment variable, then config file, then default.
An environment variable set to the empty string counts as unset.
`

const helpTail = `
CONFIG FILE (--config FILE or WARREN_CONFIG)
  One setting per line, "key = value", the key being the flag's name without
  dashes in front; blank lines and lines starting with # are ignored, and an
  unquoted value ends at a " #" (a comment after it). A value may be written
  in double quotes, Go syntax, to keep spaces or a '#'. For example:

      # /etc/warren.conf
      amqp-addr  = 0.0.0.0:5672
      data-dir   = /var/lib/warren   # durable state
      log-level  = debug
      tls-cert   = /etc/warren/server.pem
      tls-key    = /etc/warren/server-key.pem

  Relative file names (data-dir, tls-cert, ...) are relative to the
  directory warren is started in, not to the config file's.

  An unknown key, a key set twice or a bad value stops warren with the file
  and line named, exit status 2. Every line is checked, also those that a
  flag or an environment variable overrides.

USERS, VHOSTS, PERMISSIONS
  At the first start (an empty data directory) warren creates --default-vhost
  and --default-user (password --default-pass), tagged administrator, with
  configure, write and read permissions ".*" on that vhost, as RabbitMQ's
  Docker image does with RABBITMQ_DEFAULT_USER and friends. Later starts
  leave users alone: a deleted guest stays deleted.

  Until the management API exists, users, vhosts, permissions and limits are
  managed with subcommands on a stopped broker's data directory, e.g.
      warren users add app s3cret --tags monitoring --data-dir /var/lib/warren
      warren permissions set app / '^app\.' '.*' '.*' --data-dir /var/lib/warren
  Run "warren users" (no action) for the list of them.

SIGNALS
  SIGTERM, SIGINT  stop: client connections are closed with 320
                   CONNECTION_FORCED, the data directory is flushed, exit 0.
  SIGHUP           re-read --tls-cert, --tls-key and --tls-ca. New TLS
                   connections get the new ones; open connections stay open.
                   If the files do not load, the old ones stay in use and the
                   error is logged.

DATA DIRECTORY (--data-dir)
  LOCK            held (flock) by the warren process using the directory
  meta.log        exchanges, queues, bindings, users: a log of commands
  acks.log        which messages were acknowledged
  NNNNNNNN.seg    messages of durable queues
  A torn or half-written record at the end of a file (after a crash or a
  power cut) is cut off at start-up and logged as a warning: nothing to do.

  When the directory cannot be opened, warren says why and exits 1:
  - "another warren process ... holds DIR/LOCK": only one warren may use a
    directory. Stop the other one (its pid is in the message when it can be
    found, or: fuser DIR/LOCK), or start this one with another --data-dir.
    A LOCK file left behind by a dead process is harmless: the lock went with
    the process.
  - "permission denied": run warren as the directory's owner, or give the
    user running warren read and write access to it and everything in it
    (chown -R USER DIR).
  - "not a directory", "read-only file system", "disk is full": as it says;
    fix --data-dir, remount, or free space.
  - "cannot recover data directory": a file holds something this warren
    cannot read or apply; the message names the file. First keep a copy
    (cp -a DIR DIR.bak). If a newer warren wrote the directory, run that
    version. If you have a backup of the named file, put it back. Otherwise
    move the named file out of the directory and start again, knowing what
    goes with it: without meta.log warren starts with no
    exchanges, queues, bindings or users of its own (declare them again;
    messages of queues that are not there are not recovered); without a
    segment file the messages in it are lost; without acks.log messages that
    were already acknowledged are delivered again.

EXIT STATUS
  0 stopped by SIGTERM/SIGINT, or --help, --version; 1 failed to start or
  run; 2 bad flag, environment variable or config file.
`

// writeHelp prints --help: what Warren is, every setting with its variable
// and default, the config file format, signals and data directory recovery.
func writeHelp(w io.Writer, r *registry) {
	var b strings.Builder
	b.WriteString(helpIntro)
	section := ""
	for _, s := range r.settings {
		if s.name == "h" {
			continue // shown with --help
		}
		if s.section != section {
			section = s.section
			fmt.Fprintf(&b, "\n%s:\n", section)
		}
		name := "--" + s.name
		if s.name == "help" {
			name = "-h, --help"
		}
		if s.arg != "" {
			name += " " + s.arg
		}
		fmt.Fprintf(&b, "  %s\n", name)
		for _, line := range wrap(s.usage, 70) {
			fmt.Fprintf(&b, "        %s\n", line)
		}
		var facts []string
		if !s.cliOnly || s.name == "config" {
			facts = append(facts, "env "+s.envName())
		}
		if s.arg != "" && s.def != "" {
			facts = append(facts, fmt.Sprintf("default %q", s.def))
		}
		if len(facts) > 0 {
			fmt.Fprintf(&b, "        (%s)\n", strings.Join(facts, ", "))
		}
	}
	b.WriteString("\n")
	subcommandHelp(&b)
	b.WriteString(helpTail)
	_, _ = io.WriteString(w, b.String())
}

// wrap breaks text into lines of at most width columns at spaces.
func wrap(text string, width int) []string {
	var lines []string
	line := ""
	for _, word := range strings.Fields(text) {
		if line != "" && len(line)+1+len(word) > width {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += word
	}
	if line != "" {
		lines = append(lines, line)
	}
	return lines
}
