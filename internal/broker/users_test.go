package broker

import (
	"errors"
	"strings"
	"testing"

	"github.com/warren-mq/warren/internal/store"
)

// A hash exported by RabbitMQ 3.10 (rabbitmqctl add_user warren-hashprobe
// s3cret; rabbitmqctl export_definitions) logs in unchanged.
func TestUsersRabbitMQHashImports(t *testing.T) {
	b := newTestBroker(t, store.NewMemory())
	if err := b.PutUser(User{Name: "probe", PasswordHash: "saTMVKH1lBySYnuZaNdS5IY6/GjSMYqy8FpIa5w+ZSKKEsg0", HashAlgorithm: HashSHA256}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Authenticate("probe", "s3cret", true); err != nil {
		t.Fatalf("RabbitMQ's hash: %v", err)
	}
	if _, err := b.Authenticate("probe", "S3cret", true); !isReason(err, "bad password") {
		t.Fatalf("wrong password: %v", err)
	}
	for _, alg := range []string{HashSHA512, HashMD5} {
		h, _ := hashFunc(alg)
		name := "u-" + alg
		if err := b.PutUser(User{Name: name, PasswordHash: saltedHash(h, []byte{1, 2, 3, 4}, "pw"), HashAlgorithm: alg}); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Authenticate(name, "pw", true); err != nil {
			t.Fatalf("%s: %v", alg, err)
		}
	}
	if err := b.PutUser(User{Name: "x", PasswordHash: "not base64!", HashAlgorithm: HashSHA256}); err == nil {
		t.Fatal("bad hash accepted")
	}
	if err := b.PutUser(User{Name: "x", HashAlgorithm: "rabbit_password_hashing_bcrypt"}); err == nil || !strings.Contains(err.Error(), "unknown password hashing algorithm") {
		t.Fatalf("unknown algorithm: %v", err)
	}
}

func isReason(err error, reason string) bool {
	var ae *AuthError
	return errors.As(err, &ae) && ae.Reason == reason
}

func newTestBroker(t *testing.T, st store.Store) *Broker {
	t.Helper()
	b, err := New(Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The defaults come with the first start only: deleting guest sticks.
func TestUsersDefaultsOnlyAtFirstStart(t *testing.T) {
	st := store.NewMemory()
	b := newTestBroker(t, st)
	u, ok := b.User("guest")
	if !ok || !u.HasTag("administrator") {
		t.Fatalf("guest: %+v %v", u, ok)
	}
	if p := b.Permissions(); len(p) != 1 || p[0] != (UserPermission{User: "guest", VHost: "/", Permission: Permission{".*", ".*", ".*"}}) {
		t.Fatalf("permissions %+v", p)
	}
	if err := b.DeleteUser("guest"); err != nil {
		t.Fatal(err)
	}
	b = newTestBroker(t, st)
	if _, ok := b.User("guest"); ok {
		t.Fatal("guest came back after a restart")
	}
	if _, ok := b.VHost("/"); !ok {
		t.Fatal("vhost / lost")
	}

	b, err := New(Config{Store: store.NewMemory(), DefaultUser: "admin", DefaultPass: "pw", DefaultVHost: "prod"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Authenticate("admin", "pw", true); err != nil {
		t.Fatal(err)
	}
	if _, ok := b.VHost("/"); ok {
		t.Fatal("vhost / created with another default vhost")
	}
	if !b.Access("admin", "prod").VHostAllowed() {
		t.Fatal("default user cannot open the default vhost")
	}
}

func TestUsersWithoutPasswordRefusePlain(t *testing.T) {
	b := newTestBroker(t, store.NewMemory())
	if err := b.AddUser("cert", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Authenticate("cert", "", true); !isReason(err, "user has no password (certificate login only)") {
		t.Fatalf("empty password: %v", err)
	}
	if _, err := b.AuthenticateExternal("cert", true); err != nil {
		t.Fatal(err)
	}
}

func TestPermissionsCheck(t *testing.T) {
	b := newTestBroker(t, store.NewMemory())
	if err := b.AddUser("u", "p"); err != nil {
		t.Fatal(err)
	}
	if err := b.SetPermissions("u", "/", Permission{Configure: "^u-", Write: "", Read: "amq.default|q"}); err != nil {
		t.Fatal(err)
	}
	a := b.Access("u", "/")
	for _, c := range []struct {
		kind, name string
		perm       Perm
		ok         bool
	}{
		{"queue", "u-1", Configure, true},
		{"queue", "x-u-1", Configure, false}, // anchored
		{"queue", "u-1", Write, false},       // "" matches nothing
		{"queue", "myq", Read, true},         // unanchored: matches anywhere
		{"exchange", "", Read, true},         // the default exchange is amq.default
	} {
		err := a.Check(c.kind, c.name, c.perm)
		if (err == nil) != c.ok {
			t.Errorf("%s %q %s: %v", c.kind, c.name, c.perm, err)
		}
	}
	if err := a.Check("queue", "q", Write); err == nil || err.Error() != "403 ACCESS_REFUSED - access to queue 'q' in vhost '/' refused for user 'u'" {
		t.Fatalf("refusal: %v", err)
	}
	// A change applies to the checker already handed out.
	if err := b.SetPermissions("u", "/", Permission{Write: ".*"}); err != nil {
		t.Fatal(err)
	}
	if a.Check("queue", "q", Write) != nil || a.Check("queue", "u-1", Configure) == nil {
		t.Fatal("checker kept old permissions")
	}
	if err := b.SetPermissions("u", "/", Permission{Configure: "(?<=x)"}); err == nil || !strings.Contains(err.Error(), "invalid regular expression '(?<=x)'") {
		t.Fatalf("bad regex: %v", err)
	}
	if err := b.SetPermissions("nobody", "/", Permission{}); err == nil {
		t.Fatal("permissions for a missing user")
	}
	if err := b.SetPermissions("u", "nowhere", Permission{}); err == nil {
		t.Fatal("permissions on a missing vhost")
	}
	if err := b.ClearPermissions("u", "/"); err != nil {
		t.Fatal(err)
	}
	if a.VHostAllowed() {
		t.Fatal("cleared permissions still open the vhost")
	}
}

func TestPermissionsTopic(t *testing.T) {
	b := newTestBroker(t, store.NewMemory())
	if err := b.AddUser("u", "p"); err != nil {
		t.Fatal(err)
	}
	if err := b.SetTopicPermissions("u", "/", TopicPermission{Exchange: "amq.topic", Write: "^{username}\\.", Read: "^{vhost}$"}); err != nil {
		t.Fatal(err)
	}
	a := b.Access("u", "/")
	if a.CheckTopic("amq.topic", "u.x", Write) != nil || a.CheckTopic("other", "anything", Write) != nil || a.CheckTopic("amq.topic", "/", Read) != nil {
		t.Fatal("allowed key refused")
	}
	err := a.CheckTopic("amq.topic", "v.x", Write)
	if err == nil || err.Error() != "403 ACCESS_REFUSED - access to topic 'v.x' in exchange 'amq.topic' in vhost '/' refused for user 'u'" {
		t.Fatalf("refusal: %v", err)
	}
}

// Users, permissions, topic permissions and limits survive a compaction.
func TestUsersSnapshotRoundTrip(t *testing.T) {
	st := store.NewMemory()
	b := newTestBroker(t, st)
	if _, err := b.PutVHost("v", VHostInfo{Description: "d", Tags: "a", DefaultQueueType: "classic"}); err != nil {
		t.Fatal(err)
	}
	if err := b.AddUser("u", "p", "monitoring", "impersonator"); err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(b.SetPermissions("u", "v", Permission{"c", "w", "r"}))
	must(b.SetTopicPermissions("u", "v", TopicPermission{Exchange: "amq.topic", Write: "w", Read: "r"}))
	must(b.SetVHostLimits("v", map[string]int64{LimitMaxQueues: 2, LimitMaxConnections: -1}))
	must(b.SetUserLimits("u", map[string]int64{LimitMaxChannels: 3}))
	snap := store.NewMemory()
	for _, rec := range b.snapshot() {
		snap.CommitMeta(rec, func(error) {})
	}
	r := newTestBroker(t, snap)
	if _, err := r.Authenticate("u", "p", true); err != nil {
		t.Fatal(err)
	}
	u, _ := r.User("u")
	if strings.Join(u.Tags, ",") != "impersonator,monitoring" {
		t.Fatalf("tags %v", u.Tags)
	}
	if got, want := r.Permissions(), b.Permissions(); len(got) != 2 || got[1] != want[1] {
		t.Fatalf("permissions %+v, want %+v", got, want)
	}
	if got := r.TopicPermissions(); len(got) != 1 || got[0].Write != "w" {
		t.Fatalf("topic permissions %+v", got)
	}
	if l := r.VHostLimits("v"); l[LimitMaxQueues] != 2 || l[LimitMaxConnections] != -1 {
		t.Fatalf("vhost limits %v", l)
	}
	if l := r.UserLimits("u"); l[LimitMaxChannels] != 3 {
		t.Fatalf("user limits %v", l)
	}
	v, _ := r.VHost("v")
	if v.Info() != (VHostInfo{Description: "d", Tags: "a", DefaultQueueType: "classic"}) {
		t.Fatalf("vhost info %+v", v.Info())
	}
	// Deleting a vhost drops what was set on it; deleting a user, what it had.
	must(r.DeleteVHost("v"))
	must(r.DeleteUser("u"))
	if len(r.Permissions()) != 1 || len(r.TopicPermissions()) != 0 || r.VHostLimits("v") != nil || r.UserLimits("u") != nil {
		t.Fatalf("left behind: %+v %+v", r.Permissions(), r.TopicPermissions())
	}
}

func TestLimitsParse(t *testing.T) {
	if l, err := ParseLimits(`{"max-connections": 1, "max-queues": -1}`, false); err != nil || l[LimitMaxConnections] != 1 {
		t.Fatalf("%v %v", l, err)
	}
	for _, bad := range []string{`{"max-channels": 1}`, `{"max-queues": 1.5}`, `[1]`, `{"max-queues": "x"}`} {
		if _, err := ParseLimits(bad, false); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	if _, err := ParseLimits(`{"max-channels": 1}`, true); err != nil {
		t.Fatal(err)
	}
}

// The publish path's checks: Current on every publish (the exchange's write
// check is cached until permissions change), CheckTopic on topic exchanges.
func BenchmarkAccessPublishChecks(b *testing.B) {
	br, err := New(Config{Store: store.NewMemory()})
	if err != nil {
		b.Fatal(err)
	}
	if err := br.SetTopicPermissions("guest", "/", TopicPermission{Exchange: "amq.topic", Write: "^{username}\\.", Read: ".*"}); err != nil {
		b.Fatal(err)
	}
	a := br.Access("guest", "/")
	b.Run("Current", func(b *testing.B) {
		for b.Loop() {
			if !a.Current() {
				b.Fatal("stale")
			}
		}
	})
	b.Run("Check", func(b *testing.B) {
		for b.Loop() {
			if a.Check("exchange", "orders", Write) != nil {
				b.Fatal("refused")
			}
		}
	})
	b.Run("CheckTopic", func(b *testing.B) {
		for b.Loop() {
			if a.CheckTopic("amq.topic", "guest.orders.new", Write) != nil {
				b.Fatal("refused")
			}
		}
	})
}
