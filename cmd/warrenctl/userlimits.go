package main

import (
	"fmt"
	"net/http"
)

func init() {
	add := func(name, group, usage, summary string, minArgs, maxArgs int, run func(*cmdCtx) error) {
		commands[name] = &command{group: group, usage: usage, summary: summary, minArgs: minArgs, maxArgs: maxArgs, run: run}
	}
	add("set_user_limits", "Users", "<username> <definition>", `Sets user limits, e.g. '{"max-connections":10,"max-channels":20}' (limits not named stay as they are)`, 2, 2, setUserLimits)
	add("clear_user_limits", "Users", "<username> <limit> | all", "Clears one user limit (max-connections, max-channels) or all of them", 2, 2, clearUserLimits)
	add("clear_password", "Users", "<username>", "Clears (resets) the password of a user: it can then log in only with a client certificate", 1, 1, clearPassword)
}

func setUserLimits(x *cmdCtx) error {
	user := x.args[0]
	def, err := parseDefinition("limits definition", x.args[1])
	if err != nil {
		return err
	}
	x.info("Setting user limits to \"%s\" for user \"%s\" ...", x.args[1], user)
	for _, k := range sortedKeys(def) {
		if _, err := x.c.do(x.ctx, http.MethodPut, apiPath("user-limits", user, k), map[string]any{"value": def[k]}, nil); err != nil {
			if st := statusOf(err); st == http.StatusNotFound || st == http.StatusBadRequest {
				// rabbitmqctl says {:no_such_user, "u"} and exits 69 here.
				if _, e := x.c.do(x.ctx, http.MethodGet, apiPath("users", user), nil, nil); statusOf(e) == http.StatusNotFound {
					return &cliError{code: exitUnavailable, msg: fmt.Sprintf("{:no_such_user, \"%s\"}", user)}
				}
			}
			return err
		}
	}
	return nil
}

func clearUserLimits(x *cmdCtx) error {
	user, limit := x.args[0], x.args[1]
	if limit != "all" {
		x.info("Clearing \"%s\" limit for user \"%s\" ...", limit, user)
		_, err := x.c.do(x.ctx, http.MethodDelete, apiPath("user-limits", user, limit), nil, nil)
		if statusOf(err) == http.StatusNotFound {
			return nil // as rabbitmqctl: clearing a limit that is not set succeeds
		}
		return err
	}
	x.info("Clearing all limits for user \"%s\" ...", user)
	var cur []struct {
		Value map[string]any `json:"value"`
	}
	if err := x.c.getJSON(x.ctx, apiPath("user-limits", user), &cur); err != nil {
		return userGone(err, user)
	}
	for _, l := range cur {
		for k := range l.Value {
			if _, err := x.c.do(x.ctx, http.MethodDelete, apiPath("user-limits", user, k), nil, nil); err != nil && statusOf(err) != http.StatusNotFound {
				return err
			}
		}
	}
	return nil
}

func clearPassword(x *cmdCtx) error {
	name := x.args[0]
	x.info("Clearing password for user \"%s\" ...", name)
	u, err := getUser(x, name)
	if err != nil {
		return err
	}
	_, err = x.c.do(x.ctx, http.MethodPut, apiPath("users", name), map[string]any{"password_hash": "", "tags": tagString(u)}, nil)
	return userGone(err, name)
}
