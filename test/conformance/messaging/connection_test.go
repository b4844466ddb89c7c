package messaging

import (
	"net"
	"sort"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warren-mq/warren/internal/testbroker"
)

// openRaw runs the handshake with amqp.Open and a zero Config (apart from the
// login), so every tuning value is exactly what the server proposed:
// amqp.DialConfig would fill in its own defaults first.
func openRaw(t *testing.T) *amqp.Connection {
	t.Helper()
	u := brokerURL(t)
	user, pass := credentials(t)
	nc, err := net.DialTimeout("tcp", u.Host, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := amqp.Open(nc, amqp.Config{
		SASL:  []amqp.Authentication{&amqp.PlainAuth{Username: user, Password: pass}},
		Vhost: "/",
	})
	if err != nil {
		_ = nc.Close()
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// TestConnectionServerProperties: the capabilities table RabbitMQ 3.10 sends,
// all true, no more and no fewer. RabbitMQ also sends product "RabbitMQ",
// version "3.10.8", platform "Erlang/OTP 25.2.3", cluster_name "rabbit@vm",
// copyright and information strings; Warren names itself, so only their
// presence as strings is checked.
func TestConnectionServerProperties(t *testing.T) {
	t.Parallel()
	conn := dial(t)
	if conn.Major != 0 || conn.Minor != 9 {
		t.Errorf("version %d-%d, want 0-9", conn.Major, conn.Minor)
	}
	if len(conn.Locales) != 1 || conn.Locales[0] != "en_US" {
		t.Errorf("locales %q, want [en_US]", conn.Locales)
	}
	for _, key := range []string{"product", "version", "platform", "copyright", "information", "cluster_name"} {
		if s, ok := conn.Properties[key].(string); !ok || s == "" {
			t.Errorf("server property %q = %#v, want a non-empty long string", key, conn.Properties[key])
		}
	}
	caps, ok := conn.Properties["capabilities"].(amqp.Table)
	if !ok {
		t.Fatalf("capabilities %#v, want a table", conn.Properties["capabilities"])
	}
	want := []string{
		"authentication_failure_close", "basic.nack", "connection.blocked", "consumer_cancel_notify",
		"consumer_priorities", "direct_reply_to", "exchange_exchange_bindings", "per_consumer_qos",
		"publisher_confirms",
	}
	var got []string
	for k, v := range caps {
		got = append(got, k)
		if v != true {
			t.Errorf("capability %q = %#v, want true", k, v)
		}
	}
	sort.Strings(got)
	equalStrings(t, "capabilities", got, want)
}

// TestConnectionTuneDefaults: what the server proposes in connection.tune
// when the client leaves everything open: channel_max 2047, frame_max
// 131072, heartbeat 60 s.
func TestConnectionTuneDefaults(t *testing.T) {
	t.Parallel()
	conn := openRaw(t)
	if conn.Config.ChannelMax != 2047 || conn.Config.FrameSize != 131072 || conn.Config.Heartbeat != 60*time.Second {
		t.Fatalf("tuned channel_max %d frame_max %d heartbeat %v; want 2047 131072 60s",
			conn.Config.ChannelMax, conn.Config.FrameSize, conn.Config.Heartbeat)
	}
	openChannel(t, conn)
}

// TestConnectionTuneClientLower: lower client values win.
func TestConnectionTuneClientLower(t *testing.T) {
	t.Parallel()
	conn, err := amqp.DialConfig(urlOf(t), amqp.Config{ChannelMax: 3, FrameSize: 8192, Heartbeat: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	if conn.Config.ChannelMax != 3 || conn.Config.FrameSize != 8192 || conn.Config.Heartbeat != 5*time.Second {
		t.Fatalf("tuned channel_max %d frame_max %d heartbeat %v; want 3 8192 5s",
			conn.Config.ChannelMax, conn.Config.FrameSize, conn.Config.Heartbeat)
	}
	for range 3 {
		openChannel(t, conn)
	}
	if _, err := conn.Channel(); err != amqp.ErrChannelMax {
		t.Fatalf("fourth channel: %v, want the client's ErrChannelMax", err)
	}
}

// TestConnectionHeartbeatKeepsIdleConnection: with a 1 s heartbeat both sides
// exchange heartbeats, so an idle connection stays up for several intervals.
// The positive check at the end is a round trip on the same connection.
func TestConnectionHeartbeatKeepsIdleConnection(t *testing.T) {
	if testing.Short() {
		t.Skip("idles for 3 s")
	}
	t.Parallel()
	conn, err := amqp.DialConfig(urlOf(t), amqp.Config{Heartbeat: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	closes := notifyConnClose(conn)
	select {
	case err := <-closes:
		t.Fatalf("idle connection with heartbeats closed: %v", err)
	case <-time.After(3 * time.Second):
	}
	if _, err := openChannel(t, conn).QueueDeclare("", false, true, true, false, nil); err != nil {
		t.Fatalf("round trip after idling: %v", err)
	}
}

// TestConnectionCloseByClient: a client close is answered with close-ok;
// amqp091-go reports a clean close (nil error, channel closed).
func TestConnectionCloseByClient(t *testing.T) {
	t.Parallel()
	conn, ch := dialChannel(t)
	q := declareQueue(t, ch, nil)
	closes := notifyConnClose(conn)
	consume(t, ch, q, "")
	if err := conn.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err, ok := <-closes; ok || err != nil {
		t.Fatalf("close notification %v, want a clean close", err)
	}
	// The consumer went with the connection.
	other := dial(t)
	waitConsumers(t, other, q, 0)
}

// waitConsumers waits until queue has n consumers.
func waitConsumers(t *testing.T, conn *amqp.Connection, queue string, n int) {
	t.Helper()
	testbroker.CheckFor(t, waitTimeout, func() bool {
		_, c := queueCounts(t, conn, queue)
		return c == n
	})
}

// TestConnectionChannelReuseAfterClose: a closed channel number can be
// opened again (amqp091-go reuses the lowest free id).
func TestConnectionChannelReuseAfterClose(t *testing.T) {
	t.Parallel()
	conn := dial(t)
	ch := openChannel(t, conn)
	closes := notifyChannelClose(ch)
	if err := ch.TxCommit(); err == nil { // 406, closes the channel
		t.Fatal("tx.commit without select succeeded")
	}
	<-closes
	again := openChannel(t, conn)
	if _, err := again.QueueDeclare("", false, true, true, false, nil); err != nil {
		t.Fatalf("reopened channel: %v", err)
	}
}
