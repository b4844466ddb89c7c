package amqp091

import (
	"errors"
	"strings"
	"testing"
)

func TestCodecErrorNewError(t *testing.T) {
	e := NewError(NotFound, "no queue '%s' in vhost '%s'", "x", "/")
	if e.Text != "NOT_FOUND - no queue 'x' in vhost '/'" || e.Code != 404 || e.Hard() {
		t.Fatalf("%+v", e)
	}
	if e.Error() != "404 NOT_FOUND - no queue 'x' in vhost '/'" {
		t.Fatalf("Error() = %q", e.Error())
	}
	if !NewError(CommandInvalid, "x").Hard() || NewError(PreconditionFailed, "x").Hard() {
		t.Fatal("hard/soft classification")
	}
	// RabbitMQ cuts reply texts to 252 bytes plus "..." so they fit a short string.
	long := NewError(PreconditionFailed, "%s", strings.Repeat("x", 300))
	if len(long.Text) != 255 || !strings.HasSuffix(long.Text, "...") || !strings.HasPrefix(long.Text, "PRECONDITION_FAILED - xxx") {
		t.Fatalf("long text %d %q", len(long.Text), long.Text)
	}
	var target *Error
	if !errors.As(error(e), &target) || target != e {
		t.Fatal("errors.As")
	}
}

func TestCodecErrorReplyCodes(t *testing.T) {
	for _, tc := range []struct {
		code uint16
		name string
		hard bool
	}{
		{ReplySuccess, "REPLY_SUCCESS", false}, {ContentTooLarge, "CONTENT_TOO_LARGE", false},
		{NoRoute, "NO_ROUTE", false}, {NoConsumers, "NO_CONSUMERS", false},
		{ConnectionForced, "CONNECTION_FORCED", true}, {InvalidPath, "INVALID_PATH", true},
		{AccessRefused, "ACCESS_REFUSED", false}, {NotFound, "NOT_FOUND", false},
		{ResourceLocked, "RESOURCE_LOCKED", false}, {PreconditionFailed, "PRECONDITION_FAILED", false},
		{FrameError, "FRAME_ERROR", true}, {SyntaxError, "SYNTAX_ERROR", true},
		{CommandInvalid, "COMMAND_INVALID", true}, {ChannelError, "CHANNEL_ERROR", true},
		{UnexpectedFrame, "UNEXPECTED_FRAME", true}, {ResourceError, "RESOURCE_ERROR", true},
		{NotAllowed, "NOT_ALLOWED", true}, {NotImplemented, "NOT_IMPLEMENTED", true},
		{InternalError, "INTERNAL_ERROR", true}, {999, "", false},
	} {
		if got := ReplyName(tc.code); got != tc.name {
			t.Errorf("ReplyName(%d) = %q, want %q", tc.code, got, tc.name)
		}
		if got := IsHardError(tc.code); got != tc.hard {
			t.Errorf("IsHardError(%d) = %v", tc.code, got)
		}
	}
	if NewError(999, "odd").Text != "odd" {
		t.Error("unknown code text")
	}
}

func TestCodecErrorDecodeMethod(t *testing.T) {
	for _, tc := range []struct {
		name    string
		payload []byte
		code    uint16
		text    string
		cls, m  uint16
	}{
		// Texts as RabbitMQ 3.10.8 sent them for the same bytes.
		{"truncated queue.declare", []byte{0, 50, 0, 10, 0, 0, 5, 'a', 'b'}, FrameError, "FRAME_ERROR - cannot decode <<0,0,5,97,98>>", 50, 10},
		{"printable args", []byte{0, 50, 0, 10, 'a', 'b', 'c'}, FrameError, "FRAME_ERROR - cannot decode <<97,98,99>>", 50, 10},
		{"trailing bytes", []byte{0, 50, 0, 10, 0, 0, 2, 'z', 'q', 0, 0, 0, 0, 0, 'x', 'y', 'z'}, FrameError,
			"FRAME_ERROR - cannot decode <<0,0,2,122,113,0,0,0,0,0,120,121,122>>", 50, 10},
		{"table overrun", []byte{0, 50, 0, 10, 0, 0, 2, 'z', 'q', 0, 0, 0, 0, 99, 1, 'a', 'V'}, FrameError,
			"FRAME_ERROR - cannot decode <<0,0,2,122,113,0,0,0,0,99,1,97,86>>", 50, 10},
		{"no method ids", []byte{0, 50}, FrameError, "FRAME_ERROR - type 1, all octets = <<0,50>>: unknown_frame", 0, 0},
		// RabbitMQ drops the connection here; Warren closes it with 540.
		{"unknown method", []byte{0, 60, 3, 231}, NotImplemented, "NOT_IMPLEMENTED - {unknown_method_id,{60,999}}", 60, 999},
		{"unknown class", []byte{0, 99, 0, 10}, NotImplemented, "NOT_IMPLEMENTED - {unknown_method_id,{99,10}}", 99, 10},
	} {
		_, err := DecodeMethod(tc.payload)
		var e *Error
		if !errors.As(err, &e) || e.Code != tc.code || e.Text != tc.text || e.ClassID != tc.cls || e.MethodID != tc.m || !e.Hard() {
			t.Errorf("%s: got %#v", tc.name, err)
		}
	}
	// Long arguments are cut the way RabbitMQ cuts them: 252 bytes and "...".
	args := append([]byte{0, 50, 0, 10, 0, 0, 255}, make([]byte, 200)...)
	_, err := DecodeMethod(args)
	var e *Error
	if !errors.As(err, &e) || len(e.Text) != 255 || !strings.HasSuffix(e.Text, ",0,0,...") {
		t.Fatalf("long: %v", err)
	}
}

func TestCodecErrorFrameOctets(t *testing.T) {
	if got := FrameOctets(FrameHeartbeat, nil); got != "type 8, all octets = <<>>" {
		t.Error(got)
	}
	long := make([]byte, 20)
	long[0] = 1
	if got := FrameOctets(1, long); got != "type 1, first 16 octets = <<1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0>>" {
		t.Error(got)
	}
	if got := FrameOctets(3, []byte(`a"b\`)); got != `type 3, all octets = <<"a\"b\\">>` {
		t.Error(got)
	}
}
