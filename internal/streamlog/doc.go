// Package streamlog is the log of one stream partition: Kafka record
// batches v2, byte for byte as on the wire, in segment files with a sparse
// index per segment. AMQP streams and Kafka topics both keep their records
// here, so either protocol reads what the other wrote.
//
// # Directory
//
//	00000000000000000000.seg   segment: its base offset, 20 decimal digits, so names sort
//	00000000000000000000.idx   its sparse index
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
// # Writing and recovery
//
// Appends are checked in the caller's goroutine (length, magic 2,
// CRC-32C), then queued. One writer goroutine per open log takes every
// pending append at once, writes them in one write, fdatasyncs once, makes
// them visible to readers (NextOffset, Wait) and runs their callbacks in
// append order. A write or sync error sticks: every later append gets it
// and the log must be reopened, which recovers from what is on disk.
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
