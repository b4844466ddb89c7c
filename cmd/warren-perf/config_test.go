package main

import (
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
)

func TestPerfFlagsDefaults(t *testing.T) {
	c, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.uri != "amqp://guest:guest@localhost:5672/" || c.producers != 1 || c.consumers != 1 ||
		c.bodySize != minBodySize || c.confirm != 0 || c.exchange != "" || c.exchangeType != "direct" {
		t.Fatalf("defaults: %+v", c)
	}
	if got := c.queueNames(); !slices.Equal(got, []string{"warren-perf"}) {
		t.Fatalf("queues %v", got)
	}
}

func TestPerfFlagsShortAndLong(t *testing.T) {
	short, err := parseFlags(strings.Fields("-h amqp://u:p@h:1/v -x 3 -y 4 -u q -s 100 -f persistent,mandatory -c 50 -q 20 -A 10 -a -r 1000 -z 2.5 -C 7 -D 8 -e ex -t topic --queues 2 --json -p"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	long, err := parseFlags(strings.Fields("--uri amqp://u:p@h:1/v --producers 3 --consumers 4 --queue q --size 100 --flag persistent --flag mandatory --confirm 50 --qos 20 --multi-ack-every 10 --autoack --rate 1000 --time 2.5 --pmessages 7 --cmessages 8 --exchange ex --type topic --queues 2 --json --predeclared"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*config{short, long} {
		if c.uri != "amqp://u:p@h:1/v" || c.producers != 3 || c.consumers != 4 || c.queue != "q" || c.bodySize != 100 ||
			!c.persistent || !c.mandatory || c.confirm != 50 || c.prefetch != 20 || c.multiAck != 10 || !c.autoAck ||
			c.rate != 1000 || c.seconds != 2.5 || c.pmessages != 7 || c.cmessages != 8 || c.exchange != "ex" ||
			c.exchangeType != "topic" || c.queues != 2 || !c.json || !c.predeclared {
			t.Fatalf("parsed %+v", c)
		}
		if got := c.queueNames(); !slices.Equal(got, []string{"q-1", "q-2"}) {
			t.Fatalf("queues %v", got)
		}
	}
}

func TestPerfFlagsFanout(t *testing.T) {
	c, err := parseFlags([]string{"-t", "fanout", "-y", "10"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.exchange != "amq.fanout" || !c.fanout() || c.queueNames() != nil {
		t.Fatalf("fanout: exchange %q queues %v", c.exchange, c.queueNames())
	}
}

func TestPerfFlagsErrors(t *testing.T) {
	for _, args := range []string{
		"-s 11",
		"-f durable",
		"-t headers",
		"-t topic",
		"-x -1",
		"-q 70000",
		"-h http://localhost/",
		"-h amqps://localhost/",
		"extra",
		"--no-such-flag",
	} {
		_, err := parseFlags(strings.Fields(args), io.Discard)
		if !errors.Is(err, errUsage) {
			t.Errorf("%q: err = %v, want a usage error", args, err)
		}
	}
	if code := run([]string{"-s", "3"}, io.Discard, io.Discard); code != 2 {
		t.Errorf("exit status %d for a usage error, want 2", code)
	}
}

func TestPerfURI(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want amqpURI
	}{
		{"amqp://", amqpURI{addr: "localhost:5672", user: "guest", password: "guest", vhost: "/"}},
		{"amqp://localhost:5673", amqpURI{addr: "localhost:5673", user: "guest", password: "guest", vhost: "/"}},
		{"amqp://a:b@127.0.0.1:5/", amqpURI{addr: "127.0.0.1:5", user: "a", password: "b", vhost: "/"}},
		{"amqp://a:b@h/%2F", amqpURI{addr: "h:5672", user: "a", password: "b", vhost: "/"}},
		{"amqp://a:b@h/prod%2Feu", amqpURI{addr: "h:5672", user: "a", password: "b", vhost: "prod/eu"}},
		{"amqp://a@[::1]:7/v", amqpURI{addr: "[::1]:7", user: "a", password: "guest", vhost: "v"}},
	} {
		got, err := parseURI(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("parseURI(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}
