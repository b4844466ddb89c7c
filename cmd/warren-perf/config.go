package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// minBodySize is the smallest body warren-perf sends: a 4-byte sequence number
// and an 8-byte send timestamp in nanoseconds, which consumers turn into latency.
const minBodySize = 12

// config is one run's settings, filled from the command line.
type config struct {
	uri          string
	producers    int
	consumers    int
	queue        string
	queues       int // 0: one queue named queue; N: queue-1 .. queue-N
	bodySize     int
	persistent   bool
	mandatory    bool
	confirm      int // outstanding unconfirmed publishes per producer; 0 = no confirms
	prefetch     int
	multiAck     int
	autoAck      bool
	rate         float64 // per producer, msg/s; 0 = unlimited
	seconds      float64 // run time; 0 = until counts are reached or interrupted
	pmessages    int64   // per producer; 0 = unlimited
	cmessages    int64   // per consumer; 0 = unlimited
	exchange     string
	exchangeType string
	json         bool
	predeclared  bool
	autoDelete   bool
	cleanup      bool

	idleConns    int
	idleChannels int

	awaitMessages int64

	cpuProfile string

	events *events // where connections report connection.blocked

	// onBody, set only by tests, sees every counted delivery's body; it runs
	// on a consumer's reader goroutine.
	onBody func(consumer int, body []byte)
}

// flagList collects -f values given repeatedly or as a comma list.
type flagList []string

func (f *flagList) String() string { return strings.Join(*f, ",") }

func (f *flagList) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*f = append(*f, s)
		}
	}
	return nil
}

// errUsage marks a command line error; main exits with status 2 for it.
var errUsage = errors.New("usage")

// parseFlags reads the command line. Flags mirror RabbitMQ PerfTest's, so a
// PerfTest invocation mostly works unchanged; each has a short and a long
// name, and either may be written with one dash or two.
func parseFlags(args []string, stderr io.Writer) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("warren-perf", flag.ContinueOnError)
	fs.SetOutput(stderr)
	str := func(p *string, short, long, def, usage string) {
		if short != "" {
			fs.StringVar(p, short, def, usage)
		}
		fs.StringVar(p, long, def, usage)
	}
	num := func(p *int, short, long string, def int, usage string) {
		if short != "" {
			fs.IntVar(p, short, def, usage)
		}
		fs.IntVar(p, long, def, usage)
	}
	num64 := func(p *int64, short, long string, usage string) {
		if short != "" {
			fs.Int64Var(p, short, 0, usage)
		}
		fs.Int64Var(p, long, 0, usage)
	}
	boolean := func(p *bool, short, long string, def bool, usage string) {
		if short != "" {
			fs.BoolVar(p, short, def, usage)
		}
		fs.BoolVar(p, long, def, usage)
	}
	float := func(p *float64, short, long, usage string) {
		fs.Float64Var(p, short, 0, usage)
		fs.Float64Var(p, long, 0, usage)
	}
	var flags flagList
	str(&c.uri, "h", "uri", "amqp://guest:guest@localhost:5672/", "AMQP URI of the broker")
	num(&c.producers, "x", "producers", 1, "number of producers (one connection each)")
	num(&c.consumers, "y", "consumers", 1, "number of consumers (one connection each)")
	str(&c.queue, "u", "queue", "warren-perf", "queue name (with --queues N: the prefix of <u>-1 .. <u>-N)")
	num(&c.queues, "", "queues", 0, "spread producers and consumers over N queues named <u>-1 .. <u>-N")
	num(&c.bodySize, "s", "size", minBodySize, "message body size in bytes (at least 12)")
	fs.Var(&flags, "f", "message flag: persistent, mandatory (repeatable or comma separated)")
	fs.Var(&flags, "flag", "message flag: persistent, mandatory (repeatable or comma separated)")
	num(&c.confirm, "c", "confirm", 0, "publisher confirm window: unconfirmed publishes per producer (0 = no confirms)")
	num(&c.prefetch, "q", "qos", 0, "consumer prefetch count (0 = unlimited)")
	num(&c.multiAck, "A", "multi-ack-every", 0, "ack with multiple=true every N messages (0 or 1 = ack each)")
	boolean(&c.autoAck, "a", "autoack", false, "consume with no-ack")
	float(&c.rate, "r", "rate", "producer rate limit in msg/s, per producer (0 = unlimited)")
	float(&c.seconds, "z", "time", "run time in seconds (0 = until message counts are reached)")
	num64(&c.pmessages, "C", "pmessages", "messages per producer (0 = unlimited)")
	num64(&c.cmessages, "D", "cmessages", "messages per consumer (0 = unlimited)")
	str(&c.exchange, "e", "exchange", "", "exchange to publish to (default: the default exchange; amq.fanout for -t fanout)")
	str(&c.exchangeType, "t", "type", "direct", "exchange type: direct, fanout or topic")
	boolean(&c.json, "", "json", false, "print JSON lines instead of text")
	boolean(&c.predeclared, "p", "predeclared", false, "use existing queues and exchange, declare nothing")
	boolean(&c.autoDelete, "", "auto-delete", false, "declare queues auto-delete (deleted after their last consumer)")
	boolean(&c.cleanup, "", "cleanup", false, "when the run ends, delete the named queues and the exchange (unless amq.*)")
	num(&c.idleConns, "", "idle-connections", 0, "idle mode: open N connections, hold them for -z seconds (or until interrupted), send nothing")
	num(&c.idleChannels, "", "channels-per-connection", 1, "idle mode: channels opened on each connection")
	str(&c.cpuProfile, "", "cpuprofile", "", "write warren-perf's own CPU profile to this file")
	num64(&c.awaitMessages, "", "await-messages", "await mode: wait until queue -u holds N messages, print how long it took (bounded by -z, default 300 s)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	for _, f := range flags {
		switch strings.ToLower(f) {
		case "persistent":
			c.persistent = true
		case "mandatory":
			c.mandatory = true
		default:
			return nil, fmt.Errorf("%w: unknown -f flag %q (want persistent or mandatory)", errUsage, f)
		}
	}
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", errUsage, err)
	}
	return c, nil
}

func (c *config) validate() error {
	switch {
	case c.producers < 0 || c.consumers < 0 || c.queues < 0:
		return errors.New("-x, -y and --queues must not be negative")
	case c.bodySize < minBodySize:
		return fmt.Errorf("-s %d: the body must hold at least %d bytes (sequence number and timestamp)", c.bodySize, minBodySize)
	case c.confirm < 0 || c.prefetch < 0 || c.multiAck < 0:
		return errors.New("-c, -q and -A must not be negative")
	case c.prefetch > 65535:
		return fmt.Errorf("-q %d: prefetch count is a 16-bit field", c.prefetch)
	case c.rate < 0 || c.seconds < 0 || c.pmessages < 0 || c.cmessages < 0 || c.awaitMessages < 0:
		return errors.New("-r, -z, -C, -D and --await-messages must not be negative")
	case c.idleConns < 0 || c.idleChannels < 0 || c.idleChannels > 65535:
		return errors.New("--idle-connections must not be negative, --channels-per-connection must be 0..65535")
	case len(c.queue) > 250 || len(c.exchange) > 255:
		return errors.New("queue and exchange names are short strings: at most 255 bytes")
	}
	switch c.exchangeType {
	case "direct", "fanout", "topic":
	default:
		return fmt.Errorf("-t %q: want direct, fanout or topic", c.exchangeType)
	}
	if c.exchangeType == "fanout" && c.exchange == "" {
		c.exchange = "amq.fanout"
	}
	if c.exchange == "" && c.exchangeType != "direct" {
		return fmt.Errorf("-t %s needs -e: the default exchange is a direct exchange", c.exchangeType)
	}
	if _, err := parseURI(c.uri); err != nil {
		return err
	}
	return nil
}

// fanout reports whether each consumer gets its own server-named queue bound
// to the exchange, rather than sharing the named queues.
func (c *config) fanout() bool { return c.exchangeType == "fanout" }

// queueNames are the named queues producers and consumers are spread over;
// none for fanout, where each consumer declares its own.
func (c *config) queueNames() []string {
	if c.fanout() {
		return nil
	}
	if c.queues == 0 {
		return []string{c.queue}
	}
	names := make([]string, c.queues)
	for i := range names {
		names[i] = c.queue + "-" + strconv.Itoa(i+1)
	}
	return names
}

// runTime is -z as a duration; 0 means no limit.
func (c *config) runTime() time.Duration { return time.Duration(c.seconds * float64(time.Second)) }

// amqpURI is a parsed amqp:// URI.
type amqpURI struct {
	addr, user, password, vhost string
}

// parseURI reads amqp://user:pass@host:port/vhost the way RabbitMQ's clients
// do: user and password default to guest, the port to 5672, an empty path or
// "/" means the vhost "/", and anything else is the percent-decoded path.
func parseURI(s string) (amqpURI, error) {
	u, err := url.Parse(s)
	if err != nil {
		return amqpURI{}, fmt.Errorf("-h %q: %v", s, err)
	}
	if u.Scheme != "amqp" {
		return amqpURI{}, fmt.Errorf("-h %q: scheme must be amqp (TLS is not supported)", s)
	}
	r := amqpURI{user: "guest", password: "guest", vhost: "/"}
	if u.User != nil {
		r.user = u.User.Username()
		if p, ok := u.User.Password(); ok {
			r.password = p
		}
	}
	host, port := u.Hostname(), u.Port()
	if host == "" {
		host = "localhost"
	}
	if port == "" {
		port = "5672"
	}
	r.addr = net.JoinHostPort(host, port)
	if p := u.EscapedPath(); p != "" && p != "/" {
		v, err := url.PathUnescape(p[1:])
		if err != nil {
			return amqpURI{}, fmt.Errorf("-h %q: vhost: %v", s, err)
		}
		r.vhost = v
	}
	return r, nil
}
