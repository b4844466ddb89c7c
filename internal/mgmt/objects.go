package mgmt

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/warren-mq/warren/internal/amqp091"
	"github.com/warren-mq/warren/internal/broker"
	"github.com/warren-mq/warren/internal/definitions"
)

// The JSON shapes of RabbitMQ 3.10-3.13's management API, built from the
// broker's snapshots. A field RabbitMQ fills is never null here unless
// RabbitMQ itself sends null (policy of a queue without one, for instance).

// jsonArgs converts a field table for JSON: never null.
func jsonArgs(t amqp091.Table) obj { return definitions.ArgsToJSON(t) }

// fieldTable converts JSON (decoded with UseNumber) to an AMQP field table.
func fieldTable(m map[string]any) (amqp091.Table, error) { return definitions.ArgsFromJSON(m) }

func orNull(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func (s *Server) queueObj(qi *broker.QueueInfo, detail bool) obj {
	st := s.rates.get("q\x00" + qi.VHost + "\x00" + qi.Name)
	c := queueCounters(qi)
	state := "running"
	idle := s.started
	o := obj{
		"name": qi.Name, "vhost": qi.VHost, "durable": qi.Durable, "auto_delete": qi.AutoDelete, "exclusive": qi.Exclusive,
		"arguments": jsonArgs(qi.Args), "node": s.node, "type": "classic", "state": state,
		"policy": orNull(qi.Policy.Policy), "operator_policy": orNull(qi.Policy.OperatorPolicy),
		"effective_policy_definition": policyDefinition(qi.Policy.Definition),
		"consumers":                   qi.Consumers, "consumer_capacity": boolFloat(qi.Consumers > 0), "consumer_utilisation": boolFloat(qi.Consumers > 0),
		"exclusive_consumer_tag": nil, "single_active_consumer_tag": orNull(qi.SingleActiveConsumerTag),
		"messages": c[cMessages], "messages_details": details(st, cMessages),
		"messages_ready": c[cMessagesReady], "messages_ready_details": details(st, cMessagesReady),
		"messages_unacknowledged": c[cMessagesUnacked], "messages_unacknowledged_details": details(st, cMessagesUnacked),
		"messages_ram": c[cMessages] - uint64(qi.MessagesPagedOut), "messages_ready_ram": c[cMessagesReady] - uint64(qi.MessagesPagedOut), "messages_unacknowledged_ram": c[cMessagesUnacked],
		"messages_persistent": 0, "messages_paged_out": qi.MessagesPagedOut,
		"message_bytes": qi.MessageBytesReady + qi.MessageBytesUnacked, "message_bytes_ready": qi.MessageBytesReady, "message_bytes_unacknowledged": qi.MessageBytesUnacked,
		"message_bytes_ram": qi.MessageBytesReady + qi.MessageBytesUnacked - qi.MessageBytesPagedOut, "message_bytes_persistent": 0, "message_bytes_paged_out": qi.MessageBytesPagedOut,
		"memory": qi.Memory, "head_message_timestamp": nil, "recoverable_slaves": nil,
		"idle_since": idle.UTC().Format("2006-01-02T15:04:05.000+00:00"),
		"reductions": 0, "reductions_details": obj{"rate": 0.0},
		"garbage_collection": obj{"fullsweep_after": 0, "max_heap_size": 0, "min_bin_vheap_size": 0, "min_heap_size": 0, "minor_gcs": 0},
		"backing_queue_status": obj{"avg_ack_egress_rate": 0.0, "avg_ack_ingress_rate": 0.0, "avg_egress_rate": 0.0, "avg_ingress_rate": 0.0,
			"len": c[cMessagesReady], "mode": "default", "next_seq_id": 0, "q1": 0, "q2": 0, "q3": 0, "q4": 0,
			"delta": []any{"delta", "undefined", 0, 0, "undefined"}, "target_ram_count": "infinity", "version": 1},
		"message_stats": messageStats(&c, st, queueStatNames),
	}
	if detail {
		o["incoming"] = []any{}
		o["deliveries"] = []any{}
	}
	return o
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func policyDefinition(d map[string]any) obj {
	out := obj{}
	for k, v := range d {
		out[k] = v
	}
	return out
}

func (s *Server) exchangeObj(vhost string, e *broker.Exchange) obj {
	var c counters
	c[cPublishIn], c[cPublishOut] = e.PublishStats()
	st := s.rates.get("x\x00" + vhost + "\x00" + e.Name)
	return obj{"name": e.Name, "vhost": vhost, "type": e.Kind, "durable": e.Durable, "auto_delete": e.AutoDelete,
		"internal": e.Internal, "arguments": jsonArgs(e.Args), "policy": orNull(e.Policy().Policy),
		"user_who_performed_action": "rmq-internal", "message_stats": messageStats(&c, st, []counter{cPublishIn, cPublishOut})}
}

// bindingRow is a binding with the vhost and source it belongs to.
type bindingRow struct {
	vhost, source string
	b             *broker.Binding
}

func (br bindingRow) destType() string {
	if br.b.ToExchange {
		return "exchange"
	}
	return "queue"
}

func bindingObj(br bindingRow) obj {
	return obj{"source": br.source, "vhost": br.vhost, "destination": br.b.Destination, "destination_type": br.destType(),
		"routing_key": br.b.Key, "arguments": jsonArgs(br.b.Args), "properties_key": propertiesKey(br.b.Key, br.b.Args)}
}

// propertiesKey names a binding among those between the same two ends, as
// RabbitMQ's properties_key does: "~" for an empty key without arguments,
// the quoted key, and "~" plus a hash of the arguments when there are any.
// Only Warren reads it back, so the hash need not be RabbitMQ's.
func propertiesKey(key string, args amqp091.Table) string {
	k := quotePlus(key)
	if len(args) == 0 {
		if key == "" {
			return "~"
		}
		return k
	}
	b, _ := json.Marshal(jsonArgs(args)) // maps marshal sorted: stable
	h := sha256.Sum256(b)
	return k + "~" + base64.RawURLEncoding.EncodeToString(h[:4])
}

// quotePlus percent-encodes all but letters, digits and "-_.", with space as "+".
func quotePlus(s string) string {
	var sb strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.':
			sb.WriteByte(c)
		case c == ' ':
			sb.WriteByte('+')
		default:
			fmt.Fprintf(&sb, "%%%02X", c)
		}
	}
	return sb.String()
}

// bindings lists a vhost's bindings as RabbitMQ does, the default
// exchange's implicit binding to every queue first.
func bindings(v *broker.VHost) []bindingRow {
	var out []bindingRow
	for _, q := range v.Queues() {
		out = append(out, bindingRow{v.Name, "", &broker.Binding{Destination: q.Name, Key: q.Name}})
	}
	for _, st := range v.Streams() {
		out = append(out, bindingRow{v.Name, "", &broker.Binding{Destination: st.Name(), Key: st.Name()}})
	}
	for _, e := range v.Exchanges() {
		if e.Name == "" {
			continue
		}
		bs := e.Bindings()
		slices.SortFunc(bs, func(x, y *broker.Binding) int {
			if x.ToExchange != y.ToExchange {
				if x.ToExchange {
					return 1
				}
				return -1
			}
			if c := strings.Compare(x.Destination, y.Destination); c != 0 {
				return c
			}
			return strings.Compare(x.Key, y.Key)
		})
		for _, b := range bs {
			out = append(out, bindingRow{v.Name, e.Name, b})
		}
	}
	return out
}

func vhostObj(s *Server, v *broker.VHost) obj {
	info := v.Info()
	tags := []string{}
	for _, t := range strings.Split(info.Tags, ",") {
		if t = strings.TrimSpace(t); t != "" {
			tags = append(tags, t)
		}
	}
	var c counters
	for _, q := range v.Queues() {
		qi := q.Info()
		qc := queueCounters(&qi)
		for i := cMessages; i <= cMessagesUnacked; i++ {
			c[i] += qc[i]
		}
	}
	_, _, sc := streamTotals(v)
	c.add(&sc)
	st := s.rates.get("v\x00" + v.Name)
	if st != nil {
		for i := range cDeliverGet + 1 {
			c[i] = st.cur.c[i]
		}
		c[cRecvOct], c[cSendOct] = st.cur.c[cRecvOct], st.cur.c[cSendOct]
	}
	dqt := info.DefaultQueueType
	if dqt == "" {
		dqt = "undefined"
	}
	meta := obj{"description": info.Description, "tags": tags}
	if info.DefaultQueueType != "" {
		meta["default_queue_type"] = info.DefaultQueueType
	}
	return obj{"name": v.Name, "description": info.Description, "tags": tags, "default_queue_type": dqt, "metadata": meta,
		"tracing": false, "cluster_state": obj{s.node: "running"},
		"messages": c[cMessages], "messages_details": details(st, cMessages),
		"messages_ready": c[cMessagesReady], "messages_ready_details": details(st, cMessagesReady),
		"messages_unacknowledged": c[cMessagesUnacked], "messages_unacknowledged_details": details(st, cMessagesUnacked),
		"recv_oct": c[cRecvOct], "recv_oct_details": details(st, cRecvOct), "send_oct": c[cSendOct], "send_oct_details": details(st, cSendOct),
		"message_stats": messageStats(&c, st, channelStatNames)}
}

func userObj(u *broker.User, limits map[string]int64) obj {
	tags := u.Tags
	if tags == nil {
		tags = []string{}
	}
	alg := u.HashAlgorithm
	if alg == "" {
		alg = broker.HashSHA256
	}
	return obj{"name": u.Name, "password_hash": u.PasswordHash, "hashing_algorithm": alg, "tags": tags, "limits": limitsObj(limits)}
}

func limitsObj(l map[string]int64) obj {
	out := obj{}
	for k, v := range l {
		out[k] = v
	}
	return out
}

const timeMillis = 1e6

func (s *Server) connectionObj(si *broker.SessionInfo) obj {
	st := s.rates.get("s\x00" + si.Name)
	cp := definitions.ArgsToJSON(amqp091.Table(si.ClientProperties))
	state := si.State
	if state == "" {
		state = "running"
	}
	o := obj{"name": si.Name, "node": s.node, "type": "network", "protocol": orDefault(si.Protocol, "AMQP 0-9-1"),
		"user": si.User, "user_who_performed_action": si.User, "vhost": si.VHost, "auth_mechanism": orDefault(si.AuthMechanism, "PLAIN"),
		"host": si.Host, "port": si.Port, "peer_host": si.PeerHost, "peer_port": si.PeerPort, "state": state,
		"client_properties": cp, "user_provided_name": si.UserProvidedName, "connected_at": si.ConnectedAt.UnixNano() / timeMillis,
		"frame_max": si.FrameMax, "channel_max": si.ChannelMax, "timeout": si.Heartbeat, "channels": si.Channels,
		"recv_oct": si.RecvOct, "recv_oct_details": details(st, cRecvOct), "send_oct": si.SendOct, "send_oct_details": details(st, cSendOct),
		"recv_cnt": si.RecvCnt, "send_cnt": si.SendCnt, "send_pend": 0,
		"reductions": 0, "reductions_details": obj{"rate": 0.0},
		"garbage_collection": obj{"fullsweep_after": 0, "max_heap_size": 0, "min_bin_vheap_size": 0, "min_heap_size": 0, "minor_gcs": 0},
		"ssl":                si.TLS, "ssl_protocol": nil, "ssl_cipher": nil, "ssl_hash": nil, "ssl_key_exchange": nil,
		"peer_cert_subject": nil, "peer_cert_issuer": nil, "peer_cert_validity": nil}
	if si.TLS {
		o["ssl_protocol"], o["ssl_cipher"] = orNull(si.TLSVersion), orNull(si.TLSCipher)
		o["peer_cert_subject"] = orNull(si.PeerCertSubject)
	}
	if si.UserProvidedName == "" {
		delete(o, "user_provided_name")
	}
	return o
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func (s *Server) channelObj(si *broker.SessionInfo, ch *broker.ChannelInfo) obj {
	st := s.rates.get("ch\x00" + ch.Name)
	var c counters
	c.addStats(ch.Stats)
	state := ch.State
	if state == "" {
		state = "running"
	}
	idle := ch.IdleSince
	if idle.IsZero() {
		idle = si.ConnectedAt
	}
	return obj{"name": ch.Name, "number": ch.Number, "node": s.node, "user": orDefault(ch.User, si.User), "vhost": orDefault(ch.VHost, si.VHost),
		"user_who_performed_action": orDefault(ch.User, si.User), "state": state,
		"connection_details": obj{"name": si.Name, "peer_host": si.PeerHost, "peer_port": si.PeerPort},
		"confirm":            ch.Confirm, "transactional": ch.Transactional, "prefetch_count": ch.PrefetchCount, "global_prefetch_count": ch.GlobalPrefetchCount,
		"messages_unacknowledged": ch.Unacked, "messages_unconfirmed": ch.Unconfirmed, "messages_uncommitted": ch.UncommittedMessages,
		"acks_uncommitted": ch.UncommittedAcks, "consumer_count": ch.Consumers, "pending_raft_commands": 0,
		"idle_since": idle.UTC().Format("2006-01-02T15:04:05.000+00:00"),
		"reductions": 0, "reductions_details": obj{"rate": 0.0},
		"garbage_collection": obj{"fullsweep_after": 0, "max_heap_size": 0, "min_bin_vheap_size": 0, "min_heap_size": 0, "minor_gcs": 0},
		"message_stats":      messageStats(&c, st, channelStatNames)}
}

// channelIndex finds a channel's session by channel name, for consumers.
type channelIndex map[string]struct {
	si *broker.SessionInfo
	ch broker.ChannelInfo
}

func (s *Server) channels() ([]broker.SessionSnapshot, channelIndex) {
	ss := s.b.Sessions()
	idx := channelIndex{}
	for i := range ss {
		for _, ch := range ss[i].Session.Channels() {
			idx[ch.Name] = struct {
				si *broker.SessionInfo
				ch broker.ChannelInfo
			}{&ss[i].Info, ch}
		}
	}
	return ss, idx
}

func (s *Server) consumerObj(ci *broker.ConsumerInfo, idx channelIndex) obj {
	chd := obj{"name": ci.Channel, "node": s.node, "number": 0, "connection_name": "", "peer_host": "", "peer_port": 0, "user": ""}
	if e, ok := idx[ci.Channel]; ok {
		chd = obj{"name": ci.Channel, "node": s.node, "number": e.ch.Number, "connection_name": e.si.Name,
			"peer_host": e.si.PeerHost, "peer_port": e.si.PeerPort, "user": e.si.User}
	}
	status := "up"
	if !ci.Active {
		status = "waiting"
	}
	return obj{"consumer_tag": ci.Tag, "queue": obj{"name": ci.Queue, "vhost": ci.VHost}, "channel_details": chd,
		"ack_required": ci.AckRequired, "exclusive": ci.Exclusive, "prefetch_count": ci.PrefetchCount, "active": ci.Active,
		"activity_status": status, "arguments": jsonArgs(ci.Args)}
}
