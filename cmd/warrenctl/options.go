package main

import (
	"bufio"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// options are the global and per-command options. As in rabbitmqctl they may
// stand anywhere on the command line, before or after the command name.
type options struct {
	// Connection; the *Set fields record what the command line gave so the
	// environment and config file fill only the rest.
	host, user, password, vhost, cacert, cert, key, url, config string
	port                                                        int
	tls, insecure                                               bool
	set                                                         map[string]bool

	quiet, silent, noHeaders, help bool
	formatter                      string
	timeout                        time.Duration

	// Command options.
	priority                        int
	applyTo, description, tags, dqt string
	ifEmpty, ifUnused, global       bool
	limit                           int
	format                          string
	perConnectionDelay              time.Duration
}

// optSpec describes one option: its names, whether it takes a value, and how
// it is stored.
type optSpec struct {
	names []string
	value bool
	apply func(o *options, v string) error
}

func intOpt(dst func(o *options) *int, name string) func(*options, string) error {
	return func(o *options, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil {
			return usageErr("%s takes an integer, got %q", name, v)
		}
		*dst(o) = n
		return nil
	}
}

func secondsOpt(dst func(o *options) *time.Duration, name string, unit time.Duration) func(*options, string) error {
	return func(o *options, v string) error {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < 0 {
			return usageErr("%s takes a number, got %q", name, v)
		}
		*dst(o) = time.Duration(f * float64(unit))
		return nil
	}
}

func strOpt(key string, dst func(o *options) *string) func(*options, string) error {
	return func(o *options, v string) error {
		*dst(o) = v
		if key != "" {
			o.set[key] = true
		}
		return nil
	}
}

func boolOpt(key string, dst func(o *options) *bool) func(*options, string) error {
	return func(o *options, _ string) error {
		*dst(o) = true
		if key != "" {
			o.set[key] = true
		}
		return nil
	}
}

var optSpecs = []optSpec{
	{[]string{"--host", "-H"}, true, strOpt("host", func(o *options) *string { return &o.host })},
	{[]string{"--port", "-P"}, true, func(o *options, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 || n > 65535 {
			return usageErr("--port takes a port number, got %q", v)
		}
		o.port, o.set["port"] = n, true
		return nil
	}},
	{[]string{"--username", "--user"}, true, strOpt("user", func(o *options) *string { return &o.user })},
	{[]string{"--password"}, true, strOpt("password", func(o *options) *string { return &o.password })},
	{[]string{"--vhost", "-p"}, true, strOpt("vhost", func(o *options) *string { return &o.vhost })},
	{[]string{"--ssl", "--tls"}, false, boolOpt("tls", func(o *options) *bool { return &o.tls })},
	{[]string{"--cacert", "--ssl-ca-cert-file"}, true, strOpt("cacert", func(o *options) *string { return &o.cacert })},
	{[]string{"--cert", "--ssl-cert-file"}, true, strOpt("cert", func(o *options) *string { return &o.cert })},
	{[]string{"--key", "--ssl-key-file"}, true, strOpt("key", func(o *options) *string { return &o.key })},
	{[]string{"--insecure"}, false, boolOpt("insecure", func(o *options) *bool { return &o.insecure })},
	{[]string{"--url"}, true, strOpt("url", func(o *options) *string { return &o.url })},
	{[]string{"--config", "-c"}, true, strOpt("config", func(o *options) *string { return &o.config })},
	{[]string{"--quiet", "-q"}, false, boolOpt("", func(o *options) *bool { return &o.quiet })},
	{[]string{"--silent", "-s"}, false, boolOpt("", func(o *options) *bool { return &o.silent })},
	{[]string{"--no-table-headers"}, false, boolOpt("", func(o *options) *bool { return &o.noHeaders })},
	{[]string{"--help", "-?", "-h"}, false, boolOpt("", func(o *options) *bool { return &o.help })},
	{[]string{"--formatter"}, true, func(o *options, v string) error {
		switch v {
		case "json", "table", "tsv":
			o.formatter = v
			return nil
		}
		return usageErr("unsupported formatter %q (json, table)", v)
	}},
	{[]string{"--timeout", "-t"}, true, secondsOpt(func(o *options) *time.Duration { return &o.timeout }, "--timeout", time.Second)},
	{[]string{"--priority"}, true, intOpt(func(o *options) *int { return &o.priority }, "--priority")},
	{[]string{"--apply-to"}, true, func(o *options, v string) error {
		switch v {
		case "queues", "exchanges", "all", "classic_queues", "quorum_queues", "streams":
			o.applyTo = v
			return nil
		}
		return usageErr("--apply-to must be one of all, queues, exchanges, classic_queues, quorum_queues, streams")
	}},
	{[]string{"--description"}, true, strOpt("", func(o *options) *string { return &o.description })},
	{[]string{"--tags"}, true, strOpt("", func(o *options) *string { return &o.tags })},
	{[]string{"--default-queue-type"}, true, strOpt("", func(o *options) *string { return &o.dqt })},
	{[]string{"--if-empty", "-e"}, false, boolOpt("", func(o *options) *bool { return &o.ifEmpty })},
	{[]string{"--if-unused", "-u"}, false, boolOpt("", func(o *options) *bool { return &o.ifUnused })},
	{[]string{"--global"}, false, boolOpt("", func(o *options) *bool { return &o.global })},
	{[]string{"--limit"}, true, intOpt(func(o *options) *int { return &o.limit }, "--limit")},
	{[]string{"--per-connection-delay"}, true, secondsOpt(func(o *options) *time.Duration { return &o.perConnectionDelay }, "--per-connection-delay", time.Millisecond)},
	{[]string{"--format"}, true, func(o *options, v string) error {
		if v != "json" {
			return usageErr("--format: only json is supported")
		}
		o.format = v
		return nil
	}},
	// rabbitmqctl's node name: its host part is the API's host, so
	// "-n rabbit@broker1" reaches http://broker1:15672.
	{[]string{"--node", "-n"}, true, func(o *options, v string) error {
		_, host, ok := strings.Cut(v, "@")
		if !ok || host == "" {
			return usageErr("--node takes a node name such as rabbit@broker1, got %q", v)
		}
		if !o.set["host"] {
			o.host, o.set["host"] = host, true
		}
		return nil
	}},
	// Accepted for compatibility with rabbitmqctl scripts; nothing to do over HTTP.
	{[]string{"--online", "--offline", "--local", "--longnames", "-l"}, false, func(*options, string) error { return nil }},
}

// parseArgs splits args into options and positional arguments. Options may
// be anywhere; "--" ends them; "-" alone is positional (standard input or
// output for definitions).
func parseArgs(args []string) (*options, []string, error) {
	o := &options{set: map[string]bool{}}
	byName := map[string]*optSpec{}
	for i := range optSpecs {
		for _, n := range optSpecs[i].names {
			byName[n] = &optSpecs[i]
		}
	}
	var pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			pos = append(pos, a)
			continue
		}
		name, val, hasVal := strings.Cut(a, "=")
		spec := byName[name]
		if spec == nil {
			return nil, nil, usageErr("unrecognised option %s", name)
		}
		if spec.value && !hasVal {
			if i+1 >= len(args) {
				return nil, nil, usageErr("option %s needs a value", name)
			}
			i++
			val = args[i]
		} else if !spec.value && hasVal {
			return nil, nil, usageErr("option %s takes no value", name)
		}
		if err := spec.apply(o, val); err != nil {
			return nil, nil, err
		}
	}
	return o, pos, nil
}

// resolveConnection fills the connection settings the command line left out
// from WARRENCTL_* variables, then from the config file, then defaults
// (http://guest:guest@localhost:15672/, vhost /).
func resolveConnection(o *options, getenv func(string) string) error {
	fill := func(key, v string) error {
		if o.set[key] || v == "" {
			return nil
		}
		o.set[key] = true
		switch key {
		case "host":
			o.host = v
		case "port":
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 || n > 65535 {
				return usageErr("port must be a port number, got %q", v)
			}
			o.port = n
		case "user":
			o.user = v
		case "password":
			o.password = v
		case "vhost":
			o.vhost = v
		case "tls", "insecure":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return usageErr("%s must be true or false, got %q", key, v)
			}
			if key == "tls" {
				o.tls = b
			} else {
				o.insecure = b
			}
		case "cacert":
			o.cacert = v
		case "cert":
			o.cert = v
		case "key":
			o.key = v
		case "url":
			o.url = v
		default:
			return usageErr("unknown setting %q", key)
		}
		return nil
	}
	envKeys := []struct{ env, key string }{
		{"WARRENCTL_URL", "url"}, {"WARRENCTL_HOST", "host"}, {"WARRENCTL_PORT", "port"},
		{"WARRENCTL_USER", "user"}, {"WARRENCTL_USERNAME", "user"}, {"WARRENCTL_PASSWORD", "password"},
		{"WARRENCTL_VHOST", "vhost"}, {"WARRENCTL_SSL", "tls"}, {"WARRENCTL_TLS", "tls"},
		{"WARRENCTL_CACERT", "cacert"}, {"WARRENCTL_CERT", "cert"}, {"WARRENCTL_KEY", "key"},
		{"WARRENCTL_INSECURE", "insecure"},
	}
	for _, k := range envKeys {
		if err := fill(k.key, getenv(k.env)); err != nil {
			return fmt.Errorf("%s: %w", k.env, err)
		}
	}
	path, explicit := o.config, o.config != ""
	if !explicit {
		path = getenv("WARRENCTL_CONFIG")
		explicit = path != ""
	}
	if !explicit {
		if home := getenv("HOME"); home != "" {
			path = filepath.Join(home, ".warrenctl.conf")
		}
	}
	if path != "" {
		if err := readConfig(path, explicit, fill); err != nil {
			return err
		}
	}
	if o.url != "" {
		if err := applyURL(o); err != nil {
			return err
		}
	}
	def := func(key string, set func()) {
		if !o.set[key] {
			set()
		}
	}
	def("host", func() { o.host = "localhost" })
	def("port", func() { o.port = 15672 })
	def("user", func() { o.user = "guest" })
	def("password", func() { o.password = "guest" })
	def("vhost", func() { o.vhost = "/" })
	return nil
}

// applyURL takes scheme, host, port and credentials from a base URL such as
// http://guest:guest@127.0.0.1:15672 for whatever no flag, variable or config
// line set on its own: --url with --password wrong tries the wrong password.
func applyURL(o *options) error {
	u, err := url.Parse(o.url)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return usageErr("url must look like http://user:pass@host:15672, got %q", o.url)
	}
	if !o.set["tls"] {
		o.tls, o.set["tls"] = u.Scheme == "https", true
	}
	if !o.set["host"] {
		o.host, o.set["host"] = u.Hostname(), true
	}
	if !o.set["port"] {
		n, _ := strconv.Atoi(u.Port())
		if n == 0 {
			n = map[bool]int{false: 80, true: 443}[u.Scheme == "https"]
		}
		o.port, o.set["port"] = n, true
	}
	if u.User != nil && !o.set["user"] {
		o.user, o.set["user"] = u.User.Username(), true
	}
	if pw, ok := u.User.Password(); ok && !o.set["password"] {
		o.password, o.set["password"] = pw, true
	}
	return nil
}

// readConfig reads "key = value" lines ('#' starts a comment). A missing
// default file is fine; a missing file named with --config is not.
func readConfig(path string, explicit bool, fill func(key, v string) error) error {
	f, err := os.Open(path)
	if err != nil {
		if !explicit && os.IsNotExist(err) {
			return nil
		}
		return &cliError{code: exitUsage, msg: fmt.Sprintf("cannot read config file: %v", err)}
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		s := strings.TrimSpace(sc.Text())
		if s == "" || s[0] == '#' || s[0] == ';' || s[0] == '[' {
			continue
		}
		k, v, ok := strings.Cut(s, "=")
		if !ok {
			return usageErr("%s:%d: want key = value", path, line)
		}
		k = strings.ReplaceAll(strings.TrimSpace(k), "-", "_")
		switch k {
		case "username":
			k = "user"
		case "ssl":
			k = "tls"
		}
		if err := fill(k, strings.TrimSpace(v)); err != nil {
			return fmt.Errorf("%s:%d: %w", path, line, err)
		}
	}
	return sc.Err()
}
