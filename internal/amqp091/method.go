package amqp091

import (
	"encoding/binary"
	"time"
)

// Method is one AMQP method: a generated struct per class and method of the
// specification. The interface gives the connection code what it needs to
// dispatch, encode and decode without reflection.
type Method interface {
	ClassID() uint16
	MethodID() uint16
	Name() string      // e.g. "basic.publish"
	HasContent() bool  // true for basic.publish, basic.return, basic.deliver and basic.get-ok
	Synchronous() bool // the specification's synchronous flag: a reply method is expected
	// Append appends class id, method id and arguments: the whole method frame payload.
	Append(b []byte) []byte
	// Decode decodes the arguments (the payload after class and method id). Short,
	// malformed or over-long input is a *Error 501 FRAME_ERROR, as in RabbitMQ.
	// Strings and tables are copied, so args may be reused afterwards.
	Decode(args []byte) error
}

// DecodeMethod decodes a method frame's payload into a newly allocated struct.
// A payload too short for the ids is a 501 FRAME_ERROR, an unknown class or
// method a 540 NOT_IMPLEMENTED, malformed arguments a 501 FRAME_ERROR; all
// errors are *Error. The hot path uses MethodIDs and a reused struct instead.
func DecodeMethod(payload []byte) (Method, error) {
	classID, methodID, ok := MethodIDs(payload)
	if !ok {
		return nil, frameError(FrameMethod, payload, "unknown_frame")
	}
	m := NewMethod(classID, methodID)
	if m == nil {
		return nil, unknownMethodError(classID, methodID)
	}
	if err := m.Decode(payload[4:]); err != nil {
		return nil, err
	}
	return m, nil
}

// MethodIDs returns the class and method id at the start of a method frame
// payload without decoding anything else; ok is false if payload is too short.
func MethodIDs(payload []byte) (classID, methodID uint16, ok bool) {
	if len(payload) < 4 {
		return 0, 0, false
	}
	return binary.BigEndian.Uint16(payload), binary.BigEndian.Uint16(payload[2:]), true
}

// DecodeBasicPublish decodes basic.publish arguments into m. It keeps m's
// Exchange and RoutingKey strings when the new ones are equal, so a publisher
// that sends to the same exchange and key again allocates nothing; reuse one
// BasicPublish per channel. Malformed input is reported exactly as Decode does.
func DecodeBasicPublish(args []byte, m *BasicPublish) error {
	i := 2
	if len(args) < i+1 {
		return m.Decode(args)
	}
	n := int(args[i])
	i++
	if len(args) < i+n+1 {
		return m.Decode(args)
	}
	exchange := args[i : i+n]
	i += n
	k := int(args[i])
	i++
	if len(args) != i+k+1 {
		return m.Decode(args) // short, or trailing bytes
	}
	key := args[i : i+k]
	bits := args[i+k]
	if string(exchange) != m.Exchange {
		m.Exchange = string(exchange)
	}
	if string(key) != m.RoutingKey {
		m.RoutingKey = string(key)
	}
	m.Reserved1 = binary.BigEndian.Uint16(args)
	m.Mandatory = bits&1 != 0
	m.Immediate = bits&2 != 0
	return nil
}

// DecodeBasicAck decodes basic.ack arguments into a reused struct without allocating.
func DecodeBasicAck(args []byte, m *BasicAck) error { return m.Decode(args) }

// AppendBasicDeliver appends a complete basic.deliver method frame without
// building a BasicDeliver, because the broker emits one per delivered message.
// Short strings over 255 bytes are truncated as in the generated Append.
func AppendBasicDeliver(b []byte, channel uint16, consumerTag string, deliveryTag uint64, redelivered bool, exchange, routingKey string) []byte {
	consumerTag, exchange, routingKey = clip255(consumerTag), clip255(exchange), clip255(routingKey)
	size := 4 + 1 + len(consumerTag) + 8 + 1 + 1 + len(exchange) + 1 + len(routingKey)
	b = append(b, FrameMethod, byte(channel>>8), byte(channel),
		byte(size>>24), byte(size>>16), byte(size>>8), byte(size),
		0, ClassBasic, 0, MethodBasicDeliver, byte(len(consumerTag)))
	b = append(b, consumerTag...)
	b = binary.BigEndian.AppendUint64(b, deliveryTag)
	var bit byte
	if redelivered {
		bit = 1
	}
	b = append(b, bit, byte(len(exchange)))
	b = append(b, exchange...)
	b = append(b, byte(len(routingKey)))
	b = append(b, routingKey...)
	return append(b, FrameEnd)
}

func clip255(s string) string {
	if len(s) > 255 {
		return s[:255]
	}
	return s
}

// Encoding primitives used by the generated code.

func appendShort(b []byte, v uint16) []byte    { return binary.BigEndian.AppendUint16(b, v) }
func appendLong(b []byte, v uint32) []byte     { return binary.BigEndian.AppendUint32(b, v) }
func appendLonglong(b []byte, v uint64) []byte { return binary.BigEndian.AppendUint64(b, v) }

// appendShortstr writes at most 255 bytes: the length is one octet, and the
// server validates names before encoding them (see ErrShortStrTooLong).
func appendShortstr(b []byte, s string) []byte {
	s = clip255(s)
	b = append(b, byte(len(s)))
	return append(b, s...)
}

func appendLongstr(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// appendTimestamp writes seconds since the epoch, the only resolution AMQP has.
func appendTimestamp(b []byte, t time.Time) []byte {
	return binary.BigEndian.AppendUint64(b, uint64(t.Unix()))
}

// decoder reads method arguments. It stays on the caller's stack; the first
// short read marks it bad and later reads return zero values, so generated
// Decode methods check once, at finish.
type decoder struct {
	b   []byte
	off int
	bad bool
}

func (d *decoder) next(n int) []byte {
	if d.bad || len(d.b)-d.off < n {
		d.bad = true
		return nil
	}
	p := d.b[d.off : d.off+n]
	d.off += n
	return p
}

func (d *decoder) octet() uint8 {
	if p := d.next(1); p != nil {
		return p[0]
	}
	return 0
}

func (d *decoder) short() uint16 {
	if p := d.next(2); p != nil {
		return binary.BigEndian.Uint16(p)
	}
	return 0
}

func (d *decoder) long() uint32 {
	if p := d.next(4); p != nil {
		return binary.BigEndian.Uint32(p)
	}
	return 0
}

func (d *decoder) longlong() uint64 {
	if p := d.next(8); p != nil {
		return binary.BigEndian.Uint64(p)
	}
	return 0
}

func (d *decoder) shortstr() string {
	n := d.octet()
	return string(d.next(int(n)))
}

func (d *decoder) longstr() string {
	n := d.long()
	if uint64(n) > uint64(len(d.b)-d.off) {
		d.bad = true
		return ""
	}
	return string(d.next(int(n)))
}

func (d *decoder) timestamp() time.Time {
	p := d.next(8)
	if p == nil {
		return time.Time{}
	}
	return time.Unix(int64(binary.BigEndian.Uint64(p)), 0).UTC()
}

func (d *decoder) table() Table {
	if d.bad {
		return nil
	}
	t, n, err := DecodeTable(d.b[d.off:])
	if err != nil {
		d.bad = true
		return nil
	}
	d.off += n
	return t
}

// finish reports a malformed method: a short read or, as RabbitMQ also
// rejects, bytes left over after the last argument.
func (d *decoder) finish(classID, methodID uint16) error {
	if d.bad || d.off != len(d.b) {
		return decodeError(classID, methodID, d.b)
	}
	return nil
}
