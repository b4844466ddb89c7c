package amqp091

import (
	"encoding/binary"
	"strings"
	"time"
)

// Properties are the basic class content-header properties.
type Properties struct {
	ContentType, ContentEncoding                  string
	Headers                                       Table
	DeliveryMode                                  uint8
	Priority                                      uint8
	CorrelationID, ReplyTo, Expiration, MessageID string
	Timestamp                                     time.Time // zero = absent
	Type, UserID, AppID, ClusterID                string
}

// Property flag bits, in specification order: the first property is the most
// significant bit of the first flags word.
const (
	FlagContentType     = 0x8000
	FlagContentEncoding = 0x4000
	FlagHeaders         = 0x2000
	FlagDeliveryMode    = 0x1000
	FlagPriority        = 0x0800
	FlagCorrelationID   = 0x0400
	FlagReplyTo         = 0x0200
	FlagExpiration      = 0x0100
	FlagMessageID       = 0x0080
	FlagTimestamp       = 0x0040
	FlagType            = 0x0020
	FlagUserID          = 0x0010
	FlagAppID           = 0x0008
	FlagClusterID       = 0x0004
)

// flagContinuation in a flags word announces another flags word. The basic
// class has only 14 properties, and RabbitMQ fails on a set continuation bit,
// so Warren rejects it too. Bit 0x0002 is unused and, as in RabbitMQ, ignored.
const flagContinuation = 0x0001

// Append appends the property flags and list. A property is present when its
// value is non-zero (Headers: when non-nil), so an empty Properties encodes as
// two zero bytes. Short strings over 255 bytes are truncated.
func (p *Properties) Append(b []byte) []byte {
	start := len(b)
	b = append(b, 0, 0)
	var flags uint16
	str := func(flag uint16, s string) {
		if s != "" {
			flags |= flag
			b = appendShortstr(b, s)
		}
	}
	str(FlagContentType, p.ContentType)
	str(FlagContentEncoding, p.ContentEncoding)
	if p.Headers != nil {
		flags |= FlagHeaders
		b = AppendTable(b, p.Headers)
	}
	if p.DeliveryMode != 0 {
		flags |= FlagDeliveryMode
		b = append(b, p.DeliveryMode)
	}
	if p.Priority != 0 {
		flags |= FlagPriority
		b = append(b, p.Priority)
	}
	str(FlagCorrelationID, p.CorrelationID)
	str(FlagReplyTo, p.ReplyTo)
	str(FlagExpiration, p.Expiration)
	str(FlagMessageID, p.MessageID)
	if !p.Timestamp.IsZero() {
		flags |= FlagTimestamp
		b = appendTimestamp(b, p.Timestamp)
	}
	str(FlagType, p.Type)
	str(FlagUserID, p.UserID)
	str(FlagAppID, p.AppID)
	str(FlagClusterID, p.ClusterID)
	binary.BigEndian.PutUint16(b[start:], flags)
	return b
}

// propertyError is the error for a malformed property list. RabbitMQ fails
// inside the channel when it decodes such a list and closes the connection with
// a bare 541 INTERNAL_ERROR; Warren uses the same code and says why.
func propertyError(b []byte) *Error {
	var sb strings.Builder
	sb.WriteString("cannot decode properties ")
	writeErlangInts(&sb, b, 100)
	return NewError(InternalError, "%s", sb.String())
}

// DecodeProperties decodes b, the property flags and list (after class, weight
// and body size), into p, overwriting every field. Malformed input (short,
// trailing bytes, a continuation flag) is a *Error 541 as in RabbitMQ.
func DecodeProperties(b []byte, p *Properties) error {
	*p = Properties{}
	d := decoder{b: b}
	flags := d.short()
	if flags&flagContinuation != 0 {
		return propertyError(b)
	}
	if flags&FlagContentType != 0 {
		p.ContentType = d.shortstr()
	}
	if flags&FlagContentEncoding != 0 {
		p.ContentEncoding = d.shortstr()
	}
	if flags&FlagHeaders != 0 {
		p.Headers = d.table()
	}
	if flags&FlagDeliveryMode != 0 {
		p.DeliveryMode = d.octet()
	}
	if flags&FlagPriority != 0 {
		p.Priority = d.octet()
	}
	if flags&FlagCorrelationID != 0 {
		p.CorrelationID = d.shortstr()
	}
	if flags&FlagReplyTo != 0 {
		p.ReplyTo = d.shortstr()
	}
	if flags&FlagExpiration != 0 {
		p.Expiration = d.shortstr()
	}
	if flags&FlagMessageID != 0 {
		p.MessageID = d.shortstr()
	}
	if flags&FlagTimestamp != 0 {
		p.Timestamp = d.timestamp()
	}
	if flags&FlagType != 0 {
		p.Type = d.shortstr()
	}
	if flags&FlagUserID != 0 {
		p.UserID = d.shortstr()
	}
	if flags&FlagAppID != 0 {
		p.AppID = d.shortstr()
	}
	if flags&FlagClusterID != 0 {
		p.ClusterID = d.shortstr()
	}
	if d.bad || d.off != len(b) {
		*p = Properties{}
		return propertyError(b)
	}
	return nil
}

// PropertySummary is what the broker's hot path needs, read without allocation; slices alias the input.
type PropertySummary struct {
	Flags        uint16
	DeliveryMode uint8
	Priority     uint8
	Expiration   []byte
	ReplyTo      []byte
	UserID       []byte
	Headers      []byte // the encoded table including its 4-byte length, nil if absent
}

// SummarizeProperties validates the whole property list, including the headers
// table (with ValidateTable), and fills s without allocating; it accepts exactly
// what DecodeProperties accepts. The broker passes the raw list through to
// consumers and only needs these few fields to route, expire and check user-id.
func SummarizeProperties(b []byte, s *PropertySummary) error {
	*s = PropertySummary{}
	d := decoder{b: b}
	flags := d.short()
	if flags&flagContinuation != 0 {
		return propertyError(b)
	}
	s.Flags = flags
	rawShortstr := func() []byte {
		n := d.octet()
		return d.next(int(n))
	}
	if flags&FlagContentType != 0 {
		rawShortstr()
	}
	if flags&FlagContentEncoding != 0 {
		rawShortstr()
	}
	if flags&FlagHeaders != 0 && !d.bad {
		n, err := ValidateTable(b[d.off:])
		if err != nil {
			*s = PropertySummary{}
			return propertyError(b)
		}
		s.Headers = d.next(n)
	}
	if flags&FlagDeliveryMode != 0 {
		s.DeliveryMode = d.octet()
	}
	if flags&FlagPriority != 0 {
		s.Priority = d.octet()
	}
	if flags&FlagCorrelationID != 0 {
		rawShortstr()
	}
	if flags&FlagReplyTo != 0 {
		s.ReplyTo = rawShortstr()
	}
	if flags&FlagExpiration != 0 {
		s.Expiration = rawShortstr()
	}
	if flags&FlagMessageID != 0 {
		rawShortstr()
	}
	if flags&FlagTimestamp != 0 {
		d.next(8)
	}
	if flags&FlagType != 0 {
		rawShortstr()
	}
	if flags&FlagUserID != 0 {
		s.UserID = rawShortstr()
	}
	if flags&FlagAppID != 0 {
		rawShortstr()
	}
	if flags&FlagClusterID != 0 {
		rawShortstr()
	}
	if d.bad || d.off != len(b) {
		*s = PropertySummary{}
		return propertyError(b)
	}
	return nil
}

// ParseContentHeader splits a header frame payload; props aliases payload (flags + property list).
// A payload too short for class, weight and body size is a 501 FRAME_ERROR in
// RabbitMQ's wording; a missing flags word is left to DecodeProperties or
// SummarizeProperties, which report it as RabbitMQ does. The weight is ignored.
func ParseContentHeader(payload []byte) (classID uint16, bodySize uint64, props []byte, err error) {
	if len(payload) < 12 {
		return 0, 0, nil, frameError(FrameHeader, payload, "unknown_frame")
	}
	return binary.BigEndian.Uint16(payload), binary.BigEndian.Uint64(payload[4:]), payload[12:], nil
}
