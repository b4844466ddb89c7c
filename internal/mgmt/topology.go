package mgmt

import (
	"cmp"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/warren-mq/warren/internal/amqp091"
	"github.com/warren-mq/warren/internal/broker"
)

// Exchanges, queues and bindings: lists, declare, delete, publish, get, purge.

// exchangeName maps the path's name to the broker's: RabbitMQ's API calls
// the default exchange amq.default.
func exchangeName(s string) string {
	if s == "amq.default" {
		return ""
	}
	return s
}

func (s *Server) listExchanges(r *req) error {
	o, err := r.listOpts()
	if err != nil {
		return err
	}
	vs, err := r.vhostsOf()
	if err != nil {
		return err
	}
	var items []obj
	total := 0
	for _, v := range vs {
		for _, e := range v.Exchanges() {
			total++
			if o.nameMatches(e.Name) {
				items = append(items, s.exchangeObj(v.Name, e))
			}
		}
	}
	return r.writeList(orEmpty(items), o, total)
}

func orEmpty(items []obj) []obj {
	if items == nil {
		return []obj{}
	}
	return items
}

func (s *Server) exchange(r *req) (*broker.VHost, *broker.Exchange, error) {
	v, err := r.vhost()
	if err != nil {
		return nil, nil, err
	}
	e, ok := v.Exchange(exchangeName(r.v("name")))
	if !ok {
		return nil, nil, errNotFound
	}
	return v, e, nil
}

func (s *Server) getExchange(r *req) error {
	v, e, err := s.exchange(r)
	if err != nil {
		return err
	}
	o := s.exchangeObj(v.Name, e)
	o["incoming"], o["outgoing"] = []any{}, []any{}
	return r.writeOne(o)
}

func (s *Server) putExchange(r *req) error {
	v, a, err := r.vhostForWrite()
	if err != nil {
		return err
	}
	body := struct {
		Type              string
		Durable, Internal flexBool
		AutoDelete        flexBool `json:"auto_delete"`
		Arguments         map[string]any
	}{Type: "direct"}
	if err := r.decode(&body); err != nil {
		return err
	}
	name := r.v("name")
	if err := check(a, "exchange", name, broker.Configure); err != nil {
		return err
	}
	args, err := fieldTable(body.Arguments)
	if err != nil {
		return badRequest(err.Error())
	}
	_, existed := v.Exchange(name)
	d := broker.ExchangeDecl{Name: name, Kind: body.Type, Durable: boolOr(body.Durable, true), AutoDelete: boolOr(body.AutoDelete, false),
		Internal: boolOr(body.Internal, false), Args: args}
	if name == "" || name == "amq.default" {
		return notAuthorised("Access refused.")
	}
	if _, err := v.DeclareExchange(d); err != nil {
		if ae, ok := err.(*amqp091.Error); ok && ae.Code == amqp091.CommandInvalid {
			return badRequest("unknown exchange type '" + body.Type + "'")
		}
		return err
	}
	return noContent(r, !existed)
}

func boolOr(b flexBool, def bool) bool {
	if !b.set {
		return def
	}
	return b.v
}

// flexBool reads true, false, "true" and "false": rabbitmqadmin sends
// booleans as strings, and RabbitMQ takes both.
type flexBool struct{ set, v bool }

// UnmarshalJSON implements json.Unmarshaler.
func (b *flexBool) UnmarshalJSON(data []byte) error {
	switch strings.Trim(string(data), `"`) {
	case "true":
		*b = flexBool{true, true}
	case "false":
		*b = flexBool{true, false}
	case "null":
	default:
		return fmt.Errorf("want true or false, got %s", data)
	}
	return nil
}

func (s *Server) deleteExchange(r *req) error {
	v, a, err := r.vhostForWrite()
	if err != nil {
		return err
	}
	name := exchangeName(r.v("name"))
	if _, ok := v.Exchange(name); !ok {
		return errNotFound
	}
	if err := check(a, "exchange", name, broker.Configure); err != nil {
		return err
	}
	if err := v.DeleteExchange(name, r.URL.Query().Get("if-unused") == "true"); err != nil {
		return err
	}
	return noContent(r, false)
}

func (s *Server) listQueues(r *req) error {
	o, err := r.listOpts()
	if err != nil {
		return err
	}
	vs, err := r.vhostsOf()
	if err != nil {
		return err
	}
	var items []*lazyItem
	total := 0
	for _, v := range vs {
		for _, q := range v.Queues() {
			total++
			if o.nameMatches(q.Name) {
				items = append(items, s.lazyQueue(q))
			}
		}
		for _, st := range v.Streams() {
			total++
			if o.nameMatches(st.Name()) {
				items = append(items, s.lazyStream(st))
			}
		}
	}
	if o.sort == nil { // queues and streams in one name order, as RabbitMQ lists them
		slices.SortStableFunc(items, func(a, b *lazyItem) int {
			return cmp.Or(strings.Compare(a.key(vhostPath).(string), b.key(vhostPath).(string)),
				strings.Compare(a.key(namePath).(string), b.key(namePath).(string)))
		})
	}
	return r.writeLazy(items, o, total)
}

// lazyQueue is a queue for a list: sorting on its name, counts and flags
// takes one snapshot at most, and the object is built only for the page.
func (s *Server) lazyQueue(q *broker.Queue) *lazyItem {
	var qi *broker.QueueInfo
	info := func() *broker.QueueInfo {
		if qi == nil {
			x := q.Info()
			qi = &x
		}
		return qi
	}
	return &lazyItem{
		sortKey: func(field string) (any, bool) {
			switch field {
			case "name":
				return q.Name, true
			case "durable":
				return q.Durable, true
			case "auto_delete":
				return q.AutoDelete, true
			case "exclusive":
				return q.Exclusive, true
			case "messages":
				return info().MessagesReady + info().MessagesUnacked, true
			case "messages_ready":
				return info().MessagesReady, true
			case "messages_unacknowledged":
				return info().MessagesUnacked, true
			case "consumers":
				return info().Consumers, true
			case "vhost":
				return info().VHost, true
			}
			return nil, false
		},
		build: func() obj { return s.queueObj(info(), false) },
	}
}

func (s *Server) queue(r *req) (*broker.VHost, *broker.Queue, error) {
	v, err := r.vhost()
	if err != nil {
		return nil, nil, err
	}
	q, ok := v.Queue(r.v("name"))
	if !ok {
		return v, nil, errNotFound
	}
	return v, q, nil
}

func (s *Server) getQueue(r *req) error {
	v, q, err := s.queue(r)
	if err == errNotFound && v != nil {
		if st, ok := v.Stream(r.v("name")); ok {
			return s.getStream(r, st)
		}
	}
	if err != nil {
		return err
	}
	qi := q.Info()
	o := s.queueObj(&qi, true)
	cds := []obj{}
	if cl := q.ConsumerList(); len(cl) > 0 {
		_, idx := s.channels() // every session's channels: only when needed
		for _, ci := range cl {
			cds = append(cds, s.consumerObj(&ci, idx))
		}
	}
	o["consumer_details"] = cds
	return r.writeOne(o)
}

func (s *Server) putQueue(r *req) error {
	v, a, err := r.vhostForWrite()
	if err != nil {
		return err
	}
	body := struct {
		Durable    flexBool
		AutoDelete flexBool `json:"auto_delete"`
		Arguments  map[string]any
	}{}
	if err := r.decode(&body); err != nil {
		return err
	}
	name := r.v("name")
	if err := check(a, "queue", name, broker.Configure); err != nil {
		return err
	}
	args, err := fieldTable(body.Arguments)
	if err != nil {
		return badRequest(err.Error())
	}
	_, existed := v.Queue(name)
	if !existed {
		if err := v.QueueLimitReached(name); err != nil {
			return err
		}
	}
	if _, _, _, err := v.DeclareQueue(broker.QueueDecl{Name: name, Durable: boolOr(body.Durable, true), AutoDelete: boolOr(body.AutoDelete, false), Args: args}); err != nil {
		return err
	}
	return noContent(r, !existed)
}

func (s *Server) deleteQueue(r *req) error {
	v, a, err := r.vhostForWrite()
	if err != nil {
		return err
	}
	q, ok := v.Queue(r.v("name"))
	if !ok {
		return s.deleteStream(r, v, a)
	}
	if err := check(a, "queue", q.Name, broker.Configure); err != nil {
		return err
	}
	qs := r.URL.Query()
	if _, err := q.Delete(qs.Get("if-unused") == "true", qs.Get("if-empty") == "true"); err != nil {
		return err
	}
	return noContent(r, false)
}

func (s *Server) purgeQueue(r *req) error {
	v, a, err := r.vhostForWrite()
	if err != nil {
		return err
	}
	q, ok := v.Queue(r.v("name"))
	if !ok {
		return errNotFound
	}
	if err := check(a, "queue", q.Name, broker.Read); err != nil {
		return err
	}
	q.Purge()
	return noContent(r, false)
}

// getMessages is POST /api/queues/{vhost}/{name}/get: basic.get count
// times, then ack, requeue or reject what was taken, as ackmode says.
func (s *Server) getMessages(r *req) error {
	v, a, err := r.vhostForWrite()
	if err != nil {
		return err
	}
	q, ok := v.Queue(r.v("name"))
	if !ok {
		return errNotFound
	}
	body := struct {
		Count    json.Number
		AckMode  string `json:"ackmode"`
		Encoding string
		Truncate json.Number
		Requeue  flexBool
	}{Count: "1", Encoding: "auto"}
	if err := r.decode(&body); err != nil {
		return err
	}
	count, err := body.Count.Int64()
	if err != nil || count < 0 {
		return badRequest("count must be a non-negative integer")
	}
	if body.AckMode == "" && body.Requeue.set { // RabbitMQ before 3.7
		body.AckMode = map[bool]string{true: "ack_requeue_true", false: "ack_requeue_false"}[body.Requeue.v]
	}
	switch body.AckMode {
	case "ack_requeue_true", "ack_requeue_false", "reject_requeue_true", "reject_requeue_false":
	default:
		return badRequest("ackmode must be ack_requeue_true, ack_requeue_false, reject_requeue_true or reject_requeue_false")
	}
	if body.Encoding != "auto" && body.Encoding != "base64" {
		return badRequest("encoding must be auto or base64")
	}
	truncate := int64(-1)
	if body.Truncate != "" {
		if truncate, err = body.Truncate.Int64(); err != nil {
			return badRequest("truncate must be an integer")
		}
	}
	if err := check(a, "queue", q.Name, broker.Read); err != nil {
		return err
	}
	var taken []broker.Entry
	out := []obj{}
	for range count {
		e, b, remaining, ok, err := q.Get(false)
		if err != nil {
			return &apiError{http.StatusInternalServerError, "internal_error", err.Error()}
		}
		if !ok {
			break
		}
		taken = append(taken, e)
		out = append(out, messageObj(e, b, remaining, body.Encoding, truncate))
	}
	switch body.AckMode {
	case "ack_requeue_false":
		q.Ack(taken)
	case "reject_requeue_false":
		q.Reject(taken)
	default:
		q.Requeue(taken)
	}
	return writeJSON(r.w, out)
}

func messageObj(e broker.Entry, body []byte, remaining int, encoding string, truncate int64) obj {
	size := len(body)
	if truncate >= 0 && int64(len(body)) > truncate {
		body = body[:truncate]
	}
	o := obj{"payload_bytes": size, "redelivered": e.Redelivered, "exchange": e.Msg.Exchange, "routing_key": e.Msg.RoutingKey,
		"message_count": remaining, "properties": propertiesObj(e.Msg)}
	if encoding == "auto" && utf8.Valid(body) {
		o["payload"], o["payload_encoding"] = string(body), "string"
	} else {
		o["payload"], o["payload_encoding"] = base64.StdEncoding.EncodeToString(body), "base64"
	}
	return o
}

func propertiesObj(m *broker.Message) obj {
	out := obj{}
	p, err := m.Properties()
	if err != nil {
		return out
	}
	for k, v := range map[string]string{"content_type": p.ContentType, "content_encoding": p.ContentEncoding, "correlation_id": p.CorrelationID,
		"reply_to": p.ReplyTo, "expiration": p.Expiration, "message_id": p.MessageID, "type": p.Type, "user_id": p.UserID,
		"app_id": p.AppID, "cluster_id": p.ClusterID} {
		if v != "" {
			out[k] = v
		}
	}
	if p.Headers != nil {
		out["headers"] = jsonArgs(p.Headers)
	}
	if p.DeliveryMode != 0 {
		out["delivery_mode"] = p.DeliveryMode
	}
	if p.Priority != 0 {
		out["priority"] = p.Priority
	}
	if !p.Timestamp.IsZero() {
		out["timestamp"] = p.Timestamp.Unix()
	}
	return out
}

// publish is POST /api/exchanges/{vhost}/{name}/publish.
func (s *Server) publish(r *req) error {
	v, a, err := r.vhostForWrite()
	if err != nil {
		return err
	}
	var body struct {
		Properties      map[string]any
		RoutingKey      *string `json:"routing_key"`
		Payload         *string
		PayloadEncoding *string `json:"payload_encoding"`
	}
	if err := r.decode(&body); err != nil {
		return err
	}
	if body.Properties == nil || body.RoutingKey == nil || body.Payload == nil || body.PayloadEncoding == nil {
		return badRequest("properties, routing_key, payload and payload_encoding are required")
	}
	var payload []byte
	switch *body.PayloadEncoding {
	case "string":
		payload = []byte(*body.Payload)
	case "base64":
		if payload, err = base64.StdEncoding.DecodeString(*body.Payload); err != nil {
			return badRequest("payload is not valid base64")
		}
	default:
		return badRequest("payload_encoding must be string or base64")
	}
	name := exchangeName(r.v("name"))
	e, err := v.ExchangeForPublish(name)
	if err != nil {
		return err
	}
	if err := check(a, "exchange", name, broker.Write); err != nil {
		return err
	}
	props, err := properties(body.Properties)
	if err != nil {
		return badRequest(err.Error())
	}
	if props.UserID != "" && props.UserID != r.user.Name && !r.user.HasTag("impersonator") {
		return badRequest("user_id property set to '" + props.UserID + "' but authenticated user was '" + r.user.Name + "'")
	}
	m, err := broker.NewMessage(name, *body.RoutingKey, props.Append(nil), payload)
	if err != nil {
		return err
	}
	res := v.Publish(&broker.Router{}, e, m, nil)
	e.AddPublished(1, uint64(res.Queues))
	return writeJSON(r.w, obj{"routed": res.Routed})
}

// properties reads RabbitMQ's JSON message properties.
func properties(m map[string]any) (*amqp091.Properties, error) {
	p := &amqp091.Properties{}
	for k, v := range m {
		str, isStr := v.(string)
		num, isNum := v.(json.Number)
		var err error
		switch k {
		case "content_type", "content_encoding", "correlation_id", "reply_to", "expiration", "message_id", "type", "user_id", "app_id", "cluster_id":
			if !isStr {
				return nil, errProperty(k)
			}
			*map[string]*string{"content_type": &p.ContentType, "content_encoding": &p.ContentEncoding, "correlation_id": &p.CorrelationID,
				"reply_to": &p.ReplyTo, "expiration": &p.Expiration, "message_id": &p.MessageID, "type": &p.Type, "user_id": &p.UserID,
				"app_id": &p.AppID, "cluster_id": &p.ClusterID}[k] = str
		case "delivery_mode", "priority":
			var n int64
			if isNum {
				n, err = num.Int64()
			} else if isStr {
				n, err = strconv.ParseInt(str, 10, 8)
			} else {
				return nil, errProperty(k)
			}
			if err != nil || n < 0 || n > 255 {
				return nil, errProperty(k)
			}
			if k == "delivery_mode" {
				p.DeliveryMode = uint8(n)
			} else {
				p.Priority = uint8(n)
			}
		case "timestamp":
			if !isNum {
				return nil, errProperty(k)
			}
			n, err := num.Int64()
			if err != nil {
				return nil, errProperty(k)
			}
			p.Timestamp = time.Unix(n, 0)
		case "headers":
			h, ok := v.(map[string]any)
			if !ok {
				return nil, errProperty(k)
			}
			if p.Headers, err = fieldTable(h); err != nil {
				return nil, err
			}
			if p.Headers == nil {
				p.Headers = amqp091.Table{}
			}
		default:
			return nil, errProperty(k)
		}
	}
	return p, nil
}

type propertyError string

func (e propertyError) Error() string { return "invalid message property '" + string(e) + "'" }

func errProperty(k string) error { return propertyError(k) }
