package wire

import (
	"encoding/binary"
)

// The encoders below build 0-9-1 fields by hand; each returns the encoded
// bytes so method arguments read like the specification's field lists.

func u8(v byte) []byte    { return []byte{v} }
func u16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }
func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }
func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// shortstr encodes a short string (octet length prefix).
func shortstr(s string) []byte { return append([]byte{byte(len(s))}, s...) }

// longstr encodes a long string (32-bit length prefix).
func longstr(s string) []byte { return append(u32(uint32(len(s))), s...) }

// table encodes a field table from already encoded entries.
func table(entries ...[]byte) []byte {
	body := cat(entries...)
	return append(u32(uint32(len(body))), body...)
}

// field encodes one table entry: name, type octet, value.
func field(name string, typ byte, value []byte) []byte {
	return cat(shortstr(name), []byte{typ}, value)
}

// methodBytes is a method frame payload: class id, method id, arguments.
func methodBytes(class, methodID uint16, args ...[]byte) []byte {
	return cat(u16(class), u16(methodID), cat(args...))
}

// startOk is connection.start-ok; failureClose advertises the
// authentication_failure_close capability, without which RabbitMQ refuses a
// login by just closing the socket.
func startOk(mechanism, response string, failureClose bool) []byte {
	var caps []byte
	if failureClose {
		caps = field("authentication_failure_close", 't', u8(1))
	}
	props := table(
		field("product", 'S', longstr("warren wire conformance")),
		field("capabilities", 'F', table(caps)),
	)
	return methodBytes(10, 11, props, shortstr(mechanism), longstr(response), shortstr("en_US"))
}

// tuneOk is connection.tune-ok.
func tuneOk(channelMax uint16, frameMax uint32, heartbeat uint16) []byte {
	return methodBytes(10, 31, u16(channelMax), u32(frameMax), u16(heartbeat))
}

// connectionOpen is connection.open for vhost.
func connectionOpen(vhost string) []byte {
	return methodBytes(10, 40, shortstr(vhost), shortstr(""), u8(0))
}

// Queue declare flag bits, in argument order.
const (
	declarePassive    = 1 << 0
	declareDurable    = 1 << 1
	declareExclusive  = 1 << 2
	declareAutoDelete = 1 << 3
	declareNoWait     = 1 << 4
)

// queueDeclare is queue.declare with the given flags and raw arguments table.
func queueDeclare(name string, flags byte, args []byte) []byte {
	return methodBytes(50, 10, u16(0), shortstr(name), u8(flags), args)
}

// basicPublish is basic.publish; flags bit 0 mandatory, bit 1 immediate.
func basicPublish(exchange, key string, flags byte) []byte {
	return methodBytes(60, 40, u16(0), shortstr(exchange), shortstr(key), u8(flags))
}

// basicGet is basic.get.
func basicGet(queue string, noAck bool) []byte {
	var f byte
	if noAck {
		f = 1
	}
	return methodBytes(60, 70, u16(0), shortstr(queue), u8(f))
}

// basicConsume is basic.consume; flags: no-local 1, no-ack 2, exclusive 4,
// no-wait 8.
func basicConsume(queue, tag string, flags byte) []byte {
	return methodBytes(60, 20, u16(0), shortstr(queue), shortstr(tag), u8(flags), table())
}

// contentHeader is a content header payload: class, weight 0, body size,
// property flags and the encoded property list.
func contentHeader(class uint16, bodySize uint64, propFlags uint16, props []byte) []byte {
	return cat(u16(class), u16(0), u64(bodySize), u16(propFlags), props)
}

// decoder reads 0-9-1 fields from a method's arguments; reading past the end
// yields zero values and sets overrun.
type decoder struct {
	b       []byte
	overrun bool
}

func (d *decoder) take(n int) []byte {
	if len(d.b) < n {
		d.overrun = true
		d.b = nil
		return make([]byte, n)
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) octet() byte      { return d.take(1)[0] }
func (d *decoder) short() uint16    { return binary.BigEndian.Uint16(d.take(2)) }
func (d *decoder) long() uint32     { return binary.BigEndian.Uint32(d.take(4)) }
func (d *decoder) longlong() uint64 { return binary.BigEndian.Uint64(d.take(8)) }
func (d *decoder) shortstr() string { return string(d.take(int(d.octet()))) }
func (d *decoder) longstr() string  { return string(d.take(int(d.long()))) }

// table returns a field table's raw bytes without parsing them.
func (d *decoder) table() []byte { return d.take(int(d.long())) }
