package store

import (
	"errors"
	"log/slog"
	"time"
)

// ErrClosed is returned by every call after Close.
var ErrClosed = errors.New("store: closed")

// ErrNotFound is returned by ReadMessage for a message the store does not hold
// (never appended, acknowledged, its queue deleted, or not written yet).
var ErrNotFound = errors.New("store: no such message")

// ErrInvalid is returned for a record the store cannot hold: a vhost or queue
// name longer than an AMQP short string (255 bytes) or data beyond MaxData.
var ErrInvalid = errors.New("store: invalid record")

// MaxData is the largest MessageRecord.Data the store accepts (RabbitMQ's
// max_message_size cap is 512 MiB; one record must fit one length field).
const MaxData = 1<<30 - 1024

// MetaOp names a format 1 metadata command (see MetaCommand).
type MetaOp uint8

// Format 1 metadata commands. Values are part of the on-disk format: never renumber.
const (
	MetaDeclareVHost MetaOp = iota + 1
	MetaDeleteVHost
	MetaPutUser
	MetaDeleteUser
	MetaDeclareExchange
	MetaDeleteExchange
	MetaDeclareQueue
	MetaDeleteQueue
	MetaBind
	MetaUnbind
)

// MetaCommand is a metadata command as format 1 of the metadata log held it,
// before the broker encoded its own commands. It is only read, from data
// directories written by older Warrens. Fields not used by an op stay zero.
type MetaCommand struct {
	Op          MetaOp
	VHost       string
	Name        string // exchange, queue or user name; source exchange for bindings
	Kind        string // exchange type
	Destination string // binding destination
	ToExchange  bool   // binding destination is an exchange
	Key         string // binding key
	Flags       uint8  // durable/auto-delete/internal bits, op specific
	Args        []byte // encoded AMQP field table
	Secret      []byte // user password hash
	Tags        string // user tags
}

// MetaRecord is one record of the metadata log, as MetaLog returns it.
type MetaRecord struct {
	// Data is the broker's encoded command (nil for a Legacy record).
	Data []byte
	// Legacy is a format 1 command, for the broker to convert.
	Legacy *MetaCommand
	// Where names the record for error messages ("meta.log at offset 120").
	Where string
}

// MessageRecord is a message written for one queue. A queue identifies its
// messages by ID, and so does the store: there is no separate handle to keep.
type MessageRecord struct {
	VHost string
	Queue string
	ID    uint64 // the queue's sequence number for the message; unique per queue among live messages
	// Transient records are paged out under memory pressure only: readable with
	// ReadMessage while the store is open, dropped at recovery, never synced for
	// their own sake.
	Transient bool
	// Tail records belong to the queue's backlog, of which the caller keeps no
	// copy: the store indexes them compactly (File: a run per stretch of
	// consecutive records in a segment, nothing per record) and hands them
	// back, lowest ID first, with ReadTail. A queue's tail IDs must increase
	// and stay above its other IDs: a Tail record whose ID is not above every
	// tail ID the queue has, or another record whose ID is not below them,
	// gets ErrInvalid. Until ReadTail returns it, a tail record is not known by ID:
	// ReadMessage, Ack and MarkDelivered ignore it. Valid with Transient too.
	Tail bool
	Data []byte // encoded message (the broker's record: enqueue time, exchange, key, properties, body), opaque to the store
}

// TailRecord is a record ReadTail moved from a queue's tail into its window.
type TailRecord struct {
	ID        uint64
	Transient bool
	Delivered bool   // marked delivered before (recovery: the redelivered flag)
	Data      []byte // the caller's
}

// RecordFunc receives one record from Recover (see Store.Recover) and says
// whether it stays in its queue's tail.
type RecordFunc func(rec MessageRecord, delivered bool) (tail bool, err error)

// TailRun reports records of one queue that Recover put in its tail in bulk,
// without reading them (see Store.Recover).
type TailRun struct {
	VHost, Queue string
	Count        int // records
	// Bytes is their weight summed: Options.Weigh of each record's Data for
	// File (the broker counts body bytes), len(Data) for Memory.
	Bytes int64
	// LastID is the highest ID among them; all are above the IDs fn saw
	// for the queue before, and below those it sees after.
	LastID uint64
}

// TailFunc receives Recover's bulk reports. A queue may get several.
type TailFunc func(TailRun) error

// Stats describes a store, for tests and metrics. Counters are since Open.
type Stats struct {
	Segments      int    // segment files on disk
	DiskBytes     int64  // bytes in segment files, ack log and metadata log
	AckLogBytes   int64  // bytes in the ack log
	LiveMessages  int    // messages held (appended, not yet acknowledged), transient included
	LiveBytes     int64  // their bytes on disk (File) or in memory (Memory)
	Pending       int    // appended records waiting for the syncer
	TailMessages  int    // live records in queues' tails (also in LiveMessages), held as runs
	Syncs         uint64 // fdatasync calls covering message appends
	SyncedAppends uint64 // appended records those syncs covered; SyncedAppends/Syncs is the group-commit factor
	Compactions   uint64 // segments rewritten because they were mostly dead
	Deleted       uint64 // segments deleted
	// MetaCommits and MetaSyncs count metadata records written and the
	// writes (one fdatasync each) they took: concurrent commits share one.
	MetaCommits, MetaSyncs uint64
}

// Store is what the broker persists through. All methods are safe for
// concurrent use. After the first I/O error that could have left the store in
// doubt, every call returns that error until the store is reopened.
type Store interface {
	// CommitMeta appends one encoded metadata command (opaque to the store)
	// and never waits for the disk. done runs once the record is durable (nil)
	// or failed, one call at a time and in log order, so the broker applies
	// commands in exactly the order a replay will: on the store's metadata
	// goroutine (File) or before CommitMeta returns (Memory). done must not
	// call CommitMeta or Close. Concurrent commits share one write and sync.
	// rec must not be modified afterwards.
	CommitMeta(rec []byte, done func(error))
	// MetaLog returns the metadata log's records, oldest first: what was
	// committed, or a compacted equivalent from the snapshot function.
	MetaLog() ([]MetaRecord, error)
	// SetMetaSnapshot gives the store the function that returns the broker's
	// live metadata as records that replay to it. The store calls it between
	// done callbacks (so it sees exactly what the log holds) to compact the
	// log once it holds more than twice as many records as the last snapshot.
	SetMetaSnapshot(fn func() [][]byte)

	// AppendMessages records messages. It never waits for disk I/O. done runs
	// once they are durable (or failed): on the store's goroutine, or before
	// AppendMessages returns (always for Memory; for File when recs is empty or
	// invalid, or the store closed or failed). So the caller must not hold a
	// lock done takes, and done must not block. recs and their Data must not
	// be modified until done runs. Appending an ID the queue already has
	// replaces that message.
	AppendMessages(recs []MessageRecord, done func(error))
	// ReadMessage returns a message appended earlier, once its done has run.
	// The returned Data is the caller's.
	ReadMessage(vhost, queue string, id uint64) (MessageRecord, error)
	// Ack records that messages of a queue are gone for good (acknowledged,
	// dropped, expired, dead-lettered). Unknown IDs are ignored. It does not
	// sync: the ack becomes durable with the next sync.
	Ack(vhost, queue string, ids []uint64) error
	// MarkDelivered records a first delivery, so that recovery can set the
	// redelivered flag. Like Ack, it does not sync.
	MarkDelivered(vhost, queue string, ids []uint64) error
	// DeleteQueue acknowledges every message of a queue, its tail included.
	DeleteQueue(vhost, queue string) error
	// ReadTail moves the lowest records of a queue's tail into its window and
	// returns them in ID order: at most max records and, after the first, at
	// most maxBytes of Data in all. It stops before the first tail record whose
	// append has not been written yet (its done has not run). From then on the
	// records are ordinary: ReadMessage, Ack and MarkDelivered work on their
	// IDs. Data is the caller's. The I/O happens without holding the store's
	// lock, in large sequential reads.
	ReadTail(vhost, queue string, max int, maxBytes int64) ([]TailRecord, error)
	// DropTail acknowledges the lowest n records of a queue's tail without
	// returning them (purge, drop-head) and returns how many it dropped: fewer
	// if the tail holds fewer written records.
	DropTail(vhost, queue string, n int) (int, error)
	// Recover calls fn for every live persistent message, each queue's
	// messages in ID order as far as possible (copies moved by compaction may
	// come early); calls for different queues may interleave. rec.Data is
	// valid only during fn. At boot that is what survived the restart. fn
	// returns whether the store keeps the record in the queue's tail (the
	// caller holds nothing for it and gets it back with ReadTail) or as an
	// ordinary window record. The answer counts for records recovered from
	// disk, in the first Recover after Open; later calls see every live record
	// again (tail ones with rec.Tail set) and their answer changes nothing.
	// tail=true for an ID not above every tail ID its queue has so far stops
	// Recover with ErrInvalid: once fn put an ID in the tail, a lower one met
	// later (compaction moved it) must go to the window.
	//
	// If tail is not nil, Recover may report records in bulk instead of
	// reading them: once fn has answered tail=true for a record of a queue,
	// later records of that queue that go to (or already are in) its tail
	// may reach tail as TailRuns, without fn being called for them. That is
	// what makes a restart with a long backlog cost a few reads instead of
	// reading every record. Every live persistent record is reported exactly
	// once, through fn or within a TailRun. A TailRun's IDs are above every ID
	// fn saw for its queue before it; fn may still be called for later records
	// of the queue (records the store has to read anyway, such as those near
	// records acknowledged before the restart), with higher IDs, and then
	// answers tail=true as it would once a queue has a tail. Delivery marks
	// of bulk records are kept: ReadTail reports them. With tail nil, every
	// record goes to fn.
	//
	// fn's or tail's error stops Recover and is returned. Both may call the
	// store, but not Close.
	Recover(fn RecordFunc, tail TailFunc) error

	// Sync makes everything appended, acknowledged and marked so far durable.
	Sync() error
	// Stats describes the store.
	Stats() Stats
	// FreeDisk returns the bytes available to the store on its file system, so
	// that the broker can block publishers below a limit.
	FreeDisk() (uint64, error)
	// Close flushes and releases the store. Further calls return ErrClosed.
	Close() error
}

// SyncMode says when appended messages are made durable.
type SyncMode uint8

// Sync modes.
const (
	// SyncAlways confirms appends after the fdatasync covering them; appends
	// arriving while a sync runs are committed together by the next one.
	SyncAlways SyncMode = iota
	// SyncInterval confirms appends once written to the OS and syncs every
	// Options.Interval: a machine crash (not a broker crash) loses up to an
	// interval of confirmed messages. It trades durability for speed.
	SyncInterval
	// SyncNever never syncs unless asked (Sync, Close still writes). For tests.
	SyncNever
)

// Options configure Open. The zero value is usable.
type Options struct {
	Sync SyncMode
	// Interval is the sync period in SyncInterval mode; default 100ms.
	Interval time.Duration
	// SegmentSize is the size at which a segment file is closed and a new one
	// started; default 64 MiB, at most 1 GiB.
	SegmentSize int64
	// Logger receives recovery progress and I/O problems; nil means slog.Default().
	Logger *slog.Logger
	// Weigh returns what a record's Data counts as in the byte totals the
	// store reports (TailRun.Bytes): the broker counts message bodies, not
	// its whole encoding. nil means len(data). It is called on the syncer's
	// goroutine and at Open for every record written or scanned, so it must
	// be cheap and not call the store. Segment summaries hold its sums as
	// they were when the segment was written.
	Weigh func(data []byte) int64

	fs            fsys  // tests inject failing files
	ackRewriteMin int64 // ack log size that may trigger a rewrite; default 4 MiB
	compactChunk  int   // bytes of a segment compacted per step; default 1 MiB
	reserveSize   int64 // bytes of the space reserve for acks; default 4 MiB, negative for none
}

var (
	_ Store = (*Memory)(nil)
	_ Store = (*File)(nil)
)
