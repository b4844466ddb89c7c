package mgmt

import (
	"encoding/json"

	"github.com/warren-mq/warren/internal/broker"
)

// Policies, operator policies, runtime parameters and global parameters.

func policyObj(p broker.Policy) obj {
	applyTo := p.ApplyTo
	if applyTo == "" {
		applyTo = "all"
	}
	var def any = obj{}
	if len(p.Definition) > 0 {
		def = json.RawMessage(p.Definition)
	}
	return obj{"vhost": p.VHost, "name": p.Name, "pattern": p.Pattern, "apply-to": applyTo, "definition": def, "priority": p.Priority}
}

func (s *Server) listPolicies(operator bool) handler {
	return func(r *req) error {
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
			for _, p := range s.b.Policies(v.Name, operator) {
				items = append(items, policyObj(p))
			}
		}
		return r.writeList(orEmpty(items), o, len(items))
	}
}

func (s *Server) findPolicy(r *req, operator bool) (broker.Policy, bool) {
	for _, p := range s.b.Policies(r.v("vhost"), operator) {
		if p.Name == r.v("name") {
			return p, true
		}
	}
	return broker.Policy{}, false
}

func (s *Server) getPolicy(operator bool) handler {
	return func(r *req) error {
		if _, err := r.vhost(); err != nil {
			return err
		}
		p, ok := s.findPolicy(r, operator)
		if !ok {
			return errNotFound
		}
		return r.writeOne(policyObj(p))
	}
}

func (s *Server) putPolicy(operator bool) handler {
	return func(r *req) error {
		if _, err := r.vhost(); err != nil {
			return err
		}
		var body struct {
			Pattern    *string
			Definition json.RawMessage
			Priority   json.Number
			ApplyTo    string `json:"apply-to"`
		}
		if err := r.decode(&body); err != nil {
			return err
		}
		if body.Pattern == nil || body.Definition == nil {
			return badRequest("pattern and definition are required")
		}
		prio := int64(0)
		if body.Priority != "" {
			var err error
			if prio, err = body.Priority.Int64(); err != nil {
				return badRequest("priority must be an integer")
			}
		}
		_, existed := s.findPolicy(r, operator)
		p := broker.Policy{VHost: r.v("vhost"), Name: r.v("name"), Pattern: *body.Pattern, ApplyTo: body.ApplyTo,
			Priority: int(prio), Definition: body.Definition, Operator: operator}
		if err := s.b.SetPolicy(p); err != nil {
			return err
		}
		return noContent(r, !existed)
	}
}

func (s *Server) deletePolicy(operator bool) handler {
	return func(r *req) error {
		if _, err := r.vhost(); err != nil {
			return err
		}
		if _, ok := s.findPolicy(r, operator); !ok {
			return errNotFound
		}
		if err := s.b.ClearPolicy(r.v("vhost"), r.v("name"), operator); err != nil {
			return err
		}
		return noContent(r, false)
	}
}

// parameters lists what RabbitMQ lists as runtime parameters: the
// parameters, operator policies and vhost limits.
func (s *Server) parameters(r *req) []obj {
	var items []obj
	component, byComponent := r.vars["component"]
	for _, v := range r.visibleVHosts() {
		if vh, ok := r.vars["vhost"]; ok && vh != v.Name {
			continue
		}
		for _, p := range s.b.Parameters(v.Name) {
			items = append(items, obj{"vhost": p.VHost, "component": p.Component, "name": p.Name, "value": json.RawMessage(p.Value)})
		}
		for _, p := range s.b.Policies(v.Name, true) {
			po := policyObj(p)
			delete(po, "vhost")
			delete(po, "name")
			items = append(items, obj{"vhost": v.Name, "component": "operator_policy", "name": p.Name, "value": po})
		}
		if l := s.b.VHostLimits(v.Name); len(l) > 0 {
			items = append(items, obj{"vhost": v.Name, "component": "vhost-limits", "name": "limits", "value": limitsObj(l)})
		}
	}
	var out []obj
	for _, it := range items {
		if !byComponent || it["component"] == component {
			out = append(out, it)
		}
	}
	return out
}

func (s *Server) listParameters(r *req) error {
	o, err := r.listOpts()
	if err != nil {
		return err
	}
	if _, ok := r.vars["vhost"]; ok {
		if _, err := r.vhost(); err != nil {
			return err
		}
	}
	items := s.parameters(r)
	return r.writeList(orEmpty(items), o, len(items))
}

func (s *Server) getParameter(r *req) error {
	if _, err := r.vhost(); err != nil {
		return err
	}
	for _, it := range s.parameters(r) {
		if it["name"] == r.v("name") {
			return r.writeOne(it)
		}
	}
	return errNotFound
}

func (s *Server) putParameter(r *req) error {
	if _, err := r.vhost(); err != nil {
		return err
	}
	var body struct{ Value json.RawMessage }
	if err := r.decode(&body); err != nil {
		return err
	}
	if body.Value == nil {
		return badRequest("value is required")
	}
	existed := false
	for _, it := range s.parameters(r) {
		existed = existed || it["name"] == r.v("name")
	}
	if err := s.b.SetParameter(broker.Parameter{VHost: r.v("vhost"), Component: r.v("component"), Name: r.v("name"), Value: body.Value}); err != nil {
		return err
	}
	return noContent(r, !existed)
}

func (s *Server) deleteParameter(r *req) error {
	if _, err := r.vhost(); err != nil {
		return err
	}
	if err := s.b.ClearParameter(r.v("vhost"), r.v("component"), r.v("name")); err != nil {
		return errNotFound
	}
	return noContent(r, false)
}

func globalObj(p broker.GlobalParameter) obj {
	return obj{"name": p.Name, "value": json.RawMessage(p.Value)}
}

func (s *Server) listGlobalParameters(r *req) error {
	o, err := r.listOpts()
	if err != nil {
		return err
	}
	var items []obj
	for _, p := range s.b.GlobalParameters() {
		items = append(items, globalObj(p))
	}
	return r.writeList(orEmpty(items), o, len(items))
}

func (s *Server) getGlobalParameter(r *req) error {
	for _, p := range s.b.GlobalParameters() {
		if p.Name == r.v("name") {
			return r.writeOne(globalObj(p))
		}
	}
	return errNotFound
}

func (s *Server) putGlobalParameter(r *req) error {
	var body struct{ Value json.RawMessage }
	if err := r.decode(&body); err != nil {
		return err
	}
	if body.Value == nil {
		return badRequest("value is required")
	}
	existed := false
	for _, p := range s.b.GlobalParameters() {
		existed = existed || p.Name == r.v("name")
	}
	if err := s.b.SetGlobalParameter(broker.GlobalParameter{Name: r.v("name"), Value: body.Value}); err != nil {
		return err
	}
	return noContent(r, !existed)
}

func (s *Server) deleteGlobalParameter(r *req) error {
	if err := s.b.ClearGlobalParameter(r.v("name")); err != nil {
		return errNotFound
	}
	return noContent(r, false)
}
