package broker

import (
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"hash"
	"maps"
	"slices"
	"strings"

	"github.com/warren-mq/warren/internal/amqp091"
)

// Password hashing algorithms, named as RabbitMQ names them in definitions
// files, so a user exported from RabbitMQ imports with its password intact.
const (
	HashSHA256 = "rabbit_password_hashing_sha256"
	HashSHA512 = "rabbit_password_hashing_sha512"
	HashMD5    = "rabbit_password_hashing_md5"
)

// User is a broker user as stored: immutable, replaced whole on change, so a
// connection may keep the one it logged in with.
type User struct {
	Name string
	// PasswordHash is RabbitMQ's encoding: base64(4-byte salt ++
	// H(salt ++ password)); "" means the user has no password and may log in
	// only with a client certificate (SASL EXTERNAL).
	PasswordHash string
	// HashAlgorithm is one of HashSHA256, HashSHA512, HashMD5.
	HashAlgorithm string
	// Tags are RabbitMQ's user tags (administrator, monitoring, policymaker,
	// management, impersonator, or anything else), sorted.
	Tags []string
	// SCRAM holds the user's SCRAM credentials (users_scram.go), derived
	// when the password was last set; "" if it was set only as a hash.
	SCRAM string
}

// HasTag reports whether the user has tag.
func (u *User) HasTag(tag string) bool { return slices.Contains(u.Tags, tag) }

func hashFunc(algorithm string) (func() hash.Hash, bool) {
	switch algorithm {
	case HashSHA256, "":
		return sha256.New, true
	case HashSHA512:
		return sha512.New, true
	case HashMD5:
		return md5.New, true
	}
	return nil, false
}

// HashPassword returns password hashed as RabbitMQ does by default
// (rabbit_password_hashing_sha256) with a fresh random salt.
func HashPassword(password string) string {
	var salt [4]byte
	_, _ = rand.Read(salt[:])
	return saltedHash(sha256.New, salt[:], password)
}

func saltedHash(h func() hash.Hash, salt []byte, password string) string {
	d := h()
	d.Write(salt)
	d.Write([]byte(password))
	return base64.StdEncoding.EncodeToString(d.Sum(append([]byte(nil), salt...)))
}

// checkPassword reports whether password matches u's hash.
func (u *User) checkPassword(password string) bool {
	raw, err := base64.StdEncoding.DecodeString(u.PasswordHash)
	h, ok := hashFunc(u.HashAlgorithm)
	if err != nil || !ok || len(raw) <= 4 {
		return false
	}
	want := saltedHash(h, raw[:4], password)
	return subtle.ConstantTimeCompare([]byte(want), []byte(u.PasswordHash)) == 1
}

// validateUser checks what an operator asks to store.
func validateUser(name, passwordHash, algorithm string) error {
	if name == "" {
		return fmt.Errorf("user name must not be empty")
	}
	h, ok := hashFunc(algorithm)
	if !ok {
		return fmt.Errorf("user '%s': unknown password hashing algorithm '%s' (want %s, %s or %s)", name, algorithm, HashSHA256, HashSHA512, HashMD5)
	}
	if passwordHash == "" {
		return nil
	}
	raw, err := base64.StdEncoding.DecodeString(passwordHash)
	if err != nil || len(raw) != 4+h().Size() {
		return fmt.Errorf("user '%s': password hash is not base64 of a 4-byte salt and a %s digest", name, algorithm)
	}
	return nil
}

// normalTags sorts tags and drops blanks and repeats.
func normalTags(tags []string) []string {
	var out []string
	for _, t := range tags {
		if t = strings.TrimSpace(t); t != "" && !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	slices.Sort(out)
	return out
}

// ParseTags splits a comma-separated tag list ("administrator,monitoring").
func ParseTags(s string) []string { return normalTags(strings.Split(s, ",")) }

// AddUser creates or replaces a user with the password (hashed with SHA-256
// as RabbitMQ does; "" for none) and tags; durable. Its permissions stay.
func (b *Broker) AddUser(name, password string, tags ...string) error {
	hash := ""
	if password != "" {
		hash = HashPassword(password)
	}
	u := User{Name: name, PasswordHash: hash, HashAlgorithm: HashSHA256, Tags: tags}
	if password != "" {
		u.SCRAM = ScramCredentials(password)
	}
	return b.PutUser(u)
}

// PutUser creates or replaces a user with an already hashed password (as
// definitions files hold them); durable. Its permissions stay.
func (b *Broker) PutUser(u User) error {
	if u.HashAlgorithm == "" {
		u.HashAlgorithm = HashSHA256
	}
	if err := validateUser(u.Name, u.PasswordHash, u.HashAlgorithm); err != nil {
		return err
	}
	_, _, err := b.commit(&putUserCmd{Name: u.Name, Hash: u.PasswordHash, Algorithm: u.HashAlgorithm, Tags: normalTags(u.Tags), SCRAM: u.SCRAM}, true)
	return err
}

// DeleteUser deletes a user with its permissions and limits; durable. Its
// open connections are closed (see OnUserDeleted).
func (b *Broker) DeleteUser(name string) error {
	if _, ok := b.User(name); !ok {
		return amqp091.NewError(amqp091.NotFound, "no user '%s'", name)
	}
	_, _, err := b.commit(&deleteUserCmd{Name: name}, true)
	return err
}

// OnUserDeleted registers fn to run after a user is deleted (front ends close
// the user's connections).
func (b *Broker) OnUserDeleted(fn func(user string)) {
	b.hookMu.Lock()
	b.acc.onUserDeleted = append(b.acc.onUserDeleted, fn)
	b.hookMu.Unlock()
}

// User returns a user by name.
func (b *Broker) User(name string) (*User, bool) {
	b.acc.mu.RLock()
	defer b.acc.mu.RUnlock()
	u, ok := b.acc.users[name]
	return u, ok
}

// Users returns the users, sorted by name.
func (b *Broker) Users() []*User {
	b.acc.mu.RLock()
	defer b.acc.mu.RUnlock()
	return slices.SortedFunc(maps.Values(b.acc.users), func(x, y *User) int { return strings.Compare(x.Name, y.Name) })
}

// AuthError says why Authenticate refused a login. The reason is for the
// broker's log only: clients are told just that the login was refused, as
// RabbitMQ does, so a guesser cannot tell unknown users from bad passwords.
type AuthError struct {
	// Reason is a short phrase such as "unknown user" or "bad password".
	Reason string
}

func (e *AuthError) Error() string { return "login refused: " + e.Reason }

// Authenticate checks a username and password (SASL PLAIN, AMQPLAIN);
// fromLoopback says whether the client connected over a loopback address. A
// user without a password cannot log in this way. A refusal is an *AuthError.
func (b *Broker) Authenticate(name, password string, fromLoopback bool) (*User, error) {
	u, ok := b.User(name)
	if !ok {
		return nil, &AuthError{Reason: "unknown user"}
	}
	if u.PasswordHash == "" {
		return nil, &AuthError{Reason: "user has no password (certificate login only)"}
	}
	if !u.checkPassword(password) {
		return nil, &AuthError{Reason: "bad password"}
	}
	if !fromLoopback && b.loopbackOnly(name) {
		return nil, &AuthError{Reason: "user may only connect via localhost (loopback_users)"}
	}
	return u, nil
}

func (b *Broker) loopbackOnly(name string) bool { return slices.Contains(b.cfg.LoopbackUsers, name) }

// seedDefaults creates the default vhost and user with full permissions on
// it, as RabbitMQ does when its database is new: only at the first start, so
// an operator who deletes guest does not see it come back.
func (b *Broker) seedDefaults() error {
	user, pass, vhost := b.cfg.DefaultUser, b.cfg.DefaultPass, b.cfg.DefaultVHost
	if user == "" {
		user = "guest"
	}
	if pass == "" {
		pass = "guest"
	}
	if vhost == "" {
		vhost = "/"
	}
	b.log.Info("first start: creating the default vhost and user", "vhost", vhost, "user", user)
	if _, err := b.PutVHost(vhost, VHostInfo{Description: "Default virtual host"}); err != nil {
		return err
	}
	if err := b.AddUser(user, pass, "administrator"); err != nil {
		return err
	}
	return b.SetPermissions(user, vhost, Permission{Configure: ".*", Write: ".*", Read: ".*"})
}
