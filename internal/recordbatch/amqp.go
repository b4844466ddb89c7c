package recordbatch

import (
	"encoding/base64"
	"encoding/json"
	"math"
	"math/big"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/warren-mq/warren/internal/amqp091"
)

// Header names of the AMQP mapping (see the package doc).
const (
	// PropertiesHeader is the reserved Kafka header that carries an AMQP
	// publish's exchange, routing key and basic properties.
	PropertiesHeader = "x-amqp-properties"
	// KeyHeader, set on an AMQP publish, is the record key instead of the routing key.
	KeyHeader = "x-kafka-key"
	// OffsetHeader is the long header with the record's offset on every AMQP delivery.
	OffsetHeader = "x-stream-offset"
)

// propertiesVersion is the first byte of a PropertiesHeader value, so the
// encoding can grow.
const propertiesVersion = 1

// AMQPMessage is a message as the AMQP side sees it: what basic.publish
// carried in, or what basic.deliver carries out.
type AMQPMessage struct {
	Exchange, RoutingKey string
	Properties           amqp091.Properties
	// RawProperties, when non-nil, is the property list (flags and fields) as
	// the publisher sent it. FromAMQP stores it verbatim instead of encoding
	// Properties, which must still be its decoded form: the key, headers and
	// timestamp come from there. ToAMQP leaves it nil.
	RawProperties []byte
	Body          []byte
	// ArrivalMs is when the broker took the message (Unix milliseconds), the
	// record's timestamp when the properties have none; 0 means now.
	ArrivalMs int64
}

// FromAMQP maps an AMQP publish to a record, as the package doc describes.
// The record aliases m.Body; its other slices are new.
func FromAMQP(m AMQPMessage) Record {
	r := Record{Value: m.Body}
	if r.Value == nil {
		r.Value = []byte{} // an AMQP body is never null: no tombstones from AMQP
	}
	p := &m.Properties
	if k, ok := p.Headers[KeyHeader]; ok && k != nil {
		r.Key = stringify(k)
	} else if m.RoutingKey != "" {
		r.Key = []byte(m.RoutingKey)
	}
	switch {
	case !p.Timestamp.IsZero():
		r.TimestampMs = p.Timestamp.UnixMilli()
	case m.ArrivalMs != 0:
		r.TimestampMs = m.ArrivalMs
	default:
		r.TimestampMs = time.Now().UnixMilli()
	}
	keys := make([]string, 0, len(p.Headers))
	for k := range p.Headers {
		if k != KeyHeader && k != PropertiesHeader {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	r.Headers = make([]Header, 0, len(keys)+1)
	for _, k := range keys {
		r.Headers = append(r.Headers, Header{Key: k, Value: stringify(p.Headers[k])})
	}
	size := 3 + len(m.Exchange) + len(m.RoutingKey) + len(m.RawProperties)
	if m.RawProperties == nil {
		size += 64 // a guess: Append grows it if the properties need more
	}
	r.Headers = append(r.Headers, Header{Key: PropertiesHeader, Value: appendPropertiesHeader(make([]byte, 0, size), &m)})
	return r
}

// appendPropertiesHeader encodes version, exchange and routing key (short
// strings) and the property list with internal/amqp091's codec.
func appendPropertiesHeader(b []byte, m *AMQPMessage) []byte {
	b = append(b, propertiesVersion)
	b = appendShortstr(b, m.Exchange)
	b = appendShortstr(b, m.RoutingKey)
	if m.RawProperties != nil {
		return append(b, m.RawProperties...)
	}
	return m.Properties.Append(b)
}

func appendShortstr(b []byte, s string) []byte {
	if len(s) > 255 {
		s = s[:255]
	}
	return append(append(b, byte(len(s))), s...)
}

// ParsePropertiesHeader splits a PropertiesHeader value into the publish's
// exchange, routing key and encoded property list, aliasing v, without
// decoding the properties (a delivery can pass them through).
func ParsePropertiesHeader(v []byte) (exchange, routingKey, props []byte, ok bool) {
	if len(v) < 1 || v[0] != propertiesVersion {
		return nil, nil, nil, false
	}
	p := v[1:]
	for _, dst := range []*[]byte{&exchange, &routingKey} {
		if len(p) < 1 || int(p[0]) > len(p)-1 {
			return nil, nil, nil, false
		}
		*dst, p = p[1:1+int(p[0])], p[1+int(p[0]):]
	}
	return exchange, routingKey, p, true
}

// ToAMQP maps a record read at offset to an AMQP delivery. A record with a
// valid PropertiesHeader (published over AMQP) gets back its exchange,
// routing key and properties exactly; any other (produced over Kafka) gets
// routing key = key and its Kafka headers as long strings (byte arrays when
// not UTF-8). Both get OffsetHeader. The body aliases r.Value.
func ToAMQP(r Record, offset int64) AMQPMessage {
	m := AMQPMessage{Body: r.Value}
	if !fromPropertiesHeader(&r, &m) {
		m = AMQPMessage{Body: r.Value, RoutingKey: string(r.Key)}
		h := make(amqp091.Table, len(r.Headers)+2)
		for _, kh := range r.Headers {
			if len(kh.Key) <= 255 { // longer names do not fit a field table
				h[kh.Key] = headerValue(kh.Value)
			}
		}
		if len(r.Key) > 255 { // a routing key is a short string: keep the whole key
			h[KeyHeader] = headerValue(r.Key)
		}
		m.Properties.Headers = h
		if r.TimestampMs >= 0 {
			m.Properties.Timestamp = time.UnixMilli(r.TimestampMs).UTC()
		}
	}
	if m.Properties.Headers == nil {
		m.Properties.Headers = make(amqp091.Table, 1)
	}
	m.Properties.Headers[OffsetHeader] = offset
	return m
}

// fromPropertiesHeader fills m from r's last PropertiesHeader, if it decodes.
func fromPropertiesHeader(r *Record, m *AMQPMessage) bool {
	for i := len(r.Headers) - 1; i >= 0; i-- {
		if r.Headers[i].Key != PropertiesHeader {
			continue
		}
		ex, rk, props, ok := ParsePropertiesHeader(r.Headers[i].Value)
		if !ok || amqp091.DecodeProperties(props, &m.Properties) != nil {
			return false
		}
		m.Exchange, m.RoutingKey = string(ex), string(rk)
		return true
	}
	return false
}

// headerValue is a Kafka header value as an AMQP field value: void for null,
// a long string when UTF-8, else a byte array.
func headerValue(v []byte) any {
	switch {
	case v == nil:
		return nil
	case utf8.Valid(v):
		return string(v)
	}
	return slices.Clone(v)
}

// stringify renders an AMQP field value as a Kafka header value, as the
// package doc lists; nil (void) is null.
func stringify(v any) []byte {
	switch v := v.(type) {
	case nil:
		return nil
	case string:
		return []byte(v)
	case []byte:
		return slices.Clone(v)
	case amqp091.Table, map[string]any, []any:
		b, err := json.Marshal(jsonValue(v))
		if err != nil {
			return nil
		}
		return b
	}
	return []byte(scalarText(v))
}

// scalarText is the text of a scalar field value.
func scalarText(v any) string {
	switch v := v.(type) {
	case bool:
		return strconv.FormatBool(v)
	case int8:
		return strconv.FormatInt(int64(v), 10)
	case int16:
		return strconv.FormatInt(int64(v), 10)
	case int32:
		return strconv.FormatInt(int64(v), 10)
	case int64:
		return strconv.FormatInt(v, 10)
	case int:
		return strconv.FormatInt(int64(v), 10)
	case uint8:
		return strconv.FormatUint(uint64(v), 10)
	case uint16:
		return strconv.FormatUint(uint64(v), 10)
	case uint32:
		return strconv.FormatUint(uint64(v), 10)
	case uint64:
		return strconv.FormatUint(v, 10)
	case uint:
		return strconv.FormatUint(uint64(v), 10)
	case float32:
		return strconv.FormatFloat(float64(v), 'g', -1, 32)
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	case amqp091.Decimal:
		return decimalText(v)
	case time.Time:
		return v.UTC().Format(time.RFC3339)
	case string:
		return v
	case []byte:
		return string(v)
	}
	return ""
}

// decimalText writes Value / 10^Scale exactly, e.g. {2, -1234} as "-12.34".
func decimalText(d amqp091.Decimal) string {
	return new(big.Rat).SetFrac(big.NewInt(int64(d.Value)), new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(d.Scale)), nil)).FloatString(int(d.Scale))
}

// jsonValue converts a nested field value for encoding/json: tables become
// objects, arrays arrays, numbers and booleans stay typed, strings stay
// strings, byte arrays become strings when UTF-8 (base64 otherwise), and
// decimals and timestamps their text.
func jsonValue(v any) any {
	switch v := v.(type) {
	case amqp091.Table:
		return jsonValue(map[string]any(v))
	case map[string]any:
		o := make(map[string]any, len(v))
		for k, e := range v {
			o[k] = jsonValue(e)
		}
		return o
	case []any:
		a := make([]any, len(v))
		for i, e := range v {
			a[i] = jsonValue(e)
		}
		return a
	case []byte:
		if utf8.Valid(v) {
			return string(v)
		}
		return base64.StdEncoding.EncodeToString(v)
	case nil, bool, string, int8, int16, int32, int64, int, uint8, uint16, uint32, uint64, uint:
		return v
	case float32, float64:
		f, _ := strconv.ParseFloat(scalarText(v), 64)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return scalarText(v) // JSON has no NaN or infinity
		}
		return f
	}
	return scalarText(v)
}
