package broker

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/warren-mq/warren/internal/amqp091"
	"github.com/warren-mq/warren/internal/streamlog"
)

// Kafka topic configs (CreateTopics' configs, AlterConfigs,
// IncrementalAlterConfigs) are durable state of a stream beside its
// arguments: one setTopicConfig command per stream and change carries the
// whole set, and apply makes them the log's options. They override the
// stream's arguments and policies (a Kafka operator who sets retention.ms
// means it), which keep governing every option the topic config leaves
// unset. A super stream's config is set on each partition stream. Field
// tags are part of the on-disk format (see command.go): never reuse one.

func init() {
	registerCommand(cmdSetTopicConfig, func() command { return &setTopicConfigCmd{} })
}

// Topic config names Warren applies.
const (
	ConfigRetentionMs       = "retention.ms"
	ConfigRetentionBytes    = "retention.bytes"
	ConfigSegmentBytes      = "segment.bytes"
	ConfigCleanupPolicy     = "cleanup.policy"
	ConfigMaxMessageBytes   = "max.message.bytes"
	ConfigDeleteRetentionMs = "delete.retention.ms"
)

// TopicConfigNames lists the configs Warren applies, sorted.
var TopicConfigNames = []string{ConfigCleanupPolicy, ConfigDeleteRetentionMs, ConfigMaxMessageBytes, ConfigRetentionBytes, ConfigRetentionMs, ConfigSegmentBytes}

// ErrTopicConfig is a config Warren refuses: unknown name or bad value
// (Kafka's INVALID_CONFIG).
type ErrTopicConfig struct{ Name, Value, Reason string }

func (e ErrTopicConfig) Error() string {
	return fmt.Sprintf("invalid value %q for configuration %s: %s", e.Value, e.Name, e.Reason)
}

// CheckTopicConfig validates one config.
func CheckTopicConfig(name, value string) error {
	bad := func(reason string) error { return ErrTopicConfig{name, value, reason} }
	switch name {
	case ConfigRetentionMs, ConfigRetentionBytes:
		if n, err := strconv.ParseInt(value, 10, 64); err != nil || n < -1 {
			return bad("must be -1 or a non-negative integer")
		}
	case ConfigSegmentBytes:
		if n, err := strconv.ParseInt(value, 10, 64); err != nil || n < 14 || n > streamlog.MaxSegmentBytes {
			return bad(fmt.Sprintf("must be an integer from 14 to %d", int64(streamlog.MaxSegmentBytes)))
		}
	case ConfigMaxMessageBytes:
		if n, err := strconv.ParseInt(value, 10, 32); err != nil || n < 0 {
			return bad("must be a non-negative integer")
		}
	case ConfigDeleteRetentionMs:
		if n, err := strconv.ParseInt(value, 10, 64); err != nil || n < 0 {
			return bad("must be a non-negative integer")
		}
	case ConfigCleanupPolicy:
		for _, p := range strings.Split(value, ",") {
			if p = strings.TrimSpace(p); p != "delete" && p != "compact" {
				return bad("must be a list of delete and compact")
			}
		}
	default:
		return ErrTopicConfig{name, value, "unknown topic config name"}
	}
	return nil
}

// topicConfigs holds the configs of every stream that has any, by stream
// (a stream deleted and declared again is another *Stream). Its mutex is a
// leaf.
type topicConfigs struct {
	mu  sync.RWMutex
	all map[*Stream]map[string]string
}

var topicCfg = topicConfigs{all: map[*Stream]map[string]string{}}

// TopicConfig returns the Kafka configs set on a stream (nil if none).
func (s *Stream) TopicConfig() map[string]string {
	topicCfg.mu.RLock()
	defer topicCfg.mu.RUnlock()
	return maps.Clone(topicCfg.all[s])
}

// SetTopicConfig replaces the stream's Kafka configs with cfg (checked with
// CheckTopicConfig first) and applies them; durable.
func (s *Stream) SetTopicConfig(cfg map[string]string) error {
	for k, v := range cfg {
		if err := CheckTopicConfig(k, v); err != nil {
			return err
		}
	}
	v := s.vhost
	t := amqp091.Table{}
	for k, x := range cfg {
		t[k] = x
	}
	_, err := v.run([]string{queueKey(s.name)}, func() (command, bool, any, error) {
		if cur, ok := v.Stream(s.name); !ok || cur != s {
			return nil, false, nil, v.errNoQueue(s.name)
		}
		return &setTopicConfigCmd{VHost: v.Name, Stream: s.name, Config: t}, true, nil, nil
	})
	return err
}

// setTopicConfigCmd sets a stream's whole Kafka config.
type setTopicConfigCmd struct {
	VHost, Stream string
	Config        amqp091.Table // config name -> string value
}

func (c *setTopicConfigCmd) typ() cmdType { return cmdSetTopicConfig }
func (c *setTopicConfigCmd) fields() []field {
	return []field{{2, &c.VHost}, {4, &c.Stream}, {6, &c.Config}}
}

func (c *setTopicConfigCmd) apply(a *applier) (any, error) {
	v, ok := a.b.VHost(c.VHost)
	if !ok {
		return nil, fmt.Errorf("topic config: no vhost '%s'", c.VHost)
	}
	s, ok := v.Stream(c.Stream)
	if !ok {
		return nil, fmt.Errorf("topic config: no stream '%s' in vhost '%s'", c.Stream, c.VHost)
	}
	cfg := map[string]string{}
	for k, x := range c.Config {
		if str, ok := x.(string); ok {
			cfg[k] = str
		}
	}
	topicCfg.mu.Lock()
	if len(cfg) == 0 {
		delete(topicCfg.all, s)
	} else {
		topicCfg.all[s] = cfg
	}
	// Forget streams deleted since (their entries would only leak).
	for x := range topicCfg.all {
		if x.vhost.broker == a.b && !x.alive() {
			delete(topicCfg.all, x)
		}
	}
	topicCfg.mu.Unlock()
	s.log.SetOptions(s.LogOptions())
	return nil, nil
}

// alive reports whether the stream is still its vhost's.
func (s *Stream) alive() bool {
	cur, ok := s.vhost.Stream(s.name)
	return ok && cur == s
}

// LogOptions are the options the stream's log runs with: its arguments
// merged with its policies, under its Kafka topic config. Whatever changes
// the arguments or policies in effect sets the log's options to this.
func (s *Stream) LogOptions() streamlog.Options {
	s.mu.Lock()
	o := s.args.options()
	s.mu.Unlock()
	return withTopicConfig(o, s.TopicConfig())
}

// withTopicConfig overlays Kafka configs on log options.
func withTopicConfig(o streamlog.Options, cfg map[string]string) streamlog.Options {
	num := func(k string) (int64, bool) {
		n, err := strconv.ParseInt(cfg[k], 10, 64)
		return n, err == nil
	}
	if n, ok := num(ConfigRetentionMs); ok {
		switch {
		case n < 0:
			o.MaxAge = 0 // forever
		default:
			o.MaxAge = max(time.Duration(n)*time.Millisecond, time.Millisecond)
		}
	}
	if n, ok := num(ConfigRetentionBytes); ok {
		o.MaxBytes = 0
		if n >= 0 {
			o.MaxBytes = max(n, 1)
		}
	}
	if n, ok := num(ConfigSegmentBytes); ok {
		o.SegmentBytes = n
	}
	if n, ok := num(ConfigMaxMessageBytes); ok {
		o.MaxBatchBytes = int(n)
	}
	if n, ok := num(ConfigDeleteRetentionMs); ok {
		o.DeleteRetention = time.Duration(n) * time.Millisecond
	}
	if p, ok := cfg[ConfigCleanupPolicy]; ok {
		o.Compact = strings.Contains(p, "compact")
	}
	return o
}

// snapshotTopicConfigs adds the set configs, by vhost and stream.
func (b *Broker) snapshotTopicConfigs(add func(command)) {
	for _, v := range b.VHosts() {
		for _, s := range v.Streams() {
			cfg := s.TopicConfig()
			if len(cfg) == 0 {
				continue
			}
			t := amqp091.Table{}
			for _, k := range slices.Sorted(maps.Keys(cfg)) {
				t[k] = cfg[k]
			}
			add(&setTopicConfigCmd{VHost: v.Name, Stream: s.name, Config: t})
		}
	}
}

// TopicConfigEntry is one config of a topic as DescribeConfigs shows it.
type TopicConfigEntry struct {
	Name, Value string
	// Source: "topic" (a Kafka config), "arguments" (the stream's
	// arguments or a policy) or "default".
	Source string
}

// DescribeTopicConfig lists every config Warren applies with the value in
// effect and where it comes from.
func (s *Stream) DescribeTopicConfig() []TopicConfigEntry {
	s.mu.Lock()
	o := s.args.options()
	s.mu.Unlock()
	cfg := s.TopicConfig()
	fromArgs := map[string]string{}
	if o.MaxAge > 0 {
		fromArgs[ConfigRetentionMs] = strconv.FormatInt(o.MaxAge.Milliseconds(), 10)
	}
	if o.MaxBytes > 0 {
		fromArgs[ConfigRetentionBytes] = strconv.FormatInt(o.MaxBytes, 10)
	}
	if o.SegmentBytes > 0 {
		fromArgs[ConfigSegmentBytes] = strconv.FormatInt(o.SegmentBytes, 10)
	}
	defaults := map[string]string{
		ConfigRetentionMs: "-1", ConfigRetentionBytes: "-1",
		ConfigSegmentBytes:      strconv.Itoa(streamlog.DefaultSegmentBytes),
		ConfigCleanupPolicy:     "delete",
		ConfigMaxMessageBytes:   strconv.Itoa(streamlog.DefaultMaxBatchBytes),
		ConfigDeleteRetentionMs: strconv.FormatInt(streamlog.DefaultDeleteRetention.Milliseconds(), 10),
	}
	out := make([]TopicConfigEntry, 0, len(TopicConfigNames))
	for _, name := range TopicConfigNames {
		e := TopicConfigEntry{Name: name, Value: defaults[name], Source: "default"}
		if v, ok := fromArgs[name]; ok {
			e.Value, e.Source = v, "arguments"
		}
		if v, ok := cfg[name]; ok {
			e.Value, e.Source = v, "topic"
		}
		out = append(out, e)
	}
	return out
}
