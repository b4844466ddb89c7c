package broker

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Kafka topics over streams. A topic is not an object of its own: a
// single-partition topic S is the stream S, and a topic T with N > 1
// partitions is the super stream T (exchange T of kind SuperStreamKind,
// bound to the streams T-0 ... T-(N-1) with binding key "i" and argument
// x-stream-partition-order i, as RabbitMQ's super streams are laid out), so
// what one protocol creates the other reads. Creating a topic or growing a
// super stream is one metadata command (topic_create.go).

// SuperStreamKind is the exchange type of a super stream.
const SuperStreamKind = "x-super-stream"

// PartitionOrderArg is the binding argument that numbers a super stream's
// partition (RabbitMQ's).
const PartitionOrderArg = "x-stream-partition-order"

// Topic is a Kafka topic as its streams stand when it was looked up.
type Topic struct {
	Name string
	// Partitions are the streams, partition i at index i; an entry is nil
	// when a super stream's binding names a stream that does not exist.
	Partitions []*Stream
	// Super says the topic is a super stream (exchange Name), even with one
	// partition.
	Super bool
}

// topicAdmin serialises topic creation, deletion and growth: each checks
// what exists and then issues several commands.
var topicAdmin sync.Mutex

// Topic looks a topic up: the super stream of that name, else the stream.
func (v *VHost) Topic(name string) (Topic, bool) {
	if e, ok := v.Exchange(name); ok && e.Kind == SuperStreamKind {
		return v.superStreamTopic(e), true
	}
	if s, ok := v.Stream(name); ok {
		return Topic{Name: name, Partitions: []*Stream{s}}, true
	}
	return Topic{}, false
}

// superStreamTopic lists a super stream's partitions in binding order.
func (v *VHost) superStreamTopic(e *Exchange) Topic {
	type part struct {
		order int64
		dest  string
	}
	var parts []part
	for _, b := range e.Bindings() {
		if b.ToExchange {
			continue
		}
		order, ok := TableInt(b.Args[PartitionOrderArg])
		if !ok {
			if order, ok = partitionSuffix(e.Name, b.Destination); !ok {
				continue
			}
		}
		parts = append(parts, part{order, b.Destination})
	}
	slices.SortFunc(parts, func(x, y part) int { return cmp.Or(cmp.Compare(x.order, y.order), strings.Compare(x.dest, y.dest)) })
	parts = slices.CompactFunc(parts, func(x, y part) bool { return x.dest == y.dest })
	t := Topic{Name: e.Name, Super: true, Partitions: make([]*Stream, len(parts))}
	for i, p := range parts {
		t.Partitions[i], _ = v.Stream(p.dest)
	}
	return t
}

// partitionSuffix reads i from a partition stream's name T-i.
func partitionSuffix(topic, stream string) (int64, bool) {
	rest, ok := strings.CutPrefix(stream, topic+"-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(rest, 10, 32)
	return n, err == nil && n >= 0
}

// PartitionName is the stream that holds partition i of super stream topic.
func PartitionName(topic string, i int) string { return topic + "-" + strconv.Itoa(i) }

// Topics lists the vhost's topics by name: every super stream, and every
// stream that is not a partition of one.
func (v *VHost) Topics() []Topic {
	var out []Topic
	member := map[string]bool{}
	for _, e := range v.Exchanges() {
		if e.Kind != SuperStreamKind {
			continue
		}
		t := v.superStreamTopic(e)
		for _, s := range t.Partitions {
			if s != nil {
				member[s.Name()] = true
			}
		}
		out = append(out, t)
	}
	for _, s := range v.Streams() {
		if !member[s.Name()] {
			if _, isSuper := v.Exchange(s.Name()); !isSuper {
				out = append(out, Topic{Name: s.Name(), Partitions: []*Stream{s}})
			}
		}
	}
	slices.SortFunc(out, func(x, y Topic) int { return strings.Compare(x.Name, y.Name) })
	return out
}

// ErrTopicExists is returned by CreateTopic for a name in use.
type ErrTopicExists struct{ Name string }

func (e ErrTopicExists) Error() string { return fmt.Sprintf("topic '%s' already exists", e.Name) }

// CreateTopic creates a topic of n partitions: the stream name for one, the
// super stream name for more. A queue, stream or exchange in the way is
// ErrTopicExists.
func (v *VHost) CreateTopic(name string, n int) (Topic, error) {
	return v.CreateTopicWithConfig(name, n, nil)
}

// CreateTopicWithConfig is CreateTopic with the topic config (see
// SetTopicConfig) of every partition, in the same one command.
func (v *VHost) CreateTopicWithConfig(name string, n int, cfg map[string]string) (Topic, error) {
	topicAdmin.Lock()
	defer topicAdmin.Unlock()
	if n < 1 {
		return Topic{}, fmt.Errorf("topic '%s': %d partitions", name, n)
	}
	c := &createTopicCmd{VHost: v.Name, Name: name, Super: n > 1, From: 0, To: int64(n)}
	if err := v.createTopic(c, cfg); err != nil {
		return Topic{}, err
	}
	t, _ := v.Topic(name)
	return t, nil
}

// topicNameFree refuses a name that a queue, stream or exchange has.
func (v *VHost) topicNameFree(name string) error {
	v.mu.RLock()
	_, isEx := v.exchanges[name]
	used := isEx || v.hasQueueLocked(name)
	v.mu.RUnlock()
	if used {
		return ErrTopicExists{name}
	}
	return nil
}

// DeleteTopic deletes a topic with its records: the stream, or the super
// stream's partitions and exchange.
func (v *VHost) DeleteTopic(name string) error {
	topicAdmin.Lock()
	defer topicAdmin.Unlock()
	t, ok := v.Topic(name)
	if !ok {
		return v.errNoQueue(name)
	}
	if t.Super {
		if err := v.DeleteExchange(name, false); err != nil {
			return err
		}
	}
	for _, s := range t.Partitions {
		if s != nil {
			if err := s.Delete(); err != nil {
				return err
			}
		}
	}
	return nil
}

// ErrCannotGrow is returned by AddPartitions for a single stream: its
// partition 0 cannot become stream T-0 of a super stream without a copy.
var ErrCannotGrow = fmt.Errorf("a single-partition topic is a stream and cannot gain partitions; create the topic with more partitions")

// AddPartitions grows super stream name to total partitions, in one
// command; the new partitions get partition 0's topic config.
func (v *VHost) AddPartitions(name string, total int) (Topic, error) {
	topicAdmin.Lock()
	defer topicAdmin.Unlock()
	t, ok := v.Topic(name)
	if !ok {
		return Topic{}, v.errNoQueue(name)
	}
	if !t.Super {
		return t, ErrCannotGrow
	}
	have := len(t.Partitions)
	if total <= have {
		return t, fmt.Errorf("topic '%s' has %d partitions, asked for %d", name, have, total)
	}
	var cfg map[string]string
	if have > 0 && t.Partitions[0] != nil {
		cfg = t.Partitions[0].TopicConfig()
	}
	c := &createTopicCmd{VHost: v.Name, Name: name, Super: true, From: int64(have), To: int64(total)}
	if err := v.createTopic(c, cfg); err != nil {
		return t, err
	}
	t, _ = v.Topic(name)
	return t, nil
}
