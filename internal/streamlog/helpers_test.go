package streamlog

import (
	"bytes"
	"log/slog"
	"os"
	"sync"
	"testing"

	"github.com/warren-mq/warren/internal/recordbatch"
)

// testRec is one record of a test batch; a nil Value is a tombstone.
type testRec struct {
	key, value []byte
}

// batchOpts are the producer fields of a test batch.
type batchOpts struct {
	baseTs int64
	pid    int64
	epoch  int16
	seq    int32
	txn    bool
}

func noProducer() batchOpts { return batchOpts{pid: -1, epoch: -1, seq: -1} }

// buildBatch encodes an uncompressed v2 batch as a producer sends it
// (baseOffset 0, leader epoch 0), every record at o.baseTs.
func buildBatch(recs []testRec, o batchOpts) []byte {
	rs := make([]recordbatch.Record, len(recs))
	for i, r := range recs {
		rs[i] = recordbatch.Record{TimestampMs: o.baseTs, Key: r.key, Value: r.value}
	}
	b := recordbatch.Build(rs, recordbatch.BuildOptions{Transactional: o.txn})
	return patchHeader(b, func(h *recordbatch.BatchHeader) {
		h.PartitionLeaderEpoch, h.ProducerID, h.ProducerEpoch, h.BaseSequence = 0, o.pid, o.epoch, o.seq
	})
}

// patchHeader changes the header of the batch b with fn and recomputes its CRC.
func patchHeader(b []byte, fn func(h *recordbatch.BatchHeader)) []byte {
	h, err := recordbatch.PeekHeader(b)
	if err != nil {
		panic(err)
	}
	fn(&h)
	recordbatch.PutHeader(b, h)
	return b
}

// valueBatch is a batch of n records with values "v<i>" of size bytes.
func valueBatch(n, size int, ts int64) []byte {
	recs := make([]testRec, n)
	for i := range recs {
		v := make([]byte, size)
		for j := range v {
			v[j] = byte('a' + (i+j)%26)
		}
		recs[i] = testRec{value: v}
	}
	o := noProducer()
	o.baseTs = ts
	return buildBatch(recs, o)
}

type appendOut struct {
	res AppendResult
	err error
}

// appendSync appends and waits for done.
func appendSync(t testing.TB, l *Log, b []byte) (AppendResult, error) {
	t.Helper()
	ch := make(chan appendOut, 1)
	l.Append(b, func(r AppendResult, err error) { ch <- appendOut{r, err} })
	o := <-ch
	return o.res, o.err
}

func mustAppend(t testing.TB, l *Log, b []byte) AppendResult {
	t.Helper()
	r, err := appendSync(t, l, b)
	if err != nil {
		t.Fatalf("append: %v", err)
	}
	return r
}

func openTest(t testing.TB, dir string, o Options) *Log {
	t.Helper()
	l, err := Open(dir, o, testLogger(t))
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return l
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("STREAMLOG_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.DiscardHandler)
}

// readAll reads every batch from offset to the end, through Read.
func readAll(t testing.TB, l *Log, from int64, maxBytes int) []recordbatch.BatchHeader {
	t.Helper()
	var hs []recordbatch.BatchHeader
	off := from
	for off < l.NextOffset() {
		c, err := l.Read(off, maxBytes)
		if err != nil {
			t.Fatalf("read %d: %v", off, err)
		}
		b, err := c.Bytes()
		c.Close()
		if err != nil {
			t.Fatalf("bytes: %v", err)
		}
		if len(b) == 0 {
			break
		}
		for len(b) > 0 {
			h, err := checkBatch(b, len(b))
			if err != nil {
				t.Fatalf("read at %d: bad batch: %v", off, err)
			}
			hs = append(hs, h)
			b = b[h.Size():]
			off = h.LastOffset() + 1
		}
	}
	return hs
}

// controlBatch is a transaction marker as the coordinator writes it.
func controlBatch(pid int64, epoch int16, commit bool) []byte {
	return recordbatch.BuildControl(pid, epoch, commit, 0)
}

// producerBatch is a batch of n records of an idempotent producer.
func idemBatch(pid int64, epoch int16, seq int32, n int, txn bool) []byte {
	recs := make([]testRec, n)
	for i := range recs {
		recs[i] = testRec{value: []byte("x")}
	}
	return buildBatch(recs, batchOpts{pid: pid, epoch: epoch, seq: seq, txn: txn})
}

// compressBatch rewrites an uncompressed test batch with its records
// compressed with c.
func compressBatch(b []byte, c recordbatch.Compression) []byte {
	var it recordbatch.Iterator
	if err := it.Reset(b, len(b)); err != nil {
		panic(err)
	}
	var raw []byte
	var r recordbatch.Record
	for it.Next(&r) {
		raw = append(raw, it.Raw()...)
	}
	return recordbatch.AppendRetained(nil, it.Header(), raw, it.Header().NumRecords, c)
}

// opaqueBatch gives b codec 7, which no one can decode (the log accepts
// compressed batches unread): compaction must keep it whole.
func opaqueBatch(b []byte) []byte {
	return patchHeader(bytes.Clone(b), func(h *recordbatch.BatchHeader) { h.Attributes |= 7 })
}

// readContiguously reads l from offset 0 as records become visible, checking
// every batch and that offsets follow on without a gap, until the returned
// stop is called (which waits for it).
func readContiguously(t *testing.T, l *Log) (stop func()) {
	done := make(chan struct{})
	var rwg sync.WaitGroup
	rwg.Add(1)
	go func() {
		defer rwg.Done()
		off := int64(0)
		for {
			select {
			case <-done:
				return
			case <-l.Wait(off):
			}
			c, err := l.Read(off, 4096)
			if err != nil {
				t.Error(err)
				return
			}
			b, _ := c.Bytes()
			c.Close()
			for len(b) > 0 {
				h, err := checkBatch(b, len(b))
				if err != nil || h.BaseOffset != off {
					t.Errorf("reader at %d: %+v %v", off, h, err)
					return
				}
				off = h.LastOffset() + 1
				b = b[h.Size():]
			}
		}
	}()
	return func() {
		close(done)
		rwg.Wait()
	}
}
