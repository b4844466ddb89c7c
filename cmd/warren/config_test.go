package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// envOf returns a getenv over m.
func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "warren.conf")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestConfigPrecedenceFlagEnvFileDefault(t *testing.T) {
	file := writeConfig(t, `
# every layer sets amqp-addr; file and env set data-dir; only the file sets log-level
amqp-addr = 127.0.0.1:1001
data-dir  = /from/file
log-level = warn
sync-interval = 1s  # a comment after the value
`)
	env := map[string]string{
		"WARREN_AMQP_ADDR": "127.0.0.1:1002",
		"WARREN_DATA_DIR":  "/from/env",
		"WARREN_CONFIG":    file,
	}
	cfg, _, from, err := loadConfig([]string{"--amqp-addr", "127.0.0.1:1003"}, envOf(env))
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		key, got, want, from string
	}{
		{"amqp-addr", cfg.AMQPAddr, "127.0.0.1:1003", "flag"},
		{"data-dir", cfg.DataDir, "/from/env", "env WARREN_DATA_DIR"},
		{"log-level", cfg.LogLevel.String(), "WARN", "file " + file + ":5"},
		{"sync-interval", cfg.SyncInterval.String(), "1s", "file " + file + ":6"},
		{"sync", cfg.Sync, "always", "default"},
		{"config", cfg.ConfigFile, "", "env WARREN_CONFIG"},
	}
	for _, c := range checks {
		if c.got != c.want || from[c.key].String() != c.from {
			t.Errorf("%s = %q from %q, want %q from %q", c.key, c.got, from[c.key], c.want, c.from)
		}
	}
	// --config on the command line beats WARREN_CONFIG.
	other := writeConfig(t, "data-dir = /other\n")
	cfg, _, _, err = loadConfig([]string{"--config=" + other}, envOf(map[string]string{"WARREN_CONFIG": file}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DataDir != "/other" || cfg.AMQPAddr != ":5672" {
		t.Errorf("--config: data-dir %q, amqp-addr %q; want /other and the default", cfg.DataDir, cfg.AMQPAddr)
	}
}

func TestConfigEnvVariables(t *testing.T) {
	env := map[string]string{
		"WARREN_SYNC":                     "interval",
		"WARREN_SYNC_INTERVAL":            "250ms",
		"WARREN_DISK_FREE_LIMIT":          "1GiB",
		"WARREN_TLS_FAIL_IF_NO_PEER_CERT": "true",
		"WARREN_TLS_VERIFY":               "verify_peer",
		"WARREN_TLS_CERT":                 "c.pem",
		"WARREN_TLS_KEY":                  "k.pem",
		"WARREN_TLS_CA":                   "ca.pem",
		"WARREN_AMQP_ADDR":                "", // empty counts as unset
	}
	cfg, _, from, err := loadConfig(nil, envOf(env))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Sync != "interval" || cfg.SyncInterval != 250*time.Millisecond || cfg.DiskFreeLimit != 1<<30 ||
		!cfg.TLSFailIfNoPeerCert || cfg.TLSVerify != "verify_peer" || cfg.AMQPAddr != ":5672" {
		t.Errorf("config from environment: %+v", cfg)
	}
	if from["amqp-addr"].kind != "default" {
		t.Errorf("empty WARREN_AMQP_ADDR counted as set: %v", from["amqp-addr"])
	}
	_, _, _, err = loadConfig(nil, envOf(map[string]string{"WARREN_SYNC": "sometimes"}))
	if err == nil || !strings.Contains(err.Error(), "WARREN_SYNC") || !strings.Contains(err.Error(), "sometimes") {
		t.Errorf("bad WARREN_SYNC: %v", err)
	}
}

func TestConfigFileErrorsNameFileAndLine(t *testing.T) {
	cases := []struct {
		name, text, want string
	}{
		{"unknown key", "amqp-addr = :1\nlisten = :2\n", `:2: unknown key "listen"`},
		{"bad value", "# c\n\nsync = sometimes\n", ":3: bad value for sync"},
		{"bad duration", "sync-interval = fast\n", ":1: bad value for sync-interval"},
		{"bad size", "disk-free-limit = lots\n", ":1: bad value for disk-free-limit"},
		{"bad bool", "tls-fail-if-no-peer-cert = maybe\n", ":1: bad value for tls-fail-if-no-peer-cert"},
		{"no equals", "amqp-addr :5672\n", ":1: want key = value"},
		{"no key", " = x\n", ":1: missing key"},
		{"twice", "data-dir = a\ndata-dir = b\n", ":2: data-dir set again (first set at "},
		{"bad quote", `data-dir = "unterminated` + "\n", ":1: bad quoted value"},
		{"after quote", `data-dir = "a" b` + "\n", `:1: unexpected "b" after quoted value`},
		{"config in file", "config = other.conf\n", `:1: unknown key "config"`},
		{"dashes", "--data-dir = x\n", `:1: unknown key "--data-dir"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := writeConfig(t, c.text)
			_, _, _, err := loadConfig([]string{"--config", path}, envOf(nil))
			if err == nil || !strings.Contains(err.Error(), path+c.want) {
				t.Fatalf("got %v, want an error containing %q", err, path+c.want)
			}
		})
	}
	// A line that a flag overrides is still checked.
	path := writeConfig(t, "sync = sometimes\n")
	if _, _, _, err := loadConfig([]string{"--config", path, "--sync", "never"}, envOf(nil)); err == nil {
		t.Error("bad file value hidden by a flag was not reported")
	}
	if _, _, _, err := loadConfig([]string{"--config", filepath.Join(t.TempDir(), "missing.conf")}, envOf(nil)); err == nil ||
		!strings.Contains(err.Error(), "missing.conf") {
		t.Errorf("missing config file: %v", err)
	}
}

func TestConfigFileQuotingAndComments(t *testing.T) {
	path := writeConfig(t, "  # indented comment\n"+
		"data-dir = \"/with space/#hash\" # comment\n"+
		"amqp-addr=127.0.0.1:5\t# tab before the comment\n"+
		"tls-verify = verify_none\n")
	cfg, _, _, err := loadConfig([]string{"--config", path}, envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DataDir != "/with space/#hash" || cfg.AMQPAddr != "127.0.0.1:5" {
		t.Errorf("data-dir %q, amqp-addr %q", cfg.DataDir, cfg.AMQPAddr)
	}
}

func TestConfigTLSCombinationsChecked(t *testing.T) {
	for _, args := range [][]string{
		{"--tls-cert", "c.pem"},
		{"--tls-ca", "ca.pem"},
		{"--tls-cert", "c.pem", "--tls-key", "k.pem", "--tls-verify", "verify_peer"},
		{"--tls-cert", "c.pem", "--tls-key", "k.pem", "--tls-ca", "ca.pem", "--tls-fail-if-no-peer-cert"},
		{"--amqps-addr", ":5671"},
	} {
		if _, _, _, err := loadConfig(args, envOf(nil)); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}

func TestConfigRegistrySecretsNotPrinted(t *testing.T) {
	r := newRegistry()
	var pass string
	r.Secret(&pass, "test-pass", "PASS", "a password")
	if _, err := r.load([]string{"--test-pass", "hunter2"}, envOf(nil)); err != nil {
		t.Fatal(err)
	}
	var out lockedBuffer
	logEffective(newTestLogger(&out), r, map[string]origin{"test-pass": {kind: "flag"}})
	if strings.Contains(out.String(), "hunter2") || !strings.Contains(out.String(), "key=test-pass") {
		t.Errorf("effective configuration: %s", out.String())
	}
}
