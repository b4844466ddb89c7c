package broker

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/warren-mq/warren/internal/amqp091"
)

// headersTable routes on the message's headers compared with each binding's arguments; the
// routing key is ignored. Each binding's arguments are digested once, when it is added, into
// the list of headers to test, so routing does no parsing.
//
// Semantics follow RabbitMQ 3.10 (all checked against 3.10.8):
//   - x-match "all" (also the default, and what any unexpected value means) needs every
//     argument present with an equal value; "any" needs at least one. "all-with-x" and
//     "any-with-x" do the same but also test arguments whose names start with "x-", which the
//     plain modes skip. The x-match argument itself is never tested.
//   - So "all" with nothing left to test matches every message, even one without headers,
//     and "any" with nothing to test matches none.
//   - An argument of type void matches when the header is present, whatever its value.
//   - Values compare the way Erlang's == compares RabbitMQ's decoded values, which ignores the
//     AMQP type: all integer types, timestamps (in seconds) and floats compare as numbers
//     (int32 1 = int64 1 = double 1.0 = timestamp 1; float 0.1 ≠ double 0.1), a string equals
//     a byte array with the same bytes, an empty table equals an empty array. Decimals, bools,
//     void and non-empty tables and arrays only equal their own kind; inside tables and
//     arrays types do count (routeValuesEqual).
//
// One difference is inherent in amqp091.Table being a map: RabbitMQ compares a nested table
// header in wire order, so {k:1, j:"s"} and {j:"s", k:1} differ there and are equal here.
type headersTable struct {
	entries []headersEntry
}

// headersEntry is a binding with its arguments digested for matching.
type headersEntry struct {
	b    *Binding
	any  bool         // x-match any / any-with-x: one match suffices
	args []headersArg // the arguments to test, sorted by name
}

type headersArg struct {
	name     string
	value    any
	presence bool // void argument: the header only needs to be present
}

func newHeadersEntry(b *Binding) headersEntry {
	mode, _ := b.Args["x-match"].(string)
	withX := mode == "all-with-x" || mode == "any-with-x"
	e := headersEntry{b: b, any: mode == "any" || mode == "any-with-x"}
	for k, v := range b.Args {
		if k == "x-match" || !withX && strings.HasPrefix(k, "x-") {
			continue
		}
		e.args = append(e.args, headersArg{name: k, value: v, presence: v == nil})
	}
	// Sorted so routing tests arguments in a stable order, whatever the map's iteration order.
	slices.SortFunc(e.args, func(a, b headersArg) int { return strings.Compare(a.name, b.name) })
	return e
}

// matches reports whether a message with these headers is routed to the binding.
func (e *headersEntry) matches(headers amqp091.Table) bool {
	for i := range e.args {
		a := &e.args[i]
		v, ok := headers[a.name]
		hit := ok && (a.presence || headersValueMatch(a.value, v))
		if hit == e.any {
			// any: first hit decides; all: first miss decides.
			return hit
		}
	}
	return !e.any
}

func (t *headersTable) route(dst []*Binding, _ string, headers amqp091.Table) []*Binding {
	for i := range t.entries {
		if t.entries[i].matches(headers) {
			dst = append(dst, t.entries[i].b)
		}
	}
	return dst
}

func (t *headersTable) with(b *Binding) (routeTable, bool) {
	if slices.ContainsFunc(t.entries, func(e headersEntry) bool { return bindingsEqual(e.b, b) }) {
		return t, false
	}
	return &headersTable{entries: append(slices.Clip(t.entries), newHeadersEntry(b))}, true
}

func (t *headersTable) without(b *Binding) (routeTable, bool) {
	i := slices.IndexFunc(t.entries, func(e headersEntry) bool { return bindingsEqual(e.b, b) })
	if i < 0 {
		return t, false
	}
	return &headersTable{entries: slices.Delete(slices.Clone(t.entries), i, i+1)}, true
}

func (t *headersTable) all() []*Binding {
	out := make([]*Binding, len(t.entries))
	for i := range t.entries {
		out[i] = t.entries[i].b
	}
	return out
}

func (t *headersTable) len() int { return len(t.entries) }

// headersValueMatch compares a binding argument with a header value at the top level of the
// table, where RabbitMQ's comparison ignores the AMQP type (see headersTable).
func headersValueMatch(arg, header any) bool {
	if an, ok := headersNumber(arg); ok {
		hn, ok := headersNumber(header)
		return ok && an.equal(hn)
	}
	switch a := arg.(type) {
	case string:
		switch h := header.(type) {
		case string:
			return a == h
		case []byte:
			return a == string(h)
		}
		return false
	case []byte:
		switch h := header.(type) {
		case string:
			return string(a) == h
		case []byte:
			return string(a) == string(h)
		}
		return false
	case amqp091.Table:
		if len(a) == 0 {
			return headersEmptyList(header)
		}
	case []any:
		if len(a) == 0 {
			return headersEmptyList(header)
		}
	}
	return routeValuesEqual(arg, header)
}

// headersEmptyList reports whether v is an empty table or array: both are the empty list in
// RabbitMQ, so they are equal to each other.
func headersEmptyList(v any) bool {
	switch x := v.(type) {
	case amqp091.Table:
		return len(x) == 0
	case []any:
		return len(x) == 0
	}
	return false
}

// headersNum is a field value that RabbitMQ holds as an Erlang number: an integer of any width
// (timestamps included) or a float.
type headersNum struct {
	i       int64
	f       float64
	isFloat bool
}

func headersNumber(v any) (headersNum, bool) {
	switch x := v.(type) {
	case int8:
		return headersNum{i: int64(x)}, true
	case uint8:
		return headersNum{i: int64(x)}, true
	case int16:
		return headersNum{i: int64(x)}, true
	case uint16:
		return headersNum{i: int64(x)}, true
	case int32:
		return headersNum{i: int64(x)}, true
	case uint32:
		return headersNum{i: int64(x)}, true
	case int64:
		return headersNum{i: x}, true
	case time.Time:
		return headersNum{i: x.Unix()}, true
	case float32:
		return headersNum{f: float64(x), isFloat: true}, true
	case float64:
		return headersNum{f: x, isFloat: true}, true
	}
	return headersNum{}, false
}

// equal compares exactly, as Erlang does for == between an integer and a float: 1 == 1.0, but
// no rounding of large integers to the nearest float.
func (a headersNum) equal(b headersNum) bool {
	switch {
	case a.isFloat && b.isFloat:
		return a.f == b.f
	case a.isFloat:
		return headersIntFloat(b.i, a.f)
	case b.isFloat:
		return headersIntFloat(a.i, b.f)
	}
	return a.i == b.i
}

func headersIntFloat(i int64, f float64) bool {
	// 2^63 is exactly representable; anything at or beyond it cannot equal an int64.
	if f != math.Trunc(f) || f < -(1<<63) || f >= 1<<63 {
		return false
	}
	return int64(f) == i
}

// headersBindingError checks a headers-exchange binding's x-match argument as RabbitMQ 3.10
// does on queue.bind / exchange.bind. It returns "" if the binding is acceptable, else the
// reason for a 406 PRECONDITION_FAILED channel error, worded as RabbitMQ words it (after its
// "PRECONDITION_FAILED - " prefix).
func headersBindingError(args amqp091.Table) string {
	v, ok := args["x-match"]
	if !ok {
		return ""
	}
	s, ok := v.(string)
	if !ok {
		return fmt.Sprintf("Invalid x-match field type %s (value %s); expected longstr",
			typeName(v), routeErlangTerm(v))
	}
	switch s {
	case "all", "any", "all-with-x", "any-with-x":
		return ""
	}
	return fmt.Sprintf("Invalid x-match field value %s; expected all, any, all-with-x, or any-with-x",
		routeErlangTerm(s))
}
