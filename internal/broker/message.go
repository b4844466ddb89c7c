package broker

import (
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
	Body  []byte

	Persistent bool
	Priority   uint8
	// TTL is the per-message expiration in milliseconds, -1 when absent.
	TTL int64

	refs atomic.Int32 // queues holding the message, for memory accounting
}

// Size is what the message counts against the memory limit.
func (m *Message) Size() int {
	return len(m.Body) + len(m.Props) + len(m.Exchange) + len(m.RoutingKey) + 64
}

// NewMessage builds a message from an encoded property list, checking what the
// broker relies on. The slices are kept, not copied.
func NewMessage(exchange, routingKey string, props, body []byte) (*Message, error) {
	var s amqp091.PropertySummary
	if err := amqp091.SummarizeProperties(props, &s); err != nil {
		return nil, err
	}
	m := &Message{Exchange: exchange, RoutingKey: routingKey, Props: props, Body: body, TTL: -1}
	m.Persistent = s.DeliveryMode == 2
	m.Priority = s.Priority
	if s.Flags&amqp091.FlagExpiration != 0 {
		ttl, err := strconv.ParseInt(string(s.Expiration), 10, 64)
		if err != nil || ttl < 0 {
			return nil, amqp091.NewError(amqp091.PreconditionFailed, "invalid expiration '%s': {value_negative,%s}", s.Expiration, s.Expiration)
		}
		m.TTL = ttl
	}
	return m, nil
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

func nowNano() int64 { return time.Now().UnixNano() }
