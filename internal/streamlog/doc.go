// Package streamlog is the log of one stream partition: Kafka record
// batches v2, byte for byte as on the wire, in segment files with a sparse
// index per segment. AMQP streams and Kafka topics both keep their records
// here, so either protocol reads what the other wrote.
//
// # Directory
//
//	00000000000000000000.seg   segment: its base offset, 20 decimal digits, so names sort
//	00000000000000000000.idx   its sparse index
//	00000000000000000000.txn   its aborted transactions, if it holds abort markers
//	00000000000000000000.snap  producer state as of the base offset (the active segment's)
//	compacted.chk              where the last compaction pass ended
//	LOCK                       flock(2)-ed while open
//	*.tmp                      a rewrite in progress; removed at Open
//
// # Segment files
//
//	header = "WSLG" | version u16 (1) | reserved u16 | base offset u64 | crc32c u32 of the 16 bytes before it
//	then batches, each a Kafka record batch v2 (big endian, as on the wire)
//
// Our own header integers are little endian. The log sets each batch's
// baseOffset and partitionLeaderEpoch (0), which lie outside the batch CRC;
// offsets are 0-based and contiguous. A segment is written until the next
// batch would take it past SegmentBytes (a batch larger than that gets a
// segment of its own), then it is sealed: its last batch gets an index
// entry, both files are fdatasynced, and it is never written again.
//
// # Index files
//
//	header = "WSIX" | version u16 (1) | reserved u16 | base offset u64 | crc32c u32
//	entry  = relative offset u32 | file position u32 | max timestamp i64
//
// An entry names a batch (its baseOffset minus the segment's, its position
// in the segment) and the largest batch maxTimestamp in the segment up to
// and including it, so entries are sorted by all three fields. The first
// batch of a segment has an entry, then one every 4 KiB of segment at
// least, and the last batch of a sealed segment; a lookup reads at most
// about 4 KiB of batch headers past the entry it finds. The last entry of a
// sealed segment holds its largest timestamp, so opening a log reads only
// the last 16 bytes of each older index: a stream of 100 GB costs a few
// bytes per segment in memory, and its indexes (0.4% of the data) stay on
// disk, read with pread.
//
// # Producer state and transactions (.snap, .txn)
//
//	snap = header ("WSPS", base = the segment's) | count u32 | crc32c u32 of the rest |
//	       count × (producer id i64 | epoch i16 | open txn first offset i64 (-1 none) | n u8 |
//	                n × (first seq i32 | last seq i32 | base offset i64 | last offset i64))
//	txn  = entries of producer id i64 | first offset i64 | abort marker offset i64
//
// See producer.go for the rules (last 5 batches per producer, epochs,
// transactions opened by a transactional batch and closed by a control
// batch whose key is version int16 | type int16, 0 abort, 1 commit).
// A .txn entry is synced before its marker is written; the snapshot is
// written at each roll, so Open replays at most the active segment.
//
// # Compaction
//
// Rewrites sealed segments in place (same names, same offsets, gaps where
// records were removed); see compact.go. Batches are read with
// internal/recordbatch, so all five codecs compact; a batch that loses
// records is rewritten in its input codec (as Kafka's cleaner does), its
// kept records byte for byte, its header fields (base offset, last offset
// delta, base and max timestamps, producer fields, attributes) unchanged
// but for the length, record count and CRC. Below the last stable offset,
// committed transactional records compact like others, aborted ones are
// dropped, commit markers go once their transaction has no records left and
// they are delete.retention old, abort markers stay (their .txn entries
// name them); from the stable offset on nothing is touched. compacted.chk
// is a file header ("WSCK") whose base offset field is where the last pass
// ended.
//
// # Writing and recovery
//
// Appends are checked in the caller's goroutine (length, magic 2,
// CRC-32C; an uncompressed batch's records and a control batch's marker
// parsed with recordbatch's Iterator), then queued. One writer goroutine per
// open log takes every pending append at once and writes them in one write;
// an fdatasync covers every round written before it began, then the writer
// makes those rounds visible to readers (NextOffset, Wait) and runs their
// callbacks in append order. A round with an append that waits for
// durability (Append: acks=-1, AMQP confirms) waits for that sync, so that
// the appends arriving meanwhile gather into the next round and sync (group
// commit). A round of AppendWritten appends only (acks=1) does not: its
// sync runs beside the writer, which goes on writing the rounds that come,
// and they wait for the next sync. One sync at a time; rolls and retention
// wait for the one in flight. A round takes at most 8 MiB of appends and
// writes every 1 MiB. A write or sync error
// sticks (a full disk too): every later append gets it and the log must be
// reopened, which recovers from what is on disk. Reads keep working on what
// was published.
//
// AppendWritten also tells its caller when its round is written, before
// the fdatasync: Kafka's acks=1 answers then, acks=-1 (all in-sync
// replicas: Warren has one) and AMQP confirms after the sync. Such a record
// survives a crash of the broker (kill -9: the kernel's page cache still
// holds it and writes it out) but not of the machine or its disk, as
// Kafka's acks=1 records do not survive the loss of their leader. Readers
// (Kafka fetches, AMQP stream consumers) still see a record only after its
// sync: the view and the high watermark move then, so no consumer reads
// what a machine crash could take back. Every round that wrote something
// is synced, whatever its appends asked for: skipping the sync of an
// acks=1-only round would keep its records from readers until some later
// sync, and since the writer does not wait for the sync of such a round,
// it costs acks=1 producers little but disk bandwidth (unless acks=-1
// appends share the log: their rounds wait for their sync, and acks=1
// appends queued behind them too). If a round's write fails, none of
// its appends is told it was written; if only its sync fails, its acks=1
// producers were already answered (the records may or may not be on disk
// at reopen, as after a machine crash) and done gets the error.
//
// At Open the last segment is scanned: each batch must lie wholly in the
// file, have magic 2, a matching CRC and the next contiguous offset; at the
// first that does not, the file is cut (a torn or corrupt tail is never
// served) and a warning is logged. Its index is rebuilt from the scan.
// Older segments are trusted, having been synced when sealed; a missing or
// damaged index is rebuilt by scanning its segment.
//
// # Reading
//
// Readers load the published view (an immutable segment list) atomically
// and never take a lock the writer holds. Read returns whole batches of one
// segment as a Chunk, which holds a reference to the segment so that its
// file outlives a deletion until the chunk is closed; WriteTo a
// *net.TCPConn uses sendfile.
package streamlog
