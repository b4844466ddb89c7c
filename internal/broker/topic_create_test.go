package broker

import (
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"

	"github.com/warren-mq/warren/internal/store"
)

// metaCounter is a store that counts metadata commands and, once allow
// (when not negative) is used up, refuses them: a broker that stops there.
type metaCounter struct {
	store.Store
	n     atomic.Int64
	allow atomic.Int64
}

func (m *metaCounter) CommitMeta(rec []byte, done func(error)) {
	if m.allow.Load() >= 0 && m.allow.Add(-1) < 0 {
		done(errors.New("stopped"))
		return
	}
	m.n.Add(1)
	m.Store.CommitMeta(rec, done)
}

// openCounted opens the node's broker over a metaCounter.
func (n *streamNode) openCounted() *metaCounter {
	st, err := store.Open(n.dir, store.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		n.t.Fatal(err)
	}
	mc := &metaCounter{Store: st}
	mc.allow.Store(-1)
	b, err := New(Config{Store: mc, StreamDir: n.sdir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		n.t.Fatal(err)
	}
	n.b = b
	return mc
}

// checkTopic fails unless topic name has n partitions, bound in order,
// each with cfg as its topic config.
func checkTopic(t *testing.T, v *VHost, name string, n int, cfg map[string]string) {
	t.Helper()
	tp, ok := v.Topic(name)
	if !ok || len(tp.Partitions) != n || tp.Super != (n > 1) {
		t.Fatalf("topic %s: %+v, want %d partitions", name, tp, n)
	}
	for i, s := range tp.Partitions {
		if s == nil || (n > 1 && s.Name() != PartitionName(name, i)) {
			t.Fatalf("topic %s partition %d: %v", name, i, s)
		}
		got := s.TopicConfig()
		if len(got) != len(cfg) {
			t.Fatalf("%s config %v, want %v", s.Name(), got, cfg)
		}
		for k, x := range cfg {
			if got[k] != x {
				t.Fatalf("%s config %v, want %v", s.Name(), got, cfg)
			}
		}
	}
}

// Creating a topic of any size with its configs, and growing a super
// stream, is one metadata command: after a restart the topic is whole, and
// a command that never became durable leaves nothing behind (not streams
// without their exchange, whose names would block creating the topic
// again).
func TestTopicCreateIsOneCommand(t *testing.T) {
	n := &streamNode{t: t, dir: t.TempDir()}
	n.sdir = n.dir + "/streams"
	mc := n.openCounted()
	t.Cleanup(func() { _ = n.b.Close() })
	v := n.vhost()
	cfg := map[string]string{ConfigRetentionBytes: "123456", ConfigCleanupPolicy: "compact"}
	before := mc.n.Load()
	if _, err := v.CreateTopicWithConfig("orders", 4, cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := v.CreateTopicWithConfig("single", 1, cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := v.AddPartitions("orders", 6); err != nil {
		t.Fatal(err)
	}
	if got := mc.n.Load() - before; got != 3 {
		t.Fatalf("%d metadata commands for two creations and one growth, want 3", got)
	}
	checkTopic(t, v, "orders", 6, cfg)
	checkTopic(t, v, "single", 1, cfg)

	// Names in use are refused before anything is committed.
	if _, err := v.DeclareStream("clash-2", nil); err != nil {
		t.Fatal(err)
	}
	before = mc.n.Load()
	var exists ErrTopicExists
	if _, err := v.CreateTopic("clash", 3); !errors.As(err, &exists) || exists.Name != "clash-2" {
		t.Fatalf("create over a stream: %v", err)
	}
	if _, err := v.CreateTopic("orders", 2); !errors.As(err, &exists) {
		t.Fatalf("create an existing topic: %v", err)
	}
	if got := mc.n.Load() - before; got != 0 {
		t.Fatalf("%d commands for refused creations", got)
	}
	if _, ok := v.Stream("clash-0"); ok {
		t.Fatal("a refused creation left a partition")
	}

	// A broker that stops after one more command has the whole topic or
	// none of it (several commands left its first partitions only).
	mc.allow.Store(1)
	_, err := v.CreateTopic("cut", 3)
	mc.allow.Store(0)
	if _, err := v.CreateTopic("lost", 3); err == nil {
		t.Fatal("create with a stopped store succeeded")
	}
	mc.allow.Store(-1)
	if err != nil {
		t.Fatalf("create with one command left: %v", err)
	}
	checkTopic(t, v, "cut", 3, nil)
	for i := range 3 {
		if _, ok := v.Stream(PartitionName("lost", i)); ok {
			t.Fatalf("a creation whose command failed left partition %d", i)
		}
	}

	_ = n.b.Close()
	n.openCounted()
	v = n.vhost()
	checkTopic(t, v, "orders", 6, cfg)
	checkTopic(t, v, "single", 1, cfg)
	checkTopic(t, v, "cut", 3, nil)
	if _, ok := v.Topic("lost"); ok {
		t.Fatal("topic lost after restart")
	}
	if _, err := v.CreateTopic("lost", 3); err != nil {
		t.Fatalf("creating the topic again: %v", err)
	}
	checkTopic(t, v, "lost", 3, nil)
	// The configs are the logs' options again after the restart.
	tp, _ := v.Topic("orders")
	for _, s := range tp.Partitions {
		if s.LogOptions().MaxBytes != 123456 || !s.LogOptions().Compact {
			t.Fatalf("%s log options %+v", s.Name(), s.LogOptions())
		}
	}
}
