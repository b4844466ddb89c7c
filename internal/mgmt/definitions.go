package mgmt

import (
	"encoding/json"
	"io"
	"net/http"

	"github.com/warren-mq/warren/internal/definitions"
)

// Definitions: export (GET) and import (POST), of the whole broker or of
// one vhost, in RabbitMQ's JSON format (internal/definitions).

func (s *Server) getDefinitions(r *req) error {
	f := definitions.Export(s.b, s.cfg.Version)
	f.RabbitVersion, f.RabbitMQVersion = compatVersion, compatVersion
	vhost, one := r.vars["vhost"]
	if !one {
		return s.writeDefinitions(r, f, nil)
	}
	if _, ok := s.b.VHost(vhost); !ok {
		return errNotFound
	}
	v := &definitions.File{RabbitVersion: f.RabbitVersion, RabbitMQVersion: f.RabbitMQVersion, ProductName: f.ProductName, ProductVersion: f.ProductVersion,
		Parameters: []definitions.Parameter{}, Policies: []definitions.Policy{}, Queues: []definitions.Queue{},
		Exchanges: []definitions.Exchange{}, Bindings: []definitions.Binding{}}
	for _, x := range f.Parameters {
		if x.VHost == vhost {
			v.Parameters = append(v.Parameters, x)
		}
	}
	for _, x := range f.Policies {
		if x.VHost == vhost {
			v.Policies = append(v.Policies, x)
		}
	}
	for _, x := range f.Queues {
		if x.VHost == vhost {
			v.Queues = append(v.Queues, x)
		}
	}
	for _, x := range f.Exchanges {
		if x.VHost == vhost {
			v.Exchanges = append(v.Exchanges, x)
		}
	}
	for _, x := range f.Bindings {
		if x.VHost == vhost {
			v.Bindings = append(v.Bindings, x)
		}
	}
	return s.writeDefinitions(r, v, []string{"users", "vhosts", "permissions", "topic_permissions", "global_parameters"})
}

// writeDefinitions writes f without the keys drop names (a vhost's export
// has no users or vhosts); ?download=NAME makes it an attachment, as the
// web UI asks.
func (s *Server) writeDefinitions(r *req, f *definitions.File, drop []string) error {
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	for _, k := range drop {
		delete(m, k)
	}
	if name := r.URL.Query().Get("download"); name != "" {
		r.w.Header().Set("Content-Disposition", `attachment; filename="`+sanitizeFilename(name)+`"`)
	}
	return writeJSON(r.w, m)
}

func sanitizeFilename(s string) string {
	out := []rune{}
	for _, c := range s {
		if c == '"' || c == '\\' || c < ' ' {
			c = '_'
		}
		out = append(out, c)
	}
	return string(out)
}

func (s *Server) postDefinitions(r *req) error {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return brokerError(err)
	}
	f, err := definitions.Parse(body)
	if err != nil {
		return badRequest(err.Error())
	}
	if vhost, one := r.vars["vhost"]; one {
		if _, ok := s.b.VHost(vhost); !ok {
			return errNotFound
		}
		f.Users, f.VHosts, f.Permissions, f.TopicPermissions, f.GlobalParameters = nil, nil, nil, nil, nil
		for i := range f.Parameters {
			f.Parameters[i].VHost = vhost
		}
		for i := range f.Policies {
			f.Policies[i].VHost = vhost
		}
		for i := range f.Queues {
			f.Queues[i].VHost = vhost
		}
		for i := range f.Exchanges {
			f.Exchanges[i].VHost = vhost
		}
		for i := range f.Bindings {
			f.Bindings[i].VHost = vhost
		}
	}
	if err := definitions.Import(s.b, f); err != nil {
		return badRequest(err.Error())
	}
	r.w.WriteHeader(http.StatusNoContent)
	return nil
}
