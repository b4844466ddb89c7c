package broker

import (
	"cmp"
	"slices"
	"strconv"
	"strings"

	"github.com/warren-mq/warren/internal/amqp091"
	"github.com/warren-mq/warren/internal/recordbatch"
)

// PartitionKeyHeader is the header that, when set, is a super stream
// publish's partition key instead of its routing key.
const PartitionKeyHeader = "x-partition-key"

// superStreamTable routes a super stream's publishes (exchange kind
// SuperStreamKind): each message goes to exactly one partition, number
// recordbatch.Partition(key, N) of the N streams bound to the exchange —
// Kafka's default partitioner, so an AMQP publisher and a Kafka producer
// with the same key land in the same partition. The key is the
// x-partition-key header if the message has one, else its routing key.
//
// Partitions are ordered by their binding's x-stream-partition-order
// argument (RabbitMQ's), else by a binding key that is a number, then by
// name; a stream bound twice counts once. Bindings to exchanges take no
// part. The ordered list is built when the bindings change, so routing is
// a hash and an index.
type superStreamTable struct {
	bindings []*Binding // as added
	parts    []*Binding // one per partition stream, in partition order
}

func (t *superStreamTable) route(dst []*Binding, routingKey string, headers amqp091.Table) []*Binding {
	if len(t.parts) == 0 {
		return dst
	}
	var i int
	switch k := headers[PartitionKeyHeader].(type) {
	case string:
		i = recordbatch.Partition([]byte(k), len(t.parts))
	case []byte:
		i = recordbatch.Partition(k, len(t.parts))
	default:
		i = recordbatch.Partition([]byte(routingKey), len(t.parts))
	}
	return append(dst, t.parts[i])
}

func (t *superStreamTable) with(b *Binding) (routeTable, bool) {
	if slices.ContainsFunc(t.bindings, func(x *Binding) bool { return bindingsEqual(x, b) }) {
		return t, false
	}
	return newSuperStreamTable(append(slices.Clip(t.bindings), b)), true
}

func (t *superStreamTable) without(b *Binding) (routeTable, bool) {
	i := slices.IndexFunc(t.bindings, func(x *Binding) bool { return bindingsEqual(x, b) })
	if i < 0 {
		return t, false
	}
	return newSuperStreamTable(slices.Delete(slices.Clone(t.bindings), i, i+1)), true
}

func (t *superStreamTable) all() []*Binding { return slices.Clone(t.bindings) }

func (t *superStreamTable) len() int { return len(t.bindings) }

func newSuperStreamTable(bindings []*Binding) *superStreamTable {
	t := &superStreamTable{bindings: bindings}
	for _, b := range bindings {
		if !b.ToExchange {
			t.parts = append(t.parts, b)
		}
	}
	slices.SortStableFunc(t.parts, func(x, y *Binding) int {
		xo, xok := partitionOrder(x)
		yo, yok := partitionOrder(y)
		switch {
		case xok && yok && xo != yo:
			return cmp.Compare(xo, yo)
		case xok != yok:
			if xok {
				return -1
			}
			return 1
		}
		return strings.Compare(x.Destination, y.Destination)
	})
	seen := map[string]bool{}
	t.parts = slices.DeleteFunc(t.parts, func(b *Binding) bool {
		dup := seen[b.Destination]
		seen[b.Destination] = true
		return dup
	})
	return t
}

// partitionOrder is a binding's partition number: its
// x-stream-partition-order argument, else its key if that is a number.
func partitionOrder(b *Binding) (int64, bool) {
	if n, ok := TableInt(b.Args[PartitionOrderArg]); ok {
		return n, true
	}
	n, err := strconv.ParseInt(b.Key, 10, 64)
	return n, err == nil
}
