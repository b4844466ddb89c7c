package broker

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/warren-mq/warren/internal/amqp091"
	"github.com/warren-mq/warren/internal/streamlog"
)

// streamArgs are what governs a stream's retention: its arguments, or those
// merged with its policies. Zero means "not set" (keep forever, unlimited,
// the log's default segment size).
type streamArgs struct {
	maxAge       time.Duration
	maxBytes     int64
	segmentBytes int64
}

// streamArgKeys are the arguments RabbitMQ compares when a stream is redeclared.
var streamArgKeys = []string{"x-queue-type", "x-max-age", "x-max-length-bytes", "x-stream-max-segment-size-bytes", "x-initial-cluster-size", "x-queue-leader-locator"}

// classicOnlyArgs are queue arguments RabbitMQ knows that a stream refuses
// (RabbitMQ 3.10.8: "invalid arg ... of queue type rabbit_stream_queue").
var classicOnlyArgs = []string{
	"x-expires", "x-message-ttl", "x-dead-letter-exchange", "x-dead-letter-routing-key",
	"x-max-length", "x-max-in-memory-length", "x-max-in-memory-bytes", "x-max-priority",
	"x-overflow", "x-queue-mode", "x-single-active-consumer", "x-queue-master-locator",
	"x-quorum-initial-group-size", "x-delivery-limit", "x-queue-version", "x-dead-letter-strategy",
}

// checkStreamDecl applies RabbitMQ's rules for declaring a new stream: it
// must be durable, not exclusive, not auto-delete, client-named, and take
// only the arguments streams know.
func checkStreamDecl(d QueueDecl, vhost string, serverNamed bool) error {
	what := "queue '" + d.Name + "' in vhost '" + vhost + "'"
	switch {
	case serverNamed:
		return amqp091.NewError(amqp091.PreconditionFailed, "Cannot declare a server-named queue for type rabbit_stream_queue")
	case !d.Durable:
		return amqp091.NewError(amqp091.PreconditionFailed, "invalid property 'non-durable' for %s", what)
	case d.Exclusive:
		return amqp091.NewError(amqp091.PreconditionFailed, "invalid property 'exclusive-owner' for %s", what)
	case d.AutoDelete:
		return amqp091.NewError(amqp091.PreconditionFailed, "invalid property 'auto-delete' for %s", what)
	}
	_, err := parseStreamArgs(d.Name, vhost, d.Args)
	return err
}

// parseStreamArgs checks and reads a stream's arguments, with RabbitMQ's texts.
func parseStreamArgs(queue, vhost string, args amqp091.Table) (streamArgs, error) {
	var a streamArgs
	what := "queue '" + queue + "' in vhost '" + vhost + "'"
	bad := func(key, term string) error {
		return amqp091.NewError(amqp091.PreconditionFailed, "invalid arg '%s' for %s: %s", key, what, term)
	}
	// The checks every queue type shares come first, as in RabbitMQ.
	for _, key := range []string{"x-max-length-bytes", "x-stream-max-segment-size-bytes", "x-initial-cluster-size"} {
		v, ok := args[key]
		if !ok {
			continue
		}
		n, isInt := TableInt(v)
		if !isInt {
			return a, bad(key, `"expected integer, got `+typeName(v)+`"`)
		}
		if n < 0 {
			return a, bad(key, fmt.Sprintf("{value_negative,%d}", n))
		}
		switch key {
		case "x-max-length-bytes":
			a.maxBytes = n
		case "x-stream-max-segment-size-bytes":
			a.segmentBytes = n
		}
	}
	if v, ok := args["x-max-age"]; ok {
		s, isStr := v.(string)
		if !isStr {
			return a, bad("x-max-age", "{unacceptable_type,"+typeName(v)+"}")
		}
		d, ok := parseRetentionAge(s)
		if !ok {
			return a, bad("x-max-age", "invalid_max_age")
		}
		a.maxAge = d
	}
	if _, err := parseQueueArgs(queue, vhost, withoutKeys(args, "x-queue-type")); err != nil {
		return a, err
	}
	for _, key := range classicOnlyArgs {
		if _, ok := args[key]; ok {
			return a, amqp091.NewError(amqp091.PreconditionFailed, "invalid arg '%s' for %s of queue type rabbit_stream_queue", key, what)
		}
	}
	return a, nil
}

func withoutKeys(t amqp091.Table, keys ...string) amqp091.Table {
	out := make(amqp091.Table, len(t))
	for k, v := range t {
		if !slices.Contains(keys, k) {
			out[k] = v
		}
	}
	return out
}

// parseRetentionAge reads RabbitMQ's duration syntax for x-max-age and
// x-stream-offset intervals: a positive integer and one unit of Y (365
// days), M (30 days), D, h, m or s.
func parseRetentionAge(s string) (time.Duration, bool) {
	if len(s) < 2 {
		return 0, false
	}
	unit := map[byte]time.Duration{'Y': 365 * 24 * time.Hour, 'M': 30 * 24 * time.Hour, 'D': 24 * time.Hour, 'h': time.Hour, 'm': time.Minute, 's': time.Second}[s[len(s)-1]]
	digits := s[:len(s)-1]
	if unit == 0 || strings.TrimLeft(digits, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || n <= 0 || n > int64(1<<62)/int64(unit) {
		return 0, false
	}
	return time.Duration(n) * unit, true
}

// withPolicy returns the arguments in effect under a policy definition: of
// an argument and a policy that both set a limit, the lower applies, as in
// RabbitMQ's streams (max-age, max-length-bytes, stream-max-segment-size-bytes).
func (a streamArgs) withPolicy(def map[string]any) streamArgs {
	if v, ok := def["max-age"].(string); ok {
		if d, ok := parseRetentionAge(v); ok && (a.maxAge == 0 || d < a.maxAge) {
			a.maxAge = d
		}
	}
	lower := func(key string, cur *int64) {
		if v, ok := def[key].(int64); ok && v > 0 && (*cur == 0 || v < *cur) {
			*cur = v
		}
	}
	lower("max-length-bytes", &a.maxBytes)
	lower("stream-max-segment-size-bytes", &a.segmentBytes)
	return a
}

// options are the log options the arguments make.
func (a streamArgs) options() streamlog.Options {
	return streamlog.Options{MaxAge: a.maxAge, MaxBytes: a.maxBytes, SegmentBytes: a.segmentBytes, MaxBatchBytes: streamMaxBatchBytes}
}

func sortStreams(ss []*Stream) {
	slices.SortFunc(ss, func(x, y *Stream) int { return strings.Compare(x.name, y.name) })
}
