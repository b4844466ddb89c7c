package main

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/warren-mq/warren/internal/amqpserver"
	"github.com/warren-mq/warren/internal/broker"
	"github.com/warren-mq/warren/internal/store"
)

// config is everything the command line, the environment and the config file
// can set. It is filled once by load and then passed to what it configures.
type config struct {
	ConfigFile string
	Help       bool
	Version    bool

	AMQPAddr string
	MgmtAddr string
	// MgmtTLSAddr serves the management API over TLS with --tls-cert.
	MgmtTLSAddr string
	DataDir     string
	LogLevel    slog.Level

	PrometheusAddr string
	LogFormat      string

	MemoryLimit   int64
	DiskFreeLimit int64
	Sync          string
	SyncInterval  time.Duration
	SegmentSize   int64

	Conns           *connFlags    // --max-connections, --handshake-timeout (rlimit.go)
	ConsumerTimeout time.Duration // negative: none (policies.go)

	DefaultUser   string
	DefaultPass   string
	DefaultVHost  string
	LoopbackUsers []string

	LoadDefinitions string

	AMQPSAddr           string
	TLSCert             string
	TLSKey              string
	TLSCA               string
	TLSVerify           string
	TLSFailIfNoPeerCert bool
	TLSCertLoginFrom    string
	TLSCertLoginSANType string

	Kafka kafkaFlags // kafka.go
}

// register declares every setting. Adding one is one line here (and a field
// above); its environment variable, config file key and --help entry follow.
func (c *config) register(r *registry) {
	r.Section("General")
	r.String(&c.ConfigFile, "config", "", "FILE", "read settings from FILE (format below)").cliOnly = true
	for _, s := range []*setting{
		r.Bool(&c.Help, "help", false, "print this help and exit"),
		r.Bool(&c.Help, "h", false, "same as --help"),
		r.Bool(&c.Version, "version", false, "print the version and exit"),
	} {
		s.cliOnly, s.stops = true, true
	}
	Value(r, &c.LogLevel, "log-level", "info", "debug|info|warn|error", "log level; debug also prints the effective configuration at start-up", parseLevel)
	r.Enum(&c.LogFormat, "log-format", "text", []string{"text", "json"}, "log line format: text (key=value pairs) or json (one JSON object per line, for log collectors)")

	r.Section("Listeners")
	r.String(&c.AMQPAddr, "amqp-addr", ":5672", "ADDR", "AMQP listen address (host:port)")
	c.Conns = addConnFlags(r)
	r.String(&c.MgmtAddr, "mgmt-addr", defaultMgmtAddr, "ADDR", "management HTTP API listen address (RabbitMQ's /api on port 15672); \"\" disables it")
	Value(r, &c.ConsumerTimeout, "consumer-timeout", "1800000", "MS|none", "close a channel whose delivery stays unacknowledged this many milliseconds (RabbitMQ's consumer_timeout); queues override it with x-consumer-timeout or a consumer-timeout policy", parseConsumerTimeout)
	r.String(&c.PrometheusAddr, "prometheus-addr", defaultPrometheusAddr, "ADDR", "Prometheus metrics listen address (RabbitMQ's /metrics on port 15692); \"\" disables it")
	c.Kafka.register(r)

	r.Section("Storage and resource limits")
	r.String(&c.DataDir, "data-dir", "./data", "DIR", "data directory (created if missing; see DATA DIRECTORY below)")
	Value(r, &c.MemoryLimit, "memory-limit", "", "SIZE|PCT%", "bytes of messages held before publishers are blocked, e.g. 2GiB or 40% of RAM (default 40% of RAM)", parseMemoryLimit)
	Value(r, &c.DiskFreeLimit, "disk-free-limit", "50MB", "SIZE", "free disk space on the data directory's file system below which publishers are blocked", parseSize)
	r.Enum(&c.Sync, "sync", "always", []string{"always", "interval", "never"}, "when persistent messages reach the disk: always (a confirm means fdatasync'ed, group commit), interval (fdatasync every --sync-interval: faster, a machine crash loses up to one interval), never (tests only)")
	r.Duration(&c.SyncInterval, "sync-interval", 100*time.Millisecond, "fdatasync period with --sync interval")
	Value(r, &c.SegmentSize, "segment-size", "64MiB", "SIZE", "size at which a message segment file is sealed and the next one started, 1MiB to 1GiB: disk space is reclaimed a segment at a time", parseSegmentSize)

	r.Section("Users (see also the users, vhosts and permissions subcommands)")
	r.String(&c.DefaultUser, "default-user", "guest", "NAME", "user created at the first start (empty data directory), tagged administrator, with all permissions on --default-vhost")
	r.Secret(&c.DefaultPass, "default-pass", "PASS", "password of --default-user (default guest)")
	r.String(&c.DefaultVHost, "default-vhost", "/", "VHOST", "vhost created at the first start")
	Value(r, &c.LoopbackUsers, "loopback-users", "guest", "NAMES", "comma-separated users who may connect only from a loopback address (RabbitMQ's loopback_users); none lets every user connect from anywhere", parseUserList)

	r.String(&c.LoadDefinitions, "load-definitions", "", "FILE", "import a definitions file (RabbitMQ's JSON format: users, vhosts, permissions, policies, exchanges, queues, bindings...) at every start before accepting connections; importing it again changes nothing (RabbitMQ's load_definitions). See also the definitions subcommand")

	r.Section("TLS (AMQPS; enabled when --tls-cert is set)")
	r.String(&c.MgmtTLSAddr, "mgmt-tls-addr", "", "ADDR", "management HTTP API over TLS (RabbitMQ's management.ssl, port 15671) with --tls-cert and --tls-key; off by default")
	r.String(&c.AMQPSAddr, "amqps-addr", ":5671", "ADDR", "AMQPS listen address (host:port); needs --tls-cert and --tls-key")
	r.String(&c.TLSCert, "tls-cert", "", "FILE", "PEM server certificate chain (RabbitMQ's ssl_options.certfile)")
	r.String(&c.TLSKey, "tls-key", "", "FILE", "PEM private key of --tls-cert, unencrypted (ssl_options.keyfile)")
	r.String(&c.TLSCA, "tls-ca", "", "FILE", "PEM CA bundle that client certificates are verified against (ssl_options.cacertfile)")
	r.Enum(&c.TLSVerify, "tls-verify", "verify_none", []string{"verify_none", "verify_peer"}, "verify_peer asks clients for a certificate and checks it against --tls-ca, and offers SASL EXTERNAL (ssl_options.verify)")
	r.Bool(&c.TLSFailIfNoPeerCert, "tls-fail-if-no-peer-cert", false, "with verify_peer, refuse clients that send no certificate (ssl_options.fail_if_no_peer_cert)")
	r.Enum(&c.TLSCertLoginFrom, "tls-cert-login-from", "common_name", []string{"common_name", "subject_alternative_name"}, "which part of a client certificate is the user name for SASL EXTERNAL (RabbitMQ's ssl_cert_login_from)")
	r.Enum(&c.TLSCertLoginSANType, "tls-cert-login-san-type", "dns", []string{"dns", "email", "uri", "ip"}, "with subject_alternative_name: the first SAN of this type is the user name (ssl_cert_login_san_type)")
}

// parseUserList reads "a,b"; "none" (as in rabbitmq.conf) or "" is no user.
func parseUserList(s string) ([]string, error) {
	out := []string{}
	if strings.TrimSpace(s) == "none" {
		return out, nil
	}
	for _, u := range strings.Split(s, ",") {
		if u = strings.TrimSpace(u); u != "" {
			out = append(out, u)
		}
	}
	return out, nil
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("want debug, info, warn or error, got %q", s)
	}
	return l, nil
}

// check refuses combinations that no single setting can: they are errors of
// the configuration as a whole.
func (c *config) check() error {
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return fmt.Errorf("--tls-cert and --tls-key go together: set both or neither")
	}
	if c.TLSCert == "" && (c.TLSCA != "" || c.TLSVerify != "verify_none" || c.TLSFailIfNoPeerCert) {
		return fmt.Errorf("--tls-ca, --tls-verify and --tls-fail-if-no-peer-cert need --tls-cert and --tls-key")
	}
	if c.MgmtTLSAddr != "" && c.TLSCert == "" {
		return fmt.Errorf("--mgmt-tls-addr needs --tls-cert and --tls-key")
	}
	if c.TLSVerify == "verify_peer" && c.TLSCA == "" {
		return fmt.Errorf("--tls-verify verify_peer needs --tls-ca (the CA bundle client certificates are checked against)")
	}
	if c.TLSFailIfNoPeerCert && c.TLSVerify != "verify_peer" {
		return fmt.Errorf("--tls-fail-if-no-peer-cert needs --tls-verify verify_peer")
	}
	if c.Kafka.TLSAddr != "" && c.TLSCert == "" {
		return fmt.Errorf("--kafka-tls-addr needs --tls-cert and --tls-key")
	}
	if c.Kafka.NumPartitions < 1 {
		return fmt.Errorf("--kafka-num-partitions must be at least 1")
	}
	return nil
}

// loadConfig reads the configuration from args, getenv and the config file.
func loadConfig(args []string, getenv func(string) string) (*config, *registry, map[string]origin, error) {
	c := &config{}
	r := newRegistry()
	c.register(r)
	from, err := r.load(args, getenv)
	if err != nil {
		return nil, r, nil, err
	}
	if c.Help || c.Version {
		return c, r, from, nil
	}
	if err := c.check(); err != nil {
		return nil, r, nil, err
	}
	if from["amqps-addr"].kind != "default" && c.TLSCert == "" {
		// Asking for an AMQPS address without a certificate would silently
		// leave the broker without TLS.
		return nil, r, nil, fmt.Errorf("--amqps-addr needs --tls-cert and --tls-key")
	}
	return c, r, from, nil
}

// logEffective prints each setting once, with where its value came from.
func logEffective(log *slog.Logger, r *registry, from map[string]origin) {
	for _, s := range r.settings {
		if s.cliOnly && s.name != "config" {
			continue
		}
		v := s.value.String()
		if s.secret && v != "" {
			v = "(secret, not shown)"
		}
		log.Debug("config", "key", s.name, "value", v, "from", from[s.name].String())
	}
}

// tlsConfig is the AMQPS listener's part of the configuration.
func (c *config) tlsConfig() amqpserver.TLSConfig {
	return amqpserver.TLSConfig{
		CertFile:         c.TLSCert,
		KeyFile:          c.TLSKey,
		CAFile:           c.TLSCA,
		VerifyPeer:       c.TLSVerify == "verify_peer",
		FailIfNoPeerCert: c.TLSFailIfNoPeerCert,
		LoginFrom:        c.TLSCertLoginFrom,
		LoginSANType:     c.TLSCertLoginSANType,
	}
}

// brokerConfig is the broker's part of the configuration.
func (c *config) brokerConfig(st store.Store, log *slog.Logger) broker.Config {
	return broker.Config{
		Store: st, MemoryLimit: c.MemoryLimit, ProcessMemory: true, DiskFreeLimit: c.DiskFreeLimit, Logger: log,
		DefaultUser: c.DefaultUser, DefaultPass: c.DefaultPass, DefaultVHost: c.DefaultVHost,
		LoopbackUsers: c.LoopbackUsers, StreamDir: filepath.Join(c.DataDir, "streams"),
	}
}
