package amqp091

import (
	"reflect"
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
