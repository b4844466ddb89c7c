package broker

import "slices"

// The user, permission and limit commands. Field tags are part of the
// on-disk format (see command.go): never reuse one. Each apply bumps the
// access generation, so connections re-read what they cached.

func init() {
	registerCommand(cmdPutUser, func() command { return &putUserCmd{} })
	registerCommand(cmdDeleteUser, func() command { return &deleteUserCmd{} })
	registerCommand(cmdSetPermission, func() command { return &setPermissionCmd{} })
	registerCommand(cmdClearPermission, func() command { return &clearPermissionCmd{} })
	registerCommand(cmdSetTopicPermission, func() command { return &setTopicPermissionCmd{} })
	registerCommand(cmdClearTopicPermission, func() command { return &clearTopicPermissionCmd{} })
	registerCommand(cmdSetVHostLimits, func() command { return &setVHostLimitsCmd{} })
	registerCommand(cmdSetUserLimits, func() command { return &setUserLimitsCmd{} })
}

// changeAccess runs fn under the access lock and bumps the generation.
func (b *Broker) changeAccess(fn func(s *accessState)) {
	s := &b.acc
	s.mu.Lock()
	fn(s)
	s.gen.Add(1)
	s.mu.Unlock()
}

// putUserCmd creates or replaces a user; its permissions stay.
type putUserCmd struct {
	Name, Hash, Algorithm string
	Tags                  []string
	SCRAM                 string // added later: an odd tag
}

func (c *putUserCmd) typ() cmdType { return cmdPutUser }

func (c *putUserCmd) fields() []field {
	return []field{{2, &c.Name}, {4, &c.Hash}, {6, &c.Algorithm}, {8, &c.Tags}, {9, &c.SCRAM}}
}

func (c *putUserCmd) apply(a *applier) (any, error) {
	u := &User{Name: c.Name, PasswordHash: c.Hash, HashAlgorithm: c.Algorithm, Tags: slices.Clone(c.Tags), SCRAM: c.SCRAM}
	a.b.changeAccess(func(s *accessState) { s.users[c.Name] = u })
	return u, nil
}

// deleteUserCmd deletes a user with its permissions and limits.
type deleteUserCmd struct{ Name string }

func (c *deleteUserCmd) typ() cmdType    { return cmdDeleteUser }
func (c *deleteUserCmd) fields() []field { return []field{{2, &c.Name}} }
func (c *deleteUserCmd) apply(a *applier) (any, error) {
	b := a.b
	b.changeAccess(func(s *accessState) {
		delete(s.users, c.Name)
		for k := range s.perms {
			if k[0] == c.Name {
				delete(s.perms, k)
			}
		}
		for k := range s.topicPerms {
			if k[0] == c.Name {
				delete(s.topicPerms, k)
			}
		}
		delete(s.userLimits, c.Name)
	})
	b.hookMu.Lock()
	hooks := b.acc.onUserDeleted
	b.hookMu.Unlock()
	for _, fn := range hooks {
		fn(c.Name)
	}
	return nil, nil
}

// forgetVHostAccess drops the permissions and limits on a deleted vhost.
func (b *Broker) forgetVHostAccess(vhost string) {
	b.changeAccess(func(s *accessState) {
		for k := range s.perms {
			if k[1] == vhost {
				delete(s.perms, k)
			}
		}
		for k := range s.topicPerms {
			if k[1] == vhost {
				delete(s.topicPerms, k)
			}
		}
		delete(s.vhostLimits, vhost)
	})
}

// setPermissionCmd sets a user's permissions on a vhost. Expressions were
// checked before commit; one that does not compile now (a log written by a
// Warren with another regexp engine) matches nothing.
type setPermissionCmd struct {
	User, VHost            string
	Configure, Write, Read string
}

func (c *setPermissionCmd) typ() cmdType { return cmdSetPermission }

func (c *setPermissionCmd) fields() []field {
	return []field{{2, &c.User}, {4, &c.VHost}, {6, &c.Configure}, {8, &c.Write}, {10, &c.Read}}
}

func (c *setPermissionCmd) apply(a *applier) (any, error) {
	e := &permEntry{Permission: Permission{Configure: c.Configure, Write: c.Write, Read: c.Read}}
	for i, expr := range []string{c.Configure, c.Write, c.Read} {
		e.re[i], _ = compileExpr(expr)
	}
	a.b.changeAccess(func(s *accessState) { s.perms[[2]string{c.User, c.VHost}] = e })
	return nil, nil
}

// clearPermissionCmd removes a user's permissions on a vhost.
type clearPermissionCmd struct{ User, VHost string }

func (c *clearPermissionCmd) typ() cmdType    { return cmdClearPermission }
func (c *clearPermissionCmd) fields() []field { return []field{{2, &c.User}, {4, &c.VHost}} }
func (c *clearPermissionCmd) apply(a *applier) (any, error) {
	a.b.changeAccess(func(s *accessState) { delete(s.perms, [2]string{c.User, c.VHost}) })
	return nil, nil
}

// setTopicPermissionCmd sets a user's topic permissions on one exchange.
type setTopicPermissionCmd struct {
	User, VHost, Exchange string
	Write, Read           string
}

func (c *setTopicPermissionCmd) typ() cmdType { return cmdSetTopicPermission }

func (c *setTopicPermissionCmd) fields() []field {
	return []field{{2, &c.User}, {4, &c.VHost}, {6, &c.Exchange}, {8, &c.Write}, {10, &c.Read}}
}

func (c *setTopicPermissionCmd) apply(a *applier) (any, error) {
	e := &topicPermEntry{TopicPermission: TopicPermission{Exchange: c.Exchange, Write: c.Write, Read: c.Read}}
	a.b.changeAccess(func(s *accessState) { s.topicPerms[[3]string{c.User, c.VHost, c.Exchange}] = e })
	return nil, nil
}

// clearTopicPermissionCmd removes a user's topic permissions on one exchange,
// or on every exchange of the vhost when Exchange is "".
type clearTopicPermissionCmd struct{ User, VHost, Exchange string }

func (c *clearTopicPermissionCmd) typ() cmdType { return cmdClearTopicPermission }

func (c *clearTopicPermissionCmd) fields() []field {
	return []field{{2, &c.User}, {4, &c.VHost}, {6, &c.Exchange}}
}

func (c *clearTopicPermissionCmd) apply(a *applier) (any, error) {
	a.b.changeAccess(func(s *accessState) {
		for k := range s.topicPerms {
			if k[0] == c.User && k[1] == c.VHost && (c.Exchange == "" || k[2] == c.Exchange) {
				delete(s.topicPerms, k)
			}
		}
	})
	return nil, nil
}

// setVHostLimitsCmd replaces a vhost's limits; Limits is a JSON object, ""
// for none.
type setVHostLimitsCmd struct{ VHost, Limits string }

func (c *setVHostLimitsCmd) typ() cmdType    { return cmdSetVHostLimits }
func (c *setVHostLimitsCmd) fields() []field { return []field{{2, &c.VHost}, {4, &c.Limits}} }
func (c *setVHostLimitsCmd) apply(a *applier) (any, error) {
	a.b.changeAccess(func(s *accessState) { putLimits(s.vhostLimits, c.VHost, c.Limits) })
	return nil, nil
}

// setUserLimitsCmd replaces a user's limits; Limits is a JSON object, "" for none.
type setUserLimitsCmd struct{ User, Limits string }

func (c *setUserLimitsCmd) typ() cmdType    { return cmdSetUserLimits }
func (c *setUserLimitsCmd) fields() []field { return []field{{2, &c.User}, {4, &c.Limits}} }
func (c *setUserLimitsCmd) apply(a *applier) (any, error) {
	a.b.changeAccess(func(s *accessState) { putLimits(s.userLimits, c.User, c.Limits) })
	return nil, nil
}

// putLimits sets m[key] to the encoded limits, or removes it for none.
func putLimits(m map[string]map[string]int64, key, encoded string) {
	if l := decodeLimits(encoded); len(l) > 0 {
		m[key] = l
	} else {
		delete(m, key)
	}
}
