package recordbatch

import (
	"bytes"
	"encoding/binary"
	"unicode/utf8"

	"github.com/warren-mq/warren/internal/amqp091"
)

// offsetField is the x-stream-offset field name as a field table holds it.
var offsetField = append([]byte{byte(len(OffsetHeader))}, OffsetHeader...)

// FromAMQPRaw is FromAMQP for a publish as the broker holds it: the encoded
// property list as received (stored verbatim) instead of decoded properties.
// A malformed list is amqp091's 541 error, as the publish itself would get.
//
// FromAMQP reads only the headers and the timestamp of the properties, so
// only what the list has of those is decoded: nothing for a publish without
// either, the table alone for one without a timestamp.
func FromAMQPRaw(exchange, routingKey string, props, body []byte, arrivalMs int64) (Record, error) {
	m := AMQPMessage{Exchange: exchange, RoutingKey: routingKey, RawProperties: props, Body: body, ArrivalMs: arrivalMs}
	var s amqp091.PropertySummary
	if err := amqp091.SummarizeProperties(props, &s); err != nil {
		return Record{}, err
	}
	switch {
	case s.Flags&amqp091.FlagTimestamp != 0:
		if err := amqp091.DecodeProperties(props, &m.Properties); err != nil {
			return Record{}, err
		}
	case s.Headers != nil:
		t, _, err := amqp091.DecodeTable(s.Headers)
		if err != nil { // SummarizeProperties validated it: cannot happen
			return Record{}, err
		}
		m.Properties.Headers = t
	}
	return FromAMQP(m), nil
}

// AppendDeliveryProperties appends to dst the encoded property list
// (flags and fields) that delivering r at offset over AMQP carries, and
// returns it with the exchange and routing key, which alias r. It means
// exactly what ToAMQP returns (the same properties once decoded; table
// fields may come in another order) without building the table: an
// AMQP-published record's stored list is passed through with x-stream-offset
// spliced into its headers, and a Kafka record's list is written directly.
func AppendDeliveryProperties(dst []byte, r *Record, offset int64) (props, exchange, routingKey []byte) {
	for i := len(r.Headers) - 1; i >= 0; i-- {
		if r.Headers[i].Key != PropertiesHeader {
			continue
		}
		ex, rk, raw, ok := ParsePropertiesHeader(r.Headers[i].Value)
		var s amqp091.PropertySummary
		if !ok || amqp091.SummarizeProperties(raw, &s) != nil {
			break // not ours after all: deliver it as a Kafka record
		}
		start := len(dst)
		if bytes.Contains(s.Headers, offsetField) { // republished delivery: replace, rarely
			m := ToAMQP(*r, offset)
			return m.Properties.Append(dst)[start:], ex, rk
		}
		return spliceOffset(dst, raw, s.Flags, s.Headers, offset)[start:], ex, rk
	}
	start := len(dst)
	return appendKafkaProperties(dst, r, offset)[start:], nil, shortstrPrefix(r.Key)
}

// spliceOffset appends raw with x-stream-offset added to its headers table
// (a table created, and its flag set, when there is none).
func spliceOffset(dst, raw []byte, flags uint16, headers []byte, offset int64) []byte {
	pos := 2 // the table follows content-type and content-encoding
	for _, f := range []uint16{amqp091.FlagContentType, amqp091.FlagContentEncoding} {
		if flags&f != 0 {
			pos += 1 + int(raw[pos])
		}
	}
	start := len(dst)
	dst = append(dst, raw[:pos]...)
	binary.BigEndian.PutUint16(dst[start:], flags|amqp091.FlagHeaders)
	lenAt := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	if headers != nil {
		dst = append(dst, headers[4:]...)
		pos += len(headers)
	}
	dst = appendOffsetField(dst, offset)
	binary.BigEndian.PutUint32(dst[lenAt:], uint32(len(dst)-lenAt-4))
	return append(dst, raw[pos:]...)
}

func appendOffsetField(dst []byte, offset int64) []byte {
	dst = append(dst, offsetField...)
	return binary.BigEndian.AppendUint64(append(dst, 'l'), uint64(offset))
}

// appendKafkaProperties writes the properties ToAMQP gives a record without
// a PropertiesHeader: headers (Kafka headers, x-kafka-key for a long key,
// x-stream-offset) and the timestamp.
func appendKafkaProperties(dst []byte, r *Record, offset int64) []byte {
	flags := uint16(amqp091.FlagHeaders)
	if r.TimestampMs >= 0 {
		flags |= amqp091.FlagTimestamp
	}
	dst = binary.BigEndian.AppendUint16(dst, flags)
	lenAt := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	for i := range r.Headers {
		h := &r.Headers[i]
		if len(h.Key) > 255 || h.Key == OffsetHeader || (h.Key == KeyHeader && len(r.Key) > 255) || repeatedLater(r.Headers, i) {
			continue // as in ToAMQP: too long for a table, overridden, or a later value wins
		}
		dst = appendField(dst, h.Key, h.Value)
	}
	if len(r.Key) > 255 {
		dst = appendField(dst, KeyHeader, r.Key)
	}
	dst = appendOffsetField(dst, offset)
	binary.BigEndian.PutUint32(dst[lenAt:], uint32(len(dst)-lenAt-4))
	if r.TimestampMs >= 0 {
		dst = binary.BigEndian.AppendUint64(dst, uint64(r.TimestampMs/1000))
	}
	return dst
}

// appendField appends one table field holding a Kafka header value as
// headerValue maps it: void, long string or byte array.
func appendField(dst []byte, key string, v []byte) []byte {
	dst = append(append(dst, byte(len(key))), key...)
	switch {
	case v == nil:
		return append(dst, 'V')
	case utf8.Valid(v):
		dst = append(dst, 'S')
	default:
		dst = append(dst, 'x')
	}
	return append(binary.BigEndian.AppendUint32(dst, uint32(len(v))), v...)
}

func repeatedLater(hs []Header, i int) bool {
	for j := i + 1; j < len(hs); j++ {
		if hs[j].Key == hs[i].Key {
			return true
		}
	}
	return false
}

// shortstrPrefix is as much of b as an AMQP short string holds.
func shortstrPrefix(b []byte) []byte { return b[:min(len(b), 255)] }
