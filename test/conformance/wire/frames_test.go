package wire

import (
	"fmt"
	"testing"
)

// declareOfSize builds a queue.declare (server-named, exclusive) whose
// method frame payload is exactly size octets, padding with an argument.
func declareOfSize(size int) []byte {
	base := len(queueDeclare("", declareExclusive, table(field("pad", 'S', longstr("")))))
	return queueDeclare("", declareExclusive, table(field("pad", 'S', longstr(string(make([]byte, size-base))))))
}

// TestWireFrameTooLarge: a frame whose header claims more than frame_max is
// refused from the header alone, before the payload is read: connection.close
// 501 with class and method 0 and the text "FRAME_ERROR - type T, all octets
// = <<>>: {frame_too_large,SIZE,LIMIT}" where LIMIT is frame_max-8. The
// payload never has to be sent.
func TestWireFrameTooLarge(t *testing.T) {
	t.Parallel()
	for name, typ := range map[string]byte{"method": frameMethod, "body": frameBody} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := ready(t)
			c.write(cat(u8(typ), u16(1), u32(131073)))
			text := "FRAME_ERROR - type " + string(rune('0'+typ)) + ", all octets = <<>>: {frame_too_large,131073,131064}"
			c.expectConnectionClose(closeReason{501, text, 0, 0})
		})
	}
}

// TestWireFrameSizeLimitAfterSmallTune: the limit follows the client's
// smaller frame_max.
func TestWireFrameSizeLimitAfterSmallTune(t *testing.T) {
	t.Parallel()
	c := dialRaw(t)
	c.handshake(handshakeOpts{channelMax: 10, frameMax: 4096})
	c.openChannel(1)
	c.write(cat(u8(frameMethod), u16(1), u32(5000)))
	c.expectConnectionClose(closeReason{501, "FRAME_ERROR - type 1, all octets = <<>>: {frame_too_large,5000,4088}", 0, 0})
}

// TestWireFrameSizeFudge: RabbitMQ allows 8 octets of slack over the payload
// limit of frame_max-8, so payloads of exactly frame_max-8 and of frame_max
// are both accepted (its FRAME_SIZE_FUDGE, kept for clients that forget the
// frame overhead); frame_max+1 is the first size refused.
func TestWireFrameSizeFudge(t *testing.T) {
	t.Parallel()
	for _, size := range []int{131064, 131065, 131072} {
		c := ready(t)
		c.writeMethod(1, declareOfSize(size))
		c.expectMethod(1, 50, 11)
	}
}

// TestWireFrameBadEnd: a frame whose last octet is not 0xCE: 501 with the
// frame's octets and the wrong marker. RabbitMQ formats the reason with
// Erlang's ~p, which wraps at 80 columns: for a longer payload the text
// reads "...: {invalid_frame_end_marker,\n" followed by 53 spaces and "0}";
// this test keeps the payload short enough to stay on one line.
func TestWireFrameBadEnd(t *testing.T) {
	t.Parallel()
	c := ready(t)
	b := encodeFrame(frameMethod, 2, methodBytes(20, 10, shortstr("")))
	b[len(b)-1] = 0xCD
	c.write(b)
	c.expectConnectionClose(closeReason{501, "FRAME_ERROR - type 1, all octets = <<0,20,0,10,0>>: {invalid_frame_end_marker,205}", 0, 0})
}

// TestWireFrameUnknownType: frame type 5 does not exist.
func TestWireFrameUnknownType(t *testing.T) {
	t.Parallel()
	c := ready(t)
	c.writeFrame(5, 1, []byte("x"))
	c.expectConnectionClose(closeReason{501, `FRAME_ERROR - type 5, all octets = <<"x">>: unknown_frame`, 0, 0})
}

// TestWireFrameHeartbeatWithPayload: a heartbeat must be empty.
func TestWireFrameHeartbeatWithPayload(t *testing.T) {
	t.Parallel()
	c := ready(t)
	c.writeFrame(frameHeartbeat, 0, []byte("x"))
	c.expectConnectionClose(closeReason{501, `FRAME_ERROR - type 8, all octets = <<"x">>: unknown_frame`, 0, 0})
}

// TestWireFrameHeartbeatOnChannel: heartbeats belong on channel 0.
func TestWireFrameHeartbeatOnChannel(t *testing.T) {
	t.Parallel()
	c := ready(t)
	c.writeFrame(frameHeartbeat, 1, nil)
	c.expectConnectionClose(closeReason{505, "UNEXPECTED_FRAME - type 8, all octets = <<>>", 0, 0})
}

// TestWireFrameHeartbeatWithoutNegotiation: a client may send heartbeats
// even with heartbeats off; they are ignored.
func TestWireFrameHeartbeatWithoutNegotiation(t *testing.T) {
	t.Parallel()
	c := ready(t)
	c.writeFrame(frameHeartbeat, 0, nil)
	c.writeFrame(frameHeartbeat, 0, nil)
	c.openChannel(2)
}

// TestWireFrameMethodTooShort: a method frame without room for class and
// method ids.
func TestWireFrameMethodTooShort(t *testing.T) {
	t.Parallel()
	c := ready(t)
	c.writeFrame(frameMethod, 1, []byte{0, 60})
	c.expectConnectionClose(closeReason{501, "FRAME_ERROR - type 1, all octets = <<0,60>>: unknown_frame", 0, 0})
}

// TestWireFrameContentWithoutMethod: a content header or body where a method
// is expected, on an open channel or an unopened one.
func TestWireFrameContentWithoutMethod(t *testing.T) {
	t.Parallel()
	const text = "UNEXPECTED_FRAME - expected method frame, got non method frame instead"
	// On a channel that was never opened (7) too: not 504 as for a method there.
	for _, ch := range []uint16{1, 7} {
		t.Run(fmt.Sprintf("header on channel %d", ch), func(t *testing.T) {
			t.Parallel()
			c := ready(t)
			c.writeFrame(frameHeader, ch, contentHeader(60, 0, 0, nil))
			c.expectConnectionClose(closeReason{505, text, 0, 0})
		})
		t.Run(fmt.Sprintf("body on channel %d", ch), func(t *testing.T) {
			t.Parallel()
			c := ready(t)
			c.writeFrame(frameBody, ch, []byte("x"))
			c.expectConnectionClose(closeReason{505, text, 0, 0})
		})
	}
	t.Run("body after empty content", func(t *testing.T) {
		t.Parallel()
		c := ready(t)
		c.writeMethod(1, basicPublish("", "nowhere", 0))
		c.writeFrame(frameHeader, 1, contentHeader(60, 0, 0, nil))
		c.writeFrame(frameBody, 1, []byte("x"))
		c.expectConnectionClose(closeReason{505, text, 0, 0})
	})
}

// TestWireFrameHeaderOnChannelZero: content never travels on channel 0.
func TestWireFrameHeaderOnChannelZero(t *testing.T) {
	t.Parallel()
	c := ready(t)
	c.writeFrame(frameHeader, 0, contentHeader(60, 0, 0, nil))
	c.expectConnectionClose(closeReason{505, "UNEXPECTED_FRAME - type 2, all octets = <<0,60,0,0,0,0,0,0,0,0,0,0,0,0>>", 0, 0})
}

// TestWireFrameMethodInsteadOfContent: a method where basic.publish's
// content header or body should be; reported against basic.publish.
func TestWireFrameMethodInsteadOfContent(t *testing.T) {
	t.Parallel()
	t.Run("header", func(t *testing.T) {
		t.Parallel()
		c := ready(t)
		c.writeMethod(1, basicPublish("", "nowhere", 0))
		c.writeMethod(1, queueDeclare("", declareExclusive, table()))
		c.expectConnectionClose(closeReason{505, "UNEXPECTED_FRAME - expected content header for class 60, got non content header frame instead", 60, 40})
	})
	t.Run("body", func(t *testing.T) {
		t.Parallel()
		c := ready(t)
		c.writeMethod(1, basicPublish("", "nowhere", 0))
		c.writeFrame(frameHeader, 1, contentHeader(60, 3, 0, nil))
		c.writeMethod(1, queueDeclare("", declareExclusive, table()))
		c.expectConnectionClose(closeReason{505, "UNEXPECTED_FRAME - expected content body, got non content body frame instead", 60, 40})
	})
}

// TestWireFrameHeaderClassMismatch: the content header's class must be the
// method's class.
func TestWireFrameHeaderClassMismatch(t *testing.T) {
	t.Parallel()
	c := ready(t)
	c.writeMethod(1, basicPublish("", "nowhere", 0))
	c.writeFrame(frameHeader, 1, contentHeader(50, 0, 0, nil))
	c.expectConnectionClose(closeReason{505, "UNEXPECTED_FRAME - expected content header for class 60, got one for class 50 instead", 60, 40})
}

// TestWireFrameBodyLongerThanDeclared: RabbitMQ does not notice body frames
// that overshoot the declared size: it subtracts each frame from what
// remains, never reaches exactly zero, and keeps waiting for body frames. The
// first error is the next method: 505 "expected content body" against
// basic.publish. Nothing is enqueued.
func TestWireFrameBodyLongerThanDeclared(t *testing.T) {
	t.Parallel()
	for name, bodies := range map[string][]string{
		"one frame":  {"12345"},
		"two frames": {"12", "34"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := ready(t)
			q := c.declareTempQueue(1)
			c.writeMethod(1, basicPublish("", q, 0))
			c.writeFrame(frameHeader, 1, contentHeader(60, 3, 0, nil))
			for _, b := range bodies {
				c.writeFrame(frameBody, 1, []byte(b))
			}
			c.writeMethod(1, basicGet(q, true))
			c.expectConnectionClose(closeReason{505, "UNEXPECTED_FRAME - expected content body, got non content body frame instead", 60, 40})
		})
	}
}

// TestWireFrameEmptyBodyFrames: empty body frames are legal and change
// nothing; the message completes when the declared size is reached.
func TestWireFrameEmptyBodyFrames(t *testing.T) {
	t.Parallel()
	c := ready(t)
	q := c.declareTempQueue(1)
	c.writeMethod(1, basicPublish("", q, 0))
	c.writeFrame(frameHeader, 1, contentHeader(60, 2, 0, nil))
	c.writeFrame(frameBody, 1, nil)
	c.writeFrame(frameBody, 1, []byte("o"))
	c.writeFrame(frameBody, 1, nil)
	c.writeFrame(frameBody, 1, []byte("k"))
	c.writeMethod(1, basicGet(q, true))
	c.expectMethod(1, 60, 71)
	c.nextFrame()
	if f := c.nextFrame(); f.typ != frameBody || string(f.payload) != "ok" {
		t.Fatalf("got frame type %d %q, want body \"ok\"", f.typ, f.payload)
	}
}

// TestWireFrameIgnoredAfterServerClose: once the server has sent
// connection.close it ignores everything except close-ok (even frames that
// would be errors), then closes the socket.
func TestWireFrameIgnoredAfterServerClose(t *testing.T) {
	t.Parallel()
	c := ready(t)
	c.writeMethod(5, queueDeclare("", 0, table()))
	args := c.expectMethod(0, 10, 50)
	if code := args.short(); code != 504 {
		t.Fatalf("close code %d, want 504", code)
	}
	c.writeMethod(1, queueDeclare("", declareExclusive, table()))
	c.writeFrame(7, 0, nil)
	c.writeFrame(frameBody, 9, []byte("junk"))
	c.writeMethod(0, methodBytes(10, 51))
	c.expectEOF()
}
