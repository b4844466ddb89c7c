package broker

import (
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warren-mq/warren/internal/amqp091"
	"github.com/warren-mq/warren/internal/store"
)

// streamNode is a broker on a file store and stream directory that a test
// can restart on the same data.
type streamNode struct {
	t         *testing.T
	dir, sdir string
	b         *Broker
}

func newStreamNode(t *testing.T) *streamNode {
	n := &streamNode{t: t, dir: t.TempDir()}
	n.sdir = filepath.Join(n.dir, "streams")
	n.open()
	t.Cleanup(func() { _ = n.b.Close() })
	return n
}

func (n *streamNode) open() {
	st, err := store.Open(n.dir, store.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		n.t.Fatal(err)
	}
	b, err := New(Config{Store: st, StreamDir: n.sdir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		n.t.Fatal(err)
	}
	n.b = b
}

func (n *streamNode) restart() {
	_ = n.b.Close()
	n.open()
}

func (n *streamNode) vhost() *VHost {
	v, _ := n.b.VHost("/")
	return v
}

func streamArgsOf(kv ...any) amqp091.Table {
	t := amqp091.Table{"x-queue-type": "stream"}
	for i := 0; i < len(kv); i += 2 {
		t[kv[i].(string)] = kv[i+1]
	}
	return t
}

func wantAMQPError(t *testing.T, err error, code uint16, text string) {
	t.Helper()
	var ae *amqp091.Error
	if !errors.As(err, &ae) {
		t.Fatalf("got %v, want %d %q", err, code, text)
	}
	if ae.Code != code || ae.Text != text {
		t.Fatalf("got %d %q, want %d %q", ae.Code, ae.Text, code, text)
	}
}

func TestStreamDeclareRules(t *testing.T) {
	n := newStreamNode(t)
	v := n.vhost()
	pre := "PRECONDITION_FAILED - "
	for _, c := range []struct {
		d    QueueDecl
		text string
	}{
		{QueueDecl{Name: "s", Args: streamArgsOf()}, pre + "invalid property 'non-durable' for queue 's' in vhost '/'"},
		{QueueDecl{Name: "s", Durable: true, Exclusive: true, Args: streamArgsOf()}, pre + "invalid property 'exclusive-owner' for queue 's' in vhost '/'"},
		{QueueDecl{Name: "s", Durable: true, AutoDelete: true, Args: streamArgsOf()}, pre + "invalid property 'auto-delete' for queue 's' in vhost '/'"},
		{QueueDecl{Name: "", Durable: true, Args: streamArgsOf()}, pre + "Cannot declare a server-named queue for type rabbit_stream_queue"},
		{QueueDecl{Name: "s", Durable: true, Args: streamArgsOf("x-max-age", "1x")}, pre + "invalid arg 'x-max-age' for queue 's' in vhost '/': invalid_max_age"},
		{QueueDecl{Name: "s", Durable: true, Args: streamArgsOf("x-max-age", int32(5))}, pre + "invalid arg 'x-max-age' for queue 's' in vhost '/': {unacceptable_type,signedint}"},
		{QueueDecl{Name: "s", Durable: true, Args: streamArgsOf("x-max-length-bytes", "x")}, pre + "invalid arg 'x-max-length-bytes' for queue 's' in vhost '/': \"expected integer, got longstr\""},
		{QueueDecl{Name: "s", Durable: true, Args: streamArgsOf("x-max-length-bytes", int32(-1))}, pre + "invalid arg 'x-max-length-bytes' for queue 's' in vhost '/': {value_negative,-1}"},
		{QueueDecl{Name: "s", Durable: true, Args: streamArgsOf("x-max-length", int32(5))}, pre + "invalid arg 'x-max-length' for queue 's' in vhost '/' of queue type rabbit_stream_queue"},
		{QueueDecl{Name: "s", Durable: true, Args: streamArgsOf("x-message-ttl", int32(5))}, pre + "invalid arg 'x-message-ttl' for queue 's' in vhost '/' of queue type rabbit_stream_queue"},
		{QueueDecl{Name: "s", Durable: true, Args: amqp091.Table{"x-queue-type": "quorum"}}, pre + "invalid arg 'x-queue-type' for queue 's' in vhost '/': \"queue type 'quorum' is not supported by Warren yet; declare a classic queue\""},
	} {
		_, err := v.Declare(c.d)
		wantAMQPError(t, err, amqp091.PreconditionFailed, c.text)
	}
	r, err := v.Declare(QueueDecl{Name: "s", Durable: true, Args: streamArgsOf("x-max-age", "7D")})
	if err != nil || r.Stream == nil || r.Queue != nil || r.Name != "s" {
		t.Fatalf("declare: %+v %v", r, err)
	}
	if _, err := v.Declare(QueueDecl{Name: "s", Durable: true, Args: streamArgsOf("x-max-age", "7D")}); err != nil {
		t.Fatalf("equivalent redeclare: %v", err)
	}
	_, err = v.Declare(QueueDecl{Name: "s", Durable: true})
	wantAMQPError(t, err, amqp091.PreconditionFailed, "PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue 's' in vhost '/': received none but current is the value 'stream' of type 'longstr'")
	_, err = v.Declare(QueueDecl{Name: "s", Durable: true, Args: streamArgsOf()})
	wantAMQPError(t, err, amqp091.PreconditionFailed, "PRECONDITION_FAILED - inequivalent arg 'x-max-age' for queue 's' in vhost '/': received none but current is the value '7D' of type 'longstr'")
	if r, err := v.Declare(QueueDecl{Name: "s", Passive: true}); err != nil || r.Stream == nil {
		t.Fatalf("passive: %+v %v", r, err)
	}
	if _, _, _, err := v.DeclareQueue(QueueDecl{Name: "c", Durable: true}); err != nil {
		t.Fatal(err)
	}
	_, err = v.Declare(QueueDecl{Name: "c", Durable: true, Args: streamArgsOf()})
	wantAMQPError(t, err, amqp091.PreconditionFailed, "PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue 'c' in vhost '/': received the value 'stream' of type 'longstr' but current is none")
	if s, ok := v.Stream("s"); !ok || s.Name() != "s" || s.Log() == nil {
		t.Fatalf("Stream: %v %v", s, ok)
	}
}

// A stream survives restarts (its declare replayed, then compacted into a
// snapshot) with its arguments and its bindings; its deletion removes its
// files and is durable too.
func TestStreamSurvivesRestartAndDeletes(t *testing.T) {
	n := newStreamNode(t)
	v := n.vhost()
	name := "orders/eu.1" // a slash and a dot: one path element all the same
	s, err := v.DeclareStream(name, amqp091.Table{"x-max-length-bytes": int64(1 << 30)})
	if err != nil {
		t.Fatal(err)
	}
	dir := s.dir
	if !strings.HasPrefix(dir, n.sdir+string(filepath.Separator)) || filepath.Dir(filepath.Dir(dir)) != n.sdir {
		t.Fatalf("stream dir %s not under %s/<vhost>/", dir, n.sdir)
	}
	if _, err := v.DeclareExchange(ExchangeDecl{Name: "x", Kind: "direct", Durable: true}); err != nil {
		t.Fatal(err)
	}
	if err := v.Bind(BindingDecl{Source: "x", Destination: name, Key: "k"}, nil); err != nil {
		t.Fatal(err)
	}
	check := func(when string) *Stream {
		t.Helper()
		v := n.vhost()
		s, ok := v.Stream(name)
		if !ok {
			t.Fatalf("%s: stream gone", when)
		}
		if s.Args["x-max-length-bytes"] != int64(1<<30) || s.Args["x-queue-type"] != "stream" {
			t.Fatalf("%s: args %v", when, s.Args)
		}
		x, _ := v.Exchange("x")
		if bs := x.Bindings(); len(bs) != 1 || bs[0].Destination != name {
			t.Fatalf("%s: bindings %v", when, bs)
		}
		return s
	}
	n.restart()
	check("after restart")
	// The snapshot the store compacts its log to replays to the same stream.
	snap := n.b.snapshot()
	_ = n.b.Close()
	mem := store.NewMemory()
	for _, rec := range snap {
		mem.CommitMeta(rec, func(error) {})
	}
	if n.b, err = New(Config{Store: mem, StreamDir: n.sdir, Logger: slog.New(slog.DiscardHandler)}); err != nil {
		t.Fatal(err)
	}
	check("from the snapshot")
	n.restart()
	s = check("after restart")
	if err := s.Delete(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("stream dir after delete: %v", err)
	}
	x, _ := n.vhost().Exchange("x")
	if bs := x.Bindings(); len(bs) != 0 {
		t.Fatalf("bindings after delete %v", bs)
	}
	n.restart()
	if _, ok := n.vhost().Stream(name); ok {
		t.Fatal("deleted stream back after restart")
	}
}

// Deleting a vhost deletes its streams' files.
func TestStreamDeletedWithVHost(t *testing.T) {
	n := newStreamNode(t)
	if _, err := n.b.PutVHost("sv", VHostInfo{}); err != nil {
		t.Fatal(err)
	}
	v, _ := n.b.VHost("sv")
	s, err := v.DeclareStream("s", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.dir); err != nil {
		t.Fatal(err)
	}
	if err := n.b.DeleteVHost("sv"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.dir); !os.IsNotExist(err) {
		t.Fatalf("stream dir after vhost delete: %v", err)
	}
}

// Retention comes from the arguments and the policies, the lower limit
// winning, and follows policy changes.
func TestStreamRetentionFromArgsAndPolicies(t *testing.T) {
	n := newStreamNode(t)
	v := n.vhost()
	s, err := v.DeclareStream("r", amqp091.Table{"x-max-age": "7D", "x-max-length-bytes": int64(5 << 20), "x-stream-max-segment-size-bytes": int64(1 << 20)})
	if err != nil {
		t.Fatal(err)
	}
	o := s.Options()
	if o.MaxAge != 7*24*time.Hour || o.MaxBytes != 5<<20 || o.SegmentBytes != 1<<20 || o.MaxBatchBytes != streamMaxBatchBytes {
		t.Fatalf("options from args %+v", o)
	}
	mustPolicy(t, n.b, Policy{VHost: "/", Name: "ret", Pattern: "^r$", ApplyTo: "queues", Definition: json.RawMessage(`{"max-age":"1h","max-length-bytes":10485760,"stream-max-segment-size-bytes":65536}`)})
	o = s.Options()
	if o.MaxAge != time.Hour || o.MaxBytes != 5<<20 || o.SegmentBytes != 65536 {
		t.Fatalf("options with the policy %+v", o)
	}
	if err := n.b.ClearPolicy("/", "ret", false); err != nil {
		t.Fatal(err)
	}
	if o = s.Options(); o.MaxAge != 7*24*time.Hour || o.SegmentBytes != 1<<20 {
		t.Fatalf("options after the policy went %+v", o)
	}
	for in, want := range map[string]time.Duration{"1Y": 365 * 24 * time.Hour, "2M": 60 * 24 * time.Hour, "30m": 30 * time.Minute, "10s": 10 * time.Second} {
		if d, ok := parseRetentionAge(in); !ok || d != want {
			t.Fatalf("%s: %v %v", in, d, ok)
		}
	}
	for _, in := range []string{"", "h", "0h", "-1h", "1.5h", "1d", "1 h"} {
		if _, ok := parseRetentionAge(in); ok {
			t.Fatalf("%q accepted", in)
		}
	}
}

// A stream directory no stream owns (a deletion cut short by a crash, then
// compacted out of the log) is removed at boot; the others stay.
func TestStreamStrayDirectoryRemovedAtBoot(t *testing.T) {
	n := newStreamNode(t)
	s, err := n.vhost().DeclareStream("kept", nil)
	if err != nil {
		t.Fatal(err)
	}
	kept := s.dir
	ghost := filepath.Join(filepath.Dir(kept), "ghost")
	if err := os.MkdirAll(ghost, 0o755); err != nil {
		t.Fatal(err)
	}
	n.restart()
	if _, err := os.Stat(ghost); !os.IsNotExist(err) {
		t.Fatalf("stray directory after boot: %v", err)
	}
	if _, err := os.Stat(kept); err != nil {
		t.Fatalf("stream directory after boot: %v", err)
	}
	if _, ok := n.vhost().Stream("kept"); !ok {
		t.Fatal("stream gone")
	}
}
