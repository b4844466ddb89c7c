package streams

import (
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warren-mq/warren/internal/testbroker"
)

// Stream filtering as RabbitMQ 3.13 has it: publishers tag messages with
// x-stream-filter-value, consumers ask for x-stream-filter (one value or a
// list) and, with x-stream-match-unfiltered, also get untagged messages.
// Warren filters each message exactly (RabbitMQ's chunk-level Bloom filter
// may let others through, which 3.13 clients filter again). RabbitMQ 3.10
// has no filtering.
func TestStreamFilter(t *testing.T) {
	t.Parallel()
	if testbroker.External() {
		t.Skip("RabbitMQ 3.10 has no stream filtering")
	}
	f := setup(t)
	ch := f.channel()
	q := f.declareStream(ch, "s")
	tag := func(v string) amqp.Table { return amqp.Table{"x-stream-filter-value": v} }
	publish(t, ch, "", q, tag("eu"), "eu-1")
	publish(t, ch, "", q, tag("us"), "us-1")
	publish(t, ch, "", q, nil, "plain-1")
	publish(t, ch, "", q, tag("apac"), "apac-1")
	publish(t, ch, "", q, tag("eu"), "eu-2")
	for _, tc := range []struct {
		args amqp.Table
		want []string
	}{
		{amqp.Table{"x-stream-filter": "eu"}, []string{"eu-1@0", "eu-2@4"}},
		{amqp.Table{"x-stream-filter": []any{"eu", "apac"}}, []string{"eu-1@0", "apac-1@3", "eu-2@4"}},
		{amqp.Table{"x-stream-filter": "us", "x-stream-match-unfiltered": true}, []string{"us-1@1", "plain-1@2"}},
		{nil, []string{"eu-1@0", "us-1@1", "plain-1@2", "apac-1@3", "eu-2@4"}},
	} {
		args := amqp.Table{"x-stream-offset": "first"}
		for k, v := range tc.args {
			args[k] = v
		}
		_, ds := f.consume(q, 10, args)
		wantStrings(t, recvN(t, ds, len(tc.want)), tc.want...)
	}
	// A filtered consumer waiting at the end gets only its next match.
	_, ds := f.consume(q, 10, amqp.Table{"x-stream-offset": "next", "x-stream-filter": "us"})
	publish(t, ch, "", q, tag("eu"), "eu-3")
	publish(t, ch, "", q, tag("us"), "us-2")
	wantStrings(t, recvN(t, ds, 1), "us-2@6")
}
