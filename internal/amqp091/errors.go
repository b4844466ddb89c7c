package amqp091

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Error is an AMQP exception: the reply code and text that close a channel or connection.
type Error struct {
	Code     uint16
	Text     string // full reply text as sent, e.g. "NOT_FOUND - no queue 'x' in vhost '/'"
	ClassID  uint16 // method that caused it, 0 if none
	MethodID uint16
}

// Error returns the reply code and text, e.g. "404 NOT_FOUND - no queue 'x' in vhost '/'".
func (e *Error) Error() string {
	return strconv.Itoa(int(e.Code)) + " " + e.Text
}

// Hard reports whether the error closes the connection (a hard error in the
// specification) rather than only the channel.
func (e *Error) Hard() bool { return IsHardError(e.Code) }

// NewError returns an Error whose Text is ReplyName(code) + " - " + the formatted
// message, the way RabbitMQ words its reply texts. Like RabbitMQ, a text longer
// than a short string allows is cut to 252 bytes and ends in "...", so Text is
// exactly what goes on the wire.
func NewError(code uint16, format string, args ...any) *Error {
	text := fmt.Sprintf(format, args...)
	if name := ReplyName(code); name != "" {
		text = name + " - " + text
	}
	return &Error{Code: code, Text: truncateReplyText(text)}
}

// truncateReplyText applies RabbitMQ's limit on reply texts: they are short
// strings, so anything over 255 bytes keeps its first 252 bytes plus "...".
func truncateReplyText(s string) string {
	if len(s) <= 255 {
		return s
	}
	return s[:252] + "..."
}

// ErrShortStrTooLong is reported by the generated Validate methods: a short
// string holds at most 255 bytes, and Append truncates longer values rather than
// fail, because the server validates names before it encodes them.
var ErrShortStrTooLong = errors.New("amqp091: short string longer than 255 bytes")

func shortStrError(field string) error {
	return fmt.Errorf("%w: %s", ErrShortStrTooLong, field)
}

// ErrBadProtocolHeader is returned by ReadProtocolHeader when a client opens with
// anything but AMQP 0-9-1's header; the server then answers with its own header
// and closes, as the specification asks.
var ErrBadProtocolHeader = errors.New("amqp091: bad protocol header")

// decodeError is RabbitMQ's reply to method arguments it cannot parse (short,
// malformed or with trailing bytes): 501 "FRAME_ERROR - cannot decode <<...>>",
// with the arguments in Erlang's ~w notation and the offending method's ids.
func decodeError(classID, methodID uint16, args []byte) *Error {
	var b strings.Builder
	b.WriteString("cannot decode ")
	// Each byte takes at least two characters, so the text is cut long before
	// the whole of a large payload would be formatted.
	writeErlangInts(&b, args, 130)
	e := NewError(FrameError, "%s", b.String())
	e.ClassID, e.MethodID = classID, methodID
	return e
}

// unknownMethodError is returned for a class and method id the specification
// does not define. RabbitMQ 3.10 crashes the connection's reader on these and
// drops the TCP connection without a connection.close; Warren instead closes it
// with 540 NOT_IMPLEMENTED, citing the ids in the same term RabbitMQ logs.
func unknownMethodError(classID, methodID uint16) *Error {
	e := NewError(NotImplemented, "{unknown_method_id,{%d,%d}}", classID, methodID)
	e.ClassID, e.MethodID = classID, methodID
	return e
}

// FrameOctets formats a frame the way RabbitMQ quotes it in FRAME_ERROR and
// UNEXPECTED_FRAME texts: "type 1, all octets = <<0,50>>", or "type 3, first 16
// octets = <<...>>" for longer payloads. The server uses it for the frame
// errors it detects itself, e.g. NewError(UnexpectedFrame, "%s", FrameOctets(8, nil)).
func FrameOctets(frameType uint8, payload []byte) string {
	var b strings.Builder
	b.WriteString("type ")
	b.WriteString(strconv.Itoa(int(frameType)))
	if len(payload) > 16 {
		b.WriteString(", first 16 octets = ")
		payload = payload[:16]
	} else {
		b.WriteString(", all octets = ")
	}
	writeErlangBinary(&b, payload)
	return b.String()
}

// frameError is a 501 FRAME_ERROR in RabbitMQ's wording: the frame's type and
// octets followed by the Erlang term RabbitMQ reports as the reason.
func frameError(frameType uint8, payload []byte, reason string) *Error {
	return NewError(FrameError, "%s: %s", FrameOctets(frameType, payload), reason)
}

// writeErlangInts writes b as Erlang's ~w prints a binary, "<<0,1,2>>", giving up
// with "..." after max bytes (the reply text is truncated anyway).
func writeErlangInts(w *strings.Builder, b []byte, max int) {
	w.WriteString("<<")
	for i, c := range b {
		if i == max {
			w.WriteString(",...")
			break
		}
		if i > 0 {
			w.WriteByte(',')
		}
		w.WriteString(strconv.Itoa(int(c)))
	}
	w.WriteString(">>")
}

// writeErlangBinary writes b as Erlang's ~p prints a binary: as a quoted string
// when every byte is printable ASCII, otherwise as a list of integers.
func writeErlangBinary(w *strings.Builder, b []byte) {
	printable := len(b) > 0
	for _, c := range b {
		if c < 32 || c > 126 {
			printable = false
			break
		}
	}
	if !printable {
		writeErlangInts(w, b, len(b))
		return
	}
	w.WriteString(`<<"`)
	for _, c := range b {
		if c == '"' || c == '\\' {
			w.WriteByte('\\')
		}
		w.WriteByte(c)
	}
	w.WriteString(`">>`)
}
