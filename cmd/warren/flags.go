package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The flag registry: every setting is declared once (name, default, help) and
// can then be given as a flag, as an environment variable named after it
// (--amqp-addr: WARREN_AMQP_ADDR) or as a key of the --config file, with
// precedence flag > environment > file > default. A setting's value is parsed
// (and so checked) by its flag.Value whichever way it arrives, so a bad value
// in the file is reported with its line.

// setting is one registered flag.
type setting struct {
	name, def, usage string
	section          string
	arg              string // placeholder in --help ("ADDR"); "" for booleans
	value            flag.Value
	secret           bool // never printed (passwords, passphrases)
	cliOnly          bool // --config, --help, --version: no environment variable, not in the file
	stops            bool // --help, --version: given on the command line, nothing else is read
}

// envName is the environment variable a setting can be given in.
func (s *setting) envName() string {
	return "WARREN_" + strings.ToUpper(strings.ReplaceAll(s.name, "-", "_"))
}

// registry holds the settings in registration order (the order of --help).
type registry struct {
	settings []*setting
	byName   map[string]*setting
	section  string
}

func newRegistry() *registry { return &registry{byName: map[string]*setting{}} }

// Section starts a group of settings in --help.
func (r *registry) Section(title string) { r.section = title }

// add registers v under name and sets it to def; a default that does not
// parse is a programming error.
func (r *registry) add(name, def, arg, usage string, v flag.Value) *setting {
	if _, dup := r.byName[name]; dup {
		panic("warren: flag --" + name + " registered twice")
	}
	if err := v.Set(def); err != nil {
		panic(fmt.Sprintf("warren: default of --%s: %v", name, err))
	}
	s := &setting{name: name, def: def, arg: arg, usage: usage, value: v, section: r.section}
	r.settings = append(r.settings, s)
	r.byName[name] = s
	return s
}

// Value registers a setting parsed by parse; def is its default as it would be written.
func Value[T any](r *registry, p *T, name, def, arg, usage string, parse func(string) (T, error)) *setting {
	return r.add(name, def, arg, usage, &parsedValue[T]{p: p, parse: parse})
}

// String registers a string setting.
func (r *registry) String(p *string, name, def, arg, usage string) *setting {
	return Value(r, p, name, def, arg, usage, func(s string) (string, error) { return s, nil })
}

// Secret registers a string setting whose value is never printed.
func (r *registry) Secret(p *string, name, arg, usage string) *setting {
	s := r.String(p, name, "", arg, usage)
	s.secret = true
	return s
}

// Int registers an integer setting.
func (r *registry) Int(p *int, name string, def int, usage string) *setting {
	return Value(r, p, name, strconv.Itoa(def), "N", usage, func(s string) (int, error) {
		n, err := strconv.ParseInt(strings.TrimSpace(s), 0, 0)
		if err != nil {
			return 0, fmt.Errorf("want an integer, got %q", s)
		}
		return int(n), nil
	})
}

// Duration registers a duration setting ("100ms", "10s", "1m30s").
func (r *registry) Duration(p *time.Duration, name string, def time.Duration, usage string) *setting {
	return Value(r, p, name, def.String(), "DURATION", usage, func(s string) (time.Duration, error) {
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil || d < 0 {
			return 0, fmt.Errorf("want a duration like 500ms, 10s or 1m, got %q", s)
		}
		return d, nil
	})
}

// Bool registers a boolean setting: --name alone means true.
func (r *registry) Bool(p *bool, name string, def bool, usage string) *setting {
	return r.add(name, strconv.FormatBool(def), "", usage, &boolValue{p: p})
}

// Enum registers a string setting that must be one of choices.
func (r *registry) Enum(p *string, name, def string, choices []string, usage string) *setting {
	return Value(r, p, name, def, strings.Join(choices, "|"), usage, func(s string) (string, error) {
		if !slices.Contains(choices, s) {
			return "", fmt.Errorf("want %s, got %q", strings.Join(choices, ", "), s)
		}
		return s, nil
	})
}

// parsedValue is a flag.Value that keeps the text it was set from, for printing.
type parsedValue[T any] struct {
	p     *T
	parse func(string) (T, error)
	text  string
}

func (v *parsedValue[T]) Set(s string) error {
	x, err := v.parse(s)
	if err != nil {
		return err
	}
	*v.p, v.text = x, s
	return nil
}

func (v *parsedValue[T]) String() string { return v.text }

type boolValue struct{ p *bool }

func (v *boolValue) Set(s string) error {
	b, err := strconv.ParseBool(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("want true or false, got %q", s)
	}
	*v.p = b
	return nil
}

func (v *boolValue) String() string {
	if v.p == nil {
		return "false"
	}
	return strconv.FormatBool(*v.p)
}

func (v *boolValue) IsBoolFlag() bool { return true }

// origin says where a setting's effective value came from.
type origin struct {
	kind string // "default", "flag", "env", "file"
	at   string // the variable name, or FILE:LINE
}

func (o origin) String() string {
	if o.at == "" {
		return o.kind
	}
	return o.kind + " " + o.at
}

// usageError is a mistake on the command line: exit status 2, as flag does.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }

// load fills the registered settings from args, the environment (getenv) and
// the config file named by --config or WARREN_CONFIG, in that precedence, and
// returns where each value came from.
func (r *registry) load(args []string, getenv func(string) string) (map[string]origin, error) {
	fs := flag.NewFlagSet("warren", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	for _, s := range r.settings {
		fs.Var(s.value, s.name, s.usage)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) { // -help, -h when not registered
			return nil, err
		}
		return nil, usageError{err}
	}
	if fs.NArg() > 0 {
		return nil, usageError{fmt.Errorf("unexpected argument %q (settings are flags: --name value)", fs.Arg(0))}
	}
	from := map[string]origin{}
	stop := false
	fs.Visit(func(f *flag.Flag) {
		from[f.Name] = origin{kind: "flag"}
		stop = stop || r.byName[f.Name].stops
	})
	if stop { // --help works whatever the environment or the config file holds
		return from, nil
	}

	var file map[string]fileEntry
	if cs := r.byName["config"]; cs != nil {
		path := cs.value.String()
		if _, ok := from["config"]; !ok {
			if env := getenv(cs.envName()); env != "" {
				path = env
				from["config"] = origin{"env", cs.envName()}
			}
		}
		if path != "" {
			var err error
			if file, err = r.readFile(path); err != nil {
				return nil, err
			}
		}
	}
	for _, s := range r.settings {
		if _, ok := from[s.name]; ok {
			continue
		}
		if s.cliOnly {
			from[s.name] = origin{kind: "default"}
			continue
		}
		if env := getenv(s.envName()); env != "" {
			if err := s.value.Set(env); err != nil {
				return nil, fmt.Errorf("environment variable %s=%q: %v", s.envName(), env, err)
			}
			from[s.name] = origin{"env", s.envName()}
			continue
		}
		if e, ok := file[s.name]; ok {
			if err := s.value.Set(e.value); err != nil {
				return nil, fmt.Errorf("%s: bad value for %s: %v", e.at, s.name, err)
			}
			from[s.name] = origin{"file", e.at}
			continue
		}
		from[s.name] = origin{kind: "default"}
	}
	return from, nil
}

// fileEntry is one key = value line of a config file.
type fileEntry struct {
	value string
	at    string // FILE:LINE
}

// readFile parses a config file (format in --help) without applying it, so
// that every line is checked even where a flag or variable overrides it.
func (r *registry) readFile(path string) (map[string]fileEntry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	defer f.Close()
	entries := map[string]fileEntry{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		at := fmt.Sprintf("%s:%d", path, n)
		key, value, ok, err := parseConfigLine(sc.Text())
		if err != nil {
			return nil, fmt.Errorf("%s: %v", at, err)
		}
		if !ok {
			continue
		}
		s := r.byName[key]
		if s == nil || s.cliOnly {
			return nil, fmt.Errorf("%s: unknown key %q (keys are the flag names without dashes in front, see warren --help)", at, key)
		}
		if prev, dup := entries[key]; dup {
			return nil, fmt.Errorf("%s: %s set again (first set at %s)", at, key, prev.at)
		}
		// Check the value now even if a flag or variable wins, so a broken file
		// is found the day it is written, not the day the override goes away.
		if err := checkValue(s, value); err != nil {
			return nil, fmt.Errorf("%s: bad value for %s: %v", at, key, err)
		}
		entries[key] = fileEntry{value: value, at: at}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	return entries, nil
}

// checkValue parses text as s's value without changing s: it sets and then
// restores the value's previous text.
func checkValue(s *setting, text string) error {
	prev := s.value.String()
	if err := s.value.Set(text); err != nil {
		return err
	}
	return s.value.Set(prev)
}

// parseConfigLine reads "key = value", "# comment" or a blank line. A value
// may be double-quoted (Go syntax) to keep spaces or a '#'; an unquoted value
// ends at " #" (a comment after it).
func parseConfigLine(line string) (key, value string, ok bool, err error) {
	line = strings.TrimSpace(line)
	if line == "" || strings.HasPrefix(line, "#") {
		return "", "", false, nil
	}
	key, value, found := strings.Cut(line, "=")
	if !found {
		return "", "", false, fmt.Errorf("want key = value, got %q", line)
	}
	key, value = strings.TrimSpace(key), strings.TrimSpace(value)
	if key == "" {
		return "", "", false, fmt.Errorf("missing key before '='")
	}
	if strings.HasPrefix(value, `"`) {
		q, err := strconv.QuotedPrefix(value)
		if err != nil {
			return "", "", false, fmt.Errorf("bad quoted value %s", value)
		}
		rest := strings.TrimSpace(value[len(q):])
		if rest != "" && !strings.HasPrefix(rest, "#") {
			return "", "", false, fmt.Errorf("unexpected %q after quoted value", rest)
		}
		value, _ = strconv.Unquote(q)
		return key, value, true, nil
	}
	if i := strings.Index(value, " #"); i >= 0 {
		value = strings.TrimSpace(value[:i])
	} else if i := strings.Index(value, "\t#"); i >= 0 {
		value = strings.TrimSpace(value[:i])
	}
	return key, value, true, nil
}
