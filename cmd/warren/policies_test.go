package main

import (
	"strings"
	"testing"
	"time"
)

// The policies, parameters and global-parameters subcommands change a
// stopped broker's data directory; bad input gets a clear error.
func TestRunPolicySubcommands(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"WARREN_DATA_DIR": dir}
	ok := func(args ...string) string {
		t.Helper()
		r := runNow(args, env)
		if r.code != 0 {
			t.Fatalf("warren %s: status %d\n%s", strings.Join(args, " "), r.code, r.stderr)
		}
		return r.stdout
	}
	fails := func(status int, want string, args ...string) {
		t.Helper()
		r := runNow(args, env)
		if r.code != status || !strings.Contains(r.stderr, want) {
			t.Fatalf("warren %s: status %d, stderr %q; want %d and %q", strings.Join(args, " "), r.code, r.stderr, status, want)
		}
	}
	ok("policies", "set", "--priority", "2", "--apply-to", "queues", "limit", "^jobs", `{"max-length": 10, "dead-letter-exchange":"dlx"}`)
	ok("policies", "set", "cap", ".*", `{"max-length":5}`, "--operator")
	ok("parameters", "set", "federation-upstream", "up", `{"uri":"amqp://elsewhere"}`)
	ok("global-parameters", "set", "cluster_name", `"warren-1"`)
	if out := ok("policies", "list"); !strings.Contains(out, "/\tlimit\t^jobs\tqueues\t{\"dead-letter-exchange\":\"dlx\",\"max-length\":10}\t2") {
		t.Fatalf("policies list:\n%s", out)
	}
	if out := ok("policies", "list", "--operator"); !strings.Contains(out, "/\tcap\t.*\tall\t{\"max-length\":5}\t0") {
		t.Fatalf("operator policies list:\n%s", out)
	}
	if out := ok("parameters", "list"); !strings.Contains(out, "/\tfederation-upstream\tup\t{\"uri\":\"amqp://elsewhere\"}") {
		t.Fatalf("parameters list:\n%s", out)
	}
	if out := ok("global-parameters", "list"); !strings.Contains(out, "cluster_name\t\"warren-1\"") {
		t.Fatalf("global parameters list:\n%s", out)
	}

	fails(1, "pattern should be regular expression but is invalid", "policies", "set", "p", "(", `{"max-length":1}`)
	fails(1, `[{<<"nope">>,1}] are not recognised policy settings`, "policies", "set", "p", "x", `{"nope":1}`)
	fails(1, `<<"ten">> is not a valid maximum length`, "policies", "set", "p", "x", `{"max-length":"ten"}`)
	fails(1, "JSON decoding error", "policies", "set", "p", "x", `{"max-length":1`)
	fails(1, "JSON decoding error", "parameters", "set", "c", "n", `{`)
	fails(1, "no vhost 'nope'", "policies", "set", "--vhost", "nope", "p", "x", `{"max-length":1}`)
	fails(1, "no policy 'p'", "policies", "clear", "p")
	fails(2, "takes 3 arguments", "policies", "set", "p", "x")
	fails(2, "unknown command", "policies", "frobnicate")

	ok("policies", "clear", "limit")
	ok("policies", "clear", "--operator", "cap")
	ok("parameters", "clear", "federation-upstream", "up")
	ok("global-parameters", "clear", "cluster_name")
	for _, cmd := range []string{"policies", "parameters", "global-parameters"} {
		if out := ok(cmd, "list"); strings.Count(out, "\n") != 1 {
			t.Fatalf("%s list after clearing:\n%s", cmd, out)
		}
	}
	if r := runNow([]string{"policies", "--help"}, env); r.code != 0 || !strings.Contains(r.stdout, "warren policies set") {
		t.Fatalf("policies --help: %+v", r)
	}
}

func TestConfigConsumerTimeout(t *testing.T) {
	for _, c := range []struct {
		args []string
		env  map[string]string
		want time.Duration
	}{
		{want: 30 * time.Minute},
		{args: []string{"--consumer-timeout", "2000"}, want: 2 * time.Second},
		{env: map[string]string{"WARREN_CONSUMER_TIMEOUT": "none"}, want: -1},
	} {
		cfg, _, _, err := loadConfig(c.args, envOf(c.env))
		if err != nil || cfg.ConsumerTimeout != c.want {
			t.Fatalf("%v %v: %v %v, want %v", c.args, c.env, cfg.ConsumerTimeout, err, c.want)
		}
	}
	for _, bad := range []string{"0", "-5", "soon"} {
		if _, _, _, err := loadConfig([]string{"--consumer-timeout", bad}, envOf(nil)); err == nil {
			t.Fatalf("--consumer-timeout %s accepted", bad)
		}
	}
}
