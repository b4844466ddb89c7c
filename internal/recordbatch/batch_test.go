package recordbatch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"testing"

	"github.com/klauspost/compress/s2"
	"github.com/twmb/franz-go/pkg/kmsg"
)

var codecs = []Compression{None, Gzip, Snappy, LZ4, Zstd}

// sampleRecords covers null and empty keys and values, headers with null and
// empty values, a negative timestamp delta and a large value.
func sampleRecords() []Record {
	big := bytes.Repeat([]byte("warren stream "), 5000)
	return []Record{
		{TimestampMs: 1_700_000_000_000, Key: []byte("customer-1"), Value: []byte("new-order"),
			Headers: []Header{{Key: "h1", Value: []byte("v1")}, {Key: "null", Value: nil}, {Key: "empty", Value: []byte{}}}},
		{TimestampMs: 1_700_000_000_500, Key: nil, Value: []byte{}},
		{TimestampMs: 1_699_999_999_000, Key: []byte{}, Value: nil},
		{TimestampMs: 1_700_000_001_000, Key: []byte("k"), Value: big},
	}
}

// sameRecords compares records field by field, keeping nil and empty apart.
func sameRecords(t *testing.T, got, want []Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d records, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.OffsetDelta != int32(i) || g.TimestampMs != w.TimestampMs {
			t.Errorf("record %d: delta %d ts %d, want %d %d", i, g.OffsetDelta, g.TimestampMs, i, w.TimestampMs)
		}
		if !sameBytes(g.Key, w.Key) || !sameBytes(g.Value, w.Value) {
			t.Errorf("record %d: key %q value len %d, want %q %d", i, g.Key, len(g.Value), w.Key, len(w.Value))
		}
		if len(g.Headers) != len(w.Headers) {
			t.Fatalf("record %d: headers %v, want %v", i, g.Headers, w.Headers)
		}
		for j := range w.Headers {
			if g.Headers[j].Key != w.Headers[j].Key || !sameBytes(g.Headers[j].Value, w.Headers[j].Value) {
				t.Errorf("record %d header %d: %v, want %v", i, j, g.Headers[j], w.Headers[j])
			}
		}
	}
}

func sameBytes(a, b []byte) bool { return (a == nil) == (b == nil) && bytes.Equal(a, b) }

func TestRecordbatchBuildDecodeEveryCodec(t *testing.T) {
	recs := sampleRecords()
	for _, c := range codecs {
		t.Run(c.String(), func(t *testing.T) {
			b := Build(recs, BuildOptions{Compression: c})
			h, got, err := Decode(b, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			if h.Compression() != c || h.Size() != len(b) || h.NumRecords != 4 || h.LastOffsetDelta != 3 {
				t.Errorf("header %+v", h)
			}
			if h.BaseTimestamp != recs[0].TimestampMs || h.MaxTimestamp != 1_700_000_001_000 {
				t.Errorf("timestamps %d %d", h.BaseTimestamp, h.MaxTimestamp)
			}
			if h.ProducerID != -1 || h.ProducerEpoch != -1 || h.BaseSequence != -1 || h.PartitionLeaderEpoch != -1 || h.BaseOffset != 0 {
				t.Errorf("producer fields %+v", h)
			}
			if h.Transactional() || h.Control() || h.LogAppendTime() {
				t.Errorf("attributes %x", h.Attributes)
			}
			sameRecords(t, got, recs)
			if c != None && len(b) > 20000 {
				t.Errorf("%s batch of %d bytes: not compressed", c, len(b))
			}
		})
	}
}

func TestRecordbatchBuildProducerFields(t *testing.T) {
	b := Build(sampleRecords()[:2], BuildOptions{Transactional: true, ProducerID: 7, ProducerEpoch: 3, BaseSequence: 40,
		LogAppendTime: true, AppendTimeMs: 42})
	h, recs, err := Decode(b, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if !h.Transactional() || h.Control() || !h.LogAppendTime() || h.ProducerID != 7 || h.ProducerEpoch != 3 || h.BaseSequence != 40 {
		t.Errorf("header %+v", h)
	}
	if h.MaxTimestamp != 42 || recs[0].TimestampMs != 42 || recs[1].TimestampMs != 42 {
		t.Errorf("log append time: max %d, records %d %d", h.MaxTimestamp, recs[0].TimestampMs, recs[1].TimestampMs)
	}
	b = Build(sampleRecords()[:1], BuildOptions{Idempotent: true, ProducerID: 0, ProducerEpoch: 0, BaseSequence: 0})
	if h, _, _ = Decode(b, 1<<20); h.ProducerID != 0 || h.BaseSequence != 0 || h.Transactional() {
		t.Errorf("idempotent header %+v", h)
	}
}

func TestRecordbatchKeepOffsetDeltas(t *testing.T) {
	recs := []Record{{OffsetDelta: 2, Value: []byte("a")}, {OffsetDelta: 9, Value: []byte("b")}}
	h, got, err := Decode(Build(recs, BuildOptions{KeepOffsetDeltas: true}), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if h.LastOffsetDelta != 9 || got[0].OffsetDelta != 2 || got[1].OffsetDelta != 9 {
		t.Errorf("deltas: last %d, %d %d", h.LastOffsetDelta, got[0].OffsetDelta, got[1].OffsetDelta)
	}
}

// TestRecordbatchBuildMatchesKmsg checks Build against franz-go's codec, the
// one every Go Kafka client uses: header fields, CRC and each record.
func TestRecordbatchBuildMatchesKmsg(t *testing.T) {
	recs := sampleRecords()
	b := Build(recs, BuildOptions{Idempotent: true, ProducerID: 11, ProducerEpoch: 2, BaseSequence: 5})
	var kb kmsg.RecordBatch
	if err := kb.ReadFrom(b); err != nil {
		t.Fatal(err)
	}
	if kb.Magic != 2 || int(kb.Length)+12 != len(b) || kb.NumRecords != 4 || kb.ProducerID != 11 || kb.FirstSequence != 5 ||
		kb.FirstTimestamp != recs[0].TimestampMs || kb.PartitionLeaderEpoch != -1 || kb.LastOffsetDelta != 3 {
		t.Errorf("kmsg header %+v", kb)
	}
	if crc := crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)); uint32(kb.CRC) != crc {
		t.Errorf("crc %x, want %x", uint32(kb.CRC), crc)
	}
	p := kb.Records
	for i, want := range recs {
		n, w := binary.Varint(p)
		var kr kmsg.Record
		if err := kr.ReadFrom(p[:w+int(n)]); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		p = p[w+int(n):]
		if kr.OffsetDelta != int32(i) || kb.FirstTimestamp+kr.TimestampDelta64 != want.TimestampMs ||
			!sameBytes(kr.Key, want.Key) || !sameBytes(kr.Value, want.Value) || len(kr.Headers) != len(want.Headers) {
			t.Errorf("record %d differs: %+v", i, kr)
		}
	}
	if len(p) != 0 {
		t.Errorf("%d bytes after the records", len(p))
	}
}

// kmsgBatch builds a batch with kmsg, as a Go producer would send it.
func kmsgBatch(recs []kmsg.Record, attrs int16, records []byte) []byte {
	for i := range recs {
		recs[i].Length = int32(len(recs[i].AppendTo(nil)) - 1) // a length < 64 takes one varint byte
		records = recs[i].AppendTo(records)
	}
	kb := kmsg.RecordBatch{Magic: 2, Attributes: attrs, LastOffsetDelta: int32(len(recs) - 1), FirstTimestamp: 1000,
		MaxTimestamp: 1000, ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1, NumRecords: int32(len(recs)), Records: records}
	b := kb.AppendTo(nil)
	binary.BigEndian.PutUint32(b[8:], uint32(len(b)-12))
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)))
	return b
}

func TestRecordbatchDecodeKmsgBuilt(t *testing.T) {
	b := kmsgBatch([]kmsg.Record{
		{OffsetDelta: 0, Key: []byte("a"), Value: []byte("one"), Headers: []kmsg.Header{{Key: "x", Value: []byte("y")}}},
		{OffsetDelta: 1, TimestampDelta64: 5, Value: []byte("two")},
	}, 0, nil)
	h, recs, err := Decode(b, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if h.NumRecords != 2 || string(recs[0].Key) != "a" || recs[0].Headers[0].Key != "x" || recs[1].Key != nil || recs[1].TimestampMs != 1005 {
		t.Errorf("decoded %+v %+v", h, recs)
	}
}

// xerial frames raw snappy chunks as Java's SnappyOutputStream does.
func xerial(src []byte, chunk int) []byte {
	b := append([]byte{}, xerialMagic...)
	b = binary.BigEndian.AppendUint32(b, 1)
	b = binary.BigEndian.AppendUint32(b, 1)
	for len(src) > 0 {
		n := min(chunk, len(src))
		enc := s2.EncodeSnappy(nil, src[:n])
		b = binary.BigEndian.AppendUint32(b, uint32(len(enc)))
		b = append(b, enc...)
		src = src[n:]
	}
	return b
}

// rebuild replaces the records of batch b with payload and attributes,
// fixing length and CRC, so tests can hand Decode any codec output.
func rebuild(b []byte, attrs int16, payload []byte) []byte {
	out := append(append([]byte{}, b[:HeaderSize]...), payload...)
	h, _ := PeekHeader(out) // whatever the fuzzer left in it
	h.Attributes = attrs
	PutHeader(out, h)
	return out
}

func TestRecordbatchSnappyXerial(t *testing.T) {
	recs := sampleRecords()
	plain := Build(recs, BuildOptions{})
	raw := plain[HeaderSize:]
	b := rebuild(plain, int16(Snappy), xerial(raw, 32<<10))
	_, got, err := Decode(b, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	sameRecords(t, got, recs)
	if _, _, err := Decode(b, len(raw)-1); !errors.Is(err, ErrTooLarge) {
		t.Errorf("xerial over the limit: %v", err)
	}
	if _, _, err := Decode(rebuild(plain, int16(Snappy), xerial(raw, 32<<10)[:40]), 1<<20); !errors.Is(err, ErrCorrupt) {
		t.Errorf("truncated xerial: %v", err)
	}
}

func TestRecordbatchDecompressLimit(t *testing.T) {
	recs := sampleRecords()
	size := len(Build(recs, BuildOptions{})) - HeaderSize
	for _, c := range codecs {
		b := Build(recs, BuildOptions{Compression: c})
		if _, _, err := Decode(b, size); err != nil {
			t.Errorf("%s at exactly the limit: %v", c, err)
		}
		if _, _, err := Decode(b, size-1); !errors.Is(err, ErrTooLarge) {
			t.Errorf("%s one byte over the limit: %v", c, err)
		}
		var it Iterator
		if err := it.Reset(b, 100); !errors.Is(err, ErrTooLarge) || it.Next(&Record{}) {
			t.Errorf("%s iterator over the limit: %v", c, err)
		}
	}
}

func TestRecordbatchCorrupt(t *testing.T) {
	good := Build(sampleRecords()[:2], BuildOptions{})
	mutate := func(f func(b []byte) []byte) []byte { return f(append([]byte{}, good...)) }
	cases := []struct {
		name string
		b    []byte
		want error
	}{
		{"short", good[:HeaderSize-1], ErrCorrupt},
		{"truncated", good[:len(good)-1], ErrCorrupt},
		{"crc", mutate(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }), ErrCorrupt},
		{"magic", mutate(func(b []byte) []byte { b[offMagic] = 1; return b }), ErrMagic},
		{"codec", rebuild(good, 5, good[HeaderSize:]), ErrCompression},
		{"trailing", rebuild(good, 0, append(append([]byte{}, good[HeaderSize:]...), 0)), ErrCorrupt},
		{"count", mutate(func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[offNumRecords:], 3)
			return rebuild(b, 0, b[HeaderSize:])
		}), ErrCorrupt},
		{"negative count", mutate(func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[offNumRecords:], 0xffffffff)
			return rebuild(b, 0, b[HeaderSize:])
		}), ErrCorrupt},
		{"gzip garbage", rebuild(good, int16(Gzip), []byte("not gzip at all")), ErrCorrupt},
		{"lz4 garbage", rebuild(good, int16(LZ4), []byte("not lz4 at all")), ErrCorrupt},
		{"zstd garbage", rebuild(good, int16(Zstd), []byte("not zstd at all")), ErrCorrupt},
		{"snappy garbage", rebuild(good, int16(Snappy), []byte{5, 0xff, 0xff}), ErrCorrupt},
		{"snappy claims too much", rebuild(good, int16(Snappy), []byte{0xff, 0xff, 0xff, 0xff, 0x0f}), ErrTooLarge},
	}
	for _, tc := range cases {
		if _, _, err := Decode(tc.b, 1<<20); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	// Trailing bytes after a whole batch are not part of it (a fetch may end in a partial batch).
	if _, recs, err := Decode(append(append([]byte{}, good...), 1, 2, 3), 1<<20); err != nil || len(recs) != 2 {
		t.Errorf("batch followed by bytes: %v, %d records", err, len(recs))
	}
}

func TestRecordbatchControl(t *testing.T) {
	for _, commit := range []bool{true, false} {
		b := BuildControlEpoch(9, 4, commit, 1234, 17)
		h, recs, err := Decode(b, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if !h.Control() || !h.Transactional() || h.ProducerID != 9 || h.ProducerEpoch != 4 || h.BaseSequence != -1 ||
			h.NumRecords != 1 || h.MaxTimestamp != 1234 || recs[0].TimestampMs != 1234 {
			t.Errorf("control header %+v", h)
		}
		m, ok, err := ParseControl(&recs[0])
		if err != nil || !ok || m.Commit != commit || m.CoordinatorEpoch != 17 {
			t.Errorf("marker %+v %v %v", m, ok, err)
		}
		typ := byte(0)
		if commit {
			typ = 1
		}
		if !bytes.Equal(recs[0].Key, []byte{0, 0, 0, typ}) || !bytes.Equal(recs[0].Value, []byte{0, 0, 0, 0, 0, 17}) {
			t.Errorf("marker bytes %x %x", recs[0].Key, recs[0].Value)
		}
	}
	if _, recs, err := Decode(BuildControl(1, 0, true, 0), 1<<20); err != nil || len(recs) != 1 {
		t.Fatalf("BuildControl: %v", err)
	}
	if _, ok, err := ParseControl(&Record{Key: []byte{0, 0, 0, 7}}); ok || err != nil {
		t.Errorf("unknown control type: %v %v", ok, err)
	}
	if _, _, err := ParseControl(&Record{Key: []byte{0}}); !errors.Is(err, ErrCorrupt) {
		t.Errorf("short control key: %v", err)
	}
}

func TestRecordbatchSetOffsetKeepsCRC(t *testing.T) {
	b := Build(sampleRecords(), BuildOptions{Compression: LZ4})
	SetBaseOffset(b, 1<<40)
	SetPartitionLeaderEpoch(b, 3)
	h, _, err := Decode(b, 1<<20)
	if err != nil || h.BaseOffset != 1<<40 || h.PartitionLeaderEpoch != 3 || h.LastOffset() != 1<<40+3 {
		t.Errorf("%+v %v", h, err)
	}
}

func TestRecordbatchIterator(t *testing.T) {
	recs := sampleRecords()
	var it Iterator
	for _, c := range codecs {
		if err := it.Reset(Build(recs, BuildOptions{Compression: c}), 1<<20); err != nil {
			t.Fatal(err)
		}
		var got []Record
		var r Record
		for it.Next(&r) {
			r.Headers = append([]Header(nil), r.Headers...)
			if len(r.Headers) == 0 {
				r.Headers = nil
			}
			got = append(got, r)
		}
		if it.Err() != nil {
			t.Fatal(it.Err())
		}
		if c == None { // aliasing the batch: still valid
			sameRecords(t, got, recs)
		}
		if len(got) != 4 || it.Header().Compression() != c {
			t.Errorf("%s: %d records", c, len(got))
		}
	}
}

// TestRecordbatchIteratorAllocs: walking a batch (uncompressed, or snappy
// into the reused buffer) allocates nothing once the iterator is warm.
func TestRecordbatchIteratorAllocs(t *testing.T) {
	var recs []Record
	for i := range 100 {
		recs = append(recs, Record{Key: fmt.Appendf(nil, "k%d", i), Value: make([]byte, 100),
			Headers: []Header{{Key: PropertiesHeader, Value: []byte{1, 0, 0, 0, 0}}, {Key: "app", Value: []byte("x")}}})
	}
	for _, c := range []Compression{None, Snappy} {
		b := Build(recs, BuildOptions{Compression: c})
		var it Iterator
		var r Record
		walk := func() {
			if err := it.Reset(b, 1<<20); err != nil {
				t.Fatal(err)
			}
			n := 0
			for it.Next(&r) {
				n++
			}
			if n != 100 || it.Err() != nil {
				t.Fatalf("%d records, %v", n, it.Err())
			}
		}
		walk()
		if a := testing.AllocsPerRun(20, walk); a != 0 {
			t.Errorf("%s: %.1f allocations per batch of 100 records", c, a)
		}
	}
}

func TestRecordbatchPeekHeader(t *testing.T) {
	b := Build([]Record{{TimestampMs: 77, Key: []byte("k"), Value: []byte("v")}, {TimestampMs: 81}},
		BuildOptions{Transactional: true, ProducerID: 9, ProducerEpoch: 3, BaseSequence: 5})
	h, err := PeekHeader(b[:HeaderSize])
	if err != nil {
		t.Fatal(err)
	}
	if h.ProducerID != 9 || h.ProducerEpoch != 3 || h.BaseSequence != 5 || !h.Transactional() || h.Control() || !h.Idempotent() ||
		h.MaxTimestamp != 81 || h.BaseTimestamp != 77 || h.NumRecords != 2 || h.LastOffsetDelta != 1 || h.Size() != len(b) {
		t.Fatalf("%+v", h)
	}
	if _, err := ParseHeader(b[:HeaderSize]); !errors.Is(err, ErrCorrupt) {
		t.Errorf("ParseHeader of a header alone: %v", err)
	}
	if _, err := PeekHeader(b[:HeaderSize-1]); !errors.Is(err, ErrCorrupt) {
		t.Errorf("short header: %v", err)
	}
	if h, _ := PeekHeader(Build(nil, BuildOptions{})); h.Idempotent() {
		t.Error("a batch without producer id is idempotent")
	}
	bad := bytes.Clone(b)
	h.LastOffsetDelta = -1
	PutHeader(bad, h)
	if _, err := PeekHeader(bad); !errors.Is(err, ErrCorrupt) {
		t.Errorf("negative last offset delta: %v", err)
	}
}

// TestRecordbatchAppendRetained: a batch rewritten with some of its records
// (as compaction does) keeps its offsets, timestamps and producer fields,
// holds exactly those records, in any codec, whatever the input's (xerial
// snappy included).
func TestRecordbatchAppendRetained(t *testing.T) {
	recs := sampleRecords()
	o := BuildOptions{Idempotent: true, ProducerID: 7, ProducerEpoch: 2, BaseSequence: 10}
	inputs := map[string][]byte{}
	for _, c := range codecs {
		o.Compression = c
		inputs[c.String()] = Build(recs, o)
	}
	inputs["xerial"] = rebuild(inputs["none"], int16(Snappy), xerial(inputs["none"][HeaderSize:], 1<<10))
	for name, b := range inputs {
		orig, _ := ParseHeader(b)
		for _, out := range codecs {
			var it Iterator
			if err := it.Reset(b, 1<<20); err != nil {
				t.Fatal(err)
			}
			var kept []byte
			var r Record
			for i := 0; it.Next(&r); i++ {
				if i != 1 && i != 3 {
					kept = append(kept, it.Raw()...)
				}
			}
			nb := AppendRetained([]byte("prefix"), it.Header(), kept, 2, out)
			if string(nb[:6]) != "prefix" {
				t.Fatal("dst overwritten")
			}
			h, got, err := Decode(nb[6:], 1<<20)
			if err != nil {
				t.Fatalf("%s to %s: %v", name, out, err)
			}
			if h.Compression() != out || h.NumRecords != 2 || h.LastOffsetDelta != orig.LastOffsetDelta || h.BaseTimestamp != orig.BaseTimestamp ||
				h.MaxTimestamp != orig.MaxTimestamp || h.ProducerID != 7 || h.BaseSequence != 10 || h.Size() != len(nb)-6 {
				t.Errorf("%s to %s: header %+v, was %+v", name, out, h, orig)
			}
			if len(got) != 2 || got[0].OffsetDelta != 0 || got[1].OffsetDelta != 2 || got[1].TimestampMs != recs[2].TimestampMs ||
				!sameBytes(got[0].Key, recs[0].Key) || !sameBytes(got[1].Value, recs[2].Value) || len(got[0].Headers) != 3 {
				t.Errorf("%s to %s: records %+v", name, out, got)
			}
		}
	}
}

// TestRecordbatchNextNoHeaders: NextNoHeaders walks the same records as Next
// but for their headers and refuses what Next refuses.
func TestRecordbatchNextNoHeaders(t *testing.T) {
	recs := sampleRecords()
	b := Build(recs, BuildOptions{Compression: Snappy})
	var it Iterator
	var r Record
	if err := it.Reset(b, 1<<20); err != nil {
		t.Fatal(err)
	}
	n := 0
	for ; it.NextNoHeaders(&r); n++ {
		if r.Headers != nil || r.OffsetDelta != int32(n) || !sameBytes(r.Key, recs[n].Key) || !sameBytes(r.Value, recs[n].Value) || r.TimestampMs != recs[n].TimestampMs {
			t.Fatalf("record %d: %+v", n, r)
		}
	}
	if n != len(recs) || it.Err() != nil {
		t.Fatalf("%d records, %v", n, it.Err())
	}
	// A header value length past its record: both walks stop at record 0.
	bad := Build([]Record{{Key: []byte("k"), Headers: []Header{{Key: "h", Value: []byte("v")}}}}, BuildOptions{})
	bad[len(bad)-2] = 8 // zig-zag 4: "v" claims 4 bytes
	bad = rebuild(bad, 0, bad[HeaderSize:])
	for _, headers := range []bool{true, false} {
		if err := it.Reset(bad, 1<<20); err != nil {
			t.Fatal(err)
		}
		if ok := it.next(&r, headers); ok || !errors.Is(it.Err(), ErrCorrupt) {
			t.Errorf("headers %v: %v %v", headers, ok, it.Err())
		}
	}
}
