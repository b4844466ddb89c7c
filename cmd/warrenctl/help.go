package main

import (
	"fmt"
	"io"
	"sort"
)

var groupOrder = []string{"Listing", "Users", "Access Control", "Virtual hosts", "Policies", "Queues", "Operations", "Definitions", "Nodes", "Health checks"}

const generalOptions = `General options (anywhere on the command line):

  --host <host>, -H        management API host (default localhost)      WARRENCTL_HOST
  --node <node>, -n        rabbitmqctl's node name: rabbit@broker1 means --host broker1
  --port <port>, -P        management API port (default 15672)          WARRENCTL_PORT
  --username <user>        user (default guest)                         WARRENCTL_USER
  --password <password>    password (default guest)                     WARRENCTL_PASSWORD
  --vhost <vhost>, -p      virtual host of vhost-scoped commands (/)    WARRENCTL_VHOST
  --ssl                    use HTTPS                                    WARRENCTL_SSL=true
  --cacert <file>          CA certificates (PEM) to verify the server   WARRENCTL_CACERT
  --cert, --key <file>     client certificate and key (PEM)             WARRENCTL_CERT, WARRENCTL_KEY
  --insecure               do not verify the server's certificate       WARRENCTL_INSECURE=true
  --url <url>              all of the above at once, e.g.               WARRENCTL_URL
                           https://admin:secret@broker1:15671
  --config <file>, -c      config file (default ~/.warrenctl.conf)      WARRENCTL_CONFIG
  --timeout <s>, -t        operation timeout in seconds (default 60)
  --quiet, -q              suppress informational messages
  --silent, -s             suppress informational messages and table header row
  --no-table-headers       suppress the table header row
  --formatter json         JSON output for list commands and status
  --help, -?               help for the command

Flags win over the environment, which wins over the config file. The config
file holds "key = value" lines: host, port, username, password, vhost, ssl,
cacert, cert, key, insecure, url; '#' starts a comment.

Exit codes (rabbitmqctl's): 0 ok, 64 usage, 65 data error (delete_vhost of no
vhost), 67 no such user, 69 unavailable (cannot connect, a health check failed,
no such queue or vhost), 70 the API refused or failed the request, 75 timed out.
`

// writeOverview prints the command list, grouped as rabbitmqctl groups it.
func writeOverview(w io.Writer) {
	fmt.Fprintf(w, "Usage\n\nwarrenctl [--host <host>] [--port <port>] [--timeout <timeout>] [--quiet] <command> [<command options>]\n\n")
	fmt.Fprintf(w, "warrenctl operates Warren (or RabbitMQ) through its management HTTP API.\n\nAvailable commands:\n")
	byGroup := map[string][]string{}
	for name, c := range commands {
		byGroup[c.group] = append(byGroup[c.group], name)
	}
	for _, g := range groupOrder {
		names := byGroup[g]
		sort.Strings(names)
		fmt.Fprintf(w, "\n%s:\n\n", g)
		for _, n := range names {
			fmt.Fprintf(w, "   %-26s %s\n", n, commands[n].summary)
		}
	}
	fmt.Fprintf(w, "\n   %-26s %s\n\n%s\nUse 'warrenctl help <command>' to learn more about a specific command\n", "help", "Displays usage information for a command", generalOptions)
}

func writeCommandHelp(w io.Writer, name string, c *command) {
	fmt.Fprintf(w, "Usage\n\nwarrenctl [--host <host>] [--port <port>] [--quiet] %s %s\n\n%s.\n", name, c.usage, c.summary)
	if c.help != "" {
		fmt.Fprintf(w, "\n%s\n", c.help)
	}
	fmt.Fprintf(w, "\n%s", generalOptions)
}

func runHelp(e *ioEnv, args []string) int {
	if len(args) == 0 {
		writeOverview(e.stdout)
		return exitOK
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(e.stderr, "Command '%s' not found.\nUse 'warrenctl help' to list the commands.\n", args[0])
		return exitUsage
	}
	writeCommandHelp(e.stdout, args[0], c)
	return exitOK
}
