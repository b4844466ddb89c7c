package wire

import (
	"bytes"
	"strings"
	"testing"

	"github.com/warren-mq/warren/internal/testbroker"
)

// TestWireMethodOnUnopenedChannel: any method but channel.open on a channel
// that was never opened is a connection error, reported against the method.
func TestWireMethodOnUnopenedChannel(t *testing.T) {
	t.Parallel()
	c := ready(t)
	c.writeMethod(5, queueDeclare("", 0, table()))
	c.expectConnectionClose(closeReason{504, "CHANNEL_ERROR - expected 'channel.open'", 50, 10})
}

// TestWireChannelOpenTwice: opening an open channel again.
func TestWireChannelOpenTwice(t *testing.T) {
	t.Parallel()
	c := ready(t)
	c.writeMethod(1, methodBytes(20, 10, shortstr("")))
	c.expectConnectionClose(closeReason{504, "CHANNEL_ERROR - second 'channel.open' seen", 20, 10})
}

// TestWireChannelZeroMisuse: channel 0 only carries connection methods; the
// text names the connection state.
func TestWireChannelZeroMisuse(t *testing.T) {
	t.Parallel()
	for name, m := range map[string][]byte{
		"channel.open":  methodBytes(20, 10, shortstr("")),
		"queue.declare": queueDeclare("", 0, table()),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := ready(t)
			c.writeMethod(0, m)
			class, id := uint16(m[0])<<8|uint16(m[1]), uint16(m[2])<<8|uint16(m[3])
			c.expectConnectionClose(closeReason{504, "CHANNEL_ERROR - unexpected method in connection state running", class, id})
		})
	}
}

// TestWireConnectionMethodOnChannel: a connection method on channel 1, or a
// channel.close-ok nobody asked for, is "unimplemented" as a channel method.
func TestWireConnectionMethodOnChannel(t *testing.T) {
	t.Parallel()
	for name, m := range map[string][]byte{
		"connection.open":  connectionOpen("/"),
		"channel.close-ok": methodBytes(20, 41),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := ready(t)
			c.writeMethod(1, m)
			class, id := uint16(m[0])<<8|uint16(m[1]), uint16(m[2])<<8|uint16(m[3])
			c.expectConnectionClose(closeReason{503, "COMMAND_INVALID - unimplemented method", class, id})
		})
	}
}

// TestWireChannelNumbersAboveChannelMax: RabbitMQ limits how many channels
// are open at once, not the channel number: with channel_max 2047, channels
// 2048 and 65535 open fine.
func TestWireChannelNumbersAboveChannelMax(t *testing.T) {
	t.Parallel()
	c := ready(t)
	c.openChannel(2047)
	c.openChannel(2048)
	c.openChannel(65535)
	c.closeCleanly()
}

// TestWireChannelCountLimit: opening one channel more than channel_max
// allows is a connection error 530 reported with class and method 0.
func TestWireChannelCountLimit(t *testing.T) {
	t.Parallel()
	c := dialRaw(t)
	c.handshake(handshakeOpts{channelMax: 2, frameMax: 131072})
	c.openChannel(1)
	c.openChannel(65535)
	c.writeMethod(7, methodBytes(20, 10, shortstr("")))
	c.expectConnectionClose(closeReason{530, "NOT_ALLOWED - number of channels opened (2) has reached the negotiated channel_max (2)", 0, 0})
}

// TestWireChannelCountFreedByClose: a closed channel no longer counts, and
// its number can be opened again.
func TestWireChannelCountFreedByClose(t *testing.T) {
	t.Parallel()
	c := dialRaw(t)
	c.handshake(handshakeOpts{channelMax: 1, frameMax: 131072})
	c.openChannel(1)
	c.writeMethod(1, methodBytes(20, 40, u16(200), shortstr(""), u16(0), u16(0)))
	c.expectMethod(1, 20, 41)
	c.openChannel(2)
	c.writeMethod(2, methodBytes(20, 40, u16(200), shortstr(""), u16(0), u16(0)))
	c.expectMethod(2, 20, 41)
	c.openChannel(1)
}

// TestWireChannelErrorDropsMethodsUntilCloseOk: after the server's
// channel.close (404 on a missing queue), methods on that channel are
// ignored until the client's close-ok; then the channel can be reopened.
// (The mirror case, a method the client sends after its own channel.close,
// is racy in RabbitMQ: ignored or 504 "expected 'channel.open'" depending on
// timing, so it is not pinned down here.)
func TestWireChannelErrorDropsMethodsUntilCloseOk(t *testing.T) {
	t.Parallel()
	c := ready(t)
	c.writeMethod(1, basicGet("no-such-queue-wire-conformance", true))
	args := c.expectMethod(1, 20, 40)
	got := closeReason{args.short(), args.shortstr(), args.short(), args.short()}
	want := closeReason{404, "NOT_FOUND - no queue 'no-such-queue-wire-conformance' in vhost '/'", 60, 70}
	if got != want {
		t.Fatalf("channel.close %v, want %v", got, want)
	}
	c.writeMethod(1, queueDeclare("", declareExclusive, table()))
	c.writeMethod(1, methodBytes(20, 41))
	c.openChannel(2)
	c.openChannel(1)
}

// TestWireArgumentsTruncated: method arguments that end early: 501 with the
// argument octets (after the class and method ids) in Erlang binary syntax.
func TestWireArgumentsTruncated(t *testing.T) {
	t.Parallel()
	c := ready(t)
	c.writeMethod(1, methodBytes(50, 10, u16(0), shortstr("abc")))
	c.expectConnectionClose(closeReason{501, "FRAME_ERROR - cannot decode <<0,0,3,97,98,99>>", 50, 10})
}

// TestWireArgumentsTrailing: extra octets after the last argument are just
// as fatal.
func TestWireArgumentsTrailing(t *testing.T) {
	t.Parallel()
	c := ready(t)
	c.writeMethod(1, methodBytes(20, 40, u16(200), shortstr(""), u16(0), u16(0), u8(9)))
	c.expectConnectionClose(closeReason{501, "FRAME_ERROR - cannot decode <<0,200,0,0,0,0,0,9>>", 20, 40})
}

// TestWireTableLengthOverrun: a field table whose length runs past the end
// of the frame.
func TestWireTableLengthOverrun(t *testing.T) {
	t.Parallel()
	c := ready(t)
	c.writeMethod(1, queueDeclare("", 0, cat(u32(100), []byte("\x03abcS"))))
	c.expectConnectionClose(closeReason{501, "FRAME_ERROR - cannot decode <<0,0,0,0,0,0,0,100,3,97,98,99,83>>", 50, 10})
}

// TestWireCrashesReader: three inputs on which RabbitMQ 3.10's connection
// process crashes (logged as a "crasher" with function_clause in
// rabbit_binary_parser:parse_table, or exit {unknown_method_id,{C,M}}): it
// writes nothing at all and drops the socket. A field table entry with an
// unknown type octet, an unknown class, an unknown method of a known class.
func TestWireCrashesReader(t *testing.T) {
	t.Parallel()
	// RabbitMQ's reader crashes on these: it writes nothing and drops the socket.
	// Warren deliberately answers with a connection.close that says what was wrong.
	for name, tc := range map[string]struct {
		send   func(c *rawConn)
		warren closeReason
	}{
		"unknown field type": {func(c *rawConn) {
			c.writeMethod(1, queueDeclare("", 0, table(field("abc", 'Z', u32(0)), u8(0))))
		}, closeReason{501, "FRAME_ERROR - cannot decode <<0,0,0,0,0,0,0,10,3,97,98,99,90,0,0,0,0,0>>", 50, 10}},
		"unknown class":             {func(c *rawConn) { c.writeMethod(1, methodBytes(99, 10)) }, closeReason{540, "NOT_IMPLEMENTED - {unknown_method_id,{99,10}}", 99, 10}},
		"unknown method":            {func(c *rawConn) { c.writeMethod(1, methodBytes(60, 99)) }, closeReason{540, "NOT_IMPLEMENTED - {unknown_method_id,{60,99}}", 60, 99}},
		"unknown connection method": {func(c *rawConn) { c.writeMethod(0, methodBytes(10, 99)) }, closeReason{540, "NOT_IMPLEMENTED - {unknown_method_id,{10,99}}", 10, 99}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := ready(t)
			tc.send(c)
			if !testbroker.External() {
				c.expectConnectionClose(tc.warren)
				return
			}
			if got := c.readAll(waitTimeout); len(got) != 0 {
				t.Fatalf("server wrote % x, want nothing before the socket closes", got)
			}
		})
	}
}

// TestWireServerGeneratedNames: an empty queue name gets "amq.gen-" and an
// empty consumer tag "amq.ctag-", each followed (in RabbitMQ) by 22
// URL-safe base64 characters.
func TestWireServerGeneratedNames(t *testing.T) {
	t.Parallel()
	c := ready(t)
	q := c.declareTempQueue(1)
	c.writeMethod(1, basicConsume(q, "", 2))
	tag := c.expectMethod(1, 60, 21).shortstr()
	for _, name := range []struct{ got, prefix string }{{q, "amq.gen-"}, {tag, "amq.ctag-"}} {
		if !strings.HasPrefix(name.got, name.prefix) || len(name.got) <= len(name.prefix) {
			t.Errorf("server-generated %q, want prefix %q and a suffix", name.got, name.prefix)
		}
	}
	// A second consumer gets a different tag.
	c.writeMethod(1, basicConsume(q, "", 2))
	if other := c.expectMethod(1, 60, 21).shortstr(); other == tag || !strings.HasPrefix(other, "amq.ctag-") {
		t.Errorf("second tag %q (first %q)", other, tag)
	}
}

// TestWireDeliverArguments: basic.deliver carries consumer tag, delivery
// tag, redelivered, exchange and routing key in that order, then the content
// header and body.
func TestWireDeliverArguments(t *testing.T) {
	t.Parallel()
	c := ready(t)
	q := c.declareTempQueue(1)
	c.writeMethod(1, basicConsume(q, "wire-ctag", 0))
	c.expectMethod(1, 60, 21)
	c.publish(1, "", q, []byte("hello"))
	d := c.expectMethod(1, 60, 60)
	ctag, tag, redelivered, exchange, key := d.shortstr(), d.longlong(), d.octet(), d.shortstr(), d.shortstr()
	if ctag != "wire-ctag" || tag != 1 || redelivered != 0 || exchange != "" || key != q || len(d.b) != 0 {
		t.Fatalf("deliver %q %d %d %q %q (+%d octets)", ctag, tag, redelivered, exchange, key, len(d.b))
	}
	h := c.nextFrame()
	if h.typ != frameHeader || h.channel != 1 || !bytes.Equal(h.payload, contentHeader(60, 5, 0, nil)) {
		t.Fatalf("content header type %d: % x", h.typ, h.payload)
	}
	if b := c.nextFrame(); b.typ != frameBody || string(b.payload) != "hello" {
		t.Fatalf("body frame type %d %q", b.typ, b.payload)
	}
}

// TestWireContentHeaderPreserved: the broker hands the content header back
// octet for octet: property flags, property order, and a header table with
// a duplicate key and its original entry order.
func TestWireContentHeaderPreserved(t *testing.T) {
	t.Parallel()
	c := ready(t)
	q := c.declareTempQueue(1)
	// content-type, headers, delivery-mode, correlation-id.
	flags := uint16(0x8000 | 0x2000 | 0x1000 | 0x0400)
	props := cat(
		shortstr("text/plain"),
		table(
			field("zeta", 'S', longstr("last-first")),
			field("dup", 'I', u32(1)),
			field("dup", 'I', u32(2)),
			field("arr", 'A', cat(u32(8), []byte{'b', 0xff}, []byte{'s', 0, 7}, []byte{'V'}, []byte{'t', 0})),
			field("dec", 'D', cat(u8(3), u32(12345))),
		),
		u8(2),
		shortstr("corr"),
	)
	body := []byte("abc")
	c.publishWith(1, "", q, flags, props, body)
	c.writeMethod(1, basicGet(q, true))
	get := c.expectMethod(1, 60, 71)
	if tag, redelivered, exchange, key, count := get.longlong(), get.octet(), get.shortstr(), get.shortstr(), get.long(); tag != 1 ||
		redelivered != 0 || exchange != "" || key != q || count != 0 {
		t.Fatalf("get-ok %d %d %q %q %d", tag, redelivered, exchange, key, count)
	}
	want := contentHeader(60, uint64(len(body)), flags, props)
	if h := c.nextFrame(); h.typ != frameHeader || !bytes.Equal(h.payload, want) {
		t.Fatalf("content header changed:\n got % x\nwant % x", h.payload, want)
	}
	if b := c.nextFrame(); string(b.payload) != "abc" {
		t.Fatalf("body %q", b.payload)
	}
}

// TestWireGetEmpty: basic.get-empty carries one empty short string (the
// reserved cluster-id).
func TestWireGetEmpty(t *testing.T) {
	t.Parallel()
	c := ready(t)
	q := c.declareTempQueue(1)
	c.writeMethod(1, basicGet(q, false))
	if args := c.expectMethod(1, 60, 72); args.shortstr() != "" || len(args.b) != 0 {
		t.Fatal("get-empty with unexpected arguments")
	}
}

// TestWireConfirmAcksCoverEveryTag: in confirm mode the broker may fold acks
// with multiple=true, but together they cover tags 1..n exactly once each,
// in increasing order.
func TestWireConfirmAcksCoverEveryTag(t *testing.T) {
	t.Parallel()
	c := ready(t)
	q := c.declareTempQueue(1)
	c.writeMethod(1, methodBytes(85, 10, u8(0)))
	c.expectMethod(1, 85, 11)
	const n = 200
	var batch []byte
	for range n {
		batch = append(batch, encodeFrame(frameMethod, 1, basicPublish("", q, 0))...)
		batch = append(batch, encodeFrame(frameHeader, 1, contentHeader(60, 1, 0, nil))...)
		batch = append(batch, encodeFrame(frameBody, 1, []byte("x"))...)
	}
	c.write(batch)
	var confirmed uint64
	for confirmed < n {
		args := c.expectMethod(1, 60, 80)
		tag, multiple := args.longlong(), args.octet()
		switch {
		case multiple == 0 && tag == confirmed+1, multiple == 1 && tag > confirmed:
			confirmed = tag
		default:
			t.Fatalf("basic.ack tag %d multiple %d after %d confirmed", tag, multiple, confirmed)
		}
	}
	if confirmed != n {
		t.Fatalf("confirmed up to %d, want %d", confirmed, n)
	}
}

// TestWireContentHeaderBadTable: a header table whose array length is wrong
// is not caught by the frame parser but when the broker decodes the
// properties; RabbitMQ's channel process crashes and the connection is
// closed with a bare 541 INTERNAL_ERROR for class and method 0.
func TestWireContentHeaderBadTable(t *testing.T) {
	t.Parallel()
	c := ready(t)
	q := c.declareTempQueue(1)
	props := table(field("arr", 'A', cat(u32(10), []byte{'t', 0})))
	c.publishWith(1, "", q, 0x2000, props, []byte("x"))
	c.expectConnectionClose(closeReason{541, "INTERNAL_ERROR", 0, 0})
}
