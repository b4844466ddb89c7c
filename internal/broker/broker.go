// Package broker is Warren's core: virtual hosts, users, exchanges, bindings,
// queues, consumers and routing. It knows nothing of sockets or protocols; the
// AMQP front end (and tests) drive it through VHost, Queue and Consumer.
//
// Lock order is written down in LOCKS.md.
package broker

import (
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warren-mq/warren/internal/store"
)

// Config configures a Broker.
type Config struct {
	// Store persists metadata and persistent messages; nil means store.NewMemory().
	// A store.File must be opened with Options.Weigh = RecordBodyLen, so that
	// the byte totals of backlogs it recovers in bulk count bodies.
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
	// LoopbackUsers may only connect from a loopback address (RabbitMQ's
	// loopback_users); nil means [guest], empty allows every user from anywhere.
	LoopbackUsers []string
	// DefaultUser, DefaultPass and DefaultVHost are created at the first
	// start (an empty metadata log), the user as administrator with full
	// permissions on the vhost, as RabbitMQ does; defaults guest, guest, "/".
	DefaultUser, DefaultPass, DefaultVHost string
	// Logger receives the broker's logs; nil means slog.Default().
	Logger *slog.Logger
	// StreamDir holds the streams' logs, one directory per vhost and stream
	// (cmd/warren: <data dir>/streams). Empty means a temporary directory
	// removed at Close: streams then last as long as the broker, as queues
	// in a memory store do.
	StreamDir string
}

// Broker holds everything one Warren node serves.
type Broker struct {
	cfg   Config
	log   *slog.Logger
	store store.Store

	mu     sync.RWMutex
	vhosts map[string]*VHost
	acc    accessState // users, permissions, limits

	globalParams paramSet // see params.go
	txn          txnStore // Kafka producer ids and transactions, see command_txn.go

	offsets    offsetTable // committed offsets of consumer groups (command_offsets.go)
	groupViews groupViews  // live consumer groups, as front ends report them (command_offsets.go)

	// mem is what queued messages cost (see hold); heapOther is the rest of
	// the live heap, sampled after garbage collections (ProcessMemory only).
	mem, heapOther  atomic.Int64
	memHigh, memLow int64 // the memory alarm sets at memHigh, clears below memLow
	freeDisk        func() (uint64, error)
	diskMu          sync.Mutex    // one free-space check at a time, so they apply in order
	pageSeq         atomic.Uint64 // ids of paged-out bodies in the store
	sweeping        atomic.Bool   // sweepPaging is running
	lastSweep       atomic.Int64  // when it last ended, unix nanoseconds
	alarm           alarm
	sess            sessions
	totals          totals // see totals.go
	hookMu          sync.Mutex
	onVHostDeleted  []func(vhost string)
	canPage         bool // the store is on disk, so paging bodies out saves memory
	// refills bounds the refills reading from the store at once, broker-wide
	// (see Queue.refill): a slot per ReadTail, taken in turn.
	refills        chan struct{}
	stop           chan struct{}
	stopOnce       sync.Once
	streamRoot     string // Config.StreamDir, or the temporary directory standing in for it
	streamRootTemp bool   // streamRoot is temporary: removed at Close
	// streamsUnopened are the directories of declared streams whose log
	// failed to open: never taken for a deleted stream's leftovers.
	streamsUnopened sync.Map
	// started is when New began (unix nanoseconds): the enqueue time of
	// recovered records that carry none (format 1, see record).
	started int64
}

// New creates a broker from the store's metadata; at the first start (no
// metadata yet) it creates the default vhost and user.
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
	b := &Broker{cfg: cfg, log: cfg.Logger, store: cfg.Store, vhosts: map[string]*VHost{}, streamRoot: cfg.StreamDir}
	if b.streamRoot == "" {
		dir, err := os.MkdirTemp("", "warren-streams-")
		if err != nil {
			return nil, fmt.Errorf("broker: temporary stream directory: %w", err)
		}
		b.streamRoot, b.streamRootTemp = dir, true
	}
	b.acc.init()
	_, inMemory := cfg.Store.(*store.Memory)
	b.canPage = !inMemory
	b.refills = make(chan struct{}, refillSlots)
	b.alarm.cleared = make(chan struct{})
	close(b.alarm.cleared) // no alarm yet
	b.stop = make(chan struct{})
	if cfg.MemoryLimit > 0 {
		b.memHigh, b.memLow = b.memoryLimits()
	}
	b.started = nowNano()
	fresh, err := b.replay()
	if err != nil {
		return nil, err
	}
	if fresh {
		if err := b.seedDefaults(); err != nil {
			return nil, fmt.Errorf("broker: creating the default user and vhost: %w", err)
		}
	}
	if err := b.recoverMessages(); err != nil {
		return nil, err
	}
	b.removeStrayStreamDirs()
	if cfg.MemoryLimit > 0 && cfg.ProcessMemory {
		go b.watchHeap(b.stop)
	}
	if cfg.ProcessMemory {
		go b.scavenge(b.stop)
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
	b.closeStreams()
	return b.store.Close()
}

// StoreStats describes the broker's store.
func (b *Broker) StoreStats() store.Stats { return b.store.Stats() }

// Logger returns the broker's logger.
func (b *Broker) Logger() *slog.Logger { return b.log }

// VHost returns a virtual host by name.
func (b *Broker) VHost(name string) (*VHost, bool) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	v, ok := b.vhosts[name]
	return v, ok
}
