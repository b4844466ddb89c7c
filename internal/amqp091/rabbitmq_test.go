package amqp091

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

// rabbitConn is a minimal AMQP client built only from this package's codec, used
// to hold the codec against a real RabbitMQ.
type rabbitConn struct {
	t    *testing.T
	conn net.Conn
	r    *FrameReader
}

func (c *rabbitConn) send(b []byte) {
	c.t.Helper()
	if _, err := c.conn.Write(b); err != nil {
		c.t.Fatal(err)
	}
}

func (c *rabbitConn) method(channel uint16, m Method) { c.send(AppendMethodFrame(nil, channel, m)) }

func (c *rabbitConn) frame() Frame {
	c.t.Helper()
	f, err := c.r.ReadFrame()
	if err != nil {
		c.t.Fatal(err)
	}
	return f
}

func expect[M Method](c *rabbitConn, channel uint16) M {
	c.t.Helper()
	f := c.frame()
	if f.Type != FrameMethod || f.Channel != channel {
		c.t.Fatalf("got frame type %d on channel %d, want a method on %d", f.Type, f.Channel, channel)
	}
	m, err := DecodeMethod(f.Payload)
	if err != nil {
		c.t.Fatal(err)
	}
	want, ok := m.(M)
	if !ok {
		c.t.Fatalf("got %s %+v, want %T", m.Name(), m, want)
	}
	return want
}

// TestCodecRabbitMQInterop talks to the RabbitMQ named by WARREN_TEST_RABBITMQ
// (default 127.0.0.1:5672, guest/guest) with nothing but this codec: handshake,
// a queue with arguments, a confirmed publish whose body is split at a 4096-byte
// frame_max, basic.get of it back and a channel error. It is skipped when no
// broker listens. The queue is exclusive, so RabbitMQ removes it on close.
func TestCodecRabbitMQInterop(t *testing.T) {
	addr := os.Getenv("WARREN_TEST_RABBITMQ")
	if addr == "" {
		addr = "127.0.0.1:5672"
	}
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Skipf("no RabbitMQ at %s: %v", addr, err)
	}
	defer conn.Close()
	// A deadline so a protocol mistake fails the test instead of hanging it.
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	c := &rabbitConn{t: t, conn: conn, r: NewFrameReader(conn, FrameMinSize)}

	c.send(ProtocolHeader)
	start := expect[*ConnectionStart](c, 0)
	caps, _ := start.ServerProperties["capabilities"].(Table)
	if start.VersionMajor != 0 || start.VersionMinor != 9 || caps["publisher_confirms"] != true ||
		!strings.Contains(start.Mechanisms, "PLAIN") {
		t.Fatalf("connection.start: %+v", start)
	}
	c.method(0, &ConnectionStartOk{
		ClientProperties: Table{"product": "warren-codec-test", "capabilities": Table{"consumer_cancel_notify": true}},
		Mechanism:        "PLAIN", Response: "\x00guest\x00guest", Locale: "en_US",
	})
	tune := expect[*ConnectionTune](c, 0)
	c.method(0, &ConnectionTuneOk{ChannelMax: tune.ChannelMax, FrameMax: FrameMinSize, Heartbeat: 0})
	c.method(0, &ConnectionOpen{VirtualHost: "/"})
	expect[*ConnectionOpenOk](c, 0)

	c.method(1, &ChannelOpen{})
	expect[*ChannelOpenOk](c, 1)
	queue := fmt.Sprintf("warren-codec-test-%d", os.Getpid())
	c.method(1, &QueueDeclare{Queue: queue, Exclusive: true, Arguments: Table{
		"x-message-ttl": int32(600000), "x-max-length": int64(10), "x-queue-mode": "default",
	}})
	if ok := expect[*QueueDeclareOk](c, 1); ok.Queue != queue {
		t.Fatalf("declare-ok %+v", ok)
	}
	c.method(1, &ConfirmSelect{})
	expect[*ConfirmSelectOk](c, 1)

	props := Properties{
		ContentType: "application/octet-stream", Headers: Table{"n": int32(1), "s": "x", "nested": Table{"a": []any{true}}},
		DeliveryMode: 2, Priority: 1, CorrelationID: "corr", ReplyTo: "replies", Expiration: "600000",
		MessageID: "mid", Timestamp: time.Unix(1700000000, 0).UTC(), Type: "t", UserID: "guest", AppID: "app",
	}
	rawProps := props.Append(nil)
	body := make([]byte, 10000)
	for i := range body {
		body[i] = byte(i % 251)
	}
	var out []byte
	out = AppendMethodFrame(out, 1, &BasicPublish{RoutingKey: queue, Mandatory: true})
	out = AppendHeaderFrame(out, 1, ClassBasic, uint64(len(body)), rawProps)
	out = AppendBodyFrames(out, 1, body, FrameMinSize)
	c.send(out)
	if ack := expect[*BasicAck](c, 1); ack.DeliveryTag != 1 || ack.Multiple {
		t.Fatalf("confirm %+v", ack)
	}

	c.method(1, &BasicGet{Queue: queue, NoAck: true})
	if ok := expect[*BasicGetOk](c, 1); ok.RoutingKey != queue || ok.Exchange != "" || ok.Redelivered {
		t.Fatalf("get-ok %+v", ok)
	}
	hf := c.frame()
	class, size, gotProps, err := ParseContentHeader(hf.Payload)
	if err != nil || hf.Type != FrameHeader || class != ClassBasic || size != uint64(len(body)) {
		t.Fatalf("header frame: %+v %v", hf, err)
	}
	var p Properties
	if err := DecodeProperties(gotProps, &p); err != nil || !reflect.DeepEqual(p, props) {
		t.Fatalf("properties back from RabbitMQ: %v\n got %#v\nwant %#v", err, p, props)
	}
	var got []byte
	for len(got) < len(body) {
		f := c.frame()
		if f.Type != FrameBody || len(f.Payload) > FrameMinSize-8 {
			t.Fatalf("body frame type %d, %d bytes", f.Type, len(f.Payload))
		}
		got = append(got, f.Payload...)
	}
	if !bytes.Equal(got, body) {
		t.Fatal("body differs")
	}

	c.method(2, &ChannelOpen{})
	expect[*ChannelOpenOk](c, 2)
	c.method(2, &QueueDeclare{Queue: queue + "-missing", Passive: true})
	closed := expect[*ChannelClose](c, 2)
	want := NewError(NotFound, "no queue '%s' in vhost '/'", queue+"-missing")
	if closed.ReplyCode != want.Code || closed.ReplyText != want.Text || closed.FailingClassID != ClassQueue ||
		closed.FailingMethodID != MethodQueueDeclare {
		t.Fatalf("channel.close %+v, want %+v", closed, want)
	}
	c.method(2, &ChannelCloseOk{})

	c.method(0, &ConnectionClose{ReplyCode: ReplySuccess, ReplyText: "bye"})
	expect[*ConnectionCloseOk](c, 0)
}
