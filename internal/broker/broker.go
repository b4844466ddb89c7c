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
	"time"

	"github.com/warren-mq/warren/internal/store"
)

// Config configures a Broker.
type Config struct {
	// Store persists metadata and persistent messages; nil means store.NewMemory().
	Store store.Store
	// MemoryLimit is the memory (bytes) that queued messages may cost (their
	// bodies, properties, names, queue and index entries) before publishers
	// are blocked; past half of it bodies are paged out to the store. The
	// alarm clears below 90% of it. 0 means no limit.
	MemoryLimit int64
	// ProcessMemory says the broker owns its process (cmd/warren, which also
	// sets the Go runtime's soft memory limit to MemoryLimit): the memory
	// alarm then counts the whole live Go heap, not only queued messages,
	// and blocks publishers when it reaches 80% of MemoryLimit, leaving the
	// rest as the garbage collector's headroom. Off for brokers that share a
	// process with others or with tests.
	ProcessMemory bool
	// DiskFreeLimit is the free disk space (bytes) on the store's file system
	// below which publishers are blocked; they resume once it is 10% above
	// it. 0 means no check.
	DiskFreeLimit int64
	// DiskCheckInterval is how often free disk space is checked (default 1 s).
	// A store that supports it (store.File) also has it checked after every
	// DiskFreeLimit/16 bytes it writes, so a fast writer cannot fill the disk
	// between two checks.
	DiskCheckInterval time.Duration
	// FreeDisk reports free disk space; nil means the store's FreeDisk (tests replace it).
	FreeDisk func() (uint64, error)
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

	// mem is what queued messages cost (see hold); heapOther is the rest of
	// the live heap, sampled after garbage collections (ProcessMemory only).
	mem, heapOther  atomic.Int64
	memHigh, memLow int64 // the memory alarm sets at memHigh, clears below memLow
	freeDisk        func() (uint64, error)
	diskMu          sync.Mutex    // one free-space check at a time, so they apply in order
	pageSeq         atomic.Uint64 // ids of paged-out bodies in the store
	alarm           alarm
	hookMu          sync.Mutex
	onVHostDeleted  []func(vhost string)
	canPage         bool // the store is on disk, so paging bodies out saves memory
	stop            chan struct{}
	stopOnce        sync.Once
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
	_, inMemory := cfg.Store.(*store.Memory)
	b.canPage = !inMemory
	b.alarm.cleared = make(chan struct{})
	close(b.alarm.cleared) // no alarm yet
	b.stop = make(chan struct{})
	if cfg.MemoryLimit > 0 {
		b.memHigh, b.memLow = b.memoryLimits()
	}
	b.AddVHost("/")
	if err := b.AddUser("guest", "guest", "administrator", "/"); err != nil {
		return nil, err
	}
	if err := b.replay(); err != nil {
		return nil, err
	}
	if err := b.recoverMessages(); err != nil {
		return nil, err
	}
	if cfg.MemoryLimit > 0 && cfg.ProcessMemory {
		go b.watchHeap(b.stop)
	}
	if cfg.DiskFreeLimit > 0 {
		b.freeDisk = cfg.FreeDisk
		if b.freeDisk == nil {
			b.freeDisk = b.store.FreeDisk
		}
		interval := cfg.DiskCheckInterval
		if interval <= 0 {
			interval = time.Second
		}
		if w, ok := b.store.(writeWatcher); ok {
			w.WatchWrites(max(cfg.DiskFreeLimit/16, 64<<10), b.checkDisk)
		}
		go b.watchDisk(interval, b.stop)
	}
	return b, nil
}

// Close stops the broker's background work and closes the store.
func (b *Broker) Close() error {
	b.stopOnce.Do(func() { close(b.stop) })
	return b.store.Close()
}

// StoreStats describes the broker's store.
func (b *Broker) StoreStats() store.Stats { return b.store.Stats() }

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

// AuthError says why Authenticate refused a login. The reason is for the
// broker's log only: clients are told just that the login was refused, as
// RabbitMQ does, so a guesser cannot tell unknown users from bad passwords.
type AuthError struct {
	// Reason is a short phrase such as "unknown user" or "bad password".
	Reason string
}

func (e *AuthError) Error() string { return "login refused: " + e.Reason }

// Authenticate checks a username and password; fromLoopback says whether the
// client connected over a loopback address. A refusal is an *AuthError.
func (b *Broker) Authenticate(name, password string, fromLoopback bool) (*User, error) {
	b.mu.RLock()
	u, ok := b.users[name]
	b.mu.RUnlock()
	if !ok {
		return nil, &AuthError{Reason: "unknown user"}
	}
	h := hashPassword(u.salt, password)
	if subtle.ConstantTimeCompare(h[:], u.hash[:]) != 1 {
		return nil, &AuthError{Reason: "bad password"}
	}
	if !fromLoopback {
		for _, lu := range b.cfg.LoopbackUsers {
			if lu == name {
				return nil, &AuthError{Reason: "user may only connect via localhost (loopback_users)"}
			}
		}
	}
	return u, nil
}

// CanAccess reports whether u may open vhost.
func (u *User) CanAccess(vhost string) bool { return u.vhosts[vhost] }
