package messaging

import (
	"bytes"
	"reflect"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// everyFieldType is a header table holding one value of every AMQP field type
// amqp091-go can write, each with the Go type amqp091-go reads back, so a
// reflect.DeepEqual after a round trip proves that the broker kept every type
// tag and value (RabbitMQ decodes b B s u I i l f d D S T F A x t V and writes
// them back with the same tag).
func everyFieldType() amqp.Table {
	return amqp.Table{
		"longstr":   "héllo wörld",
		"empty":     "",
		"int8":      int8(-8),
		"uint8":     uint8(200),
		"int16":     int16(-1600),
		"uint16":    uint16(60000),
		"int32":     int32(-320000),
		"uint32":    uint32(4000000000),
		"int64":     int64(-1 << 40),
		"float32":   float32(1.5),
		"float64":   float64(-2.25),
		"true":      true,
		"false":     false,
		"timestamp": time.Unix(1700000000, 0),
		"decimal":   amqp.Decimal{Scale: 2, Value: 12345},
		"table":     amqp.Table{"inner": "x", "deeper": amqp.Table{"n": int32(1)}},
		"array":     []any{"a", int32(1), true, amqp.Table{"k": "v"}, []any{int64(2)}, nil},
		"bytes":     []byte{0, 1, 2, 255},
		"void":      nil,
	}
}

// everyProperty is a publishing with all fourteen basic properties set.
// user_id must equal the authenticated user or RabbitMQ refuses it.
func everyProperty(body []byte) amqp.Publishing {
	return amqp.Publishing{
		Headers:         everyFieldType(),
		ContentType:     "application/x-warren",
		ContentEncoding: "gzip",
		DeliveryMode:    amqp.Persistent,
		Priority:        7,
		CorrelationId:   "corr-1",
		ReplyTo:         "reply-queue",
		Expiration:      "600000",
		MessageId:       "msg-1",
		Timestamp:       time.Unix(1600000000, 0),
		Type:            "order.created",
		UserId:          "guest",
		AppId:           "warren-conformance",
		Body:            body,
	}
}

// checkProperties compares every property of d with p.
func checkProperties(t *testing.T, d amqp.Delivery, p amqp.Publishing) {
	t.Helper()
	if !reflect.DeepEqual(d.Headers, p.Headers) {
		for k, want := range p.Headers {
			if got := d.Headers[k]; !reflect.DeepEqual(got, want) {
				t.Errorf("header %q: got %#v (%T), want %#v (%T)", k, got, got, want, want)
			}
		}
		if len(d.Headers) != len(p.Headers) {
			t.Errorf("got %d headers, want %d: %#v", len(d.Headers), len(p.Headers), d.Headers)
		}
	}
	type props struct {
		ContentType, ContentEncoding       string
		DeliveryMode, Priority             uint8
		CorrelationId, ReplyTo, Expiration string
		MessageId, Type, UserId, AppId     string
		Timestamp                          int64
	}
	got := props{d.ContentType, d.ContentEncoding, d.DeliveryMode, d.Priority, d.CorrelationId, d.ReplyTo,
		d.Expiration, d.MessageId, d.Type, d.UserId, d.AppId, d.Timestamp.Unix()}
	want := props{p.ContentType, p.ContentEncoding, p.DeliveryMode, p.Priority, p.CorrelationId, p.ReplyTo,
		p.Expiration, p.MessageId, p.Type, p.UserId, p.AppId, p.Timestamp.Unix()}
	if got != want {
		t.Errorf("properties:\n got %+v\nwant %+v", got, want)
	}
	if !bytes.Equal(d.Body, p.Body) {
		t.Errorf("body: got %d bytes, want %d", len(d.Body), len(p.Body))
	}
}

func TestBasicPropertiesRoundTripConsume(t *testing.T) {
	t.Parallel()
	_, ch := dialChannel(t)
	q := declareQueue(t, ch, nil)
	msg := everyProperty([]byte("payload"))
	ds := consume(t, ch, q, "")
	publish(t, ch, "", q, msg)
	d := next(t, ds)
	checkProperties(t, d, msg)
	if d.Exchange != "" || d.RoutingKey != q || d.Redelivered || d.DeliveryTag != 1 {
		t.Errorf("deliver: exchange %q key %q redelivered %v tag %d; want \"\" %q false 1",
			d.Exchange, d.RoutingKey, d.Redelivered, d.DeliveryTag, q)
	}
}

func TestBasicPropertiesRoundTripGet(t *testing.T) {
	t.Parallel()
	conn, ch := dialChannel(t)
	q := declareQueue(t, ch, nil)
	msg := everyProperty([]byte("payload"))
	publish(t, ch, "", q, msg)
	waitReady(t, conn, q, 1)
	d, ok, err := ch.Get(q, true)
	if err != nil || !ok {
		t.Fatalf("get: ok %v err %v", ok, err)
	}
	checkProperties(t, d, msg)
	if d.Exchange != "" || d.RoutingKey != q {
		t.Errorf("get-ok exchange %q key %q, want \"\" and %q", d.Exchange, d.RoutingKey, q)
	}
}

// TestBasicPropertiesEmpty checks that a message without any property comes
// back without any: no header table, no delivery mode, no timestamp.
func TestBasicPropertiesEmpty(t *testing.T) {
	t.Parallel()
	_, ch := dialChannel(t)
	q := declareQueue(t, ch, nil)
	ds := consume(t, ch, q, "")
	publish(t, ch, "", q, amqp.Publishing{Body: []byte("x")})
	d := next(t, ds)
	if d.Headers != nil || d.ContentType != "" || d.DeliveryMode != 0 || d.Priority != 0 ||
		!d.Timestamp.IsZero() || d.MessageId != "" || d.UserId != "" {
		t.Errorf("got properties on a bare message: %+v", d)
	}
}

// TestBasicUserIdMismatch: RabbitMQ validates user_id against the connection's
// user and closes the channel with 406.
func TestBasicUserIdMismatch(t *testing.T) {
	t.Parallel()
	_, ch := dialChannel(t)
	q := declareQueue(t, ch, nil)
	closes := notifyChannelClose(ch)
	publish(t, ch, "", q, amqp.Publishing{UserId: "mallory", Body: []byte("x")})
	expectClosed(t, closes, 406, "PRECONDITION_FAILED - user_id property set to 'mallory' but authenticated user was 'guest'")
}

func TestBasicBodySizes(t *testing.T) {
	t.Parallel()
	// frame_max is 131072 by default; a body frame carries at most
	// frame_max-8 octets (7 header octets and the frame-end octet).
	sizes := map[string]int{
		"empty":              0,
		"one":                1,
		"frame_max-8":        131072 - 8,
		"frame_max-7":        131072 - 7,
		"1MiB":               1 << 20,
		"1MiB+3 odd remnant": 1<<20 + 3,
	}
	for name, size := range sizes {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, ch := dialChannel(t)
			q := declareQueue(t, ch, nil)
			body := make([]byte, size)
			for i := range body {
				body[i] = byte(i * 7)
			}
			ds := consume(t, ch, q, "")
			publish(t, ch, "", q, amqp.Publishing{Body: body})
			publish(t, ch, "", q, amqp.Publishing{Body: body})
			// Two in a row: the second must parse cleanly after the first.
			for i, d := range nextN(t, ds, 2) {
				if !bytes.Equal(d.Body, body) {
					t.Fatalf("body %d: %d bytes, want %d identical", i, len(d.Body), len(body))
				}
			}
		})
	}
}

// TestBasicSmallFrameMax checks that a client's smaller frame_max is honoured:
// amqp091-go refuses any frame bigger than what it negotiated, so a large body
// only arrives if the broker split it into 4096-octet frames.
func TestBasicSmallFrameMax(t *testing.T) {
	t.Parallel()
	conn, err := amqp.DialConfig(urlOf(t), amqp.Config{FrameSize: 4096})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	if conn.Config.FrameSize != 4096 {
		t.Fatalf("negotiated frame_max %d, want 4096", conn.Config.FrameSize)
	}
	ch := openChannel(t, conn)
	q := declareQueue(t, ch, nil)
	body := bytes.Repeat([]byte("0123456789abcdef"), 10000)
	msg := everyProperty(body)
	ds := consume(t, ch, q, "")
	publish(t, ch, "", q, msg)
	checkProperties(t, next(t, ds), msg)
}

func TestBasicMandatoryUnroutableReturned(t *testing.T) {
	t.Parallel()
	_, ch := dialChannel(t)
	returns := ch.NotifyReturn(make(chan amqp.Return, 2))
	key := uniqueName(t, "key")
	msg := amqp.Publishing{MessageId: "m1", Headers: amqp.Table{"h": int32(1)}, Body: []byte("lost")}
	if err := ch.Publish("amq.direct", key, true, false, msg); err != nil {
		t.Fatal(err)
	}
	r := nextReturn(t, returns)
	if r.ReplyCode != 312 || r.ReplyText != "NO_ROUTE" || r.Exchange != "amq.direct" || r.RoutingKey != key ||
		string(r.Body) != "lost" || r.MessageId != "m1" || !reflect.DeepEqual(r.Headers, msg.Headers) {
		t.Fatalf("return: %d %q exchange %q key %q body %q id %q headers %v", r.ReplyCode, r.ReplyText,
			r.Exchange, r.RoutingKey, r.Body, r.MessageId, r.Headers)
	}
	// The default exchange returns the same way for a queue that does not exist.
	if err := ch.Publish("", key, true, false, msg); err != nil {
		t.Fatal(err)
	}
	r = nextReturn(t, returns)
	if r.ReplyCode != 312 || r.ReplyText != "NO_ROUTE" || r.Exchange != "" || r.RoutingKey != key {
		t.Fatalf("return: %d %q exchange %q key %q", r.ReplyCode, r.ReplyText, r.Exchange, r.RoutingKey)
	}
}

// TestBasicNonMandatoryUnroutableDropped: without mandatory the message is
// silently dropped; a later synchronous call proves no return was sent.
func TestBasicNonMandatoryUnroutableDropped(t *testing.T) {
	t.Parallel()
	_, ch := dialChannel(t)
	returns := ch.NotifyReturn(make(chan amqp.Return, 1))
	publish(t, ch, "amq.direct", uniqueName(t, "key"), amqp.Publishing{Body: []byte("x")})
	if _, err := ch.QueueDeclare("", false, true, true, false, nil); err != nil {
		t.Fatal(err)
	}
	expectNoReturn(t, returns)
}

// TestBasicImmediateNotImplemented: RabbitMQ 3.x dropped immediate; it closes
// the connection with 540 (class basic, method publish).
func TestBasicImmediateNotImplemented(t *testing.T) {
	t.Parallel()
	conn, ch := dialChannel(t)
	q := declareQueue(t, ch, nil)
	closes := notifyConnClose(conn)
	if err := ch.Publish("", q, false, true, amqp.Publishing{Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	expectClosed(t, closes, 540, "NOT_IMPLEMENTED - immediate=true")
}

func TestBasicPublishMissingExchange(t *testing.T) {
	t.Parallel()
	_, ch := dialChannel(t)
	closes := notifyChannelClose(ch)
	name := uniqueName(t, "nox")
	publish(t, ch, name, "k", amqp.Publishing{Body: []byte("x")})
	expectClosed(t, closes, 404, "NOT_FOUND - no exchange '"+name+"' in vhost '/'")
}

// TestBasicPublishAmqDefaultNotFound: "amq.default" is only a display name of
// the default exchange in RabbitMQ; publishing to it by that name is a 404.
func TestBasicPublishAmqDefaultNotFound(t *testing.T) {
	t.Parallel()
	_, ch := dialChannel(t)
	q := declareQueue(t, ch, nil)
	closes := notifyChannelClose(ch)
	publish(t, ch, "amq.default", q, amqp.Publishing{Body: []byte("x")})
	expectClosed(t, closes, 404, "NOT_FOUND - no exchange 'amq.default' in vhost '/'")
}

// TestBasicPublishOrderPreserved: one publisher, one queue, many messages: the
// consumer sees exactly the publish order.
func TestBasicPublishOrderPreserved(t *testing.T) {
	t.Parallel()
	_, ch := dialChannel(t)
	q := declareQueue(t, ch, nil)
	want := numbered("m", 3000)
	publishBodies(t, ch, q, want...)
	ds, err := ch.Consume(q, "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	equalStrings(t, "consumed order", bodies(nextN(t, ds, len(want))), want)
}

// TestBasicPublishOrderThroughExchange: the same through a fanout exchange to
// two queues; each queue keeps the publish order.
func TestBasicPublishOrderThroughExchange(t *testing.T) {
	t.Parallel()
	conn, ch := dialChannel(t)
	ex := uniqueName(t, "fan")
	if err := ch.ExchangeDeclare(ex, "fanout", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	cleanupExchange(t, ex)
	q1, q2 := declareQueue(t, ch, nil), declareQueue(t, ch, nil)
	for _, q := range []string{q1, q2} {
		if err := ch.QueueBind(q, "", ex, false, nil); err != nil {
			t.Fatal(err)
		}
	}
	want := numbered("m", 500)
	for _, b := range want {
		publish(t, ch, ex, "ignored", amqp.Publishing{Body: []byte(b)})
	}
	waitReady(t, conn, q2, len(want))
	for _, q := range []string{q1, q2} {
		ds, err := ch.Consume(q, "", true, false, false, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		equalStrings(t, q, bodies(nextN(t, ds, len(want))), want)
	}
}
