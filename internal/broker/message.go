package broker

import (
	"bytes"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/warren-mq/warren/internal/amqp091"
)

// Message is one published message. It is immutable once published and shared by
// every queue it was routed to; per-queue state lives in Entry.
type Message struct {
	Exchange   string
	RoutingKey string
	// Props is the encoded content-header property list (flags + properties),
	// forwarded to consumers as received unless the broker must rewrite it.
	Props []byte
	// BodySize is the body's length, known even while the body is paged out.
	BodySize int

	Persistent bool
	Priority   uint8
	// TTL is the per-message expiration in milliseconds, -1 when absent.
	TTL int64

	refs atomic.Int32 // queues holding the message, for memory accounting
	cc   []string     // sender-selected extra routing keys (CC and BCC headers)
	// mayHaveCC: the headers contain a CC or BCC key (set at publish).
	mayHaveCC bool
	rec       atomic.Pointer[[]byte] // encoded for the store, see record
	body      atomic.Pointer[[]byte] // nil once paged out to the store
	page      pageState
	// tracker is a stream delivery's consumer offset tracker, nil if none
	// (see stream_offsets.go).
	tracker *offsetTracker
}

// Body returns the message body, reading it back from the store if it was
// paged out under memory pressure.
func (m *Message) Body() ([]byte, error) {
	if b := m.body.Load(); b != nil {
		return *b, nil
	}
	return m.page.load()
}

func (m *Message) setBody(b []byte) {
	m.body.Store(&b)
	m.BodySize = len(b)
}

// hasCC reports whether the message carries CC or BCC routing keys, looking at
// the encoded headers first so that most messages are not decoded.
func (m *Message) hasCC() bool { return m.mayHaveCC }

// headersMayHaveCC looks for a CC or BCC array key in an encoded headers table.
func headersMayHaveCC(h []byte) bool {
	return h != nil && (bytes.Contains(h, []byte("\x02CCA")) || bytes.Contains(h, []byte("\x03BCCA")))
}

// withoutBCC returns a copy of m with its CC and BCC keys collected and the
// BCC header removed, as RabbitMQ does before delivery.
func (m *Message) withoutBCC() *Message {
	p, err := m.Properties()
	if err != nil {
		return m
	}
	c := &Message{Exchange: m.Exchange, RoutingKey: m.RoutingKey, Persistent: m.Persistent, Priority: m.Priority, TTL: m.TTL}
	c.body.Store(m.body.Load()) // not published yet, so not paged out
	c.BodySize = m.BodySize
	for _, h := range []string{"CC", "BCC"} {
		if keys, ok := p.Headers[h].([]any); ok {
			for _, k := range keys {
				if s, ok := k.(string); ok {
					c.cc = append(c.cc, s)
				}
			}
		}
	}
	if _, ok := p.Headers["BCC"]; ok {
		delete(p.Headers, "BCC")
		c.Props = p.Append(nil)
	} else {
		c.Props = m.Props
	}
	return c
}

// NewMessage builds a message from an encoded property list, checking what the
// broker relies on. The slices are kept, not copied.
func NewMessage(exchange, routingKey string, props, body []byte) (*Message, error) {
	var s amqp091.PropertySummary
	if err := amqp091.SummarizeProperties(props, &s); err != nil {
		return nil, err
	}
	return NewMessageFromSummary(exchange, routingKey, props, body, &s)
}

// NewMessageFromSummary is NewMessage for a caller that has already
// summarised (and so validated) props into s, so the hot path scans them once.
func NewMessageFromSummary(exchange, routingKey string, props, body []byte, s *amqp091.PropertySummary) (*Message, error) {
	m := &Message{Exchange: exchange, RoutingKey: routingKey, Props: props, TTL: -1, mayHaveCC: headersMayHaveCC(s.Headers)}
	m.setBody(body)
	if s.Flags&amqp091.FlagDeliveryMode != 0 && s.DeliveryMode != 1 && s.DeliveryMode != 2 {
		return nil, amqp091.NewError(amqp091.PreconditionFailed, "invalid message: {delivery_mode_unknown,%d}", s.DeliveryMode)
	}
	m.Persistent = s.DeliveryMode == 2
	m.Priority = s.Priority
	if s.Flags&amqp091.FlagExpiration != 0 {
		ttl, err := parseExpiration(s.Expiration)
		if err != nil {
			return nil, err
		}
		m.TTL = ttl
	}
	return m, nil
}

// parseExpiration reads the expiration property as RabbitMQ does: a decimal
// integer of milliseconds, nothing before it and nothing after it.
func parseExpiration(b []byte) (int64, error) {
	i := 0
	if i < len(b) && (b[i] == '-' || b[i] == '+') {
		i++
	}
	j := i
	for j < len(b) && b[j] >= '0' && b[j] <= '9' {
		j++
	}
	var detail string
	switch {
	case j == i:
		detail = "no_integer"
	case j < len(b):
		detail = fmt.Sprintf("{leftover_string,%q}", b[j:])
	default:
		n, err := strconv.ParseInt(string(b), 10, 64)
		if err != nil {
			detail = "no_integer"
		} else if n < 0 {
			detail = fmt.Sprintf("{value_negative,%d}", n)
		} else {
			return n, nil
		}
	}
	return 0, amqp091.NewError(amqp091.PreconditionFailed, "invalid expiration '%s': %s", b, detail)
}

// Properties decodes the message's properties. It allocates; not for the hot path.
func (m *Message) Properties() (amqp091.Properties, error) {
	var p amqp091.Properties
	err := amqp091.DecodeProperties(m.Props, &p)
	return p, err
}

// Headers returns the decoded headers table, nil if none.
func (m *Message) Headers() amqp091.Table {
	var s amqp091.PropertySummary
	if amqp091.SummarizeProperties(m.Props, &s) != nil || s.Headers == nil {
		return nil
	}
	t, _, err := amqp091.DecodeTable(s.Headers)
	if err != nil {
		return nil
	}
	return t
}

// Entry is a message's place in one queue.
type Entry struct {
	Msg *Message
	// Seq orders the queue: requeued messages go back to their original place.
	Seq uint64
	// Redelivered is set once the message was delivered and came back.
	Redelivered bool
	// Expires is the unix-nano time the entry expires, 0 for never.
	Expires int64
}

func (e *Entry) expired(now int64) bool { return e.Expires != 0 && now >= e.Expires }

// nowNano is the broker's clock, in unix nanoseconds: the wall clock, moved
// on by clockSkew.
func nowNano() int64 { return time.Now().UnixNano() + clockSkew.Load() }

// clockSkew is added to the wall clock: always 0 but in tests, which move
// time past TTLs (across a restart, too) without waiting for it.
var clockSkew atomic.Int64
