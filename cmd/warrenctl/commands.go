package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

func init() {
	add := func(name, group, usage, summary string, minArgs, maxArgs int, run func(*cmdCtx) error) {
		commands[name] = &command{group: group, usage: usage, summary: summary, minArgs: minArgs, maxArgs: maxArgs, run: run}
	}
	add("add_user", "Users", "<username> <password>", "Creates a new user; it has no permissions for any virtual host until set_permissions", 2, 2, addUser)
	add("delete_user", "Users", "<username>", "Removes a user", 1, 1, deleteUser)
	add("change_password", "Users", "<username> <password>", "Changes the user password", 2, 2, changePassword)
	add("set_user_tags", "Users", "<username> <tag> [...]", "Sets user tags (replacing the old ones; none clears them)", 1, -1, setUserTags)
	add("add_vhost", "Virtual hosts", "<vhost> [--description <description> --tags \"<tag1>,<tag2>,<...>\" --default-queue-type <quorum|classic|stream>]", "Creates a virtual host", 1, 1, addVHost)
	add("delete_vhost", "Virtual hosts", "<vhost>", "Deletes a virtual host and everything in it", 1, 1, deleteVHost)
	add("set_vhost_limits", "Virtual hosts", "[--vhost <vhost>] <definition>", `Sets virtual host limits, e.g. '{"max-connections":100,"max-queues":10}' (the definition replaces the old one; a negative value means no limit)`, 1, 1, setVHostLimits)
	add("clear_vhost_limits", "Virtual hosts", "[--vhost <vhost>]", "Clears virtual host limits", 0, 0, clearVHostLimits)
	add("set_permissions", "Access Control", "[--vhost <vhost>] <username> <conf> <write> <read>", "Sets user permissions for a vhost", 4, 4, setPermissions)
	add("clear_permissions", "Access Control", "[--vhost <vhost>] <username>", "Revokes user permissions for a vhost", 1, 1, clearPermissions)
	add("set_topic_permissions", "Access Control", "[--vhost <vhost>] <username> <exchange> <write> <read>", "Sets user topic permissions for an exchange", 4, 4, setTopicPermissions)
	add("clear_topic_permissions", "Access Control", "[--vhost <vhost>] <username> [<exchange>]", "Clears user topic permissions for a vhost or exchange", 1, 2, clearTopicPermissions)
	add("set_policy", "Policies", "[--vhost <vhost>] [--priority <priority>] [--apply-to <apply-to>] <name> <pattern> <definition>", "Sets or updates a policy", 3, 3, setPolicy(false))
	add("clear_policy", "Policies", "[--vhost <vhost>] <name>", "Clears (removes) a policy", 1, 1, clearPolicy(false))
	add("set_operator_policy", "Policies", "[--vhost <vhost>] [--priority <priority>] [--apply-to <apply-to>] <name> <pattern> <definition>", "Sets an operator policy that overrides a subset of arguments in user policies", 3, 3, setPolicy(true))
	add("clear_operator_policy", "Policies", "[--vhost <vhost>] <name>", "Clears an operator policy", 1, 1, clearPolicy(true))
	add("close_connection", "Operations", "<connection name> <explanation>", "Closes the connection of that name (as list_connections name shows it) with CONNECTION_FORCED and the explanation", 2, 2, closeConnection)
	add("close_all_connections", "Operations", "[--vhost <vhost> | --global] [--limit <limit>] [--per-connection-delay <ms>] <explanation>", "Closes all connections of a vhost (default /) or, with --global, of the node", 1, 1, closeAllConnections)
	add("purge_queue", "Queues", "[--vhost <vhost>] <queue>", "Purges a queue (removes all messages in it)", 1, 1, purgeQueue)
	add("delete_queue", "Queues", "[--vhost <vhost>] <queue_name> [--if-empty|-e] [--if-unused|-u]", "Deletes a queue", 1, 1, deleteQueue)
	add("export_definitions", "Definitions", "<file_path | \"-\">", "Exports definitions in JSON (to standard output with -)", 1, 1, exportDefinitions)
	add("import_definitions", "Definitions", "[<file_path | \"-\">]", "Imports definitions in JSON (from standard input with - or no argument)", 0, 1, importDefinitions)
}

func addUser(x *cmdCtx) error {
	name, pass := x.args[0], x.args[1]
	x.info("Adding user \"%s\" ...", name)
	_, err := x.c.do(x.ctx, http.MethodGet, apiPath("users", name), nil, nil)
	switch {
	case err == nil:
		return &cliError{code: exitSoftware, msg: fmt.Sprintf("User \"%s\" already exists", name)}
	case statusOf(err) != http.StatusNotFound:
		return err
	}
	if _, err := x.c.do(x.ctx, http.MethodPut, apiPath("users", name), map[string]any{"password": pass, "tags": ""}, nil); err != nil {
		return err
	}
	x.info("Done. Don't forget to grant the user permissions to some virtual hosts! See 'warrenctl help set_permissions' to learn more.")
	return nil
}

// userGone maps a 404 on a user path to rabbitmqctl's "does not exist" and
// exit code 67.
func userGone(err error, name string) error {
	if statusOf(err) == http.StatusNotFound {
		return &cliError{code: exitNoUser, msg: fmt.Sprintf("User \"%s\" does not exist", name)}
	}
	return err
}

func deleteUser(x *cmdCtx) error {
	x.info("Deleting user \"%s\" ...", x.args[0])
	_, err := x.c.do(x.ctx, http.MethodDelete, apiPath("users", x.args[0]), nil, nil)
	return userGone(err, x.args[0])
}

// getUser reads a user so a change of one field can send the others back
// unchanged: the API's PUT replaces the whole user.
func getUser(x *cmdCtx, name string) (map[string]any, error) {
	var u map[string]any
	err := x.c.getJSON(x.ctx, apiPath("users", name), &u)
	return u, userGone(err, name)
}

func tagString(u map[string]any) string {
	var tags []string
	for _, t := range userTags(u).([]any) {
		tags = append(tags, fmt.Sprint(t))
	}
	return strings.Join(tags, ",")
}

func changePassword(x *cmdCtx) error {
	name := x.args[0]
	x.info("Changing password for user \"%s\" ...", name)
	u, err := getUser(x, name)
	if err != nil {
		return err
	}
	_, err = x.c.do(x.ctx, http.MethodPut, apiPath("users", name), map[string]any{"password": x.args[1], "tags": tagString(u)}, nil)
	return userGone(err, name)
}

func setUserTags(x *cmdCtx) error {
	name, tags := x.args[0], x.args[1:]
	x.info("Setting tags for user \"%s\" to [%s] ...", name, strings.Join(tags, ", "))
	u, err := getUser(x, name)
	if err != nil {
		return err
	}
	body := map[string]any{"tags": strings.Join(tags, ","), "password_hash": u["password_hash"]}
	if alg, ok := u["hashing_algorithm"]; ok {
		body["hashing_algorithm"] = alg
	}
	if body["password_hash"] == nil {
		body["password_hash"] = ""
	}
	_, err = x.c.do(x.ctx, http.MethodPut, apiPath("users", name), body, nil)
	return userGone(err, name)
}

func addVHost(x *cmdCtx) error {
	name := x.args[0]
	x.info("Adding vhost \"%s\" ...", name)
	body := map[string]any{}
	if x.o.description != "" {
		body["description"] = x.o.description
	}
	if x.o.tags != "" {
		body["tags"] = x.o.tags
	}
	if x.o.dqt != "" {
		body["default_queue_type"] = x.o.dqt
	}
	_, err := x.c.do(x.ctx, http.MethodPut, apiPath("vhosts", name), body, nil)
	return err
}

// vhostGone maps a 404 to rabbitmqctl's text and exit code 65.
func vhostGone(err error, vhost string) error {
	if statusOf(err) == http.StatusNotFound {
		return &cliError{code: exitDataErr, msg: fmt.Sprintf("Virtual host '%s' does not exist", vhost)}
	}
	return err
}

func deleteVHost(x *cmdCtx) error {
	x.info("Deleting vhost \"%s\" ...", x.args[0])
	_, err := x.c.do(x.ctx, http.MethodDelete, apiPath("vhosts", x.args[0]), nil, nil)
	return vhostGone(err, x.args[0])
}

// parseDefinition reads a JSON object argument (policy definition, limits).
func parseDefinition(what, s string) (map[string]any, error) {
	var m map[string]any
	if err := decodeJSONArg(s, &m); err != nil || m == nil {
		return nil, usageErr("%s must be a JSON object, e.g. '{\"max-length\":1000}', got %s", what, s)
	}
	return m, nil
}

func decodeJSONArg(s string, v any) error {
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	return d.Decode(v)
}

func setVHostLimits(x *cmdCtx) error {
	vhost := x.o.vhost
	def, err := parseDefinition("limits definition", x.args[0])
	if err != nil {
		return err
	}
	x.info("Setting vhost limits to \"%s\" for vhost \"%s\" ...", x.args[0], vhost)
	// rabbitmqctl replaces the whole definition: limits not named go away.
	if err := clearLimits(x, vhost, def); err != nil {
		return err
	}
	for _, k := range sortedKeys(def) {
		if _, err := x.c.do(x.ctx, http.MethodPut, apiPath("vhost-limits", vhost, k), map[string]any{"value": def[k]}, nil); err != nil {
			return vhostGone(err, vhost)
		}
	}
	return nil
}

// clearLimits deletes the vhost's limits except those in keep.
func clearLimits(x *cmdCtx, vhost string, keep map[string]any) error {
	var cur []struct {
		Value map[string]any `json:"value"`
	}
	if err := x.c.getJSON(x.ctx, apiPath("vhost-limits", vhost), &cur); err != nil {
		return vhostGone(err, vhost)
	}
	for _, l := range cur {
		for k := range l.Value {
			if _, ok := keep[k]; ok {
				continue
			}
			if _, err := x.c.do(x.ctx, http.MethodDelete, apiPath("vhost-limits", vhost, k), nil, nil); err != nil && statusOf(err) != http.StatusNotFound {
				return err
			}
		}
	}
	return nil
}

func clearVHostLimits(x *cmdCtx) error {
	x.info("Clearing vhost \"%s\" limits ...", x.o.vhost)
	var cur []json.RawMessage
	if err := x.c.getJSON(x.ctx, apiPath("vhost-limits", x.o.vhost), &cur); err != nil {
		return vhostGone(err, x.o.vhost)
	}
	if len(cur) == 0 {
		return &cliError{code: exitUnavailable, msg: "Parameter does not exist"}
	}
	return clearLimits(x, x.o.vhost, nil)
}

// missingUserOrVHost turns the API's "vhost_or_user_not_found" (400) or a
// 404 into rabbitmqctl's answer, naming which one is missing: no user is 67,
// no vhost 69.
func missingUserOrVHost(x *cmdCtx, err error, user, vhost string) error {
	if st := statusOf(err); st != http.StatusBadRequest && st != http.StatusNotFound {
		return err
	}
	if _, e := x.c.do(x.ctx, http.MethodGet, apiPath("users", user), nil, nil); statusOf(e) == http.StatusNotFound {
		return &cliError{code: exitNoUser, msg: fmt.Sprintf("User %s does not exist", user)}
	}
	if _, e := x.c.do(x.ctx, http.MethodGet, apiPath("vhosts", vhost), nil, nil); statusOf(e) == http.StatusNotFound {
		return &cliError{code: exitUnavailable, msg: fmt.Sprintf("Virtual host %s does not exist", vhost)}
	}
	return err
}

func setPermissions(x *cmdCtx) error {
	user, vhost := x.args[0], x.o.vhost
	x.info("Setting permissions for user \"%s\" in vhost \"%s\" ...", user, vhost)
	_, err := x.c.do(x.ctx, http.MethodPut, apiPath("permissions", vhost, user),
		map[string]string{"configure": x.args[1], "write": x.args[2], "read": x.args[3]}, nil)
	return missingUserOrVHost(x, err, user, vhost)
}

func clearPermissions(x *cmdCtx) error {
	user, vhost := x.args[0], x.o.vhost
	x.info("Clearing permissions for user \"%s\" in vhost \"%s\" ...", user, vhost)
	_, err := x.c.do(x.ctx, http.MethodDelete, apiPath("permissions", vhost, user), nil, nil)
	return missingUserOrVHost(x, err, user, vhost)
}

func setTopicPermissions(x *cmdCtx) error {
	user, vhost := x.args[0], x.o.vhost
	x.info("Setting topic permissions on \"%s\" for user \"%s\" in vhost \"%s\" ...", x.args[1], user, vhost)
	_, err := x.c.do(x.ctx, http.MethodPut, apiPath("topic-permissions", vhost, user),
		map[string]string{"exchange": x.args[1], "write": x.args[2], "read": x.args[3]}, nil)
	return missingUserOrVHost(x, err, user, vhost)
}

// clearTopicPermissions with an exchange removes only that exchange's entry:
// the API deletes all of a user's topic permissions in a vhost at once, so
// the others are put back.
func clearTopicPermissions(x *cmdCtx) error {
	user, vhost := x.args[0], x.o.vhost
	path := apiPath("topic-permissions", vhost, user)
	if len(x.args) == 1 {
		x.info("Clearing topic permissions for user \"%s\" in vhost \"%s\" ...", user, vhost)
		_, err := x.c.do(x.ctx, http.MethodDelete, path, nil, nil)
		return err
	}
	exchange := x.args[1]
	x.info("Clearing topic permissions on \"%s\" for user \"%s\" in vhost \"%s\" ...", exchange, user, vhost)
	var perms []map[string]any
	if err := x.c.getJSON(x.ctx, path, &perms); err != nil {
		return err
	}
	if _, err := x.c.do(x.ctx, http.MethodDelete, path, nil, nil); err != nil {
		return err
	}
	for _, p := range perms {
		if p["exchange"] == exchange {
			continue
		}
		body := map[string]any{"exchange": p["exchange"], "write": p["write"], "read": p["read"]}
		if _, err := x.c.do(x.ctx, http.MethodPut, path, body, nil); err != nil {
			return err
		}
	}
	return nil
}

func setPolicy(operator bool) func(*cmdCtx) error {
	return func(x *cmdCtx) error {
		name, pattern := x.args[0], x.args[1]
		def, err := parseDefinition("policy definition", x.args[2])
		if err != nil {
			return err
		}
		applyTo := x.o.applyTo
		if applyTo == "" {
			applyTo = "all"
		}
		kind, what := "policies", "policy"
		if operator {
			kind, what = "operator-policies", "operator policy override"
		}
		x.info("Setting %s \"%s\" for pattern \"%s\" to \"%s\" with priority \"%s\" for vhost \"%s\" ...",
			what, name, pattern, x.args[2], fmt.Sprint(x.o.priority), x.o.vhost)
		_, err = x.c.do(x.ctx, http.MethodPut, apiPath(kind, x.o.vhost, name), map[string]any{
			"pattern": pattern, "definition": def, "priority": x.o.priority, "apply-to": applyTo,
		}, nil)
		return err
	}
}

func clearPolicy(operator bool) func(*cmdCtx) error {
	return func(x *cmdCtx) error {
		kind, what := "policies", "policy"
		if operator {
			kind, what = "operator-policies", "operator policy"
		}
		x.info("Clearing %s \"%s\" on vhost \"%s\" ...", what, x.args[0], x.o.vhost)
		_, err := x.c.do(x.ctx, http.MethodDelete, apiPath(kind, x.o.vhost, x.args[0]), nil, nil)
		if statusOf(err) == http.StatusNotFound {
			return &cliError{code: exitUnavailable, msg: fmt.Sprintf("Parameter does not exist: %s \"%s\" in vhost \"%s\"", what, x.args[0], x.o.vhost)}
		}
		return err
	}
}

func closeConnection(x *cmdCtx) error {
	name, reason := x.args[0], x.args[1]
	x.info("Closing connection %s, reason: %s...", name, reason)
	_, err := x.c.do(x.ctx, http.MethodDelete, apiPath("connections", name), nil, http.Header{"X-Reason": {reason}})
	if statusOf(err) == http.StatusNotFound {
		return &cliError{code: exitDataErr, msg: fmt.Sprintf("Connection \"%s\" not found (list_connections name shows the names)", name)}
	}
	return err
}

func closeAllConnections(x *cmdCtx) error {
	reason := x.args[0]
	path := apiPath("vhosts", x.o.vhost, "connections")
	if x.o.global {
		path = apiPath("connections")
	}
	var conns []map[string]any
	if err := x.c.getJSON(x.ctx, path, &conns); err != nil {
		return vhostGone(err, x.o.vhost)
	}
	if x.o.limit > 0 && len(conns) > x.o.limit {
		conns = conns[:x.o.limit]
	}
	if x.o.global {
		node := "the node"
		if n, err := localNode(x); err == nil {
			node = n.Name
		}
		x.info("Closing all connections to node %s (across all vhosts), reason: %s...", node, reason)
	} else {
		x.info("Closing all connections in vhost %s, reason: %s...", x.o.vhost, reason)
	}
	closed := 0
	for i, c := range conns {
		if i > 0 && x.o.perConnectionDelay > 0 {
			if err := sleepCtx(x.ctx, x.o.perConnectionDelay); err != nil {
				return err
			}
		}
		name := fmt.Sprint(c["name"])
		_, err := x.c.do(x.ctx, http.MethodDelete, apiPath("connections", name), nil, http.Header{"X-Reason": {reason}})
		if err != nil && statusOf(err) != http.StatusNotFound { // already gone is fine
			return err
		}
		if err == nil {
			closed++
		}
	}
	fmt.Fprintf(x.e.stdout, "Closed %d connections\n", closed)
	return nil
}

// queueGone maps a 404 on a queue path to a clear message and exit code 69,
// as rabbitmqctl purge_queue exits (its delete_queue exits 64).
func queueGone(err error, x *cmdCtx, name string) error {
	if statusOf(err) == http.StatusNotFound {
		return &cliError{code: exitUnavailable, msg: fmt.Sprintf("Queue '%s' not found in vhost '%s'", name, x.o.vhost)}
	}
	return err
}

func purgeQueue(x *cmdCtx) error {
	name := x.args[0]
	x.info("Purging queue '%s' in vhost '%s' ...", name, x.o.vhost)
	_, err := x.c.do(x.ctx, http.MethodDelete, apiPath("queues", x.o.vhost, name, "contents"), nil, nil)
	return queueGone(err, x, name)
}

func deleteQueue(x *cmdCtx) error {
	name := x.args[0]
	x.info("Deleting queue '%s' on vhost '%s' ...", name, x.o.vhost)
	var q map[string]any
	if err := x.c.getJSON(x.ctx, apiPath("queues", x.o.vhost, name), &q); err != nil {
		return queueGone(err, x, name)
	}
	path := apiPath("queues", x.o.vhost, name)
	var qs []string
	if x.o.ifEmpty {
		qs = append(qs, "if-empty=true")
	}
	if x.o.ifUnused {
		qs = append(qs, "if-unused=true")
	}
	if len(qs) > 0 {
		path += "?" + strings.Join(qs, "&")
	}
	if _, err := x.c.do(x.ctx, http.MethodDelete, path, nil, nil); err != nil {
		return queueGone(err, x, name)
	}
	n := termText(q["messages_ready"])
	if n == "" {
		n = "0"
	}
	// The result, not an info line: printed even with -q, as rabbitmqctl does.
	fmt.Fprintf(x.e.stdout, "Queue was successfully deleted with %s ready messages\n", n)
	return nil
}
