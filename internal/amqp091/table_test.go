package amqp091

import (
	"bytes"
	"encoding/binary"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestCodecTableRoundTripAllTypes(t *testing.T) {
	in := Table{
		"void": nil, "bool": true, "int8": int8(-3), "uint8": uint8(200), "int16": int16(-300),
		"uint16": uint16(60000), "int32": int32(-70000), "uint32": uint32(4000000000),
		"int64": int64(-1 << 40), "float32": float32(1.5), "float64": 2.25,
		"decimal": Decimal{Scale: 2, Value: -12345}, "string": "héllo\x00", "bytes": []byte{0, 1, 2},
		"time":  time.Unix(1700000000, 0).UTC(),
		"table": Table{"inner": Table{"deep": "x"}, "arr": []any{int32(1), "two", []any{}}},
		"array": []any{nil, true, Table{}, []any{int64(5)}},
	}
	b := AppendTable(nil, in)
	n, err := ValidateTable(b)
	if err != nil || n != len(b) {
		t.Fatalf("validate: %d %v", n, err)
	}
	out, n, err := DecodeTable(b)
	if err != nil || n != len(b) {
		t.Fatalf("decode: %d %v", n, err)
	}
	if !reflect.DeepEqual(out, in) {
		t.Fatalf("round trip\n got %#v\nwant %#v", out, in)
	}
}

func TestCodecTableEncodingChoices(t *testing.T) {
	type odd struct{}
	b := AppendTable(nil, Table{
		"int": 7, "uint": uint(8), "uint64": uint64(9), "map": map[string]any{"a": int8(1)},
		"odd": odd{}, "ptr": new(int),
	})
	got, _, err := DecodeTable(b)
	if err != nil {
		t.Fatal(err)
	}
	want := Table{"int": int64(7), "uint": int64(8), "uint64": int64(9), "map": Table{"a": int8(1)}, "odd": nil, "ptr": nil}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %#v", got)
	}
	// Keys are sorted, so encoding is deterministic whatever the map order.
	t1 := Table{}
	for _, k := range []string{"z", "a", "m", "b", "y", "c", "x", "d", "w", "e", "v", "f", "u", "g", "t", "h", "s", "i"} {
		t1[k] = k
	}
	first := AppendTable(nil, t1)
	for range 20 {
		if again := AppendTable(nil, t1); !bytes.Equal(again, first) {
			t.Fatal("encoding not deterministic")
		}
	}
	if !bytes.Equal(AppendTable(nil, nil), []byte{0, 0, 0, 0}) {
		t.Fatal("nil table")
	}
	// Over-long keys are cut to a short string's 255 bytes.
	kb := AppendTable(nil, Table{strings.Repeat("k", 300): true})
	kt, _, err := DecodeTable(kb)
	if err != nil || len(kt) != 1 || kt[strings.Repeat("k", 255)] != true {
		t.Fatalf("long key: %v %v", kt, err)
	}
	// A table that contains itself stops at MaxTableDepth instead of recursing forever.
	self := Table{}
	self["self"] = self
	sb := AppendTable(nil, self)
	if _, _, err := DecodeTable(sb); err != nil {
		t.Fatalf("self-referencing table did not encode to a valid table: %v", err)
	}
	if got := AppendFieldValue(nil, "ab"); !bytes.Equal(got, []byte{'S', 0, 0, 0, 2, 'a', 'b'}) {
		t.Fatalf("AppendFieldValue % x", got)
	}
	if got := AppendArray(nil, []any{true, nil}); !bytes.Equal(got, []byte{0, 0, 0, 3, 't', 1, 'V'}) {
		t.Fatalf("AppendArray % x", got)
	}
}

func TestCodecTableMalformed(t *testing.T) {
	nest := func(depth int) []byte {
		// Build depth levels by hand so the encoder's own limit is not in the way.
		inner := []byte{0, 0, 0, 0}
		for range depth {
			v := append([]byte{1, 'n', 'F'}, inner...)
			inner = append(binary.BigEndian.AppendUint32(nil, uint32(len(v))), v...)
		}
		return inner
	}
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"short length", []byte{0, 0, 0}},
		{"length beyond input", []byte{0, 0, 0, 5, 1, 'a', 'V'}},
		{"huge length", []byte{0xff, 0xff, 0xff, 0xff}},
		{"key overruns", []byte{0, 0, 0, 3, 5, 'a', 'b'}},
		{"missing value", []byte{0, 0, 0, 2, 1, 'a'}},
		{"unknown type", []byte{0, 0, 0, 3, 1, 'a', 'Z'}},
		{"short int", []byte{0, 0, 0, 4, 1, 'a', 'I', 0}},
		{"short decimal", []byte{0, 0, 0, 7, 1, 'a', 'D', 2, 0, 0, 0}},
		{"string overruns table", []byte{0, 0, 0, 7, 1, 'a', 'S', 0, 0, 0, 9, 'x', 'y'}},
		{"huge string", []byte{0, 0, 0, 7, 1, 'a', 'S', 0xff, 0xff, 0xff, 0xff}},
		{"huge bytes", []byte{0, 0, 0, 7, 1, 'a', 'x', 0x7f, 0xff, 0xff, 0xff}},
		{"array overruns", []byte{0, 0, 0, 9, 1, 'a', 'A', 0, 0, 0, 3, 't', 1}},
		{"array bad element", []byte{0, 0, 0, 9, 1, 'a', 'A', 0, 0, 0, 2, 'I', 1}},
		{"nested bad", []byte{0, 0, 0, 9, 1, 'a', 'F', 0, 0, 0, 2, 1, 'b'}},
		{"too deep", nest(MaxTableDepth + 1)},
	} {
		if _, _, err := DecodeTable(tc.in); err == nil {
			t.Errorf("%s: DecodeTable accepted % x", tc.name, tc.in)
		}
		if _, err := ValidateTable(tc.in); err == nil {
			t.Errorf("%s: ValidateTable accepted % x", tc.name, tc.in)
		}
	}
	// The deepest accepted nesting.
	if _, _, err := DecodeTable(nest(MaxTableDepth - 1)); err != nil {
		t.Errorf("depth %d: %v", MaxTableDepth-1, err)
	}
	if _, err := ValidateTable(nest(MaxTableDepth - 1)); err != nil {
		t.Errorf("validate depth %d: %v", MaxTableDepth-1, err)
	}
	// Claimed lengths are checked before anything is allocated.
	if n := testing.AllocsPerRun(10, func() { DecodeTable([]byte{0, 0, 0, 7, 1, 'a', 'x', 0x7f, 0xff, 0xff, 0xff}) }); n > 1 {
		t.Errorf("huge claim allocated %v times", n)
	}
	// Trailing bytes after the table are the caller's: n says where it ended.
	if _, n, err := DecodeTable([]byte{0, 0, 0, 0, 9, 9}); err != nil || n != 4 {
		t.Errorf("trailing: %d %v", n, err)
	}
}

func TestCodecTableValidateNoAlloc(t *testing.T) {
	b := AppendTable(nil, Table{"a": Table{"b": []any{"c", int32(1)}}, "x-death": []any{Table{"count": int64(1)}}})
	if n := testing.AllocsPerRun(100, func() { ValidateTable(b) }); n != 0 {
		t.Errorf("ValidateTable allocates %v", n)
	}
}
