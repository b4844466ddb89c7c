package mgmt

import (
	"net/http"

	"github.com/warren-mq/warren/internal/broker"
)

// Who sees and changes what, as RabbitMQ's management plugin decides it: a
// monitoring or administrator user sees every vhost, others only those they
// have permissions on; changes to a vhost's topology need permissions on it
// whatever the tags, checked with the AMQP permission rules.

func (r *req) seesAll() bool { return levelMonitor.allowed(r.user) }

// visible reports whether the user may look into vhost.
func (r *req) visible(vhost string) bool {
	return r.seesAll() || r.s.b.Access(r.user.Name, vhost).VHostAllowed()
}

// visibleVHosts returns the vhosts the user may look into.
func (r *req) visibleVHosts() []*broker.VHost {
	var out []*broker.VHost
	for _, v := range r.s.b.VHosts() {
		if r.visible(v.Name) {
			out = append(out, v)
		}
	}
	return out
}

var errVHostAccess = &apiError{http.StatusUnauthorized, "not_authorised", "User not authorised to access virtual host"}

// vhost returns the vhost a path names, 404 if none, 401 if the user may
// not look into it.
func (r *req) vhost() (*broker.VHost, error) {
	v, ok := r.s.b.VHost(r.v("vhost"))
	if !ok {
		return nil, errNotFound
	}
	if !r.visible(v.Name) {
		return nil, errVHostAccess
	}
	return v, nil
}

// vhostsOf returns the vhost named in the path, or every visible one when
// the route has no vhost.
func (r *req) vhostsOf() ([]*broker.VHost, error) {
	if _, ok := r.vars["vhost"]; !ok {
		return r.visibleVHosts(), nil
	}
	v, err := r.vhost()
	if err != nil {
		return nil, err
	}
	return []*broker.VHost{v}, nil
}

// vhostForWrite returns the vhost for a change of its topology: 404 if none
// (RabbitMQ's vhost_not_found), 401 without permissions on it.
func (r *req) vhostForWrite() (*broker.VHost, *broker.Access, error) {
	v, ok := r.s.b.VHost(r.v("vhost"))
	if !ok {
		return nil, nil, &apiError{http.StatusNotFound, "not_found", "vhost_not_found"}
	}
	a := r.s.b.Access(r.user.Name, v.Name)
	if !a.VHostAllowed() {
		return nil, nil, errVHostAccess
	}
	return v, a, nil
}

// check maps an AMQP permission refusal to RabbitMQ's HTTP answer.
func check(a *broker.Access, kind, name string, p broker.Perm) error {
	if err := a.Check(kind, name, p); err != nil {
		return &apiError{http.StatusUnauthorized, "not_authorised", "Access refused."}
	}
	return nil
}
