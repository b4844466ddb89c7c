package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/warren-mq/warren/internal/broker"
	"github.com/warren-mq/warren/internal/store"
)

// Subcommands that manage users, vhosts, permissions and limits in a stopped
// broker's data directory, until the management API exists: they open the
// store, make the change through the broker's own commands (so it is logged
// exactly as a running broker would log it), and close it.

const adminHelp = `Usage: warren COMMAND [ARGS] [--data-dir DIR] [other settings]
Commands act on a STOPPED broker's data directory (a running warren holds
its lock; stop it first):

  users list
  users add NAME PASSWORD [--tags TAG,TAG]   create or replace (PASSWORD "" = none:
                                             certificate login only)
  users delete NAME
  vhosts list
  vhosts add NAME [--description TEXT] [--tags TAG,TAG] [--default-queue-type TYPE]
  vhosts delete NAME                         with its queues and messages
  permissions list
  permissions set USER VHOST CONFIGURE WRITE READ   (regular expressions)
  permissions clear USER VHOST
  topic-permissions set USER VHOST EXCHANGE WRITE READ
  topic-permissions clear USER VHOST [EXCHANGE]
  limits vhost VHOST JSON        e.g. '{"max-connections": 10, "max-queues": 100}'
  limits user USER JSON          e.g. '{"max-connections": 5, "max-channels": 50}'
  limits list
`

func init() {
	for name, summary := range map[string]string{
		"users":             "list|add|delete users (run it without an action for details)",
		"vhosts":            "list|add|delete vhosts",
		"permissions":       "list|set|clear permissions",
		"topic-permissions": "set|clear topic permissions",
		"limits":            "list vhost and user limits, set them: limits vhost|user NAME JSON",
	} {
		registerSubcommand(name, subcommand{summary: summary, run: func(_ *flag.FlagSet, args []string, env subEnv) int {
			return runAdmin(append([]string{name}, args...), env.getenv, env.stdout, env.stderr)
		}})
	}
}

// adminFlags are the subcommands' own flags, each taking a value.
var adminFlags = map[string]bool{"tags": true, "description": true, "default-queue-type": true}

// runAdmin runs a subcommand; it returns the exit status.
func runAdmin(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	pos, own, settings, err := splitAdminArgs(args)
	if err == nil && len(pos) < 2 {
		err = fmt.Errorf("missing action after %q", args[0])
	}
	var cfg *config
	if err == nil {
		cfg, _, _, err = loadConfig(settings, getenv)
	}
	if err != nil {
		fmt.Fprintf(stderr, "warren: %v\n\n%s", err, adminHelp)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	st, err := openDataDir(cfg.DataDir, store.Options{Logger: log})
	if err != nil {
		fmt.Fprintf(stderr, "warren: %v\n(warren %s works on a stopped broker's data directory only)\n", err, args[0])
		return 1
	}
	b, err := broker.New(cfg.brokerConfig(st, log))
	if err != nil {
		st.Close()
		fmt.Fprintf(stderr, "warren: %v\n", dataDirError(cfg.DataDir, err))
		return 1
	}
	defer b.Close()
	usage, err := adminDo(b, pos, own, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "warren: %v\n", err)
		if usage {
			fmt.Fprintf(stderr, "\n%s", adminHelp)
			return 2
		}
		return 1
	}
	return 0
}

// splitAdminArgs separates positional arguments, the subcommand's own flags
// and the registry's settings (--data-dir DIR, ...), in any order.
func splitAdminArgs(args []string) (pos []string, own map[string]string, settings []string, err error) {
	own = map[string]string{}
	reg := newRegistry()
	(&config{}).register(reg)
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") || a == "-" {
			pos = append(pos, a)
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		_, isOwn := adminFlags[name]
		s := reg.byName[name]
		if !isOwn && s == nil {
			return nil, nil, nil, fmt.Errorf("unknown flag %s", a)
		}
		_, isBool := s.valueIfBool()
		if !hasValue && !isBool {
			if i+1 == len(args) {
				return nil, nil, nil, fmt.Errorf("flag %s needs a value", a)
			}
			i++
			value = args[i]
		}
		if isOwn {
			own[name] = value
		} else if hasValue || !isBool {
			settings = append(settings, "--"+name+"="+value)
		} else {
			settings = append(settings, "--"+name)
		}
	}
	return pos, own, settings, nil
}

// valueIfBool reports whether a setting is a boolean flag (nil is not).
func (s *setting) valueIfBool() (*setting, bool) {
	if s == nil {
		return nil, false
	}
	_, ok := s.value.(*boolValue)
	return s, ok
}

// adminDo performs pos = [noun, verb, args...]; usage reports a mistake in
// how the command was written.
func adminDo(b *broker.Broker, pos []string, own map[string]string, out io.Writer) (usage bool, err error) {
	noun, verb, rest := pos[0], pos[1], pos[2:]
	want := func(n int, what string) error {
		if len(rest) != n {
			return fmt.Errorf("%s %s takes %s", noun, verb, what)
		}
		return nil
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	defer tw.Flush()
	switch noun + " " + verb {
	case "users list":
		fmt.Fprintln(tw, "name\ttags\tpassword")
		for _, u := range b.Users() {
			pw := "yes"
			if u.PasswordHash == "" {
				pw = "none (certificate login only)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\n", u.Name, strings.Join(u.Tags, ","), pw)
		}
		return false, nil
	case "users add":
		if err := want(2, "NAME PASSWORD"); err != nil {
			return true, err
		}
		return false, b.AddUser(rest[0], rest[1], broker.ParseTags(own["tags"])...)
	case "users delete":
		if err := want(1, "NAME"); err != nil {
			return true, err
		}
		return false, b.DeleteUser(rest[0])
	case "vhosts list":
		fmt.Fprintln(tw, "name\tdescription\ttags\tdefault queue type")
		for _, v := range b.VHosts() {
			i := v.Info()
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", v.Name, i.Description, i.Tags, i.DefaultQueueType)
		}
		return false, nil
	case "vhosts add":
		if err := want(1, "NAME"); err != nil {
			return true, err
		}
		_, err := b.PutVHost(rest[0], broker.VHostInfo{Description: own["description"], Tags: own["tags"], DefaultQueueType: own["default-queue-type"]})
		return false, err
	case "vhosts delete":
		if err := want(1, "NAME"); err != nil {
			return true, err
		}
		return false, b.DeleteVHost(rest[0])
	case "permissions list":
		fmt.Fprintln(tw, "user\tvhost\tconfigure\twrite\tread")
		for _, p := range b.Permissions() {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", p.User, p.VHost, p.Configure, p.Write, p.Read)
		}
		for _, p := range b.TopicPermissions() {
			fmt.Fprintf(tw, "%s\t%s\ttopic %s\t%s\t%s\n", p.User, p.VHost, p.Exchange, p.Write, p.Read)
		}
		return false, nil
	case "permissions set":
		if err := want(5, "USER VHOST CONFIGURE WRITE READ"); err != nil {
			return true, err
		}
		return false, b.SetPermissions(rest[0], rest[1], broker.Permission{Configure: rest[2], Write: rest[3], Read: rest[4]})
	case "permissions clear":
		if err := want(2, "USER VHOST"); err != nil {
			return true, err
		}
		return false, b.ClearPermissions(rest[0], rest[1])
	case "topic-permissions set":
		if err := want(5, "USER VHOST EXCHANGE WRITE READ"); err != nil {
			return true, err
		}
		return false, b.SetTopicPermissions(rest[0], rest[1], broker.TopicPermission{Exchange: rest[2], Write: rest[3], Read: rest[4]})
	case "topic-permissions clear":
		if len(rest) == 2 {
			rest = append(rest, "")
		}
		if err := want(3, "USER VHOST [EXCHANGE]"); err != nil {
			return true, err
		}
		return false, b.ClearTopicPermissions(rest[0], rest[1], rest[2])
	case "limits vhost", "limits user":
		if err := want(2, verb+" NAME JSON"); err != nil {
			return true, err
		}
		l, err := broker.ParseLimits(rest[1], verb == "user")
		if err != nil {
			return false, err
		}
		if verb == "user" {
			return false, b.SetUserLimits(rest[0], l)
		}
		return false, b.SetVHostLimits(rest[0], l)
	case "limits list":
		fmt.Fprintln(tw, "kind\tname\tlimits")
		for _, kind := range []struct {
			name string
			all  map[string]map[string]int64
		}{{"vhost", b.AllVHostLimits()}, {"user", b.AllUserLimits()}} {
			for _, n := range slices.Sorted(maps.Keys(kind.all)) {
				j, _ := json.Marshal(kind.all[n])
				fmt.Fprintf(tw, "%s\t%s\t%s\n", kind.name, n, j)
			}
		}
		return false, nil
	}
	return true, fmt.Errorf("unknown command %q", noun+" "+verb)
}
