package mgmt

import (
	"sync"
	"time"

	"github.com/warren-mq/warren/internal/broker"
)

// Message rates as RabbitMQ's "basic" rates mode gives them: a sampler
// goroutine reads the counters every interval (from the query API, never the
// hot path) and a rate is the change between the last two samples per
// second. The counters of closed connections and deleted queues are kept in
// the totals so node-wide counts never go down.

// counter indexes a counters array.
type counter int

const (
	cPublish counter = iota
	cConfirm
	cReturnUnroutable
	cDropUnroutable
	cDeliver
	cDeliverNoAck
	cGet
	cGetNoAck
	cGetEmpty
	cRedeliver
	cAck
	cDeliverGet
	cMessages
	cMessagesReady
	cMessagesUnacked
	cRecvOct
	cSendOct
	cPublishIn
	cPublishOut
	nCounters
)

var counterNames = [nCounters]string{"publish", "confirm", "return_unroutable", "drop_unroutable", "deliver", "deliver_no_ack",
	"get", "get_no_ack", "get_empty", "redeliver", "ack", "deliver_get", "messages", "messages_ready", "messages_unacknowledged",
	"recv_oct", "send_oct", "publish_in", "publish_out"}

type counters [nCounters]uint64

func (c *counters) addStats(ms broker.MessageStats) {
	c[cPublish] += ms.Publish
	c[cConfirm] += ms.Confirm
	c[cReturnUnroutable] += ms.ReturnUnroutable
	c[cDropUnroutable] += ms.DropUnroutable
	c[cDeliver] += ms.Deliver
	c[cDeliverNoAck] += ms.DeliverNoAck
	c[cGet] += ms.Get
	c[cGetNoAck] += ms.GetNoAck
	c[cGetEmpty] += ms.GetEmpty
	c[cRedeliver] += ms.Redeliver
	c[cAck] += ms.Ack
	c[cDeliverGet] += ms.Deliver + ms.DeliverNoAck + ms.Get + ms.GetNoAck
}

func queueCounters(qi *broker.QueueInfo) counters {
	var c counters
	c.addStats(qi.Stats)
	c[cMessages] = uint64(qi.MessagesReady + qi.MessagesUnacked)
	c[cMessagesReady] = uint64(qi.MessagesReady)
	c[cMessagesUnacked] = uint64(qi.MessagesUnacked)
	return c
}

// sessionStats are a session's message counters as MessageStats.
func sessionStats(si *broker.SessionInfo) broker.MessageStats {
	return broker.MessageStats{Publish: si.MessagesPublished, Confirm: si.MessagesConfirmed, ReturnUnroutable: si.MessagesUnroutable,
		Deliver:      si.MessagesDelivered - min(si.MessagesDelivered, si.MessagesDeliveredNoAck+si.MessagesGet+si.MessagesGetNoAck),
		DeliverNoAck: si.MessagesDeliveredNoAck, Get: si.MessagesGet, GetNoAck: si.MessagesGetNoAck, GetEmpty: si.MessagesGetEmpty,
		Redeliver: si.MessagesRedelivered, Ack: si.MessagesAcknowledged}
}

func sessionCounters(si *broker.SessionInfo) counters {
	var c counters
	c.addStats(sessionStats(si))
	c[cRecvOct], c[cSendOct] = si.RecvOct, si.SendOct
	return c
}

type sample struct {
	at time.Time
	c  counters
}

// series is an object's last two samples.
type series struct{ prev, cur sample }

func (s *series) rate(c counter) float64 {
	dt := s.cur.at.Sub(s.prev.at).Seconds()
	if s.prev.at.IsZero() || dt <= 0 || s.cur.c[c] < s.prev.c[c] && c < cMessages {
		return 0
	}
	return (float64(s.cur.c[c]) - float64(s.prev.c[c])) / dt
}

// sampler keeps the samples. Keys: "q\x00vhost\x00queue",
// "x\x00vhost\x00exchange", "s\x00connection",
// "ch\x00channel", "v\x00vhost" and "n" for the node's totals.
type sampler struct {
	s    *Server
	done chan struct{}
	once sync.Once

	mu      sync.Mutex
	series  map[string]*series
	retired counters // message counters of closed sessions and deleted queues
	last    map[string]counters
	hist    []sample // the node's, oldest first (history.go)
}

func newSampler(s *Server, interval time.Duration) *sampler {
	sm := &sampler{s: s, done: make(chan struct{}), series: map[string]*series{}, last: map[string]counters{}}
	sm.take(time.Now())
	go sm.run(interval)
	return sm
}

func (sm *sampler) stop() { sm.once.Do(func() { close(sm.done) }) }

func (sm *sampler) run(interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-sm.done:
			return
		case now := <-t.C:
			sm.take(now)
		}
	}
}

// contribution is what an object's counters add to its vhost's and the
// node's message totals: queues count deliveries and acks (so a channel's
// close loses none), exchanges count publishes, sessions count confirms
// and unroutable messages.
func contribution(key string, c *counters) counters {
	var out counters
	switch key[0] {
	case 'q':
		for _, i := range []counter{cDeliver, cDeliverNoAck, cGet, cGetNoAck, cGetEmpty, cRedeliver, cAck, cDeliverGet} {
			out[i] = c[i]
		}
	case 'x':
		out[cPublish] = c[cPublishIn]
	case 's':
		for _, i := range []counter{cConfirm, cReturnUnroutable, cDropUnroutable} {
			out[i] = c[i]
		}
	}
	return out
}

func (c *counters) add(o *counters) {
	for i := range c {
		c[i] += o[i]
	}
}

// take records one sample of every queue, exchange, session, channel, vhost
// and the node.
func (sm *sampler) take(now time.Time) {
	defer func() {
		// A bug here must cost the rates, not the broker.
		if p := recover(); p != nil {
			sm.s.log.Error("management rate sampler failed", "panic", p)
		}
	}()
	cur := map[string]counters{}
	var node counters
	vhosts := map[string]*counters{}
	for _, v := range sm.s.b.VHosts() {
		vc := &counters{}
		vhosts[v.Name] = vc
		for _, e := range v.Exchanges() {
			var c counters
			c[cPublishIn], c[cPublishOut] = e.PublishStats()
			k := "x\x00" + v.Name + "\x00" + e.Name
			cur[k] = c
			part := contribution(k, &c)
			vc.add(&part)
		}
		for _, q := range v.Queues() {
			qi := q.Info()
			c := queueCounters(&qi)
			k := "q\x00" + v.Name + "\x00" + q.Name
			cur[k] = c
			part := contribution(k, &c)
			for i := cMessages; i <= cMessagesUnacked; i++ {
				part[i] = c[i]
			}
			vc.add(&part)
		}
		for _, st := range v.Streams() {
			si := st.Info()
			c := streamCounters(&si)
			k := "q\x00" + v.Name + "\x00" + si.Name
			cur[k] = c
			part := contribution(k, &c)
			part[cMessages], part[cMessagesReady] = c[cMessages], c[cMessagesReady]
			vc.add(&part)
		}
	}
	for _, ss := range sm.s.b.Sessions() {
		c := sessionCounters(&ss.Info)
		k := "s\x00" + ss.Info.Name
		cur[k] = c
		if vc := vhosts[ss.Info.VHost]; vc != nil {
			part := contribution(k, &c)
			part[cRecvOct], part[cSendOct] = c[cRecvOct], c[cSendOct]
			vc.add(&part)
		}
		for _, ch := range ss.Session.Channels() {
			var cc counters
			cc.addStats(ch.Stats)
			cur["ch\x00"+ch.Name] = cc
		}
	}
	sm.mu.Lock()
	defer sm.mu.Unlock()
	// What gone objects counted stays in the node's totals.
	for k, c := range sm.last {
		if _, ok := cur[k]; !ok {
			part := contribution(k, &c)
			sm.retired.add(&part)
		}
	}
	for _, vc := range vhosts {
		node.add(vc)
	}
	node.add(&sm.retired)
	for name, vc := range vhosts {
		cur["v\x00"+name] = *vc
	}
	cur["n"] = node
	sm.last = cur
	next := make(map[string]*series, len(cur))
	for k, c := range cur {
		s := sm.series[k]
		if s == nil {
			s = &series{}
		}
		s.prev, s.cur = s.cur, sample{at: now, c: c}
		next[k] = s
	}
	sm.series = next
	sm.recordLocked(sample{at: now, c: node})
}

// rates returns the series of key (nil if not sampled yet).
func (sm *sampler) get(key string) *series {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	if s := sm.series[key]; s != nil {
		cp := *s
		return &cp
	}
	return nil
}

// node returns the node's totals at the last sample.
func (sm *sampler) node() counters {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	return sm.last["n"]
}

// messageStats renders RabbitMQ's message_stats object for the counters
// named, with each rate from the object's series.
func messageStats(c *counters, s *series, which []counter) obj {
	out := obj{}
	for _, i := range which {
		out[counterNames[i]] = c[i]
		out[counterNames[i]+"_details"] = details(s, i)
	}
	return out
}

func details(s *series, i counter) obj {
	r := 0.0
	if s != nil {
		r = s.rate(i)
	}
	return obj{"rate": r}
}

var (
	queueStatNames   = []counter{cAck, cDeliver, cDeliverGet, cDeliverNoAck, cGet, cGetEmpty, cGetNoAck, cPublish, cRedeliver}
	channelStatNames = []counter{cAck, cConfirm, cDeliver, cDeliverGet, cDeliverNoAck, cDropUnroutable, cGet, cGetEmpty, cGetNoAck, cPublish, cRedeliver, cReturnUnroutable}
)
