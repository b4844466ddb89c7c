package store

import (
	"bytes"
	"io"
	"testing"
)

// scanSegmentBytes reads a segment image the way recovery does: the header,
// then message records up to the first invalid one. It returns the records
// whole and the offset where the valid ones end.
func scanSegmentBytes(data []byte, bufSize int) (recs [][]byte, offs []int64, end int64, ok bool) {
	if _, _, err := parseSegHeader(data); err != nil {
		return nil, nil, 0, false
	}
	sc := newScanner(bytes.NewReader(data), segHeaderSize, int64(len(data)), make([]byte, 0, bufSize))
	for {
		rec, off, err := sc.next()
		if err != nil {
			if err != io.EOF {
				panic(err) // a bytes.Reader does not fail
			}
			return recs, offs, sc.pos, true
		}
		if rec[recHeader] != recMessage {
			return recs, offs, off, true
		}
		if _, _, err := decodeMessage(rec[recHeader+1:]); err != nil {
			return recs, offs, off, true
		}
		recs = append(recs, bytes.Clone(rec))
		offs = append(offs, off)
	}
}

// FuzzStoreSegmentReader checks the segment reader on arbitrary bytes: it
// never panics, accepted records are contiguous and re-encode to exactly the
// bytes read, and the valid prefix re-parses the same.
func FuzzStoreSegmentReader(f *testing.F) {
	seg := appendSegHeader(nil, 1, 100)
	seg = appendMessageRecord(seg, 100, 1, 0, "/", "q", []byte("hello"))
	seg = appendMessageRecord(seg, 101, 2, flagDelivered, "vhost", "a-much-longer-queue-name", bytes.Repeat([]byte{7}, 300))
	seg = appendMessageRecord(seg, 102, 3, flagTransient|flagMoved, "", "", nil)
	f.Add(seg)
	f.Add(seg[:len(seg)-1])                                       // torn
	f.Add(seg[:segHeaderSize])                                    // empty segment
	f.Add(seg[:segHeaderSize-1])                                  // torn header
	f.Add(append(bytes.Clone(seg), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)) // zeroed tail
	bad := bytes.Clone(seg)
	bad[segHeaderSize+recHeader+3] ^= 1 // corrupt first payload
	f.Add(bad)
	huge := appendSegHeader(nil, 1, 0)
	huge = append(huge, 0xff, 0xff, 0xff, 0x3f, 0, 0, 0, 0, 1) // claims 1 GiB
	f.Add(huge)
	acks := appendSegHeader(nil, 2, 0)
	acks = appendRecnoRecords(acks, recAcked, []uint64{1, 2, 300}) // wrong type for a segment
	f.Add(acks)
	f.Fuzz(func(t *testing.T, data []byte) {
		// Raw payload decoders must not panic on anything either.
		decodeMessage(data)
		decodeRecnos(data, func(uint64) {})
		decodeMetaPayload(data)

		recs, offs, end, ok := scanSegmentBytes(data, 64) // a tiny buffer exercises refills
		if !ok {
			return
		}
		if end < segHeaderSize || end > int64(len(data)) {
			t.Fatalf("valid records end at %d of %d", end, len(data))
		}
		at := int64(segHeaderSize)
		for i, rec := range recs {
			if offs[i] != at {
				t.Fatalf("record %d at %d, want %d", i, offs[i], at)
			}
			at += int64(len(rec))
			h, payload, err := decodeMessage(rec[recHeader+1:])
			if err != nil {
				t.Fatalf("accepted record does not decode: %v", err)
			}
			re := appendMessageRecord(nil, h.recno, h.id, h.flags, string(h.vhost), string(h.queue), payload)
			if !bytes.Equal(re, rec) {
				t.Fatalf("record %d re-encodes differently:\n%x\n%x", i, re, rec)
			}
		}
		if at != end {
			t.Fatalf("records end at %d, scanner at %d", at, end)
		}
		recs2, _, end2, _ := scanSegmentBytes(data[:end], 1<<20)
		if end2 != end || len(recs2) != len(recs) {
			t.Fatalf("valid prefix re-parses to %d records ending at %d, want %d at %d", len(recs2), end2, len(recs), end)
		}
	})
}
