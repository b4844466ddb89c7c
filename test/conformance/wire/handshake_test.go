package wire

import (
	"bytes"
	"testing"
	"time"
)

// TestWireProtocolHeaderRejected: for any 8 octets that are not a protocol
// RabbitMQ speaks, it writes its own 0-9-1 header and closes the socket at
// once. That includes AMQP 1.0 ("AMQP\x00\x01\x00\x00", "AMQP\x03...") when
// the 1.0 plugin is off, 0-8 spelled the 0-9-1 way, a lower-case "amqp", and
// HTTP.
func TestWireProtocolHeaderRejected(t *testing.T) {
	t.Parallel()
	for _, h := range []string{
		"AMQP\x00\x00\x09\x00",
		"AMQP\x00\x00\x08\x00",
		"AMQP\x00\x01\x00\x00",
		"AMQP\x03\x01\x00\x00",
		"amqp\x00\x00\x09\x01",
		"GET / HTTP/1.1\r\nHost: warren\r\n\r\n",
	} {
		t.Run(h, func(t *testing.T) {
			t.Parallel()
			c := dialRaw(t)
			c.write([]byte(h))
			if got := c.readAll(waitTimeout); string(got) != protocolHeader {
				t.Fatalf("server wrote %q, want %q and close", got, protocolHeader)
			}
		})
	}
}

// TestWireProtocolHeaderLegacy09: RabbitMQ also accepts the 0-9 header
// "AMQP\x01\x01\x00\x09" and then talks 0-9-1 (connection.start says 0-9).
// It likewise accepts "AMQP\x01\x01\x08\x00" and "AMQP\x01\x01\x09\x01" as
// 0-8 (connection.start says 8-0, capability table empty); Warren speaks
// 0-9-1 only, so that is recorded here but not asserted.
func TestWireProtocolHeaderLegacy09(t *testing.T) {
	t.Parallel()
	c := dialRaw(t)
	c.write([]byte("AMQP\x01\x01\x00\x09"))
	args := c.expectMethod(0, 10, 10)
	if major, minor := args.octet(), args.octet(); major != 0 || minor != 9 {
		t.Fatalf("connection.start version %d-%d, want 0-9", major, minor)
	}
}

// TestWireStart: connection.start carries version 0-9, the server properties
// table, mechanisms "AMQPLAIN PLAIN" (in that order, space separated) and
// locales "en_US"; connection.tune proposes channel_max 2047, frame_max
// 131072 and heartbeat 60.
func TestWireStart(t *testing.T) {
	t.Parallel()
	c := dialRaw(t)
	args := c.start()
	major, minor := args.octet(), args.octet()
	props := args.table()
	mechanisms, locales := args.longstr(), args.longstr()
	if major != 0 || minor != 9 || len(props) == 0 || mechanisms != "AMQPLAIN PLAIN" || locales != "en_US" || args.overrun || len(args.b) != 0 {
		t.Fatalf("connection.start %d-%d, %d octets of properties, mechanisms %q, locales %q", major, minor, len(props), mechanisms, locales)
	}
	for _, want := range []string{"publisher_confirms", "consumer_cancel_notify", "authentication_failure_close", "direct_reply_to"} {
		if !bytes.Contains(props, append(shortstr(want), 't', 1)) {
			t.Errorf("server properties lack capability %s=true", want)
		}
	}
	c.writeMethod(0, startOk("PLAIN", "\x00"+c.user+"\x00"+c.pass, true))
	tune := c.expectMethod(0, 10, 30)
	if chMax, frameMax, hb := tune.short(), tune.long(), tune.short(); chMax != 2047 || frameMax != 131072 || hb != 60 {
		t.Fatalf("connection.tune %d %d %d, want 2047 131072 60", chMax, frameMax, hb)
	}
}

// TestWireHandshakeOpenOk: connection.open-ok carries one empty short string
// (the reserved known-hosts field).
func TestWireHandshakeOpenOk(t *testing.T) {
	t.Parallel()
	c := dialRaw(t)
	c.login(c.user, c.pass)
	c.writeMethod(0, tuneOk(2047, 131072, 0))
	c.writeMethod(0, connectionOpen("/"))
	args := c.expectMethod(0, 10, 41)
	if s := args.shortstr(); s != "" || len(args.b) != 0 {
		t.Fatalf("open-ok reserved %q with %d trailing octets", s, len(args.b))
	}
	c.closeCleanly()
}

// TestWireTuneOkOutOfRange: RabbitMQ refuses a tune-ok outside what it
// proposed, including 0 ("no limit") for channel_max and frame_max, and a
// frame_max below the 4096 minimum. Errors before connection.open are never
// announced with connection.close: the server logs "failed to negotiate
// connection parameters: negotiated frame_max = 0 is higher than the maximum
// allowed value (131072)" and the like, waits about 3 s, and closes the
// socket without writing anything.
func TestWireTuneOkOutOfRange(t *testing.T) {
	t.Parallel()
	for name, o := range map[string]handshakeOpts{
		"channel_max 0":      {0, 131072, 0},
		"channel_max 2048":   {2048, 131072, 0},
		"frame_max 0":        {2047, 0, 0},
		"frame_max 4095":     {2047, 4095, 0},
		"frame_max 131073":   {2047, 131073, 0},
		"frame_max 200000":   {2047, 200000, 0},
		"both over and zero": {0, 0, 0},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := dialRaw(t)
			c.login(c.user, c.pass)
			c.writeMethod(0, tuneOk(o.channelMax, o.frameMax, o.heartbeat))
			c.writeMethod(0, connectionOpen("/"))
			c.expectEOF()
		})
	}
}

// TestWireTuneOkLowerAccepted: lower values than proposed are fine,
// including the 4096 minimum frame size and one channel.
func TestWireTuneOkLowerAccepted(t *testing.T) {
	t.Parallel()
	c := dialRaw(t)
	c.handshake(handshakeOpts{channelMax: 1, frameMax: 4096, heartbeat: 0})
	c.openChannel(1)
	c.closeCleanly()
}

// TestWireSmallFrameMaxHonoured: with frame_max 4096 the server splits a
// large body into body frames of at most 4088 payload octets.
func TestWireSmallFrameMaxHonoured(t *testing.T) {
	t.Parallel()
	c := dialRaw(t)
	c.handshake(handshakeOpts{channelMax: 10, frameMax: 4096})
	c.openChannel(1)
	q := c.declareTempQueue(1)
	body := bytes.Repeat([]byte("warren!"), 2000) // 14000 octets
	c.publish(1, "", q, body)
	c.writeMethod(1, basicGet(q, true))
	c.expectMethod(1, 60, 71)
	if f := c.nextFrame(); f.typ != frameHeader {
		t.Fatalf("frame type %d after get-ok, want a content header", f.typ)
	}
	var got []byte
	for _, want := range []int{4088, 4088, 4088, 14000 - 3*4088} {
		f := c.nextFrame()
		if f.typ != frameBody || len(f.payload) != want {
			t.Fatalf("frame type %d with %d octets, want a body frame of %d", f.typ, len(f.payload), want)
		}
		got = append(got, f.payload...)
	}
	if !bytes.Equal(got, body) {
		t.Fatal("body changed")
	}
}

// TestWireAuthFailureClose: a client that advertises
// authentication_failure_close gets connection.close 403 naming the
// mechanism, with class and method 0, right away.
func TestWireAuthFailureClose(t *testing.T) {
	t.Parallel()
	t.Run("PLAIN", func(t *testing.T) {
		t.Parallel()
		c := dialRaw(t)
		c.start()
		c.writeMethod(0, startOk("PLAIN", "\x00"+c.user+"\x00wrong-password", true))
		c.expectConnectionClose(closeReason{403, "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. For details see the broker logfile.", 0, 0})
	})
	t.Run("AMQPLAIN", func(t *testing.T) {
		t.Parallel()
		c := dialRaw(t)
		c.start()
		resp := cat(field("LOGIN", 'S', longstr(c.user)), field("PASSWORD", 'S', longstr("wrong-password")))
		c.writeMethod(0, startOk("AMQPLAIN", string(resp), true))
		c.expectConnectionClose(closeReason{403, "ACCESS_REFUSED - Login was refused using authentication mechanism AMQPLAIN. For details see the broker logfile.", 0, 0})
	})
	t.Run("unknown user", func(t *testing.T) {
		t.Parallel()
		c := dialRaw(t)
		c.start()
		c.writeMethod(0, startOk("PLAIN", "\x00no-such-user\x00x", true))
		c.expectConnectionClose(closeReason{403, "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. For details see the broker logfile.", 0, 0})
	})
}

// TestWireAMQPlainLogin: AMQPLAIN's response is a field table without its
// length prefix, holding LOGIN and PASSWORD.
func TestWireAMQPlainLogin(t *testing.T) {
	t.Parallel()
	c := dialRaw(t)
	c.start()
	resp := cat(field("LOGIN", 'S', longstr(c.user)), field("PASSWORD", 'S', longstr(c.pass)))
	c.writeMethod(0, startOk("AMQPLAIN", string(resp), true))
	c.expectMethod(0, 10, 30)
}

// TestWireAuthSilentRefusal: without that capability, and for every other
// login problem (unknown mechanism, a PLAIN response without NUL separators),
// RabbitMQ writes nothing, waits about 3 s and closes the socket.
func TestWireAuthSilentRefusal(t *testing.T) {
	t.Parallel()
	cases := map[string]func(c *rawConn) []byte{
		"wrong password": func(c *rawConn) []byte {
			return startOk("PLAIN", "\x00"+c.user+"\x00wrong-password", false)
		},
		"unknown mechanism": func(c *rawConn) []byte { return startOk("FOO", "x", true) },
		"PLAIN without NULs": func(c *rawConn) []byte {
			return startOk("PLAIN", c.user+c.pass, true)
		},
	}
	for name, msg := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := dialRaw(t)
			c.start()
			c.writeMethod(0, msg(c))
			c.expectEOF()
		})
	}
}

// TestWireOpenUnknownVhost: connection.open for a missing vhost is refused
// with connection.close 530 for method connection.open (10.40); the text has
// the bare vhost name, and for the empty name two spaces.
func TestWireOpenUnknownVhost(t *testing.T) {
	t.Parallel()
	for vhost, text := range map[string]string{
		"no-such-vhost": "NOT_ALLOWED - vhost no-such-vhost not found",
		"":              "NOT_ALLOWED - vhost  not found",
	} {
		t.Run(vhost, func(t *testing.T) {
			t.Parallel()
			c := dialRaw(t)
			c.login(c.user, c.pass)
			c.writeMethod(0, tuneOk(2047, 131072, 0))
			c.writeMethod(0, connectionOpen(vhost))
			c.expectConnectionClose(closeReason{530, text, 10, 40})
		})
	}
}

// TestWireHandshakeOutOfOrder: before tune-ok the server stays silent on
// errors (closes after about 3 s); after tune-ok it answers with
// connection.close. A channel.open before connection.open is an unexpected
// frame, reported with the frame's octets.
func TestWireHandshakeOutOfOrder(t *testing.T) {
	t.Parallel()
	t.Run("tune-ok before start-ok", func(t *testing.T) {
		t.Parallel()
		c := dialRaw(t)
		c.start()
		c.writeMethod(0, tuneOk(2047, 131072, 0))
		c.expectEOF()
	})
	t.Run("open before tune-ok", func(t *testing.T) {
		t.Parallel()
		c := dialRaw(t)
		c.login(c.user, c.pass)
		c.writeMethod(0, connectionOpen("/"))
		c.expectEOF()
	})
	t.Run("channel.open before open", func(t *testing.T) {
		t.Parallel()
		c := dialRaw(t)
		c.login(c.user, c.pass)
		c.writeMethod(0, tuneOk(2047, 131072, 0))
		c.writeMethod(1, methodBytes(20, 10, shortstr("")))
		c.expectConnectionClose(closeReason{505, "UNEXPECTED_FRAME - type 1, all octets = <<0,20,0,10,0>>", 0, 0})
	})
	t.Run("start-ok after open", func(t *testing.T) {
		t.Parallel()
		c := ready(t)
		c.writeMethod(0, startOk("PLAIN", "\x00"+c.user+"\x00"+c.pass, true))
		c.expectConnectionClose(closeReason{504, "CHANNEL_ERROR - unexpected method in connection state running", 10, 11})
	})
}

// TestWireHugeFrameBeforeAuth: until tune-ok the frame limit is 4096
// (payload 4088); a first frame claiming 2 GiB is refused from its header
// alone (logged as {frame_too_large,2147483648,4088}) without reading the
// payload: nothing is written back and the socket closes after about 3 s.
func TestWireHugeFrameBeforeAuth(t *testing.T) {
	t.Parallel()
	c := dialRaw(t)
	c.start()
	c.write(cat(u8(frameMethod), u16(0), u32(2<<30)))
	c.expectEOF()
}

// TestWireOversizedStartOk: the same limit applies to a start-ok of 5000
// octets.
func TestWireOversizedStartOk(t *testing.T) {
	t.Parallel()
	c := dialRaw(t)
	c.start()
	c.writeMethod(0, cat(startOk("PLAIN", "\x00"+c.user+"\x00"+c.pass, true), make([]byte, 5000)))
	c.expectEOF()
}

// TestWireHeartbeatTimeout: with heartbeat 1 s negotiated the server sends a
// heartbeat every second; a client that sends nothing is dropped (logged as
// "missed heartbeats from client, timeout: 1s", about 3 s in) without a
// connection.close.
func TestWireHeartbeatTimeout(t *testing.T) {
	t.Parallel()
	c := dialRaw(t)
	c.handshake(handshakeOpts{channelMax: 2047, frameMax: 131072, heartbeat: 1})
	f, err := c.readFrame(waitTimeout)
	if err != nil || f.typ != frameHeartbeat || f.channel != 0 || len(f.payload) != 0 {
		t.Fatalf("got frame %+v err %v, want an empty heartbeat on channel 0", f, err)
	}
	c.expectEOFWithin(waitTimeout)
}

// TestWireHeartbeatKeepsAlive: a client that sends heartbeats stays
// connected; the server answers a method afterwards.
func TestWireHeartbeatKeepsAlive(t *testing.T) {
	if testing.Short() {
		t.Skip("idles for 4 s")
	}
	t.Parallel()
	c := dialRaw(t)
	c.handshake(handshakeOpts{channelMax: 2047, frameMax: 131072, heartbeat: 1})
	seen := 0
	for seen < 4 {
		f, err := c.readFrame(waitTimeout)
		if err != nil {
			t.Fatalf("after %d heartbeats: %v", seen, err)
		}
		if f.typ == frameHeartbeat {
			seen++
			c.writeFrame(frameHeartbeat, 0, nil)
		}
	}
	c.openChannel(1)
}

// TestWireHandshakeTimeout: RabbitMQ's handshake_timeout is 10 s: a client
// that connects and says nothing, or stops after the protocol header, is
// dropped without a word (after connection.start in the second case).
func TestWireHandshakeTimeout(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the 10 s handshake timeout")
	}
	t.Parallel()
	t.Run("silent", func(t *testing.T) {
		t.Parallel()
		c := dialRaw(t)
		c.expectEOFWithin(20 * time.Second)
	})
	t.Run("after header", func(t *testing.T) {
		t.Parallel()
		c := dialRaw(t)
		c.start()
		c.expectEOFWithin(20 * time.Second)
	})
	t.Run("partial header", func(t *testing.T) {
		t.Parallel()
		c := dialRaw(t)
		c.write([]byte("AMQP"))
		if got := c.readAll(20 * time.Second); len(got) != 0 {
			t.Fatalf("server wrote %q, want nothing", got)
		}
	})
}

// TestWireClientClose: the server answers connection.close with close-ok and
// leaves the socket to the client.
func TestWireClientClose(t *testing.T) {
	t.Parallel()
	c := ready(t)
	c.closeCleanly()
}

// TestWireAuthPlainAuthzid: SASL PLAIN's first field is an authorization
// identity. RabbitMQ 3.10 accepts only an empty one: any other, a different
// user (log in as guest to act as admin) or even the same user, makes the
// response invalid, refused silently like a PLAIN response without NULs.
func TestWireAuthPlainAuthzid(t *testing.T) {
	t.Parallel()
	for name, authzid := range map[string]string{"other user": "admin", "same user": ""} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := dialRaw(t)
			if authzid == "" {
				authzid = c.user
			}
			c.start()
			c.writeMethod(0, startOk("PLAIN", authzid+"\x00"+c.user+"\x00"+c.pass, true))
			c.expectEOF()
		})
	}
}
