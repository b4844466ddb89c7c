package main

import (
	"fmt"
	"net/url"
	"strings"
)

// listSpec is one list_* command: where its objects come from, its info
// line, the columns it accepts (rabbitmqctl's info keys) and how a column is
// read from the API's JSON object when the names differ.
type listSpec struct {
	name, summary string
	path          func(vhost string) string
	infoLine      func(vhost string) string
	columns       []string // accepted, in rabbitmqctl's help order
	defaults      []string
	fixed         bool // takes no column arguments
	vhostScoped   bool
	// field says where a column comes from when it is not the API field of
	// the same name.
	field map[string]col
	// bulky lists ask the API for only the fields their columns need
	// (RabbitMQ's columns parameter), so 50,000 queues are not sent whole.
	bulky bool
}

// col is one column's source: the API field at path (dotted for nested
// objects), converted by fn when set. path is also what the list asks for.
type col struct {
	path string
	fn   func(obj map[string]any) any
}

func (c col) value(obj map[string]any) any {
	if c.fn != nil {
		return c.fn(obj)
	}
	return get(obj, c.path)
}

// get follows a dotted path through nested objects.
func get(obj map[string]any, path string) any {
	var v any = obj
	for _, k := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func from(path string) col { return col{path: path} }

// protocolTerm turns the API's "AMQP 0-9-1" into rabbitmqctl's {0,9,1}.
func protocolTerm(o map[string]any) any {
	p, _ := o["protocol"].(string)
	if v, ok := strings.CutPrefix(p, "AMQP "); ok {
		return protocolVersion(strings.Split(v, "-"))
	}
	return p
}

// protocolVersion is kept as a list so --formatter json prints [0,9,1] like
// rabbitmqctl; the table formatter prints {0,9,1}.
type protocolVersion []string

func (p protocolVersion) MarshalJSON() ([]byte, error) {
	return []byte("[" + strings.Join(p, ",") + "]"), nil
}

func (p protocolVersion) String() string { return "{" + strings.Join(p, ",") + "}" }

// userTags accepts both shapes RabbitMQ has used: a list (3.9+) or a
// comma-separated string (older versions).
func userTags(o map[string]any) any {
	switch t := o["tags"].(type) {
	case []any:
		return t
	case string:
		out := []any{}
		for _, s := range strings.Split(t, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
		return out
	}
	return []any{}
}

func vhostPath(kind string) func(string) string {
	return func(vhost string) string { return apiPath(kind, vhost) }
}

var listSpecs = []*listSpec{
	{
		name: "list_queues", summary: "Lists queues and their properties", vhostScoped: true, bulky: true,
		path:     vhostPath("queues"),
		infoLine: func(v string) string { return "Timeout: %.1f seconds ...\nListing queues for vhost " + v + " ..." },
		columns: []string{"arguments", "auto_delete", "consumer_capacity", "consumer_utilisation", "consumers", "disk_reads",
			"disk_writes", "durable", "exclusive", "exclusive_consumer_pid", "exclusive_consumer_tag", "head_message_timestamp",
			"leader", "members", "memory", "message_bytes", "message_bytes_persistent", "message_bytes_ram", "message_bytes_ready",
			"message_bytes_unacknowledged", "messages", "messages_persistent", "messages_ram", "messages_ready", "messages_ready_ram",
			"messages_unacknowledged", "messages_unacknowledged_ram", "name", "online", "owner_pid", "pid", "policy", "slave_pids",
			"state", "synchronised_slave_pids", "type"},
		defaults: []string{"name", "messages"},
		field: map[string]col{
			"leader":                 from("node"),
			"members":                {"node", func(o map[string]any) any { return []any{o["node"]} }},
			"online":                 {"node", func(o map[string]any) any { return []any{o["node"]} }},
			"pid":                    from("name"),
			"owner_pid":              from("owner_pid_details.name"),
			"exclusive_consumer_pid": from("exclusive_consumer_pid"),
			"disk_reads":             from("backing_queue_status.disk_reads"),
			"disk_writes":            from("backing_queue_status.disk_writes"),
		},
	},
	{
		name: "list_exchanges", summary: "Lists exchanges", vhostScoped: true, bulky: true,
		path:     vhostPath("exchanges"),
		infoLine: func(v string) string { return "Listing exchanges for vhost " + v + " ..." },
		columns:  []string{"arguments", "auto_delete", "durable", "internal", "name", "policy", "type"},
		defaults: []string{"name", "type"},
	},
	{
		name: "list_bindings", summary: "Lists all bindings on a vhost", vhostScoped: true, bulky: true,
		path:     vhostPath("bindings"),
		infoLine: func(v string) string { return "Listing bindings for vhost " + v + "..." },
		columns:  []string{"arguments", "destination_kind", "destination_name", "routing_key", "source_kind", "source_name"},
		defaults: []string{"source_name", "source_kind", "destination_name", "destination_kind", "routing_key", "arguments"},
		field: map[string]col{
			"source_name":      from("source"),
			"source_kind":      {"source", func(map[string]any) any { return "exchange" }},
			"destination_name": from("destination"),
			"destination_kind": from("destination_type"),
		},
	},
	{
		name: "list_connections", summary: "Lists AMQP 0.9.1 connections for the node", bulky: true,
		path:     func(string) string { return apiPath("connections") },
		infoLine: func(string) string { return "Listing connections ..." },
		columns: []string{"auth_mechanism", "channel_max", "channels", "client_properties", "connected_at", "frame_max", "host",
			"name", "peer_cert_issuer", "peer_cert_subject", "peer_cert_validity", "peer_host", "peer_port", "pid", "port",
			"protocol", "recv_cnt", "recv_oct", "send_cnt", "send_oct", "send_pend", "ssl", "ssl_cipher", "ssl_hash",
			"ssl_key_exchange", "ssl_protocol", "state", "timeout", "user", "vhost"},
		defaults: []string{"user", "peer_host", "peer_port", "state"},
		field: map[string]col{
			"pid":      from("name"),
			"protocol": {"protocol", protocolTerm},
		},
	},
	{
		name: "list_channels", summary: "Lists all channels in the node", bulky: true,
		path:     func(string) string { return apiPath("channels") },
		infoLine: func(string) string { return "Listing channels ..." },
		columns: []string{"acks_uncommitted", "confirm", "connection", "consumer_count", "global_prefetch_count",
			"messages_unacknowledged", "messages_uncommitted", "messages_unconfirmed", "name", "number", "pid",
			"prefetch_count", "transactional", "user", "vhost"},
		defaults: []string{"pid", "user", "consumer_count", "messages_unacknowledged"},
		field: map[string]col{
			"pid":        from("name"),
			"connection": from("connection_details.name"),
		},
	},
	{
		name: "list_consumers", summary: "Lists all consumers for a vhost", vhostScoped: true, bulky: true,
		path:     vhostPath("consumers"),
		infoLine: func(v string) string { return "Listing consumers in vhost " + v + " ..." },
		columns: []string{"ack_required", "active", "activity_status", "arguments", "channel_pid", "consumer_tag",
			"prefetch_count", "queue_name"},
		defaults: []string{"queue_name", "channel_pid", "consumer_tag", "ack_required", "prefetch_count", "active", "arguments"},
		field: map[string]col{
			"queue_name":  from("queue.name"),
			"channel_pid": from("channel_details.name"),
		},
	},
	{
		name: "list_users", summary: "List user names and tags", fixed: true,
		path:     func(string) string { return apiPath("users") },
		infoLine: func(string) string { return "Listing users ..." },
		columns:  []string{"user", "tags"},
		defaults: []string{"user", "tags"},
		field:    map[string]col{"user": from("name"), "tags": {"tags", userTags}},
	},
	{
		name: "list_vhosts", summary: "Lists virtual hosts",
		path:     func(string) string { return apiPath("vhosts") },
		infoLine: func(string) string { return "Listing vhosts ..." },
		columns:  []string{"cluster_state", "default_queue_type", "description", "name", "tags", "tracing"},
		defaults: []string{"name"},
		field:    map[string]col{"tags": {"tags", userTags}},
	},
	{
		name: "list_permissions", summary: "Lists user permissions in a virtual host", fixed: true, vhostScoped: true,
		path:     func(v string) string { return apiPath("vhosts", v, "permissions") },
		infoLine: func(v string) string { return fmt.Sprintf("Listing permissions for vhost \"%s\" ...", v) },
		columns:  []string{"user", "configure", "write", "read"},
		defaults: []string{"user", "configure", "write", "read"},
	},
	{
		name: "list_topic_permissions", summary: "Lists topic permissions in a virtual host", fixed: true, vhostScoped: true,
		path:     func(v string) string { return apiPath("vhosts", v, "topic-permissions") },
		infoLine: func(v string) string { return fmt.Sprintf("Listing topic permissions for vhost \"%s\" ...", v) },
		columns:  []string{"user", "exchange", "write", "read"},
		defaults: []string{"user", "exchange", "write", "read"},
	},
	{
		name: "list_policies", summary: "Lists all policies in a virtual host", fixed: true, vhostScoped: true,
		path:     vhostPath("policies"),
		infoLine: func(v string) string { return fmt.Sprintf("Listing policies for vhost \"%s\" ...", v) },
		columns:  []string{"vhost", "name", "pattern", "apply-to", "definition", "priority"},
		defaults: []string{"vhost", "name", "pattern", "apply-to", "definition", "priority"},
	},
	{
		name: "list_operator_policies", summary: "Lists operator policy overrides for a virtual host", fixed: true, vhostScoped: true,
		path:     vhostPath("operator-policies"),
		infoLine: func(v string) string { return fmt.Sprintf("Listing operator policy overrides for vhost \"%s\" ...", v) },
		columns:  []string{"vhost", "name", "pattern", "apply-to", "definition", "priority"},
		defaults: []string{"vhost", "name", "pattern", "apply-to", "definition", "priority"},
	},
}

func init() {
	for _, s := range listSpecs {
		s := s
		usage := "[--no-table-headers] [<column> ...]"
		if s.fixed {
			usage = "[--no-table-headers]"
		}
		if s.vhostScoped {
			usage = "[--vhost <vhost>] " + usage
		}
		help := "Columns: " + strings.Join(s.columns, ", ") + "\nDefault columns: " + strings.Join(s.defaults, " ")
		if s.fixed {
			help = "Columns: " + strings.Join(s.columns, " ")
		}
		maxArgs := -1
		if s.fixed {
			maxArgs = 0
		}
		commands[s.name] = &command{
			group: "Listing", summary: s.summary, usage: usage, help: help, maxArgs: maxArgs,
			run: func(x *cmdCtx) error { return runList(x, s) },
		}
	}
}

// columnsOf validates the column arguments; like rabbitmqctl it accepts them
// separated by spaces or commas.
func columnsOf(s *listSpec, args []string) ([]string, error) {
	var cols, bad []string
	for _, a := range args {
		for _, c := range strings.Split(a, ",") {
			if c = strings.TrimSpace(c); c == "" {
				continue
			}
			if !contains(s.columns, c) {
				bad = append(bad, c)
			}
			cols = append(cols, c)
		}
	}
	if len(bad) > 0 {
		return nil, usageErr("Info key(s) %s are not supported\nArguments given:\n\t%s %s\nSupported: %s",
			strings.Join(bad, ","), s.name, strings.Join(args, " "), strings.Join(s.columns, ", "))
	}
	if len(cols) == 0 {
		cols = s.defaults
	}
	return cols, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// query asks a bulky list for only the API fields cols read.
func (s *listSpec) query(cols []string) string {
	if !s.bulky {
		return ""
	}
	var fields []string
	for _, c := range cols {
		f := c
		if src, ok := s.field[c]; ok {
			f = src.path
		}
		if !contains(fields, f) {
			fields = append(fields, f)
		}
	}
	return "?columns=" + url.QueryEscape(strings.Join(fields, ","))
}

func runList(x *cmdCtx, s *listSpec) error {
	cols, err := columnsOf(s, x.args)
	if err != nil {
		return err
	}
	var objs []map[string]any
	if err := x.c.getJSON(x.ctx, s.path(x.o.vhost)+s.query(cols), &objs); err != nil {
		if statusOf(err) == 404 && s.vhostScoped {
			// rabbitmqctl lists nothing for a vhost that does not exist.
			objs = nil
		} else {
			return err
		}
	}
	line := s.infoLine(x.o.vhost)
	if strings.HasPrefix(line, "Timeout:") {
		x.info(line, x.o.timeout.Seconds())
	} else {
		x.info("%s", line)
	}
	rows := make([][]any, len(objs))
	for i, obj := range objs {
		r := make([]any, len(cols))
		for j, c := range cols {
			if f, ok := s.field[c]; ok {
				r[j] = f.value(obj)
			} else {
				r[j] = obj[c]
			}
			if pv, ok := r[j].(protocolVersion); ok && x.o.formatter != "json" {
				r[j] = pv.String()
			}
		}
		rows[i] = r
	}
	return writeRows(x.e.stdout, x.o, cols, rows)
}

func init() {
	commands["list_user_permissions"] = &command{group: "Listing", usage: "[--no-table-headers] <username>",
		summary: "Lists permissions of a user across all virtual hosts", minArgs: 1, maxArgs: 1, run: listUserPermissions}
	commands["list_vhost_limits"] = &command{group: "Listing", usage: "[--vhost <vhost>] [--global] [--no-table-headers]",
		summary: "Displays configured virtual host limits (of all vhosts with --global)", maxArgs: 0, run: listVHostLimits}
}

func listUserPermissions(x *cmdCtx) error {
	user := x.args[0]
	var perms []map[string]any
	if err := x.c.getJSON(x.ctx, apiPath("users", user, "permissions"), &perms); err != nil {
		return userGone(err, user)
	}
	x.info("Listing permissions for user \"%s\" ...", user)
	cols := []string{"vhost", "configure", "write", "read"}
	rows := make([][]any, len(perms))
	for i, p := range perms {
		rows[i] = []any{p["vhost"], p["configure"], p["write"], p["read"]}
	}
	return writeRows(x.e.stdout, x.o, cols, rows)
}

// listVHostLimits prints one vhost's limits as a bare JSON object, or with
// --global a vhost/limits table, as rabbitmqctl does.
func listVHostLimits(x *cmdCtx) error {
	path := apiPath("vhost-limits", x.o.vhost)
	if x.o.global {
		path = apiPath("vhost-limits")
	}
	var limits []map[string]any
	if err := x.c.getJSON(x.ctx, path, &limits); err != nil {
		return vhostGone(err, x.o.vhost)
	}
	if x.o.global {
		x.info("Listing limits for all vhosts ...")
		rows := make([][]any, len(limits))
		for i, l := range limits {
			rows[i] = []any{l["vhost"], compactJSON(l["value"])}
		}
		return writeRows(x.e.stdout, x.o, []string{"vhost", "limits"}, rows)
	}
	x.info("Listing limits for vhost \"%s\" ...", x.o.vhost)
	for _, l := range limits {
		fmt.Fprintln(x.e.stdout, compactJSON(l["value"]))
	}
	return nil
}
