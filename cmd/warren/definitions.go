package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/warren-mq/warren/internal/amqpserver"
	"github.com/warren-mq/warren/internal/broker"
	"github.com/warren-mq/warren/internal/definitions"
)

// loadDefinitions imports a definitions file into b (--load-definitions).
// Any entity that fails stops the start, with every failure listed, as
// RabbitMQ's node does not boot on a definitions file it cannot import.
func loadDefinitions(b *broker.Broker, path string, log *slog.Logger) error {
	started := time.Now()
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("--load-definitions: %w", err)
	}
	f, err := definitions.Parse(data)
	if err != nil {
		return fmt.Errorf("--load-definitions %s: %w", path, err)
	}
	if err := definitions.Import(b, f); err != nil {
		return fmt.Errorf("--load-definitions %s: %w", path, err)
	}
	log.Info("definitions imported", "file", path, "users", len(f.Users), "vhosts", len(f.VHosts), "queues", len(f.Queues),
		"exchanges", len(f.Exchanges), "bindings", len(f.Bindings), "policies", len(f.Policies), "took", time.Since(started).Round(time.Millisecond))
	return nil
}

func init() {
	registerSubcommand("definitions", subcommand{
		summary: "export [FILE] | import FILE: definitions in RabbitMQ's JSON format (export to stdout without FILE)",
		run:     runDefinitions,
	})
}

func runDefinitions(fs *flag.FlagSet, args []string, env subEnv) int {
	usage := "usage: warren definitions [--data-dir DIR] export [FILE] | import FILE"
	if err := fs.Parse(args); err != nil {
		return 2
	}
	args = fs.Args()
	if len(args) == 0 || (args[0] == "import" && len(args) != 2) || (args[0] == "export" && len(args) > 2) {
		fmt.Fprintln(env.stderr, usage)
		return 2
	}
	switch args[0] {
	case "export":
		var out []byte
		err := env.withBroker(func(b *broker.Broker) error {
			var err error
			out, err = json.MarshalIndent(definitions.Export(b, amqpserver.Version), "", "  ")
			return err
		})
		if err != nil {
			return env.fail("definitions export", err)
		}
		out = append(out, '\n')
		if len(args) == 2 {
			err = os.WriteFile(args[1], out, 0o600) // it holds password hashes
		} else {
			_, err = env.stdout.Write(out)
		}
		if err != nil {
			return env.fail("definitions export", err)
		}
		return 0
	case "import":
		data, err := os.ReadFile(args[1])
		if err != nil {
			return env.fail("definitions import", err)
		}
		f, err := definitions.Parse(data)
		if err != nil {
			return env.fail("definitions import", fmt.Errorf("%s: %w", args[1], err))
		}
		if err := env.withBroker(func(b *broker.Broker) error { return definitions.Import(b, f) }); err != nil {
			return env.fail("definitions import", err)
		}
		fmt.Fprintf(env.stdout, "imported %s: %d users, %d vhosts, %d exchanges, %d queues, %d bindings, %d policies\n",
			args[1], len(f.Users), len(f.VHosts), len(f.Exchanges), len(f.Queues), len(f.Bindings), len(f.Policies))
		return 0
	}
	fmt.Fprintln(env.stderr, usage)
	return 2
}
