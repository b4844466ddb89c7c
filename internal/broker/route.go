package broker

import (
	"bytes"
	"hash/maphash"
	"math"
	"reflect"
	"time"

	"github.com/warren-mq/warren/internal/amqp091"
)

// Binding links a source exchange to a destination queue or exchange. Immutable once added.
type Binding struct {
	Destination string        // queue or exchange name
	ToExchange  bool          // exchange-to-exchange binding
	Key         string        // binding (routing) key
	Args        amqp091.Table // binding arguments (used by headers exchanges; part of a binding's identity everywhere)
}

// routeTable is an immutable routing snapshot for one exchange; the broker swaps it atomically
// (atomic.Pointer) on bind/unbind, and routes without locks.
//
// Every implementation is safe for any number of concurrent route calls; with and without never
// change the receiver, so a snapshot a publisher is still reading stays valid.
type routeTable interface {
	// route appends the bindings that match to dst and returns it. A binding appears at most
	// once; the same destination may appear via several bindings (caller dedups).
	route(dst []*Binding, routingKey string, headers amqp091.Table) []*Binding
	// with returns a table that also holds b; added=false (and the same table) if an equal binding exists.
	with(b *Binding) (t routeTable, added bool)
	// without returns a table lacking the binding equal to b; removed=false if there was none.
	without(b *Binding) (t routeTable, removed bool)
	// all returns every binding (for listing, deletes of a destination, and if-unused checks).
	all() []*Binding
	len() int
}

// newRouteTable returns an empty table for an exchange type: "direct", "fanout", "topic",
// "headers", "x-super-stream" (ok=false otherwise).
func newRouteTable(kind string) (routeTable, bool) {
	switch kind {
	case "direct":
		return &directTable{}, true
	case "fanout":
		return &fanoutTable{}, true
	case "topic":
		return newTopicTable(nil, 0), true
	case "headers":
		return &headersTable{}, true
	case SuperStreamKind:
		return &superStreamTable{}, true
	}
	return nil, false
}

// routeSeed keys every hash the routing tables compute. One seed per process is enough: the
// hashes never leave memory, and a random seed keeps crafted keys from all colliding.
var routeSeed = maphash.MakeSeed()

// routeHash hashes a routing key or one word of it.
func routeHash(s string) uint64 { return maphash.String(routeSeed, s) }

// bindingsEqual: same Destination, ToExchange, Key and deep-equal Args (nil and empty table are
// equal).
//
// Args compare with their AMQP types, as RabbitMQ does for binding identity (checked against
// RabbitMQ 3.10.8: {a: int32 1} and {a: int64 1} are two bindings, nil and {} are one).
func bindingsEqual(a, b *Binding) bool {
	if a == b {
		return true
	}
	return a.Destination == b.Destination && a.ToExchange == b.ToExchange && a.Key == b.Key &&
		routeTablesEqual(a.Args, b.Args)
}

// routeTablesEqual reports whether two field tables hold the same keys with values of the same
// AMQP type and value.
func routeTablesEqual(a, b amqp091.Table) bool {
	if len(a) != len(b) {
		return false
	}
	for k, av := range a {
		bv, ok := b[k]
		if !ok || !routeValuesEqual(av, bv) {
			return false
		}
	}
	return true
}

// routeValuesEqual compares two field values including their AMQP type, the way Erlang's ==
// compares RabbitMQ's typed table entries: int32 1 and int64 1 differ, and so do a string and a
// byte array with the same bytes. Timestamps travel as whole seconds, so only seconds count.
// Floats compare by value (-0 equals 0), except that NaN equals NaN so such a binding can still
// be removed.
func routeValuesEqual(a, b any) bool {
	switch x := a.(type) {
	case nil:
		return b == nil
	case bool:
		y, ok := b.(bool)
		return ok && x == y
	case int8:
		y, ok := b.(int8)
		return ok && x == y
	case uint8:
		y, ok := b.(uint8)
		return ok && x == y
	case int16:
		y, ok := b.(int16)
		return ok && x == y
	case uint16:
		y, ok := b.(uint16)
		return ok && x == y
	case int32:
		y, ok := b.(int32)
		return ok && x == y
	case uint32:
		y, ok := b.(uint32)
		return ok && x == y
	case int64:
		y, ok := b.(int64)
		return ok && x == y
	case float32:
		y, ok := b.(float32)
		return ok && (x == y || x != x && y != y)
	case float64:
		y, ok := b.(float64)
		return ok && (x == y || math.IsNaN(x) && math.IsNaN(y))
	case amqp091.Decimal:
		y, ok := b.(amqp091.Decimal)
		return ok && x == y
	case string:
		y, ok := b.(string)
		return ok && x == y
	case []byte:
		y, ok := b.([]byte)
		return ok && bytes.Equal(x, y)
	case time.Time:
		y, ok := b.(time.Time)
		return ok && x.Unix() == y.Unix()
	case amqp091.Table:
		y, ok := b.(amqp091.Table)
		return ok && routeTablesEqual(x, y)
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !routeValuesEqual(x[i], y[i]) {
				return false
			}
		}
		return true
	}
	// Not a type the codec produces; fall back to Go's notion of equality.
	return reflect.DeepEqual(a, b)
}
