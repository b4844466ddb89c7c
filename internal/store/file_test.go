package store

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
)

func TestStoreFileReopen(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentSize: 4096}
	s := openTest(t, dir, opts)
	mustCommit(t, s, sampleMeta()...)
	var recs []MessageRecord
	for id := range uint64(100) {
		r := msg("/", "q", id)
		r.Transient = id%10 == 9
		recs = append(recs, r, msg("/", "gone", id))
	}
	mustAppend(t, s, recs...)
	var evens []uint64
	for id := uint64(0); id < 100; id += 2 {
		evens = append(evens, id)
	}
	s.Ack("/", "q", evens)
	s.MarkDelivered("/", "q", []uint64{1, 3, 4})
	s.DeleteQueue("/", "gone")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openTest(t, dir, opts)
	rs := recoverAll(t, s)
	checkRecovered(t, rs)
	var want []uint64
	for id := uint64(1); id < 100; id += 2 {
		if id%10 != 9 {
			want = append(want, id)
		}
	}
	if got := ids(rs, "/", "q"); !reflect.DeepEqual(got, want) {
		t.Fatalf("recovered %v\nwant %v", got, want)
	}
	if len(rs) != len(want) {
		t.Fatalf("recovered %d messages, want %d (deleted queue came back?)", len(rs), len(want))
	}
	for _, r := range rs {
		if r.delivered != (r.rec.ID == 1 || r.rec.ID == 3) {
			t.Fatalf("#%d delivered=%v", r.rec.ID, r.delivered)
		}
	}
	if st := s.Stats(); st.LiveMessages != len(want) {
		t.Fatalf("live %d after reopen, want %d", st.LiveMessages, len(want))
	}
	if m, err := s.ReadMessage("/", "q", 7); err != nil || !bytes.Equal(m.Data, msg("/", "q", 7).Data) {
		t.Fatalf("read after reopen: %v", err)
	}
	if got := metaData(t, s); !equalRecs(got, sampleMeta()) {
		t.Fatalf("meta log after reopen: %q", got)
	}

	// Acked ids appended again after a restart must not be taken for the old,
	// acked records: record numbers continue where they were.
	mustAppend(t, s, msg("/", "q", 0), msg("/", "gone", 0))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, dir, opts)
	rs = recoverAll(t, s)
	if got := ids(rs, "/", "q"); got[0] != 0 || len(got) != len(want)+1 {
		t.Fatalf("after re-append: %v", got)
	}
	if got := ids(rs, "/", "gone"); !reflect.DeepEqual(got, []uint64{0}) {
		t.Fatalf("re-declared queue after reopen: %v", got)
	}
}

// copyStore copies a store directory as a crash would leave it, optionally
// changing files on the way.
func copyStore(t testing.TB, src, dst string, change func(name string, b []byte) []byte) {
	t.Helper()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name() == "LOCK" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if change != nil {
			b = change(e.Name(), b)
		}
		if b != nil {
			if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestStoreFileCrashAfterSync(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{SegmentSize: 4096})
	for id := range uint64(40) {
		mustAppend(t, s, msg("/", "q", id))
	}
	s.Ack("/", "q", []uint64{0, 1, 2})
	s.MarkDelivered("/", "q", []uint64{3})
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	crash := t.TempDir()
	copyStore(t, dir, crash, nil) // the store is still open: no Close ran
	c := openTest(t, crash, Options{SegmentSize: 4096})
	rs := recoverAll(t, c)
	if len(rs) != 37 || rs[0].rec.ID != 3 || !rs[0].delivered || rs[1].delivered {
		t.Fatalf("after crash: %d messages, first %+v", len(rs), rs[0])
	}
	checkRecovered(t, rs)
}

// segmentBoundaries returns where each message record of a one-segment store
// starts, plus the end of the last.
func segmentBoundaries(recs []MessageRecord) []int {
	b := []int{segHeaderSize}
	for _, r := range recs {
		b = append(b, b[len(b)-1]+msgRecordSize(r.VHost, r.Queue, len(r.Data)))
	}
	return b
}

// wholeBefore counts the records that end at or before off.
func wholeBefore(bounds []int, off int) int {
	n := 0
	for n+1 < len(bounds) && bounds[n+1] <= off {
		n++
	}
	return n
}

func TestStoreRecoverTornAndCorruptSegment(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{Sync: SyncNever})
	var recs []MessageRecord
	for id := range uint64(8) {
		r := msg("/", "q", id)
		recs = append(recs, r)
		mustAppend(t, s, r) // one at a time: records in id order
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	bounds := segmentBoundaries(recs)
	segName := "00000001.seg"
	size := bounds[len(bounds)-1]
	if fi, err := os.Stat(filepath.Join(dir, segName)); err != nil || fi.Size() != int64(size) {
		t.Fatalf("segment size %v, want %d", fi.Size(), size)
	}
	check := func(t *testing.T, change func([]byte) []byte, wantN int) {
		d := t.TempDir()
		copyStore(t, dir, d, func(name string, b []byte) []byte {
			if name == segName {
				return change(b)
			}
			return b
		})
		s := openTest(t, d, Options{Sync: SyncNever})
		rs := recoverAll(t, s)
		got := ids(rs, "/", "q")
		if len(got) != wantN || !slices.Equal(got, []uint64{0, 1, 2, 3, 4, 5, 6, 7}[:wantN]) {
			t.Fatalf("recovered %v, want the first %d", got, wantN)
		}
		checkRecovered(t, rs)
		mustAppend(t, s, msg("/", "q", 100))
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s = openTest(t, d, Options{Sync: SyncNever})
		if got := ids(recoverAll(t, s), "/", "q"); len(got) != wantN+1 || got[wantN] != 100 {
			t.Fatalf("after appending to a cut segment: %v", got)
		}
	}
	// Every offset of the last three records, and the header.
	for cut := range size {
		if cut > segHeaderSize && cut < bounds[len(bounds)-4] {
			continue
		}
		t.Run(fmt.Sprintf("truncate%d", cut), func(t *testing.T) {
			check(t, func(b []byte) []byte { return b[:cut] }, wholeBefore(bounds, cut))
		})
	}
	for off := bounds[len(bounds)-4]; off < size; off++ {
		t.Run(fmt.Sprintf("corrupt%d", off), func(t *testing.T) {
			check(t, func(b []byte) []byte { b[off] ^= 0x5a; return b }, wholeBefore(bounds, off))
		})
	}
	t.Run("garbage", func(t *testing.T) {
		check(t, func(b []byte) []byte { return append(b, bytes.Repeat([]byte{0xff}, 100)...) }, 8)
	})
	t.Run("zeros", func(t *testing.T) {
		check(t, func(b []byte) []byte { return append(b, make([]byte, 4096)...) }, 8)
	})
}

func TestStoreRecoverTornAckLog(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{Sync: SyncNever})
	for id := range uint64(6) {
		mustAppend(t, s, msg("/", "q", id))
	}
	for id := range uint64(6) {
		s.Ack("/", "q", []uint64{id})
		if err := s.Sync(); err != nil { // one ack record each
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ack, err := os.ReadFile(filepath.Join(dir, "acks.log"))
	if err != nil {
		t.Fatal(err)
	}
	// Each ack record: header, type, count 1, recno (< 128): 11 bytes.
	const recSize = recHeader + 1 + 1 + 1
	if len(ack) != logHeaderSize+6*recSize {
		t.Fatalf("ack log is %d bytes, want %d", len(ack), logHeaderSize+6*recSize)
	}
	for cut := logHeaderSize + 3*recSize; cut <= len(ack); cut++ {
		d := t.TempDir()
		copyStore(t, dir, d, func(name string, b []byte) []byte {
			if name == "acks.log" {
				return b[:cut]
			}
			return b
		})
		s := openTest(t, d, Options{Sync: SyncNever})
		acked := (cut - logHeaderSize) / recSize
		got := ids(recoverAll(t, s), "/", "q")
		if want := []uint64{0, 1, 2, 3, 4, 5}[acked:]; !slices.Equal(got, want) {
			t.Fatalf("cut at %d: recovered %v, want %v", cut, got, want)
		}
	}
}

func TestStoreRecoverTornMetaLog(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{Sync: SyncNever})
	cmds := sampleMeta()
	var ends []int
	size := logHeaderSize
	for _, c := range cmds {
		mustCommit(t, s, c)
		size += recHeader + 1 + len(c)
		ends = append(ends, size)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for cut := ends[len(ends)-4]; cut <= size; cut++ {
		for _, corrupt := range []bool{false, true} {
			if corrupt && cut == size {
				continue
			}
			d := t.TempDir()
			copyStore(t, dir, d, func(name string, b []byte) []byte {
				if name != "meta.log" {
					return b
				}
				if corrupt {
					b[cut] ^= 0x01
					return b
				}
				return b[:cut]
			})
			s := openTest(t, d, Options{Sync: SyncNever})
			got := metaData(t, s)
			n := 0
			for n < len(ends) && ends[n] <= cut {
				n++
			}
			if !equalRecs(got, cmds[:n]) {
				t.Fatalf("cut %d corrupt %v: %d commands, want %d", cut, corrupt, len(got), n)
			}
			mustCommit(t, s, []byte("after"))
		}
	}
}

func TestStoreRecoverRefusesForeignFiles(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{})
	mustAppend(t, s, msg("/", "q", 1))
	s.Close()
	seg := filepath.Join(dir, "00000001.seg")
	b, _ := os.ReadFile(seg)
	b[0] = 'X'
	os.WriteFile(seg, b, 0o644)
	if _, err := Open(dir, Options{Logger: quietLogger()}); err == nil || !strings.Contains(err.Error(), "not a segment") {
		t.Fatalf("open with a foreign segment: %v", err)
	}
}

func TestStoreFileLocked(t *testing.T) {
	dir := t.TempDir()
	openTest(t, dir, Options{})
	if s, err := Open(dir, Options{Logger: quietLogger()}); err == nil {
		s.Close()
		t.Fatal("a second Open of the same directory succeeded")
	}
}

func TestStoreDiskReclaimed(t *testing.T) {
	s := openTest(t, t.TempDir(), Options{SegmentSize: 4096})
	var all []uint64
	for id := range uint64(500) {
		mustAppend(t, s, msg("/", "q", id))
		all = append(all, id)
	}
	if st := s.Stats(); st.Segments < 10 {
		t.Fatalf("only %d segments for 500 messages", st.Segments)
	}
	s.Ack("/", "q", all)
	if err := s.settle(); err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	if st.Segments != 1 || st.LiveMessages != 0 || st.LiveBytes != 0 || st.Deleted == 0 {
		t.Fatalf("after acking everything: %+v", st)
	}
	if files, _ := filepath.Glob(filepath.Join(s.dir, "*.seg")); len(files) != 1 {
		t.Fatalf("segment files left: %v", files)
	}
}

// A consumer lagging a fixed number of messages behind the producer: disk use
// (segments and ack log) must follow the backlog, not the total traffic.
func TestStoreSlowConsumer(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentSize: 4096, ackRewriteMin: 2048}
	s := openTest(t, dir, opts)
	const lag, total = 60, 3000
	maxSegs, maxAck := 0, int64(0)
	for id := range uint64(total) {
		mustAppend(t, s, msg("/", "q", id))
		if id >= lag {
			s.Ack("/", "q", []uint64{id - lag})
		}
		if id%100 == 99 {
			if err := s.settle(); err != nil {
				t.Fatal(err)
			}
			st := s.Stats()
			maxSegs, maxAck = max(maxSegs, st.Segments), max(maxAck, st.AckLogBytes)
		}
	}
	// 60 messages of up to ~150 bytes fit in 3 segments; allow for the head
	// and one being deleted.
	if maxSegs > 6 || maxAck > 8192 {
		t.Fatalf("disk use grew with traffic: %d segments, ack log %d bytes", maxSegs, maxAck)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, dir, opts)
	rs := recoverAll(t, s)
	if len(rs) != lag || rs[0].rec.ID != total-lag {
		t.Fatalf("recovered %d from %d, want %d from %d", len(rs), rs[0].rec.ID, lag, total-lag)
	}
	checkRecovered(t, rs)
}

// A few messages that stay while everything around them goes: their segments
// are compacted instead of being kept whole.
func TestStoreCompaction(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentSize: 8192, compactChunk: 1024}
	s := openTest(t, dir, opts)
	var kept []uint64
	var ackA, ackB []uint64
	for id := range uint64(1000) {
		mustAppend(t, s, msg("/", "a", id), msg("/", "b", id))
		ackA = append(ackA, id)
		if id%20 == 0 {
			kept = append(kept, id)
		} else {
			ackB = append(ackB, id)
		}
	}
	s.MarkDelivered("/", "b", []uint64{0, 20})
	before := s.Stats()
	s.Ack("/", "a", ackA)
	s.Ack("/", "b", ackB)
	if err := s.settle(); err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	if st.Compactions == 0 || st.LiveMessages != len(kept) {
		t.Fatalf("no compaction: before %+v after %+v", before, st)
	}
	if limit := 2*st.LiveBytes + 2*opts.SegmentSize + st.AckLogBytes + 4096; st.DiskBytes > limit {
		t.Fatalf("disk %d bytes for %d live bytes (limit %d): %+v", st.DiskBytes, st.LiveBytes, limit, st)
	}
	for _, id := range kept {
		if m, err := s.ReadMessage("/", "b", id); err != nil || !bytes.Equal(m.Data, msg("/", "b", id).Data) {
			t.Fatalf("read moved #%d: %v", id, err)
		}
	}
	check := func(s *File) {
		t.Helper()
		rs := recoverAll(t, s)
		if got := ids(rs, "/", "b"); !slices.Equal(got, kept) || len(rs) != len(kept) {
			t.Fatalf("recovered %v, want %v", got, kept)
		}
		if !rs[0].delivered || !rs[1].delivered || rs[2].delivered {
			t.Fatalf("delivered marks lost by compaction: %+v", rs[:3])
		}
		checkRecovered(t, rs)
	}
	check(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, dir, opts)
	check(s)
	s.Ack("/", "b", kept)
	if err := s.settle(); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Segments != 1 || st.LiveMessages != 0 {
		t.Fatalf("after acking the rest: %+v", st)
	}
}

// A crash after compaction synced its copies but before it removed the old
// segment leaves two copies of each moved record. Recovery must use one, and
// acking it must keep both dead, also once the ack log is rewritten.
func TestStoreCompactionCrashDuplicates(t *testing.T) {
	crash, kept, opts := crashWithCopies(t)
	c := openTest(t, crash, opts)
	rs := recoverAll(t, c)
	if got := ids(rs, "/", "q"); !slices.Equal(got, kept) {
		t.Fatalf("recovered %v, want %v", got, kept)
	}
	checkRecovered(t, rs)
	c.Ack("/", "q", kept[:len(kept)/2])
	if err := c.settle(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c = openTest(t, crash, opts)
	if got := ids(recoverAll(t, c), "/", "q"); !slices.Equal(got, kept[len(kept)/2:]) {
		t.Fatalf("after acking half: %v, want %v", got, kept[len(kept)/2:])
	}
}

// crashWithCopies returns a store directory as a crash after compaction
// leaves it: compaction's copies synced, the segments they came from still
// there. kept are the live IDs of its queue "q"; opts rewrite the ack log often.
func crashWithCopies(t *testing.T) (string, []uint64, Options) {
	dir := t.TempDir()
	opts := Options{SegmentSize: 8192, ackRewriteMin: 1 << 30}
	s := openTest(t, dir, opts)
	var kept, acked []uint64
	for id := range uint64(600) {
		mustAppend(t, s, msg("/", "q", id))
		if id%25 == 0 {
			kept = append(kept, id)
		} else {
			acked = append(acked, id)
		}
	}
	before := t.TempDir()
	copyStore(t, dir, before, nil) // every segment, before compaction
	s.Ack("/", "q", acked)
	if err := s.settle(); err != nil {
		t.Fatal(err)
	}
	if s.Stats().Compactions == 0 {
		t.Fatal("nothing was compacted")
	}
	crash := t.TempDir()
	copyStore(t, dir, crash, nil)
	// Put back the segments compaction removed: as if unlink never happened.
	ents, _ := os.ReadDir(before)
	for _, e := range ents {
		if _, err := os.Stat(filepath.Join(crash, e.Name())); os.IsNotExist(err) && strings.HasSuffix(e.Name(), ".seg") {
			b, _ := os.ReadFile(filepath.Join(before, e.Name()))
			os.WriteFile(filepath.Join(crash, e.Name()), b, 0o644)
		}
	}
	if recnoCopies(t, crash) == 0 {
		t.Fatal("the crash copy holds no duplicate records")
	}
	opts.ackRewriteMin = 64
	s.Close()
	return crash, kept, opts
}

func TestStoreAckLogRewrite(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentSize: 1 << 20, ackRewriteMin: 1024}
	s := openTest(t, dir, opts)
	for id := range uint64(2000) {
		mustAppend(t, s, msg("/", "q", id))
		s.MarkDelivered("/", "q", []uint64{id})
		if id%2 == 0 {
			s.Ack("/", "q", []uint64{id})
		}
		if err := s.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.settle(); err != nil {
		t.Fatal(err)
	}
	// One segment holds everything, so the rewritten log must keep 1000 acks
	// and 1000 marks: a few KB, far less than 4000 separate records.
	if st := s.Stats(); st.AckLogBytes > 16<<10 {
		t.Fatalf("ack log %d bytes", st.AckLogBytes)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, dir, opts)
	rs := recoverAll(t, s)
	if len(rs) != 1000 {
		t.Fatalf("recovered %d, want 1000", len(rs))
	}
	for _, r := range rs {
		if r.rec.ID%2 == 0 || !r.delivered {
			t.Fatalf("recovered %+v", r)
		}
	}
}

// Readers racing with compaction and deletion always get the data or
// ErrNotFound, never another record or a closed-file error.
func TestStoreReadDuringCompaction(t *testing.T) {
	s := openTest(t, t.TempDir(), Options{SegmentSize: 4096, compactChunk: 512, Sync: SyncNever})
	for id := range uint64(400) {
		mustAppend(t, s, msg("/", "q", id))
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := uint64(0); ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			id := (i * 7) % 400
			m, err := s.ReadMessage("/", "q", id)
			if err == nil && !bytes.Equal(m.Data, msg("/", "q", id).Data) || err != nil && err != ErrNotFound {
				t.Errorf("read #%d: %q %v", id, m.Data, err)
				return
			}
		}
	}()
	for id := range uint64(400) {
		if id%10 != 0 {
			s.Ack("/", "q", []uint64{id})
		}
	}
	if err := s.settle(); err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	if s.Stats().Compactions == 0 {
		t.Fatal("nothing compacted")
	}
}

// Queues whose messages reach the disk out of ID order (IDs spread over the
// whole uint64 range, in random order) still recover in ID order.
func TestStoreRecoverOrderLarge(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentSize: 64 << 10, Sync: SyncNever}
	s := openTest(t, dir, opts)
	rng := rand.New(rand.NewPCG(1, 2))
	var want []uint64
	for i := range 3000 {
		id := rng.Uint64()
		if i%3 == 0 {
			id = uint64(i) // some dense ones too
		}
		want = append(want, id)
		mustAppend(t, s, msg("/", "q", id), msg("/", "dense", uint64(3000-i)))
	}
	slices.Sort(want)
	check := func(s *File) {
		t.Helper()
		rs := recoverAll(t, s)
		if got := ids(rs, "/", "q"); !slices.Equal(got, want) {
			t.Fatalf("recovered %d ids out of order", len(got))
		}
		if got := ids(rs, "/", "dense"); len(got) != 3000 || !slices.IsSorted(got) {
			t.Fatalf("dense queue recovered out of order")
		}
		checkRecovered(t, rs)
	}
	check(s)
	s.Close()
	check(openTest(t, dir, opts))
}

// recnoCopies counts the records of a store directory whose recno is also in
// an earlier segment.
func recnoCopies(t *testing.T, dir string) int {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	seen := map[uint64]bool{}
	dups := 0
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		recs, _, _, ok := scanSegmentBytes(b, 1<<20)
		if !ok {
			t.Fatalf("%s: bad header", name)
		}
		for _, rec := range recs {
			h, _, _ := decodeMessage(rec[recHeader+1:])
			if seen[h.recno] {
				dups++
			}
			seen[h.recno] = true
		}
	}
	return dups
}
