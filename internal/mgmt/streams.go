package mgmt

import "github.com/warren-mq/warren/internal/broker"

// Sort paths of the merged queue and stream list.
var namePath, vhostPath = []string{"name"}, []string{"vhost"}

// Streams in the queue views, shaped as RabbitMQ 3.10's management shows a
// stream queue (type "stream", members/online/readers instead of a backing
// queue, messages = the span of committed offsets, nothing unacknowledged),
// plus the log's offsets, which RabbitMQ does not show.

// streamCounters are a stream's sampled counters: publish counts every
// record the log took (offsets are contiguous from 0, so that is its next
// offset), whichever protocol wrote it.
func streamCounters(si *broker.StreamInfo) counters {
	var c counters
	c[cPublish] = uint64(max(0, si.NextOffset))
	c[cMessages] = uint64(si.Messages())
	c[cMessagesReady] = c[cMessages]
	return c
}

func (s *Server) streamObj(si *broker.StreamInfo, detail bool) obj {
	st := s.rates.get("q\x00" + si.VHost + "\x00" + si.Name)
	c := streamCounters(si)
	gc := obj{"fullsweep_after": -1, "max_heap_size": -1, "min_bin_vheap_size": -1, "min_heap_size": -1, "minor_gcs": -1}
	o := obj{
		"name": si.Name, "vhost": si.VHost, "durable": true, "auto_delete": false, "exclusive": false,
		"arguments": jsonArgs(si.Args), "node": s.node, "type": "stream", "state": "running",
		"members": []any{s.node}, "online": []any{s.node}, "readers": obj{s.node: len(si.Consumers)},
		"policy": orNull(si.Policy.Policy), "operator_policy": orNull(si.Policy.OperatorPolicy),
		"effective_policy_definition": policyDefinition(si.Policy.Definition),
		"consumers":                   len(si.Consumers),
		"messages":                    c[cMessages], "messages_details": details(st, cMessages),
		"messages_ready": c[cMessagesReady], "messages_ready_details": details(st, cMessagesReady),
		"messages_unacknowledged": 0, "messages_unacknowledged_details": details(st, cMessagesUnacked),
		"memory": 0, "garbage_collection": gc, "reductions": 0, "reductions_details": obj{"rate": 0.0},
		"message_stats": messageStats(&c, st, []counter{cPublish}),
		"first_offset":  si.FirstOffset, "next_offset": si.NextOffset, "last_stable_offset": si.LastStableOffset,
	}
	if detail {
		o["incoming"] = []any{}
		o["deliveries"] = []any{}
	}
	return o
}

// lazyStream is lazyQueue for a stream.
func (s *Server) lazyStream(st *broker.Stream) *lazyItem {
	var si *broker.StreamInfo
	info := func() *broker.StreamInfo {
		if si == nil {
			x := st.Info()
			si = &x
		}
		return si
	}
	return &lazyItem{
		sortKey: func(field string) (any, bool) {
			switch field {
			case "name":
				return st.Name(), true
			case "durable":
				return true, true
			case "auto_delete", "exclusive":
				return false, true
			case "messages", "messages_ready":
				return int(info().Messages()), true
			case "messages_unacknowledged":
				return 0, true
			case "consumers":
				return len(info().Consumers), true
			case "vhost":
				return info().VHost, true
			}
			return nil, false
		},
		build: func() obj { return s.streamObj(info(), false) },
	}
}

// getStream answers GET /api/queues/{vhost}/{name} for a stream.
func (s *Server) getStream(r *req, st *broker.Stream) error {
	si := st.Info()
	o := s.streamObj(&si, true)
	cds := []obj{}
	if len(si.Consumers) > 0 {
		_, idx := s.channels()
		for _, ci := range si.Consumers {
			cds = append(cds, s.consumerObj(&ci, idx))
		}
	}
	o["consumer_details"] = cds
	return r.writeOne(o)
}

// deleteStream answers DELETE /api/queues/{vhost}/{name} for a stream
// (through the same metadata command as queue.delete).
func (s *Server) deleteStream(r *req, v *broker.VHost, a *broker.Access) error {
	st, ok := v.Stream(r.v("name"))
	if !ok {
		return errNotFound
	}
	if err := check(a, "queue", st.Name(), broker.Configure); err != nil {
		return err
	}
	if err := st.Delete(); err != nil {
		return err
	}
	return noContent(r, false)
}

// streamTotals is what a vhost's streams add to the overview and vhost
// totals: their count, consumers and message counts (only those: a stream's
// publish counter is per stream, publishes are counted at the exchanges).
func streamTotals(v *broker.VHost) (n, consumers int, c counters) {
	for _, st := range v.Streams() {
		si := st.Info()
		n++
		consumers += len(si.Consumers)
		sc := streamCounters(&si)
		c[cMessages] += sc[cMessages]
		c[cMessagesReady] += sc[cMessagesReady]
	}
	return n, consumers, c
}
