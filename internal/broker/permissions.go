package broker

import (
	"cmp"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/warren-mq/warren/internal/amqp091"
)

// Permissions follow RabbitMQ: per user and vhost, three regular expressions
// (configure, write, read) matched anywhere in a resource name unless
// anchored, "" matching nothing; the default exchange is named "amq.default"
// for matching and in refusals. Topic permissions add, per user, vhost and
// topic exchange, write and read expressions over routing keys, with
// {username} and {vhost} expanded first; an exchange without topic
// permissions allows every key. Expressions are Go's (RE2): what Erlang's re
// accepts beyond that (look-around, back-references) is refused when set.

// Permission is a user's configure, write and read expressions on one vhost.
type Permission struct {
	Configure, Write, Read string
}

// TopicPermission is a user's write and read expressions over routing keys
// of one topic exchange in one vhost.
type TopicPermission struct {
	Exchange    string
	Write, Read string
}

// UserPermission is a Permission with whom and where it applies, as the
// query side lists them.
type UserPermission struct {
	User, VHost string
	Permission
}

// UserTopicPermission is a TopicPermission with whom and where it applies.
type UserTopicPermission struct {
	User, VHost string
	TopicPermission
}

// Perm names one of the three resource permissions.
type Perm uint8

// The resource permissions.
const (
	Configure Perm = iota
	Write
	Read
)

func (p Perm) String() string { return [...]string{"configure", "write", "read"}[p] }

// compiledPerm is a Permission with its expressions compiled; nil matches nothing.
type compiledPerm [3]*regexp.Regexp

// compileExpr compiles a permission expression as RabbitMQ reads it: ""
// matches nothing.
func compileExpr(expr string) (*regexp.Regexp, error) {
	if expr == "" {
		return nil, nil
	}
	return regexp.Compile(expr)
}

func compilePerm(exprs ...string) (compiledPerm, error) {
	var c compiledPerm
	for i, e := range exprs {
		re, err := compileExpr(e)
		if err != nil {
			return c, fmt.Errorf("invalid regular expression '%s': %v", e, err)
		}
		c[i] = re
	}
	return c, nil
}

func (c *compiledPerm) match(p Perm, name string) bool {
	re := c[p]
	return re != nil && re.MatchString(name)
}

// accessState is the broker's users, permissions and limits. Its mutex is a
// leaf (LOCKS.md); every change bumps gen so connections drop what they cached.
type accessState struct {
	mu          sync.RWMutex
	users       map[string]*User
	perms       map[[2]string]*permEntry      // user, vhost
	topicPerms  map[[3]string]*topicPermEntry // user, vhost, exchange
	vhostLimits map[string]map[string]int64   // vhost
	userLimits  map[string]map[string]int64   // user
	gen         atomic.Uint64

	onUserDeleted []func(user string) // under Broker.hookMu
}

type permEntry struct {
	Permission
	re compiledPerm
}

// topicPermEntry holds the patterns as set: they are compiled per user and
// vhost (after {username} and {vhost} expansion) by Access.CheckTopic.
type topicPermEntry struct {
	TopicPermission
}

func (s *accessState) init() {
	s.users = map[string]*User{}
	s.perms = map[[2]string]*permEntry{}
	s.topicPerms = map[[3]string]*topicPermEntry{}
	s.vhostLimits = map[string]map[string]int64{}
	s.userLimits = map[string]map[string]int64{}
}

// SetPermissions sets a user's permissions on a vhost; durable. The
// expressions must compile; the user and vhost must exist.
func (b *Broker) SetPermissions(user, vhost string, p Permission) error {
	if _, err := compilePerm(p.Configure, p.Write, p.Read); err != nil {
		return err
	}
	if err := b.userAndVHost(user, vhost); err != nil {
		return err
	}
	_, _, err := b.commit(&setPermissionCmd{User: user, VHost: vhost, Configure: p.Configure, Write: p.Write, Read: p.Read}, true)
	return err
}

// ClearPermissions removes a user's permissions on a vhost; durable.
func (b *Broker) ClearPermissions(user, vhost string) error {
	if err := b.userAndVHost(user, vhost); err != nil {
		return err
	}
	_, _, err := b.commit(&clearPermissionCmd{User: user, VHost: vhost}, true)
	return err
}

// SetTopicPermissions sets a user's topic permissions on an exchange of a
// vhost; durable.
func (b *Broker) SetTopicPermissions(user, vhost string, p TopicPermission) error {
	if _, err := compilePerm("", p.Write, p.Read); err != nil {
		return err
	}
	if err := b.userAndVHost(user, vhost); err != nil {
		return err
	}
	_, _, err := b.commit(&setTopicPermissionCmd{User: user, VHost: vhost, Exchange: p.Exchange, Write: p.Write, Read: p.Read}, true)
	return err
}

// ClearTopicPermissions removes a user's topic permissions on one exchange of
// a vhost, or on all of them if exchange is ""; durable.
func (b *Broker) ClearTopicPermissions(user, vhost, exchange string) error {
	if err := b.userAndVHost(user, vhost); err != nil {
		return err
	}
	_, _, err := b.commit(&clearTopicPermissionCmd{User: user, VHost: vhost, Exchange: exchange}, true)
	return err
}

func (b *Broker) userAndVHost(user, vhost string) error {
	if _, ok := b.User(user); !ok {
		return amqp091.NewError(amqp091.NotFound, "no user '%s'", user)
	}
	if _, ok := b.VHost(vhost); !ok {
		return amqp091.NewError(amqp091.NotFound, "no vhost '%s'", vhost)
	}
	return nil
}

// Permissions returns every user's permissions, sorted by user then vhost.
func (b *Broker) Permissions() []UserPermission {
	b.acc.mu.RLock()
	out := make([]UserPermission, 0, len(b.acc.perms))
	for k, e := range b.acc.perms {
		out = append(out, UserPermission{User: k[0], VHost: k[1], Permission: e.Permission})
	}
	b.acc.mu.RUnlock()
	slices.SortFunc(out, func(x, y UserPermission) int {
		return cmp.Or(strings.Compare(x.User, y.User), strings.Compare(x.VHost, y.VHost))
	})
	return out
}

// TopicPermissions returns every topic permission, sorted by user, vhost, exchange.
func (b *Broker) TopicPermissions() []UserTopicPermission {
	b.acc.mu.RLock()
	out := make([]UserTopicPermission, 0, len(b.acc.topicPerms))
	for k, e := range b.acc.topicPerms {
		out = append(out, UserTopicPermission{User: k[0], VHost: k[1], TopicPermission: e.TopicPermission})
	}
	b.acc.mu.RUnlock()
	slices.SortFunc(out, func(x, y UserTopicPermission) int {
		return cmp.Or(strings.Compare(x.User, y.User), strings.Compare(x.VHost, y.VHost), strings.Compare(x.Exchange, y.Exchange))
	})
	return out
}

// Access checks one user's permissions on one vhost for a connection. It is
// not safe for concurrent use (a connection's reader owns it); it caches the
// compiled permissions until any user, permission or limit changes, so a
// change applies to open connections from their next operation, as in RabbitMQ.
type Access struct {
	b           *Broker
	user, vhost string
	gen         uint64
	perm        *permEntry
	topics      map[string]*topicPermEntry // by exchange, for this user and vhost
	expanded    map[string]*regexp.Regexp  // topic patterns after variable expansion
}

// Access returns a permission checker for user on vhost.
func (b *Broker) Access(user, vhost string) *Access {
	a := &Access{b: b, user: user, vhost: vhost}
	a.refresh()
	return a
}

// Generation changes whenever a user, permission or limit does.
func (b *Broker) Generation() uint64 { return b.acc.gen.Load() }

func (a *Access) refresh() {
	s := &a.b.acc
	s.mu.RLock()
	a.gen = s.gen.Load()
	a.perm = s.perms[[2]string{a.user, a.vhost}]
	a.topics = nil
	for k, e := range s.topicPerms {
		if k[0] == a.user && k[1] == a.vhost {
			if a.topics == nil {
				a.topics = map[string]*topicPermEntry{}
			}
			a.topics[k[2]] = e
		}
	}
	s.mu.RUnlock()
	a.expanded = nil
}

// Current reports whether nothing changed since a's last check, for callers
// that cache a check's outcome (the publish path does, per exchange).
func (a *Access) Current() bool { return a.gen == a.b.acc.gen.Load() }

func (a *Access) fresh() {
	if !a.Current() {
		a.refresh()
	}
}

// VHostAllowed reports whether the user has any permissions on the vhost,
// which is what opening it takes.
func (a *Access) VHostAllowed() bool {
	a.fresh()
	return a.perm != nil
}

// Check returns RabbitMQ's 403 unless the user has perm on the named queue or
// exchange (kind "queue" or "exchange"; "" names the default exchange).
func (a *Access) Check(kind, name string, perm Perm) error {
	a.fresh()
	if kind == "exchange" && name == "" {
		name = "amq.default"
	}
	if a.perm != nil && a.perm.re.match(perm, name) {
		return nil
	}
	return amqp091.NewError(amqp091.AccessRefused, "access to %s '%s' in vhost '%s' refused for user '%s'", kind, name, a.vhost, a.user)
}

// CheckTopic returns RabbitMQ's 403 unless the user's topic permissions on
// exchange allow perm (Write or Read) for routingKey. Callers call it for
// topic exchanges only.
func (a *Access) CheckTopic(exchange, routingKey string, perm Perm) error {
	a.fresh()
	e := a.topics[exchange]
	if e == nil {
		return nil
	}
	pattern := e.Write
	if perm == Read {
		pattern = e.Read
	}
	if pattern != "" {
		re := a.expanded[pattern]
		if re == nil {
			expanded := strings.NewReplacer("{username}", a.user, "{vhost}", a.vhost).Replace(pattern)
			var err error
			if re, err = regexp.Compile(expanded); err != nil {
				re = nil
			} else {
				if a.expanded == nil {
					a.expanded = map[string]*regexp.Regexp{}
				}
				a.expanded[pattern] = re
			}
		}
		if re != nil && re.MatchString(routingKey) {
			return nil
		}
	}
	return amqp091.NewError(amqp091.AccessRefused, "access to topic '%s' in exchange '%s' in vhost '%s' refused for user '%s'", routingKey, exchange, a.vhost, a.user)
}

// snapshotAccess adds the users, permissions, topic permissions and limits,
// sorted, in replay order (after the vhosts they name).
func (b *Broker) snapshotAccess(add func(command)) {
	for _, u := range b.Users() {
		add(&putUserCmd{Name: u.Name, Hash: u.PasswordHash, Algorithm: u.HashAlgorithm, Tags: u.Tags, SCRAM: u.SCRAM})
	}
	for _, p := range b.Permissions() {
		add(&setPermissionCmd{User: p.User, VHost: p.VHost, Configure: p.Configure, Write: p.Write, Read: p.Read})
	}
	for _, p := range b.TopicPermissions() {
		add(&setTopicPermissionCmd{User: p.User, VHost: p.VHost, Exchange: p.Exchange, Write: p.Write, Read: p.Read})
	}
	b.acc.mu.RLock()
	defer b.acc.mu.RUnlock()
	for _, v := range slices.Sorted(maps.Keys(b.acc.vhostLimits)) {
		add(&setVHostLimitsCmd{VHost: v, Limits: encodeLimits(b.acc.vhostLimits[v])})
	}
	for _, u := range slices.Sorted(maps.Keys(b.acc.userLimits)) {
		add(&setUserLimitsCmd{User: u, Limits: encodeLimits(b.acc.userLimits[u])})
	}
}
