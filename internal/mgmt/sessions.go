package mgmt

import (
	"net/http"

	"github.com/warren-mq/warren/internal/broker"
)

// Connections, channels and consumers, from the broker's session registry.
// A user without the monitoring tag sees only its own connections.

func (r *req) sessions() []broker.SessionSnapshot {
	var out []broker.SessionSnapshot
	vhost, byVHost := r.vars["vhost"]
	for _, ss := range r.s.b.Sessions() {
		if (r.seesAll() || ss.Info.User == r.user.Name) && (!byVHost || ss.Info.VHost == vhost) {
			out = append(out, ss)
		}
	}
	return out
}

func (s *Server) listConnections(r *req) error {
	o, err := r.listOpts()
	if err != nil {
		return err
	}
	if _, ok := r.vars["vhost"]; ok {
		if _, err := r.vhost(); err != nil {
			return err
		}
	}
	var items []obj
	ss := r.sessions()
	for i := range ss {
		if o.nameMatches(ss[i].Info.Name) {
			items = append(items, s.connectionObj(&ss[i].Info))
		}
	}
	return r.writeList(orEmpty(items), o, len(ss))
}

func (r *req) session() (*broker.SessionSnapshot, error) {
	for _, ss := range r.sessions() {
		if ss.Info.Name == r.v("name") {
			return &ss, nil
		}
	}
	return nil, errNotFound
}

func (s *Server) getConnection(r *req) error {
	ss, err := r.session()
	if err != nil {
		return err
	}
	return r.writeOne(s.connectionObj(&ss.Info))
}

// closeConnection is DELETE /api/connections/{name}: the client gets
// connection.close 320 CONNECTION_FORCED with the X-Reason header's text.
func (s *Server) closeConnection(r *req) error {
	ss, err := r.session()
	if err != nil {
		return err
	}
	if ss.Info.User != r.user.Name && !r.user.HasTag("administrator") {
		return notAuthorised("Not administrator user")
	}
	reason := r.Header.Get("X-Reason")
	if reason == "" {
		reason = "Closed via management plugin"
	}
	s.log.Info("closing connection on an HTTP API request", "connection", ss.Info.Name, "vhost", ss.Info.VHost, "by", r.user.Name, "reason", reason)
	ss.Session.Close(reason)
	r.w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) listChannels(r *req) error {
	o, err := r.listOpts()
	if err != nil {
		return err
	}
	if _, ok := r.vars["vhost"]; ok {
		if _, err := r.vhost(); err != nil {
			return err
		}
	}
	var ss []broker.SessionSnapshot
	if _, ok := r.vars["name"]; ok {
		one, err := r.session()
		if err != nil {
			return err
		}
		ss = []broker.SessionSnapshot{*one}
	} else {
		ss = r.sessions()
	}
	var items []obj
	total := 0
	for i := range ss {
		for _, ch := range ss[i].Session.Channels() {
			total++
			if o.nameMatches(ch.Name) {
				items = append(items, s.channelObj(&ss[i].Info, &ch))
			}
		}
	}
	return r.writeList(orEmpty(items), o, total)
}

func (s *Server) getChannel(r *req) error {
	for _, ss := range r.sessions() {
		for _, ch := range ss.Session.Channels() {
			if ch.Name == r.v("name") {
				return r.writeOne(s.channelObj(&ss.Info, &ch))
			}
		}
	}
	return errNotFound
}

func (s *Server) listConsumers(r *req) error {
	o, err := r.listOpts()
	if err != nil {
		return err
	}
	vs, err := r.vhostsOf()
	if err != nil {
		return err
	}
	_, idx := s.channels()
	var items []obj
	for _, v := range vs {
		lists := [][]broker.ConsumerInfo{}
		for _, q := range v.Queues() {
			lists = append(lists, q.ConsumerList())
		}
		for _, st := range v.Streams() {
			lists = append(lists, st.Info().Consumers)
		}
		for _, cl := range lists {
			for _, ci := range cl {
				if e, ok := idx[ci.Channel]; ok && !r.seesAll() && e.si.User != r.user.Name {
					continue
				}
				items = append(items, s.consumerObj(&ci, idx))
			}
		}
	}
	return r.writeList(orEmpty(items), o, len(items))
}
