// Package store persists what must outlive a broker restart: metadata (vhosts,
// users, exchanges, queues, bindings) as an append-only log of commands, and
// the messages of durable queues.
//
// Two implementations share the Store interface: Memory keeps everything in
// memory and nothing across a restart; File keeps it in a directory. The broker
// never knows which one it has. One conformance suite runs over both.
//
// # Identity
//
// A message is named by (vhost, queue, id), id being the queue's sequence
// number. Inside File every appended record also gets a record number (recno),
// unique for the life of the directory and never reused; acknowledgements and
// delivery marks on disk name records by recno. That keeps them unambiguous
// when a queue is deleted and declared again (its ids restart) and when
// compaction copies a record elsewhere (the copy keeps its recno).
//
// # Directory
//
//	LOCK            flock(2)-ed while open, so two processes never share a store
//	meta.log        the broker's metadata commands, group-committed, compacted by rewrite
//	acks.log        acks and delivery marks by recno, rewritten when it grows
//	00000001.seg …  message segments, numbered upwards, numbers never reused
//	00000001.sum …  a sealed segment's summary (optional: Open scans without it)
//	00000001.idx …  a sealed segment's index (optional: readers scan without it)
//	reserve         zeros: disk space kept for the ack log (see Durability and errors)
//	*.tmp           a rewrite in progress; removed at Open
//
// # Records
//
// Every file is a header followed by records. All integers are little endian.
//
//	record  = length u32 | crc u32 | type u8 | payload
//	length  = 1 + len(payload), at least 1, at most 1 GiB
//	crc     = CRC-32C (Castagnoli) of the length field, the type and the payload
//
// A record is valid if it lies wholly inside the file, its length is in range,
// its crc matches, its type belongs in the file and its payload decodes. At Open
// each file is scanned from the start (a sealed segment with a valid summary
// is not: see Segment summaries); at the first invalid record the file is
// truncated (a torn or corrupt tail is cut off, never served) and a warning is
// logged. Records after a corrupt one in the same file are lost with it. A
// record that turns out invalid when a summarized segment is read later is
// logged and its run is not handed out.
//
// # Segments (NNNNNNNN.seg, 8 decimal digits)
//
//	header  = "WSEG" | version u16 (1) | reserved u16 | number u32 | reserved u32 | base recno u64 | crc u32 (of the 24 bytes before it)
//	type 1  message: recno u64 | id u64 | flags u8 | vhost len u8 | vhost | queue len u8 | queue | data
//	flags   bit 0 transient, bit 1 delivered when written, bit 2 copied by compaction; other bits invalid
//
// The base recno is the next recno when the segment was created, so record
// numbers stay monotonic even when every older record is gone. A segment is
// written until it reaches the segment size (a record larger than that gets a
// segment of its own) and is never written again after that ("sealed").
//
// # Segment summaries (NNNNNNNN.sum, the segment's number)
//
//	header  = "WSUM" | version u32 (2)
//	type 7  summary: segment number u32 | segment size u64 | next recno u64 |
//	        last record's offset u64 | its length and crc (8 bytes) |
//	        records uvarint | record bytes uvarint | queues uvarint, then per queue
//	        vhost len u8 | vhost | queue len u8 | queue | runs uvarint, then per run
//	        start | end-start | first id | last id-first id | count | weight |
//	        record bytes | lowest recno | highest recno-lowest recno | flags (uvarint each)
//	flags   bit 0: the members' recnos increase in file order (no compaction
//	        copies among them); other bits invalid
//
// A run's weight is its members' data summed as Options.Weigh counted it
// when the segment was written (the broker counts body bytes); its recno
// range lets Recover tell, from the ack log alone, that none of its members
// was acknowledged (see Tails).
//
// When the syncer seals a segment it has written from its start, or has
// gone on writing since Open found it as the last segment, it writes the
// segment's summary: per queue, the runs of its persistent records
// (maximal stretches with increasing IDs) that a scan of the segment would
// find (temporary file, fdatasync unless SyncNever, rename). Open reads the
// summary instead of scanning a segment when it is valid (version 2, CRC,
// decodes, names the segment, runs inside it) and the segment still has the
// size and ends with the record (offset, length, crc) the summary names;
// otherwise, and for segments without one (written by older Warrens, sealed
// before this Open, cut short by a failed write), it scans, and writes the
// summary of each scanned segment that stays sealed, so that a segment is
// scanned once. A version 1 summary (runs without recno ranges, written by
// older Warrens) counts as missing and is replaced so. Acks are not in
// summaries: Recover tells acked records from live ones. A summary goes
// before its segment is deleted; one without its segment is removed at Open;
// the last segment, if Open makes it the head again, loses its summary. Older
// Warrens ignore .sum files, and those that read version 1 ignore version 2
// ones (they scan).
//
// # Segment indexes (NNNNNNNN.idx, the segment's number)
//
//	header  = "WIDX" | version u8 (1) | segment number u32 | segment size u64 | entries u32
//	entry   = hash u64 | section offset u64 | section length u32 | offsets u32 (sorted by hash)
//	crc u32 of header and entries, then the sections:
//	section = vhost len uvarint | vhost | queue len uvarint | queue | offsets × u32 | crc u32
//
// Where every queue's records lie in a sealed segment (hash: FNV-1a 64 of
// the vhost's length as u16, the vhost and the queue). A run whose records
// are a small part of its span (many queues written interleaved) is read
// through it, record by record, instead of by scanning the span; the head's
// index is in memory. Written by a background goroutine after the segment
// is sealed, not synced, removed with its segment; a missing, stale or
// invalid one only means scanning (and one missing at Open is written
// again). Older Warrens ignore .idx files.
//
// # Ack log (acks.log)
//
//	header  = "WACK" | version u32 (1)
//	type 2  checkpoint: next recno u64
//	type 3  acked: count uvarint | first recno uvarint | count-1 increasing deltas uvarint
//	type 4  delivered: same encoding as acked
//
// A message is live if its record is in a segment, not transient, and its recno
// is not acked. When one (vhost, queue, id) has several live records the
// highest recno wins (the ID was appended again); two copies of one recno are
// one record moved by compaction, the copy in the higher segment is used.
//
// # Metadata log (meta.log)
//
//	header  = "WMET" | version u32 (1)
//	type 6  command: the broker's encoding, opaque here (see below)
//	type 5  format 1 command, read only: op u8 | flags u8 | to-exchange u8 |
//	        vhost, name, kind, destination, key, tags, args, secret, each as
//	        uvarint length | bytes
//
// Commits queue and one goroutine writes all pending records in one write and
// one fdatasync, then runs their callbacks in log order; the broker applies
// each command in its callback, so the order it applies in is the order a
// replay sees. Before writing, the goroutine makes the acks of queues deleted
// since its last write durable (a queue deleted and declared again must never
// get its old messages back). A torn tail (bad length or CRC) is cut off at
// Open; a record with a valid CRC that is not a metadata record, or a type 5
// record that does not decode, stops Open with an error naming the offset:
// cutting it would silently lose every later change.
//
// The broker's command encoding (internal/broker/command.go) is a type byte
// and tagged fields, each tag uvarint | length uvarint | value; a missing
// field is its zero value.
//
// # Format changes
//
// A new field of an existing command gets a new tag, never a reused one. An
// odd tag is optional: a Warren that does not know it skips it, so older
// binaries can still read the directory (downgrade). An even tag is required:
// a Warren that does not know it refuses to start, with the record's offset,
// rather than misread the command. A new command gets a new type byte, which
// older binaries refuse the same way. A change to the framing or to the store's
// own record types bumps the header version; older versions are read by
// keeping their decoders (as type 5 is kept: its commands are handed to the
// broker as MetaRecord.Legacy and converted) and rewritten in the current
// format by the next compaction.
//
// # Tails
//
// A queue's backlog can be appended as tail records (MessageRecord.Tail): the
// broker keeps nothing for them and takes them back, lowest ID first, with
// ReadTail, after which they are ordinary window records. On disk they are
// ordinary message records; which records are in a tail is in-memory state
// only, decided again at every restart by the first Recover's fn.
//
// File keeps nothing per written tail record: a queue's tail is a list of
// runs, each a stretch [start, end) of one segment with the first and last
// ID, count and bytes of its members. Reading a run scans that stretch
// sequentially (large reads, the same scanner and record checks as
// recovery) and skips the records of other queues and, by ID range, the
// queue's own window records. A tail record waiting for the syncer costs a
// few bytes until it is written; then it joins (usually extends) the last run.
//
// Open does not index records either: it builds each queue's fresh runs
// (maximal stretches of its persistent records with increasing IDs, with
// their recno range) from the segments' summaries, or by scanning segments
// without one, and Recover hands those out, dropping the records the ack log
// acked (its recnos are kept, sorted, until then). A queue whose fresh runs follow each other in ID
// order is read in one pass over the segments together with all such queues;
// any other queue (compaction copies next to their originals after a crash,
// an ID appended again, a queue not written in ID order) is merged from one
// reader per run, lowest ID first, where the copies of one ID meet: the
// highest recno wins, then the highest segment, so no record is handed out
// twice. What fn keeps in the window becomes a slot; what it leaves in the
// tail becomes recovered runs, which list the offsets of the queue's
// non-members inside them (records acked before the restart, losing copies,
// window records).
//
// Recover in bulk: once fn has left one of a one-pass queue's records in the
// tail, each of the queue's later fresh runs whose recno range holds no
// recno the ack log acked becomes a recovered run as it stands, without
// being read: every record of the queue in its stretch is then a live
// member, so its count and weight are exact, and Recover reports them to
// its tail callback (count, weight, highest ID). The ack log's delivery
// marks in that range go to the run (a superset of its members' marks:
// lookups are by recno). A run with acked recnos in range, the queue's own
// or an interleaved queue's, is read as before; if its recnos increase, the
// rest of it converts once the reading has passed the last acked one. A
// restart with one queue's long backlog so reads about its window, however
// long the backlog; merged queues are always read. Until every fresh record has been handed out, maintenance
// waits: segment live counts still count duplicates twice.
//
// Costs and limits: DropTail and DeleteQueue read the dropped records'
// headers to learn their recnos (the ack log names records by recno); a
// tail's delivery marks from the ack log are kept as recnos in its runs; a
// segment that holds tail records is not compacted (moving them would mean
// rebuilding runs) until they are read or dropped; segments are deleted when
// all their records, tail ones included, are dead.
//
// # Space reclamation
//
// A sealed segment whose records are all dead is deleted. A sealed segment with
// less than half of its bytes live and no tail records is compacted, a chunk per step between
// batches: its live records are appended again (same recno, flag bit 2) to
// the newest segment, and once those copies are synced the old file is
// deleted. Disk use so follows the live backlog, also when a few old messages
// stay unacknowledged or one queue among many is slow (not while that
// queue's backlog is in its tail: see Tails). While a Recover runs, and until
// Recover has handed out everything Open found, compaction and deletion wait,
// so nothing it is reading moves.
//
// The ack log is rewritten (temporary file, fsync, rename, fsync directory)
// once it is past 4 MiB and has doubled since the last rewrite: the new one
// holds a checkpoint, the acks of dead records still in some segment and the
// delivery marks of live ones, which is bounded by what is on disk. Segment
// deletions are made durable (directory fsync) before a rewrite drops their
// acks. The metadata log is rewritten the same way to the broker's snapshot
// (its live metadata as commands, asked for between callbacks so it matches
// the log exactly) once it holds at least 256 records and more than twice as
// many as the last snapshot had.
//
// # Durability and errors
//
// Appends are group-committed: a single syncer goroutine takes everything
// pending, writes it (in 1 MiB writes), fdatasyncs once and then runs all the
// done callbacks (see SyncMode). Acks and marks are written by the same
// goroutine without a sync of their own; segments are synced before the ack
// log. An append acknowledged before the syncer reached it is never written.
//
// A write that fails with ENOSPC or EDQUOT is cut back to the last good
// offset (a segment it had started is removed) and its batch's done gets the
// error; the store stays usable and the next append tries again, so the broker
// can block publishers (FreeDisk, WatchWrites) and carry on once space
// returns. So that a full disk cannot turn acknowledged messages into
// duplicates, the store keeps a reserve file of zeros (4 MiB): an ack log
// write that meets a full disk truncates it and tries again, and until the
// reserve can be filled again (acked segments are deleted, space returns)
// appends fail with ENOSPC, so that the freed space goes to acks. Delivery
// marks are written before the acks of the same batch, in a write of their
// own: acks that still do not fit are kept and written with the next batch,
// and if the process dies first their messages come back marked delivered.
// A compaction that met a full disk stops until a write succeeds again.
// These warnings are logged at most once per 10 s each. Any other write error, a failed
// cut-back or a failed fsync (after which the kernel may have dropped dirty
// pages) sticks: every later call returns it and the store must be reopened,
// which recovers from what is on disk.
package store
