package broker

import (
	"fmt"
	"reflect"
	"time"

	"github.com/warren-mq/warren/internal/amqp091"
)

type overflowMode uint8

const (
	overflowDropHead overflowMode = iota
	overflowRejectPublish
	overflowRejectPublishDLX
)

// queueArgs are what governs a queue: its x-arguments parsed once at
// declare, or those merged with its policies (withPolicy).
type queueArgs struct {
	messageTTL      int64 // ms, -1 none
	expires         int64 // ms, 0 none
	maxLength       int64 // -1 none
	maxBytes        int64 // -1 none
	overflow        overflowMode
	overflowSet     bool
	dlx             *string // nil: no dead-lettering; "" is the default exchange
	dlrk            *string
	maxPriority     int
	singleActive    bool
	consumerTimeout int64 // ms, -1 none (the server's default applies)
}

var overflowNames = map[string]overflowMode{"drop-head": overflowDropHead, "reject-publish": overflowRejectPublish, "reject-publish-dlx": overflowRejectPublishDLX}

// withPolicy returns the arguments that govern a queue declared with a when
// def (its policy merged with its operator policy, see
// appliedPolicies.definition) applies, by RabbitMQ's classic queue rules:
// for expires, message-ttl, max-length, max-length-bytes (and, as in 3.13,
// consumer-timeout) the lower of argument and policy; for the dead-letter
// exchange and routing key and overflow the argument, if set, else the policy.
func (a queueArgs) withPolicy(def map[string]any) queueArgs {
	lower := func(key string, cur *int64, none int64) {
		if v, ok := def[key].(int64); ok && (*cur == none || v < *cur) {
			*cur = v
		}
	}
	lower("message-ttl", &a.messageTTL, -1)
	lower("expires", &a.expires, 0)
	lower("max-length", &a.maxLength, -1)
	lower("max-length-bytes", &a.maxBytes, -1)
	lower("consumer-timeout", &a.consumerTimeout, -1)
	if s, ok := def["dead-letter-exchange"].(string); ok && a.dlx == nil {
		a.dlx = &s
	}
	if s, ok := def["dead-letter-routing-key"].(string); ok && a.dlrk == nil {
		a.dlrk = &s
	}
	if s, ok := def["overflow"].(string); ok && !a.overflowSet {
		a.overflow = overflowNames[s]
	}
	return a
}

// table returns the arguments as x-arguments, with the declared ones no
// policy can change: the queue's effective arguments.
func (a queueArgs) table(declared amqp091.Table) amqp091.Table {
	t := amqp091.Table{}
	for k, v := range declared {
		t[k] = v
	}
	for _, k := range []string{"x-message-ttl", "x-expires", "x-max-length", "x-max-length-bytes", "x-overflow", "x-dead-letter-exchange", "x-dead-letter-routing-key", "x-consumer-timeout"} {
		delete(t, k)
	}
	set := func(key string, v, none int64) {
		if v != none {
			t[key] = v
		}
	}
	set("x-message-ttl", a.messageTTL, -1)
	set("x-expires", a.expires, 0)
	set("x-max-length", a.maxLength, -1)
	set("x-max-length-bytes", a.maxBytes, -1)
	set("x-consumer-timeout", a.consumerTimeout, -1)
	if a.dlx != nil {
		t["x-dead-letter-exchange"] = *a.dlx
	}
	if a.dlrk != nil {
		t["x-dead-letter-routing-key"] = *a.dlrk
	}
	for name, m := range overflowNames {
		if m == a.overflow && (a.overflowSet || m != overflowDropHead) {
			t["x-overflow"] = name
		}
	}
	return t
}

// queueArgKeys are the arguments RabbitMQ compares when a queue is redeclared.
var queueArgKeys = []string{
	"x-expires", "x-message-ttl", "x-dead-letter-exchange", "x-dead-letter-routing-key",
	"x-max-length", "x-max-length-bytes", "x-max-in-memory-length", "x-max-in-memory-bytes",
	"x-max-priority", "x-overflow", "x-queue-mode", "x-single-active-consumer", "x-queue-type",
	"x-queue-master-locator", "x-quorum-initial-group-size", "x-delivery-limit",
}

func parseQueueArgs(queue, vhost string, args amqp091.Table) (queueArgs, error) {
	a := queueArgs{messageTTL: -1, maxLength: -1, maxBytes: -1, consumerTimeout: -1}
	what := "queue '" + queue + "' in vhost '" + vhost + "'"
	bad := func(key string, term string) error {
		return amqp091.NewError(amqp091.PreconditionFailed, "invalid arg '%s' for %s: %s", key, what, term)
	}
	intArg := func(key string, minimum int64) (int64, bool, error) {
		v, ok := args[key]
		if !ok {
			return 0, false, nil
		}
		n, ok := TableInt(v)
		if !ok {
			return 0, false, bad(key, `"expected integer, got `+typeName(v)+`"`)
		}
		if n < 0 {
			return 0, false, bad(key, fmt.Sprintf("{value_negative,%d}", n))
		}
		if n < minimum {
			return 0, false, bad(key, fmt.Sprintf("{value_zero,%d}", n))
		}
		return n, true, nil
	}
	strArg := func(key string) (*string, error) {
		v, ok := args[key]
		if !ok {
			return nil, nil
		}
		s, ok := v.(string)
		if !ok {
			return nil, amqp091.NewError(amqp091.PreconditionFailed, "invalid type '%s' for arg '%s' in %s", typeName(v), key, what)
		}
		return &s, nil
	}
	var err error
	var ok bool
	if a.messageTTL, ok, err = intArg("x-message-ttl", 0); err != nil {
		return a, err
	} else if !ok {
		a.messageTTL = -1
	}
	if a.expires, _, err = intArg("x-expires", 1); err != nil {
		return a, err
	}
	if a.maxLength, ok, err = intArg("x-max-length", 0); err != nil {
		return a, err
	} else if !ok {
		a.maxLength = -1
	}
	if a.maxBytes, ok, err = intArg("x-max-length-bytes", 0); err != nil {
		return a, err
	} else if !ok {
		a.maxBytes = -1
	}
	p, _, err := intArg("x-max-priority", 0)
	if err != nil {
		return a, err
	}
	if p > 255 {
		return a, bad("x-max-priority", fmt.Sprintf("{max_value_exceeded,%d}", p))
	}
	a.maxPriority = int(p)
	if a.dlx, err = strArg("x-dead-letter-exchange"); err != nil {
		return a, err
	}
	if a.dlrk, err = strArg("x-dead-letter-routing-key"); err != nil {
		return a, err
	}
	if a.dlrk != nil && a.dlx == nil {
		return a, bad("x-dead-letter-routing-key", "routing_key_but_no_dlx_defined")
	}
	if v, ok := args["x-overflow"]; ok {
		s, _ := v.(string)
		m, known := overflowNames[s]
		if !known {
			return a, bad("x-overflow", "invalid_overflow")
		}
		a.overflow, a.overflowSet = m, true
	}
	if a.consumerTimeout, ok, err = intArg("x-consumer-timeout", 0); err != nil {
		return a, err
	} else if !ok {
		a.consumerTimeout = -1
	}
	if v, ok := args["x-single-active-consumer"]; ok {
		b, isBool := v.(bool)
		if !isBool {
			return a, bad("x-single-active-consumer", "{unacceptable_type,"+typeName(v)+"}")
		}
		a.singleActive = b
	}
	if v, ok := args["x-queue-mode"]; ok {
		if s, _ := v.(string); s != "default" && s != "lazy" {
			return a, bad("x-queue-mode", fmt.Sprintf("\"unsupported queue mode '%v'\"", v))
		}
	}
	if v, ok := args["x-queue-type"]; ok {
		s, _ := v.(string)
		switch s {
		case "classic":
		case "quorum", "stream":
			return a, bad("x-queue-type", fmt.Sprintf("\"queue type '%s' is not supported by Warren yet; declare a classic queue\"", s))
		default:
			return a, bad("x-queue-type", fmt.Sprintf("\"unsupported queue type '%s'\"", s))
		}
	}
	return a, nil
}

func checkExchangeArgs(name, vhost string, args amqp091.Table) error {
	if v, ok := args["alternate-exchange"]; ok {
		if _, isStr := v.(string); !isStr {
			return amqp091.NewError(amqp091.PreconditionFailed, "invalid type '%s' for arg 'alternate-exchange' in exchange '%s' in vhost '%s'", typeName(v), name, vhost)
		}
	}
	return nil
}

// TableInt reads an integer field-table value of any integer type.
func TableInt(v any) (int64, bool) {
	switch n := v.(type) {
	case int8:
		return int64(n), true
	case uint8:
		return int64(n), true
	case int16:
		return int64(n), true
	case uint16:
		return int64(n), true
	case int32:
		return int64(n), true
	case uint32:
		return int64(n), true
	case int64:
		return n, true
	}
	return 0, false
}

// typeName is RabbitMQ's name for a field-table value's type.
func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "void"
	case bool:
		return "bool"
	case int8:
		return "byte"
	case uint8:
		return "unsignedbyte"
	case int16:
		return "short"
	case uint16:
		return "unsignedshort"
	case int32:
		return "signedint"
	case uint32:
		return "unsignedint"
	case int64:
		return "long"
	case float32:
		return "float"
	case float64:
		return "double"
	case amqp091.Decimal:
		return "decimal"
	case string:
		return "longstr"
	case []byte:
		return "binary"
	case time.Time:
		return "timestamp"
	case amqp091.Table:
		return "table"
	case []any:
		return "array"
	}
	return "unknown"
}

func inequivalent(arg, what, received, current string) error {
	return amqp091.NewError(amqp091.PreconditionFailed, "inequivalent arg '%s' for %s: received %s but current is %s", arg, what, received, current)
}

func boolText(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

// argText formats one side of an inequivalent argument when the other side is absent.
func argText(v any, ok bool) string {
	if !ok {
		return "none"
	}
	return fmt.Sprintf("the value '%v' of type '%s'", v, typeName(v))
}

// argDefaults are values equivalent to an absent argument.
var argDefaults = map[string]any{"x-queue-type": "classic"}

// argsEquivalent compares the listed arguments of a redeclaration as RabbitMQ
// does: integers of any width are equal when their values are.
func argsEquivalent(what string, current, received amqp091.Table, keys []string) error {
	for _, k := range keys {
		cv, cok := current[k]
		rv, rok := received[k]
		if d, ok := argDefaults[k]; ok {
			if !cok && rv == d {
				cv, cok = d, true
			}
			if !rok && cv == d {
				rv, rok = d, true
			}
		}
		if !cok && !rok {
			continue
		}
		if cok != rok {
			return inequivalent(k, what, argText(rv, rok), argText(cv, cok))
		}
		ci, cInt := TableInt(cv)
		ri, rInt := TableInt(rv)
		if (cInt && rInt && ci == ri) || (!cInt && !rInt && reflect.DeepEqual(cv, rv)) {
			continue
		}
		return inequivalent(k, what, fmt.Sprintf("'%v'", rv), fmt.Sprintf("'%v'", cv))
	}
	return nil
}
