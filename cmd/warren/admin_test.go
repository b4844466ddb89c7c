package main

import (
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/warren-mq/warren/internal/broker"
	"github.com/warren-mq/warren/internal/store"
)

func TestAdminSubcommands(t *testing.T) {
	dir := t.TempDir()
	ok := func(args ...string) string {
		t.Helper()
		r := runNow(append(args, "--data-dir", dir), nil)
		if r.code != 0 {
			t.Fatalf("warren %s: exit %d\n%s", strings.Join(args, " "), r.code, r.stderr)
		}
		return r.stdout
	}
	ok("users", "add", "app", "s3cret", "--tags", "monitoring")
	ok("vhosts", "add", "prod", "--description", "Production", "--default-queue-type", "classic")
	ok("permissions", "set", "app", "prod", "^app\\.", ".*", "")
	ok("topic-permissions", "set", "app", "prod", "amq.topic", "^{username}\\.", ".*")
	ok("limits", "vhost", "prod", `{"max-queues": 10}`)
	ok("limits", "user", "app", `{"max-channels": 5}`)
	ok("users", "add", "tmp", "x")
	ok("users", "delete", "tmp")
	if out := ok("users", "list"); !strings.Contains(out, "app    monitoring") || !strings.Contains(out, "guest  administrator") || strings.Contains(out, "tmp") {
		t.Fatalf("users list:\n%s", out)
	}
	if out := ok("permissions", "list"); !strings.Contains(out, `app    prod   ^app\.`) {
		t.Fatalf("permissions list:\n%s", out)
	}
	if out := ok("limits", "list"); !strings.Contains(out, `{"max-queues":10}`) || !strings.Contains(out, `{"max-channels":5}`) {
		t.Fatalf("limits list:\n%s", out)
	}

	for _, c := range []struct {
		args []string
		code int
		text string
	}{
		{[]string{"permissions", "set", "app", "prod", "(", ".*", ".*"}, 1, "invalid regular expression '('"},
		{[]string{"permissions", "set", "nobody", "prod", ".*", ".*", ".*"}, 1, "no user 'nobody'"},
		{[]string{"limits", "vhost", "prod", `{"max-channels": 1}`}, 1, "unknown limit 'max-channels'"},
		{[]string{"users", "add", "x"}, 2, "users add takes NAME PASSWORD"},
		{[]string{"users"}, 2, "missing action"},
		{[]string{"users", "add", "x", "y", "--bogus"}, 2, "unknown flag --bogus"},
	} {
		r := runNow(append(c.args, "--data-dir", dir), nil)
		if r.code != c.code || !strings.Contains(r.stderr, c.text) {
			t.Errorf("warren %s: exit %d %q, want %d and %q", strings.Join(c.args, " "), r.code, r.stderr, c.code, c.text)
		}
	}

	// What the subcommands did is what the broker starts with.
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := store.Open(dir, store.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	b, err := broker.New(broker.Config{Store: st, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Authenticate("app", "s3cret", false); err != nil {
		t.Fatalf("app: %v", err)
	}
	if v, _ := b.VHost("prod"); v == nil || v.Info().Description != "Production" {
		t.Fatal("vhost prod")
	}
	if b.Access("app", "prod").Check("queue", "app.q", broker.Configure) != nil {
		t.Fatal("permissions not set")
	}
	// While a broker holds the directory, the subcommands say to stop it.
	r := runNow([]string{"users", "list", "--data-dir", dir}, nil)
	if r.code != 1 || !strings.Contains(r.stderr, "holds") || !strings.Contains(r.stderr, "stopped broker") {
		t.Fatalf("on a live directory: exit %d %q", r.code, r.stderr)
	}
	b.Close()
}

// The default user, password and vhost come from the environment at the first start.
func TestAdminDefaultsFromEnvironment(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"WARREN_DEFAULT_USER": "admin", "WARREN_DEFAULT_PASS": "pw", "WARREN_DEFAULT_VHOST": "main", "WARREN_DATA_DIR": dir}
	r := runNow([]string{"users", "list"}, env)
	if r.code != 0 || !strings.Contains(r.stdout, "admin  administrator") || strings.Contains(r.stdout, "guest") {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := runNow([]string{"permissions", "list"}, env); !strings.Contains(r.stdout, "admin  main   .*") {
		t.Fatalf("permissions:\n%s", r.stdout)
	}
}
