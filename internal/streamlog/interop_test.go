package streamlog_test

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/warren-mq/warren/internal/recordbatch"
	"github.com/warren-mq/warren/internal/streamlog"
)

// TestStreamlogRecordbatchInterop: batches built by internal/recordbatch
// (every codec, idempotent, transactional, control markers) are accepted,
// read back byte for byte and decode to the same records.
func TestStreamlogRecordbatchInterop(t *testing.T) {
	l, err := streamlog.Open(t.TempDir(), streamlog.Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	appendSync := func(b []byte) (streamlog.AppendResult, error) {
		ch := make(chan error, 1)
		var res streamlog.AppendResult
		l.Append(b, func(r streamlog.AppendResult, err error) { res = r; ch <- err })
		return res, <-ch
	}
	recs := func(n int) []recordbatch.Record {
		var rs []recordbatch.Record
		for i := 0; i < n; i++ {
			rs = append(rs, recordbatch.Record{TimestampMs: 1000 + int64(i), Key: []byte(fmt.Sprint("k", i)),
				Value: bytes.Repeat([]byte{byte(i)}, 100), Headers: []recordbatch.Header{{Key: "h", Value: []byte("v")}}})
		}
		return rs
	}
	type sent struct {
		res  streamlog.AppendResult
		recs []recordbatch.Record
	}
	var all []sent
	for _, c := range []recordbatch.Compression{recordbatch.None, recordbatch.Gzip, recordbatch.Snappy, recordbatch.LZ4, recordbatch.Zstd} {
		rs := recs(5)
		r, err := appendSync(recordbatch.Build(rs, recordbatch.BuildOptions{Compression: c}))
		if err != nil {
			t.Fatalf("%v: %v", c, err)
		}
		all = append(all, sent{r, rs})
	}
	o := recordbatch.BuildOptions{Idempotent: true, ProducerID: 4, ProducerEpoch: 1, BaseSequence: 0, Transactional: true}
	txn := recs(3)
	r, err := appendSync(recordbatch.Build(txn, o))
	if err != nil {
		t.Fatal(err)
	}
	all = append(all, sent{r, txn})
	if dup, err := appendSync(recordbatch.Build(txn, o)); err != nil || !dup.Duplicate || dup.BaseOffset != r.BaseOffset {
		t.Fatalf("duplicate: %+v %v", dup, err)
	}
	if l.LastStableOffset() != r.BaseOffset {
		t.Fatalf("lso %d, want %d", l.LastStableOffset(), r.BaseOffset)
	}
	abort, err := appendSync(recordbatch.BuildControl(4, 1, false, 2000))
	if err != nil {
		t.Fatal(err)
	}
	if got := l.AbortedTxns(0, l.NextOffset()); len(got) != 1 || got[0] != (streamlog.AbortedTxn{ProducerID: 4, FirstOffset: r.BaseOffset, LastOffset: abort.BaseOffset}) {
		t.Fatalf("aborted: %+v", got)
	}
	if _, err := appendSync(recordbatch.BuildControl(4, 0, true, 2000)); !errors.Is(err, streamlog.ErrInvalidProducerEpoch) {
		t.Fatalf("fenced marker: %v", err)
	}
	for _, s := range all {
		c, err := l.Read(s.res.BaseOffset, 1)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := c.Bytes()
		c.Close()
		h, got, err := recordbatch.Decode(b, 1<<20)
		if err != nil || h.BaseOffset != s.res.BaseOffset || len(got) != len(s.recs) {
			t.Fatalf("decode at %d: %+v %d records, %v", s.res.BaseOffset, h, len(got), err)
		}
		for i := range got {
			if !bytes.Equal(got[i].Key, s.recs[i].Key) || !bytes.Equal(got[i].Value, s.recs[i].Value) || got[i].TimestampMs != s.recs[i].TimestampMs {
				t.Fatalf("record %d at %d differs", i, s.res.BaseOffset)
			}
		}
	}
}
