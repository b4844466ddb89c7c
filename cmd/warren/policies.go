package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/warren-mq/warren/internal/broker"
)

// The policies, parameters and global-parameters subcommands (rabbitmqctl's
// set_policy, set_operator_policy, set_parameter, set_global_parameter and
// their clear_ and list_ forms) and the --consumer-timeout setting.

func init() {
	registerSubcommand("policies", subcommand{summary: "set|clear|list [--operator]: policies and operator policies", run: runPolicies})
	registerSubcommand("parameters", subcommand{summary: "set|clear|list: vhost runtime parameters", run: runParameters})
	registerSubcommand("global-parameters", subcommand{summary: "set|clear|list: global runtime parameters", run: runGlobalParameters})
}

// parseConsumerTimeout reads --consumer-timeout: milliseconds, or none
// (also false, as in rabbitmq.conf) for no timeout.
func parseConsumerTimeout(s string) (time.Duration, error) {
	switch strings.TrimSpace(s) {
	case "none", "false", "off":
		return -1, nil
	}
	ms, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || ms <= 0 {
		return 0, fmt.Errorf("want a number of milliseconds above 0, or none, got %q", s)
	}
	return time.Duration(ms) * time.Millisecond, nil
}

const policiesUsage = `usage:
  warren policies set [--vhost V] [--apply-to all|queues|classic_queues|quorum_queues|streams|exchanges]
                      [--priority N] [--operator] NAME PATTERN DEFINITION
  warren policies clear [--vhost V] [--operator] NAME
  warren policies list [--vhost V] [--operator]
DEFINITION is a JSON object, e.g. '{"max-length":1000,"dead-letter-exchange":"dlx"}'.
--operator works on operator policies, whose limits cap what users set.
Every form also takes --data-dir DIR (or WARREN_DATA_DIR); the broker must be stopped.
`

const parametersUsage = `usage:
  warren parameters set [--vhost V] COMPONENT NAME VALUE
  warren parameters clear [--vhost V] COMPONENT NAME
  warren parameters list [--vhost V]
  warren global-parameters set NAME VALUE
  warren global-parameters clear NAME
  warren global-parameters list
VALUE is JSON. Warren keeps parameters (federation, shovel...) so that definitions
round-trip; no plugin reads them yet. Every form also takes --data-dir DIR (or
WARREN_DATA_DIR); the broker must be stopped.
`

// verb splits a subcommand's arguments into its verb and the rest; ok is
// false (with the status to return) when there is no verb or it asks for help.
func verb(args []string, usage string, env subEnv) (string, []string, int, bool) {
	if len(args) == 0 {
		fmt.Fprint(env.stderr, usage)
		return "", nil, 2, false
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprint(env.stdout, usage)
		return "", nil, 0, false
	}
	return args[0], args[1:], 0, true
}

// verbArgs parses a verb's flags wherever they are among args, as
// rabbitmqctl allows, and checks its argument count; ok is false (with the
// status to return) when the command line is wrong.
func verbArgs(fs *flag.FlagSet, args []string, want int, usage string, env subEnv) ([]string, int, bool) {
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Fprint(env.stdout, usage)
				return nil, 0, false
			}
			fmt.Fprintf(env.stderr, "%s: %v\n%s", fs.Name(), err, usage)
			return nil, 2, false
		}
		if args = fs.Args(); len(args) == 0 {
			break
		}
		pos, args = append(pos, args[0]), args[1:]
	}
	if len(pos) != want {
		fmt.Fprintf(env.stderr, "%s takes %d arguments, got %d\n%s", fs.Name(), want, len(pos), usage)
		return nil, 2, false
	}
	return pos, 0, true
}

// unknownVerb reports a verb a subcommand does not have.
func unknownVerb(name, v, usage string, env subEnv) int {
	fmt.Fprintf(env.stderr, "warren %s: unknown command %q\n%s", name, v, usage)
	return 2
}

// change runs fn on the data directory's broker, reporting its error.
func change(name string, env subEnv, fn func(b *broker.Broker) error) int {
	if err := env.withBroker(fn); err != nil {
		return env.fail(name, err)
	}
	return 0
}

func runPolicies(fs *flag.FlagSet, args []string, env subEnv) int {
	v, args, status, ok := verb(args, policiesUsage, env)
	if !ok {
		return status
	}
	vhost := fs.String("vhost", "/", "vhost")
	operator := fs.Bool("operator", false, "operator policy")
	name := "policies " + v
	switch v {
	case "set":
		applyTo := fs.String("apply-to", "all", "what the policy applies to")
		priority := fs.Int("priority", 0, "priority")
		pos, status, ok := verbArgs(fs, args, 3, policiesUsage, env)
		if !ok {
			return status
		}
		p := broker.Policy{VHost: *vhost, Name: pos[0], Pattern: pos[1], ApplyTo: *applyTo, Priority: *priority, Definition: json.RawMessage(pos[2]), Operator: *operator}
		return change(name, env, func(b *broker.Broker) error { return b.SetPolicy(p) })
	case "clear":
		pos, status, ok := verbArgs(fs, args, 1, policiesUsage, env)
		if !ok {
			return status
		}
		return change(name, env, func(b *broker.Broker) error { return b.ClearPolicy(*vhost, pos[0], *operator) })
	case "list":
		if _, status, ok := verbArgs(fs, args, 0, policiesUsage, env); !ok {
			return status
		}
		return change(name, env, func(b *broker.Broker) error {
			fmt.Fprintln(env.stdout, "vhost\tname\tpattern\tapply-to\tdefinition\tpriority")
			for _, p := range b.Policies(*vhost, *operator) {
				fmt.Fprintf(env.stdout, "%s\t%s\t%s\t%s\t%s\t%d\n", p.VHost, p.Name, p.Pattern, p.ApplyTo, p.Definition, p.Priority)
			}
			return nil
		})
	}
	return unknownVerb("policies", v, policiesUsage, env)
}

func runParameters(fs *flag.FlagSet, args []string, env subEnv) int {
	v, args, status, ok := verb(args, parametersUsage, env)
	if !ok {
		return status
	}
	vhost := fs.String("vhost", "/", "vhost")
	name := "parameters " + v
	switch v {
	case "set":
		pos, status, ok := verbArgs(fs, args, 3, parametersUsage, env)
		if !ok {
			return status
		}
		p := broker.Parameter{VHost: *vhost, Component: pos[0], Name: pos[1], Value: json.RawMessage(pos[2])}
		return change(name, env, func(b *broker.Broker) error { return b.SetParameter(p) })
	case "clear":
		pos, status, ok := verbArgs(fs, args, 2, parametersUsage, env)
		if !ok {
			return status
		}
		return change(name, env, func(b *broker.Broker) error { return b.ClearParameter(*vhost, pos[0], pos[1]) })
	case "list":
		if _, status, ok := verbArgs(fs, args, 0, parametersUsage, env); !ok {
			return status
		}
		return change(name, env, func(b *broker.Broker) error {
			fmt.Fprintln(env.stdout, "vhost\tcomponent\tname\tvalue")
			for _, p := range b.Parameters(*vhost) {
				fmt.Fprintf(env.stdout, "%s\t%s\t%s\t%s\n", p.VHost, p.Component, p.Name, p.Value)
			}
			return nil
		})
	}
	return unknownVerb("parameters", v, parametersUsage, env)
}

func runGlobalParameters(fs *flag.FlagSet, args []string, env subEnv) int {
	v, args, status, ok := verb(args, parametersUsage, env)
	if !ok {
		return status
	}
	name := "global-parameters " + v
	switch v {
	case "set":
		pos, status, ok := verbArgs(fs, args, 2, parametersUsage, env)
		if !ok {
			return status
		}
		p := broker.GlobalParameter{Name: pos[0], Value: json.RawMessage(pos[1])}
		return change(name, env, func(b *broker.Broker) error { return b.SetGlobalParameter(p) })
	case "clear":
		pos, status, ok := verbArgs(fs, args, 1, parametersUsage, env)
		if !ok {
			return status
		}
		return change(name, env, func(b *broker.Broker) error { return b.ClearGlobalParameter(pos[0]) })
	case "list":
		if _, status, ok := verbArgs(fs, args, 0, parametersUsage, env); !ok {
			return status
		}
		return change(name, env, func(b *broker.Broker) error {
			fmt.Fprintln(env.stdout, "name\tvalue")
			for _, p := range b.GlobalParameters() {
				fmt.Fprintf(env.stdout, "%s\t%s\n", p.Name, p.Value)
			}
			return nil
		})
	}
	return unknownVerb("global-parameters", v, parametersUsage, env)
}
