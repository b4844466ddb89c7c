package mgmt

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/warren-mq/warren/internal/broker"
)

// Vhosts, users, permissions, topic permissions and limits.

func (s *Server) listVHosts(r *req) error {
	o, err := r.listOpts()
	if err != nil {
		return err
	}
	var items []obj
	for _, v := range r.visibleVHosts() {
		if o.nameMatches(v.Name) {
			items = append(items, vhostObj(s, v))
		}
	}
	return r.writeList(orEmpty(items), o, len(s.b.VHosts()))
}

func (s *Server) getVHost(r *req) error {
	v, err := r.vhost()
	if err != nil {
		return err
	}
	return r.writeOne(vhostObj(s, v))
}

func (s *Server) putVHost(r *req) error {
	var body struct {
		Description      string
		Tags             json.RawMessage
		DefaultQueueType string `json:"default_queue_type"`
	}
	if err := r.decode(&body); err != nil {
		return err
	}
	name := r.v("vhost")
	_, existed := s.b.VHost(name)
	info := broker.VHostInfo{Description: body.Description, Tags: strings.Join(tagList(body.Tags), ","), DefaultQueueType: body.DefaultQueueType}
	if _, err := s.b.PutVHost(name, info); err != nil {
		return err
	}
	if !existed {
		// As RabbitMQ does, the creator gets full permissions on a new vhost.
		if err := s.b.SetPermissions(r.user.Name, name, broker.Permission{Configure: ".*", Write: ".*", Read: ".*"}); err != nil {
			return err
		}
	}
	return noContent(r, !existed)
}

// tagList reads tags given as "a,b" or ["a","b"].
func tagList(raw json.RawMessage) []string {
	var list []string
	if json.Unmarshal(raw, &list) == nil {
		return broker.ParseTags(strings.Join(list, ","))
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return broker.ParseTags(s)
	}
	return nil
}

func (s *Server) deleteVHost(r *req) error {
	name := r.v("vhost")
	if _, ok := s.b.VHost(name); !ok {
		return errNotFound
	}
	if err := s.b.DeleteVHost(name); err != nil {
		return err
	}
	return noContent(r, false)
}

func (s *Server) listUsers(withoutPermissions bool) handler {
	return func(r *req) error {
		o, err := r.listOpts()
		if err != nil {
			return err
		}
		limits := s.b.AllUserLimits()
		has := map[string]bool{}
		for _, p := range s.b.Permissions() {
			has[p.User] = true
		}
		var items []obj
		users := s.b.Users()
		for _, u := range users {
			if (!withoutPermissions || !has[u.Name]) && o.nameMatches(u.Name) {
				items = append(items, userObj(u, limits[u.Name]))
			}
		}
		return r.writeList(orEmpty(items), o, len(users))
	}
}

func (s *Server) getUser(r *req) error {
	u, ok := s.b.User(r.v("user"))
	if !ok {
		return errNotFound
	}
	return r.writeOne(userObj(u, s.b.UserLimits(u.Name)))
}

func (s *Server) putUser(r *req) error {
	var body struct {
		Password         *string
		PasswordHash     *string `json:"password_hash"`
		HashingAlgorithm string  `json:"hashing_algorithm"`
		Tags             json.RawMessage
	}
	if err := r.decode(&body); err != nil {
		return err
	}
	name := r.v("user")
	old, existed := s.b.User(name)
	u := broker.User{Name: name, Tags: tagList(body.Tags)}
	switch {
	case body.Password != nil:
		u.PasswordHash, u.HashAlgorithm = broker.HashPassword(*body.Password), broker.HashSHA256
		u.SCRAM = broker.ScramCredentials(*body.Password)
	case body.PasswordHash != nil:
		u.PasswordHash, u.HashAlgorithm = *body.PasswordHash, body.HashingAlgorithm
		if u.HashAlgorithm == "" {
			u.HashAlgorithm = broker.HashSHA256
		}
		if existed && old.PasswordHash == u.PasswordHash {
			u.SCRAM = old.SCRAM // the same password
		}
	case existed:
		u.PasswordHash, u.HashAlgorithm, u.SCRAM = old.PasswordHash, old.HashAlgorithm, old.SCRAM
	default:
		return badRequest("password or password_hash must be set")
	}
	if body.Tags == nil && existed {
		u.Tags = old.Tags
	}
	if err := s.b.PutUser(u); err != nil {
		return badRequest(err.Error())
	}
	return noContent(r, !existed)
}

func (s *Server) deleteUser(r *req) error {
	name := r.v("user")
	if _, ok := s.b.User(name); !ok {
		return errNotFound
	}
	if err := s.b.DeleteUser(name); err != nil {
		return err
	}
	return noContent(r, false)
}

func (s *Server) bulkDeleteUsers(r *req) error {
	var body struct{ Users []string }
	if err := r.decode(&body); err != nil {
		return err
	}
	// As RabbitMQ: every user that exists is deleted; a missing one is then a 400.
	var missing []string
	for _, name := range body.Users {
		if _, ok := s.b.User(name); !ok {
			missing = append(missing, name)
			continue
		}
		if err := s.b.DeleteUser(name); err != nil {
			return err
		}
	}
	if len(missing) > 0 {
		return badRequest("no_such_user: " + strings.Join(missing, ", "))
	}
	return noContent(r, false)
}

func (s *Server) whoami(r *req) error {
	tags := r.user.Tags
	if tags == nil {
		tags = []string{}
	}
	return writeJSON(r.w, obj{"name": r.user.Name, "tags": tags})
}

func permObj(p broker.UserPermission) obj {
	return obj{"user": p.User, "vhost": p.VHost, "configure": p.Configure, "write": p.Write, "read": p.Read}
}

func topicPermObj(p broker.UserTopicPermission) obj {
	return obj{"user": p.User, "vhost": p.VHost, "exchange": p.Exchange, "write": p.Write, "read": p.Read}
}

// listPermissions lists permissions, of one vhost and/or user when the path names them.
func (s *Server) listPermissions(topic bool) handler {
	return func(r *req) error {
		o, err := r.listOpts()
		if err != nil {
			return err
		}
		vhost, byVHost := r.vars["vhost"]
		user, byUser := r.vars["user"]
		if byVHost {
			if _, ok := s.b.VHost(vhost); !ok {
				return errNotFound
			}
		}
		if byUser {
			if _, ok := s.b.User(user); !ok {
				return errNotFound
			}
		}
		keep := func(u, v string) bool { return (!byVHost || v == vhost) && (!byUser || u == user) }
		var items []obj
		if topic {
			for _, p := range s.b.TopicPermissions() {
				if keep(p.User, p.VHost) {
					items = append(items, topicPermObj(p))
				}
			}
		} else {
			for _, p := range s.b.Permissions() {
				if keep(p.User, p.VHost) {
					items = append(items, permObj(p))
				}
			}
		}
		if topic && byVHost && byUser && len(items) == 0 {
			return errNotFound
		}
		return r.writeList(orEmpty(items), o, len(items))
	}
}

func (s *Server) getPermission(r *req) error {
	for _, p := range s.b.Permissions() {
		if p.User == r.v("user") && p.VHost == r.v("vhost") {
			return r.writeOne(permObj(p))
		}
	}
	return errNotFound
}

func (s *Server) userAndVHost(r *req) error {
	if _, ok := s.b.VHost(r.v("vhost")); !ok {
		return &apiError{http.StatusNotFound, "not_found", "vhost_not_found"}
	}
	if _, ok := s.b.User(r.v("user")); !ok {
		return &apiError{http.StatusNotFound, "not_found", "user_not_found"}
	}
	return nil
}

func (s *Server) putPermission(r *req) error {
	if err := s.userAndVHost(r); err != nil {
		return err
	}
	var body struct{ Configure, Write, Read *string }
	if err := r.decode(&body); err != nil {
		return err
	}
	if body.Configure == nil || body.Write == nil || body.Read == nil {
		return badRequest("configure, write and read are required")
	}
	existed := false
	for _, p := range s.b.Permissions() {
		existed = existed || p.User == r.v("user") && p.VHost == r.v("vhost")
	}
	if err := s.b.SetPermissions(r.v("user"), r.v("vhost"), broker.Permission{Configure: *body.Configure, Write: *body.Write, Read: *body.Read}); err != nil {
		return badRequest(err.Error())
	}
	return noContent(r, !existed)
}

func (s *Server) deletePermission(r *req) error {
	found := false
	for _, p := range s.b.Permissions() {
		found = found || p.User == r.v("user") && p.VHost == r.v("vhost")
	}
	if !found {
		return errNotFound
	}
	if err := s.b.ClearPermissions(r.v("user"), r.v("vhost")); err != nil {
		return err
	}
	return noContent(r, false)
}

func (s *Server) putTopicPermission(r *req) error {
	if err := s.userAndVHost(r); err != nil {
		return err
	}
	var body struct{ Exchange, Write, Read *string }
	if err := r.decode(&body); err != nil {
		return err
	}
	if body.Exchange == nil || body.Write == nil || body.Read == nil {
		return badRequest("exchange, write and read are required")
	}
	p := broker.TopicPermission{Exchange: *body.Exchange, Write: *body.Write, Read: *body.Read}
	if err := s.b.SetTopicPermissions(r.v("user"), r.v("vhost"), p); err != nil {
		return badRequest(err.Error())
	}
	return noContent(r, true)
}

func (s *Server) deleteTopicPermission(r *req) error {
	exchange := r.URL.Query().Get("exchange")
	found := false
	for _, p := range s.b.TopicPermissions() {
		found = found || p.User == r.v("user") && p.VHost == r.v("vhost") && (exchange == "" || p.Exchange == exchange)
	}
	if !found {
		return errNotFound
	}
	if err := s.b.ClearTopicPermissions(r.v("user"), r.v("vhost"), exchange); err != nil {
		return err
	}
	return noContent(r, false)
}

// listLimits lists vhost limits (forUser false) or user limits, of one
// vhost or user when the path names it.
func (s *Server) listLimits(forUser bool) handler {
	return func(r *req) error {
		key, field := "vhost", "vhost"
		all := s.b.AllVHostLimits()
		if forUser {
			key, field, all = "user", "user", s.b.AllUserLimits()
		}
		name, one := r.vars[key]
		if one {
			if forUser {
				if _, ok := s.b.User(name); !ok {
					return errNotFound
				}
			} else if _, ok := s.b.VHost(name); !ok {
				return errNotFound
			}
		}
		items := []obj{}
		for _, n := range sortedKeys(all) {
			if len(all[n]) > 0 && (!one || n == name) && (forUser || r.visible(n)) {
				items = append(items, obj{field: n, "value": limitsObj(all[n])})
			}
		}
		return writeJSON(r.w, items)
	}
}

func (s *Server) putLimit(forUser bool) handler {
	return func(r *req) error {
		var body struct{ Value json.Number }
		if err := r.decode(&body); err != nil {
			return err
		}
		n, err := body.Value.Int64()
		if err != nil {
			return badRequest("value must be an integer")
		}
		return s.changeLimit(r, forUser, func(l map[string]int64) { l[r.v("name")] = n })
	}
}

func (s *Server) deleteLimit(forUser bool) handler {
	return func(r *req) error {
		return s.changeLimit(r, forUser, func(l map[string]int64) { delete(l, r.v("name")) })
	}
}

func (s *Server) changeLimit(r *req, forUser bool, change func(map[string]int64)) error {
	var l map[string]int64
	if forUser {
		if _, ok := s.b.User(r.v("user")); !ok {
			return errNotFound
		}
		l = s.b.UserLimits(r.v("user"))
	} else {
		if _, ok := s.b.VHost(r.v("vhost")); !ok {
			return errNotFound
		}
		l = s.b.VHostLimits(r.v("vhost"))
	}
	if l == nil {
		l = map[string]int64{}
	}
	change(l)
	var err error
	if forUser {
		err = s.b.SetUserLimits(r.v("user"), l)
	} else {
		err = s.b.SetVHostLimits(r.v("vhost"), l)
	}
	if err != nil {
		return badRequest(err.Error())
	}
	return noContent(r, false)
}
