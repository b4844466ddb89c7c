// Package broker is Warren's core: virtual hosts, users, exchanges, bindings,
// queues, consumers and routing. It knows nothing of sockets or protocols; the
// AMQP front end (and tests) drive it through VHost, Queue and Consumer.
//
// Lock order is written down in LOCKS.md.
package broker

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/warren-mq/warren/internal/store"
)

// Config configures a Broker.
type Config struct {
	// Store persists metadata and persistent messages; nil means store.NewMemory().
	Store store.Store
	// MemoryLimit is the number of message bytes held in queues beyond which
	// publishers are blocked; 0 means no limit.
	MemoryLimit int64
	// LoopbackUsers may only connect from a loopback address (RabbitMQ's loopback_users).
	LoopbackUsers []string
	// Logger receives the broker's logs; nil means slog.Default().
	Logger *slog.Logger
}

// Broker holds everything one Warren node serves.
type Broker struct {
	cfg   Config
	log   *slog.Logger
	store store.Store

	mu     sync.RWMutex
	vhosts map[string]*VHost
	users  map[string]*User

	mem   atomic.Int64
	alarm alarm
}

// User is a broker user. Passwords are kept only as salted SHA-256 hashes.
type User struct {
	Name   string
	Tags   string
	salt   [4]byte
	hash   [32]byte
	vhosts map[string]bool
}

// New creates a broker with the default vhost "/" and user guest/guest, then
// replays the store's metadata.
func New(cfg Config) (*Broker, error) {
	if cfg.Store == nil {
		cfg.Store = store.NewMemory()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.LoopbackUsers == nil {
		cfg.LoopbackUsers = []string{"guest"}
	}
	b := &Broker{cfg: cfg, log: cfg.Logger, store: cfg.Store, vhosts: map[string]*VHost{}, users: map[string]*User{}}
	b.alarm.cleared = make(chan struct{})
	b.AddVHost("/")
	if err := b.AddUser("guest", "guest", "administrator", "/"); err != nil {
		return nil, err
	}
	return b, nil
}

// Close releases the store.
func (b *Broker) Close() error { return b.store.Close() }

// Logger returns the broker's logger.
func (b *Broker) Logger() *slog.Logger { return b.log }

// AddVHost creates a virtual host with its predeclared exchanges, if missing.
func (b *Broker) AddVHost(name string) *VHost {
	b.mu.Lock()
	defer b.mu.Unlock()
	if v, ok := b.vhosts[name]; ok {
		return v
	}
	v := newVHost(b, name)
	b.vhosts[name] = v
	return v
}

// VHost returns a virtual host by name.
func (b *Broker) VHost(name string) (*VHost, bool) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	v, ok := b.vhosts[name]
	return v, ok
}

// AddUser creates or replaces a user with access to the given vhosts.
func (b *Broker) AddUser(name, password, tags string, vhosts ...string) error {
	u := &User{Name: name, Tags: tags, vhosts: map[string]bool{}}
	if _, err := rand.Read(u.salt[:]); err != nil {
		return fmt.Errorf("broker: salt: %w", err)
	}
	u.hash = hashPassword(u.salt, password)
	for _, v := range vhosts {
		u.vhosts[v] = true
	}
	b.mu.Lock()
	b.users[name] = u
	b.mu.Unlock()
	return nil
}

func hashPassword(salt [4]byte, password string) [32]byte {
	h := sha256.New()
	h.Write(salt[:])
	h.Write([]byte(password))
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// Authenticate checks a username and password; fromLoopback says whether the
// client connected over a loopback address.
func (b *Broker) Authenticate(name, password string, fromLoopback bool) (*User, bool) {
	b.mu.RLock()
	u, ok := b.users[name]
	b.mu.RUnlock()
	if !ok {
		return nil, false
	}
	h := hashPassword(u.salt, password)
	if subtle.ConstantTimeCompare(h[:], u.hash[:]) != 1 {
		return nil, false
	}
	if !fromLoopback {
		for _, lu := range b.cfg.LoopbackUsers {
			if lu == name {
				return nil, false
			}
		}
	}
	return u, true
}

// CanAccess reports whether u may open vhost.
func (u *User) CanAccess(vhost string) bool { return u.vhosts[vhost] }

// alarm is the broker-wide memory alarm: while set, publishing connections block.
type alarm struct {
	mu      sync.Mutex
	set     bool
	on      atomic.Bool   // mirrors set, read without the lock
	cleared chan struct{} // closed when the alarm clears; replaced when it sets
}

// MemoryUsed returns the bytes of messages held in queues.
func (b *Broker) MemoryUsed() int64 { return b.mem.Load() }

// MemoryAlarm reports whether publishers must wait, and a channel closed when
// they may go on.
func (b *Broker) MemoryAlarm() (bool, <-chan struct{}) {
	b.alarm.mu.Lock()
	defer b.alarm.mu.Unlock()
	return b.alarm.set, b.alarm.cleared
}

func (b *Broker) addMemory(n int64) {
	used := b.mem.Add(n)
	limit := b.cfg.MemoryLimit
	if limit <= 0 {
		return
	}
	over := used > limit
	if over == b.alarm.on.Load() {
		return // the common case: no transition, no lock
	}
	b.alarm.mu.Lock()
	defer b.alarm.mu.Unlock()
	switch {
	case over && !b.alarm.set:
		b.alarm.set = true
		b.alarm.on.Store(true)
		b.alarm.cleared = make(chan struct{})
		b.log.Warn("memory alarm set: blocking publishers", "used", used, "limit", limit)
	case !over && b.alarm.set:
		b.alarm.set = false
		b.alarm.on.Store(false)
		close(b.alarm.cleared)
		b.log.Info("memory alarm cleared", "used", used, "limit", limit)
	}
}

// hold accounts for a queue taking a reference to m.
func (b *Broker) hold(m *Message) {
	if m.refs.Add(1) == 1 {
		b.addMemory(int64(m.Size()))
	}
}

// release drops a queue's reference to m.
func (b *Broker) release(m *Message) {
	if m.refs.Add(-1) == 0 {
		b.addMemory(-int64(m.Size()))
	}
}
