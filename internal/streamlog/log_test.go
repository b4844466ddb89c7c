package streamlog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/warren-mq/warren/internal/recordbatch"
)

func TestStreamlogAppendRead(t *testing.T) {
	l := openTest(t, t.TempDir(), Options{})
	defer l.Close()
	var want [][]byte
	next := int64(0)
	for i := 1; i <= 10; i++ {
		b := valueBatch(i, 10, int64(1000+i))
		r := mustAppend(t, l, b)
		if r.BaseOffset != next || r.LastOffset != next+int64(i)-1 || r.Duplicate {
			t.Fatalf("append %d: got %+v, want base %d", i, r, next)
		}
		w := bytes.Clone(b)
		binary.BigEndian.PutUint64(w, uint64(next))
		want = append(want, w)
		next += int64(i)
	}
	if l.NextOffset() != next || l.StartOffset() != 0 {
		t.Fatalf("next %d start %d, want %d 0", l.NextOffset(), l.StartOffset(), next)
	}
	// Every offset reads from the batch that holds it; maxBytes 1 still
	// gives one whole batch.
	for off, bi := int64(0), 0; off < next; bi++ {
		for k := 0; k <= bi; k++ {
			c, err := l.Read(off+int64(k), 1)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := c.Bytes()
			c.Close()
			if !bytes.Equal(got, want[bi]) {
				t.Fatalf("read %d: not batch %d", off+int64(k), bi)
			}
		}
		off += int64(bi + 1)
	}
	c, err := l.Read(0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := c.Bytes()
	c.Close()
	if !bytes.Equal(got, bytes.Join(want, nil)) {
		t.Fatalf("read all: %d bytes, want %d", len(got), len(bytes.Join(want, nil)))
	}
	// maxBytes cuts at whole batches.
	c, _ = l.Read(0, len(want[0])+len(want[1])+len(want[2])-1)
	if c.Len() != len(want[0])+len(want[1]) {
		t.Fatalf("chunk of %d bytes, want the first two batches", c.Len())
	}
	c.Close()
	if c, err := l.Read(next, 100); err != nil || c.Len() != 0 {
		t.Fatalf("read at next: %v, %v", c, err)
	}
	if _, err := l.Read(next+1, 100); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("read past next: %v", err)
	}
	if _, err := l.Read(-1, 100); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("read before start: %v", err)
	}
}

func TestStreamlogAppendRejects(t *testing.T) {
	l := openTest(t, t.TempDir(), Options{MaxBatchBytes: 2000})
	defer l.Close()
	good := valueBatch(2, 10, 1)
	badCRC := bytes.Clone(good)
	badCRC[len(badCRC)-1] ^= 1
	badMagic := patchHeader(bytes.Clone(good), func(h *recordbatch.BatchHeader) { h.Magic = 1 })
	short := good[:len(good)-1]
	trailing := append(bytes.Clone(good), 1, 2, 3)
	// CRC-valid, but claiming three records where there are two.
	badCount := patchHeader(bytes.Clone(good), func(h *recordbatch.BatchHeader) { h.NumRecords, h.LastOffsetDelta = 3, 2 })
	// CRC-valid, but a header value claiming more bytes than its record has.
	badHeader := recordbatch.Build([]recordbatch.Record{{Key: []byte("k"), Headers: []recordbatch.Header{{Key: "h", Value: []byte("v")}}}}, recordbatch.BuildOptions{})
	badHeader[len(badHeader)-2] = 8
	badHeader = patchHeader(badHeader, func(*recordbatch.BatchHeader) {})
	for name, tc := range map[string]struct {
		b    []byte
		want error
	}{
		"crc": {badCRC, ErrCorrupt}, "magic": {badMagic, ErrCorrupt}, "short": {short, ErrCorrupt},
		"trailing": {trailing, ErrCorrupt}, "record count": {badCount, ErrCorrupt}, "record header": {badHeader, ErrCorrupt}, "empty": {nil, ErrCorrupt}, "header": {good[:30], ErrCorrupt},
		"large": {valueBatch(1, 3000, 1), ErrBatchTooLarge},
	} {
		if _, err := appendSync(t, l, tc.b); !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", name, err, tc.want)
		}
	}
	if r := mustAppend(t, l, good); r.BaseOffset != 0 || l.NextOffset() != 2 {
		t.Fatalf("after rejects: %+v next %d", r, l.NextOffset())
	}
	// Several batches in one append.
	r := mustAppend(t, l, append(valueBatch(3, 5, 1), valueBatch(4, 5, 1)...))
	if r.BaseOffset != 2 || r.LastOffset != 8 {
		t.Fatalf("two batches: %+v", r)
	}
}

func TestStreamlogReopenAndRoll(t *testing.T) {
	dir := t.TempDir()
	o := Options{SegmentBytes: 8192}
	l := openTest(t, dir, o)
	var offs []int64
	for i := 0; i < 200; i++ {
		r := mustAppend(t, l, valueBatch(1+i%3, 100, int64(i)))
		offs = append(offs, r.BaseOffset)
	}
	next := l.NextOffset()
	before := readAll(t, l, 0, 10000)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	if len(segs) < 5 {
		t.Fatalf("%d segments, want a roll every ~8 KiB", len(segs))
	}
	// One sealed segment loses its index: rebuilt at Open.
	os.Remove(filepath.Join(dir, "00000000000000000000.idx"))
	l = openTest(t, dir, o)
	defer l.Close()
	if l.NextOffset() != next {
		t.Fatalf("reopened next %d, want %d", l.NextOffset(), next)
	}
	after := readAll(t, l, 0, 10000)
	if len(after) != len(before) {
		t.Fatalf("%d batches after reopen, %d before", len(after), len(before))
	}
	for i, off := range offs {
		c, err := l.Read(off, 1)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := c.Bytes()
		c.Close()
		h, err := recordbatch.PeekHeader(b)
		if err != nil || h.BaseOffset != off || h != after[i] {
			t.Fatalf("read %d: %+v %v", off, h, err)
		}
	}
	if r := mustAppend(t, l, valueBatch(1, 10, 1)); r.BaseOffset != next {
		t.Fatalf("append after reopen at %d, want %d", r.BaseOffset, next)
	}
}

func TestStreamlogTornTail(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, dir, Options{})
	for i := 0; i < 5; i++ {
		mustAppend(t, l, valueBatch(2, 50, 1))
	}
	l.Close()
	seg := filepath.Join(dir, "00000000000000000000.seg")
	fi, _ := os.Stat(seg)
	batch := int64(len(valueBatch(2, 50, 1)))
	for _, cut := range []struct {
		name string
		fn   func()
		next int64
	}{
		{"half batch", func() { os.Truncate(seg, fi.Size()-batch/2) }, 8},
		{"garbage", func() {
			f, _ := os.OpenFile(seg, os.O_WRONLY|os.O_APPEND, 0)
			f.Write(bytes.Repeat([]byte{0xff}, 100))
			f.Close()
		}, 8},
		{"flipped byte", func() {
			f, _ := os.OpenFile(seg, os.O_RDWR, 0)
			f.WriteAt([]byte{0x55}, fileHeaderSize+3*batch+70)
			f.Close()
		}, 6},
	} {
		cut.fn()
		l := openTest(t, dir, Options{})
		if l.NextOffset() != cut.next {
			t.Fatalf("%s: next %d, want %d", cut.name, l.NextOffset(), cut.next)
		}
		if n := len(readAll(t, l, 0, 1<<20)); n != int(cut.next/2) {
			t.Fatalf("%s: %d batches", cut.name, n)
		}
		l.Close()
	}
	l = openTest(t, dir, Options{})
	defer l.Close()
	if r := mustAppend(t, l, valueBatch(1, 5, 1)); r.BaseOffset != 6 {
		t.Fatalf("append after cut at %d", r.BaseOffset)
	}
}

func TestStreamlogWait(t *testing.T) {
	l := openTest(t, t.TempDir(), Options{})
	ch := l.Wait(0)
	select {
	case <-ch:
		t.Fatal("wait closed before any append")
	default:
	}
	mustAppend(t, l, valueBatch(1, 1, 1))
	<-ch
	<-l.Wait(0)
	ch = l.Wait(5)
	l.Close()
	<-ch
}

func TestStreamlogGroupCommitConcurrent(t *testing.T) {
	l := openTest(t, t.TempDir(), Options{SegmentBytes: 64 << 10})
	const writers, per = 8, 50
	var mu sync.Mutex
	var order []int64
	var wg sync.WaitGroup
	for g := 0; g < writers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < per; i++ {
				done := make(chan struct{})
				l.Append(valueBatch(2, 100, 1), func(r AppendResult, err error) {
					if err != nil {
						t.Error(err)
					}
					mu.Lock()
					order = append(order, r.BaseOffset)
					mu.Unlock()
					close(done)
				})
				<-done
			}
		}()
	}
	// Readers run alongside.
	stopReader := readContiguously(t, l)
	wg.Wait()
	stopReader()
	if len(order) != writers*per {
		t.Fatalf("%d dones", len(order))
	}
	for i, off := range order {
		if off != int64(2*i) {
			t.Fatalf("done %d has offset %d: callbacks out of order", i, off)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestStreamlogChunkWriteToTCP(t *testing.T) {
	l := openTest(t, t.TempDir(), Options{})
	defer l.Close()
	for i := 0; i < 50; i++ {
		mustAppend(t, l, valueBatch(3, 1000, int64(i)))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		b, _ := io.ReadAll(c)
		c.Close()
		got <- b
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	var want []byte
	// Two chunks from different positions, and a concurrent Bytes on the
	// same segment: positions must not interfere.
	for _, off := range []int64{30, 0} {
		c, err := l.Read(off, 40_000)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := c.Bytes()
		want = append(want, b...)
		n, err := c.WriteTo(conn.(*net.TCPConn))
		if err != nil || n != int64(c.Len()) {
			t.Fatalf("WriteTo: %d %v", n, err)
		}
		c.Close()
	}
	conn.Close()
	if b := <-got; !bytes.Equal(b, want) {
		t.Fatalf("received %d bytes, want %d identical", len(b), len(want))
	}
}

func TestStreamlogLocked(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, dir, Options{})
	if l2, err := Open(dir, Options{}, nil); err == nil {
		l2.Close()
		t.Fatal("second Open of an open directory succeeded")
	}
	l.Close()
	l = openTest(t, dir, Options{})
	l.Close()
}

// TestStreamlogOpenTrustsSealed: Open reads only the last segment's
// batches (a 100 GB stream opens in the time of one segment): damage inside
// an older segment goes unnoticed at Open, while leftovers of an
// interrupted rewrite are removed and a missing index rebuilt.
func TestStreamlogOpenTrustsSealed(t *testing.T) {
	dir := t.TempDir()
	o := Options{SegmentBytes: 4096}
	l := openTest(t, dir, o)
	for i := 0; i < 60; i++ {
		mustAppend(t, l, valueBatch(1, 300, int64(i)))
	}
	next := l.NextOffset()
	l.Close()
	seg0 := filepath.Join(dir, "00000000000000000000.seg")
	f, _ := os.OpenFile(seg0, os.O_RDWR, 0)
	f.WriteAt([]byte("damage"), 1000)
	f.Close()
	leftover := filepath.Join(dir, "00000000000000000000.seg.compact.tmp")
	os.WriteFile(leftover, []byte("x"), 0o644)
	l = openTest(t, dir, o)
	defer l.Close()
	if l.NextOffset() != next {
		t.Fatalf("next %d, want %d", l.NextOffset(), next)
	}
	if fi, _ := os.Stat(seg0); fi.Size() < 4000 {
		t.Fatalf("sealed segment cut to %d at Open", fi.Size())
	}
	if _, err := os.Stat(leftover); !os.IsNotExist(err) {
		t.Fatalf("leftover kept: %v", err)
	}
}

// TestStreamlogStickyError: after a failed write every append fails (the
// log must be reopened), reads still serve what was durable, and a reopen
// recovers.
func TestStreamlogStickyError(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, dir, Options{})
	mustAppend(t, l, valueBatch(1, 10, 1))
	breakActiveFile(t, l)
	if _, err := appendSync(t, l, valueBatch(1, 10, 1)); err == nil {
		t.Fatal("append on a closed file succeeded")
	}
	if _, err := appendSync(t, l, valueBatch(1, 10, 1)); err == nil {
		t.Fatal("error did not stick")
	}
	if hs := readAll(t, l, 0, 1<<20); len(hs) != 1 || l.NextOffset() != 1 {
		t.Fatalf("after failure: %d batches, next %d", len(hs), l.NextOffset())
	}
	if err := l.Close(); err == nil {
		t.Fatal("Close hid the sticky error")
	}
	l = openTest(t, dir, Options{})
	defer l.Close()
	if r := mustAppend(t, l, valueBatch(1, 10, 1)); r.BaseOffset != 1 {
		t.Fatalf("after reopen: %+v", r)
	}
}
