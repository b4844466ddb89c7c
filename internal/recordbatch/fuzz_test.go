package recordbatch

import (
	"encoding/binary"
	"errors"
	"testing"
)

// fuzzLimit is the decompression limit of the fuzz targets: small, so bombs
// reach it quickly.
const fuzzLimit = 64 << 10

// FuzzDecode: Decode and the Iterator never panic, agree with each other, and
// never return more decompressed bytes than the limit; whatever decodes
// rebuilds to a batch that decodes to the same records. With fix set, the
// input's length and CRC are made right first, so mutations reach the
// decompressors and the record parser instead of stopping at the CRC.
func FuzzDecode(f *testing.F) {
	for _, c := range codecs {
		f.Add(Build(sampleRecords()[:3], BuildOptions{Compression: c}), true)
	}
	f.Add(BuildControl(1, 2, true, 3), false)
	f.Add(rebuild(Build(sampleRecords()[:2], BuildOptions{}), int16(Snappy), xerial(Build(sampleRecords()[:2], BuildOptions{})[HeaderSize:], 16)), true)
	f.Fuzz(func(t *testing.T, b []byte, fix bool) {
		if fix && len(b) >= HeaderSize {
			b = rebuild(b, int16(binary.BigEndian.Uint16(b[offAttributes:])), b[HeaderSize:])
		}
		h, recs, err := Decode(b, fuzzLimit)
		var it Iterator
		itErr := it.Reset(b, fuzzLimit)
		if len(it.data) > fuzzLimit {
			t.Fatalf("%d decompressed bytes over the limit %d", len(it.data), fuzzLimit)
		}
		n := 0
		var r Record
		for it.Next(&r) {
			n++
		}
		if itErr == nil {
			itErr = it.Err()
		}
		if (err == nil) != (itErr == nil) || (err == nil && n != len(recs)) {
			t.Fatalf("Decode: %v, %d records; Iterator: %v, %d", err, len(recs), itErr, n)
		}
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrMagic) && !errors.Is(err, ErrCompression) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		again := Build(recs, BuildOptions{KeepOffsetDeltas: true, Compression: h.Compression()})
		_, recs2, err := Decode(again, 1<<30)
		if err != nil {
			t.Fatalf("rebuilt batch: %v", err)
		}
		if len(recs2) != len(recs) {
			t.Fatalf("rebuilt %d records, want %d", len(recs2), len(recs))
		}
		for i := range recs {
			if !sameBytes(recs[i].Key, recs2[i].Key) || !sameBytes(recs[i].Value, recs2[i].Value) || len(recs[i].Headers) != len(recs2[i].Headers) {
				t.Fatalf("record %d differs after rebuild", i)
			}
		}
	})
}

// FuzzBuildDecode: any records built with any codec decode to themselves.
func FuzzBuildDecode(f *testing.F) {
	f.Add([]byte("k"), []byte("v"), "h", []byte("hv"), int64(1), uint8(0))
	f.Add([]byte(nil), []byte(nil), "", []byte(nil), int64(-1), uint8(3))
	f.Fuzz(func(t *testing.T, key, value []byte, hk string, hv []byte, ts int64, codec uint8) {
		c := codecs[int(codec)%len(codecs)]
		recs := []Record{
			{TimestampMs: ts, Key: key, Value: value, Headers: []Header{{Key: hk, Value: hv}}},
			{TimestampMs: ts / 2, Key: value, Value: key},
		}
		_, got, err := Decode(Build(recs, BuildOptions{Compression: c}), 1<<30)
		if err != nil {
			t.Fatalf("%s: %v", c, err)
		}
		if len(got) != 2 || got[0].TimestampMs != ts || got[1].TimestampMs != ts/2 ||
			!sameBytes(got[0].Key, key) || !sameBytes(got[0].Value, value) || !sameBytes(got[1].Key, value) ||
			got[0].Headers[0].Key != hk || !sameBytes(got[0].Headers[0].Value, hv) || got[1].Headers != nil {
			t.Fatalf("%s: round trip %+v", c, got)
		}
	})
}
