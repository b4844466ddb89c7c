package mgmt

import (
	"net/http"

	"github.com/warren-mq/warren/internal/broker"
)

// Bindings: lists by vhost, by source, by destination and between two ends;
// POST creates one and answers its Location (destination/properties_key);
// DELETE removes the one a properties_key names.

func (s *Server) listBindings(r *req) error {
	o, err := r.listOpts()
	if err != nil {
		return err
	}
	vs, err := r.vhostsOf()
	if err != nil {
		return err
	}
	var items []obj
	for _, v := range vs {
		for _, br := range bindings(v) {
			items = append(items, bindingObj(br))
		}
	}
	return r.writeList(orEmpty(items), o, len(items))
}

// endsFilter lists the bindings of one vhost that keep returns true for.
func (s *Server) bindingsWhere(r *req, v *broker.VHost, keep func(bindingRow) bool) error {
	o, err := r.listOpts()
	if err != nil {
		return err
	}
	var items []obj
	for _, br := range bindings(v) {
		if keep(br) {
			items = append(items, bindingObj(br))
		}
	}
	return r.writeList(orEmpty(items), o, len(items))
}

func (s *Server) exchangeBindings(source bool) handler {
	return func(r *req) error {
		v, e, err := s.exchange(r)
		if err != nil {
			return err
		}
		return s.bindingsWhere(r, v, func(br bindingRow) bool {
			if source {
				return br.source == e.Name
			}
			return br.b.ToExchange && br.b.Destination == e.Name
		})
	}
}

func (s *Server) queueBindings(r *req) error {
	v, q, err := s.queue(r)
	name := ""
	switch {
	case err == nil:
		name = q.Name
	case err == errNotFound && v != nil:
		st, ok := v.Stream(r.v("name"))
		if !ok {
			return err
		}
		name = st.Name()
	default:
		return err
	}
	return s.bindingsWhere(r, v, func(br bindingRow) bool { return !br.b.ToExchange && br.b.Destination == name })
}

// ends resolves the e/{source}/q|e/{destination} of a bindings path.
func (s *Server) ends(r *req, toExchange bool) (*broker.VHost, string, string, error) {
	v, err := r.vhost()
	if err != nil {
		return nil, "", "", err
	}
	src, dst := exchangeName(r.v("source")), r.v("destination")
	if _, ok := v.Exchange(src); !ok {
		return nil, "", "", errNotFound
	}
	if toExchange {
		dst = exchangeName(dst)
		if _, ok := v.Exchange(dst); !ok {
			return nil, "", "", errNotFound
		}
	} else if _, ok := v.Queue(dst); !ok {
		return nil, "", "", errNotFound
	}
	return v, src, dst, nil
}

func between(src, dst string, toExchange bool) func(bindingRow) bool {
	return func(br bindingRow) bool {
		return br.source == src && br.b.Destination == dst && br.b.ToExchange == toExchange
	}
}

func (s *Server) listBetween(toExchange bool) handler {
	return func(r *req) error {
		v, src, dst, err := s.ends(r, toExchange)
		if err != nil {
			return err
		}
		return s.bindingsWhere(r, v, between(src, dst, toExchange))
	}
}

// oneBinding finds the binding a properties_key names.
func (s *Server) oneBinding(r *req, toExchange bool) (*broker.VHost, bindingRow, error) {
	v, src, dst, err := s.ends(r, toExchange)
	if err != nil {
		return nil, bindingRow{}, err
	}
	keep := between(src, dst, toExchange)
	for _, br := range bindings(v) {
		if keep(br) && propertiesKey(br.b.Key, br.b.Args) == r.v("props") {
			return v, br, nil
		}
	}
	return nil, bindingRow{}, errNotFound
}

func (s *Server) getBinding(toExchange bool) handler {
	return func(r *req) error {
		_, br, err := s.oneBinding(r, toExchange)
		if err != nil {
			return err
		}
		return r.writeOne(bindingObj(br))
	}
}

func (s *Server) checkBind(a *broker.Access, src, dst string, toExchange bool) error {
	kind := "queue"
	if toExchange {
		kind = "exchange"
	}
	if err := check(a, kind, dst, broker.Write); err != nil {
		return err
	}
	return check(a, "exchange", src, broker.Read)
}

func (s *Server) deleteBinding(toExchange bool) handler {
	return func(r *req) error {
		v, br, err := s.oneBinding(r, toExchange)
		if err != nil {
			return err
		}
		_, a, err := r.vhostForWrite()
		if err != nil {
			return err
		}
		if err := s.checkBind(a, br.source, br.b.Destination, toExchange); err != nil {
			return err
		}
		if br.source == "" {
			return notAuthorised("Access refused.")
		}
		d := broker.BindingDecl{Source: br.source, Destination: br.b.Destination, ToExchange: toExchange, Key: br.b.Key, Args: br.b.Args}
		if err := v.Unbind(d, nil); err != nil {
			return err
		}
		return noContent(r, false)
	}
}

func (s *Server) postBinding(toExchange bool) handler {
	return func(r *req) error {
		v, a, err := r.vhostForWrite()
		if err != nil {
			return err
		}
		src, dst := exchangeName(r.v("source")), r.v("destination")
		if toExchange {
			dst = exchangeName(dst)
		}
		if _, ok := v.Exchange(src); !ok {
			return &apiError{http.StatusNotFound, "not_found", "no exchange '" + src + "' in vhost '" + v.Name + "'"}
		}
		var body struct {
			RoutingKey string `json:"routing_key"`
			Arguments  map[string]any
		}
		if err := r.decode(&body); err != nil {
			return err
		}
		args, err := fieldTable(body.Arguments)
		if err != nil {
			return badRequest(err.Error())
		}
		if err := s.checkBind(a, src, dst, toExchange); err != nil {
			return err
		}
		d := broker.BindingDecl{Source: src, Destination: dst, ToExchange: toExchange, Key: body.RoutingKey, Args: args}
		if err := v.Bind(d, nil); err != nil {
			return err
		}
		r.w.Header().Set("Location", quotePlus(dst)+"/"+quotePlus(propertiesKey(body.RoutingKey, args)))
		r.w.WriteHeader(http.StatusCreated)
		return nil
	}
}
