package amqp091

import (
	"encoding/binary"
	"errors"
	"math"
	"slices"
	"time"
)

// Table is an AMQP field table. Values are one of: nil (V), bool (t), int8 (b), uint8 (B),
// int16 (s), uint16 (u), int32 (I), uint32 (i), int64 (l), float32 (f), float64 (d),
// Decimal (D), string (S, long string; may hold any bytes), []byte (x, byte array),
// time.Time (T, seconds), Table (F) and []any (A, field array).
type Table map[string]any

// Decimal is an AMQP decimal value: Value / 10^Scale.
type Decimal struct {
	Scale uint8
	Value int32
}

// MaxTableDepth bounds how deeply tables and arrays may nest, so hostile input
// cannot exhaust the stack; real clients nest two or three levels at most.
const MaxTableDepth = 64

// Table decoding errors. Method decoding wraps them into a 501 FRAME_ERROR.
var (
	errTableShort   = errors.New("amqp091: field table truncated")
	errTableType    = errors.New("amqp091: unknown field value type")
	errTableDepth   = errors.New("amqp091: field tables nested too deeply")
	errTableOverrun = errors.New("amqp091: field value overruns its table")
)

// AppendTable appends t as a field table: a 4-byte length then its fields, keys
// sorted so equal tables encode to equal bytes (argument equivalence checks and
// tests rely on that). Values of Go types outside Table's list are encoded as
// the nearest AMQP type (int, uint, uint64 as 'l'; map[string]any as 'F'), any
// other type as void 'V' so encoding never fails. Keys over 255 bytes are
// truncated. Nesting beyond MaxTableDepth is encoded as void, which also stops a
// table that contains itself.
func AppendTable(b []byte, t Table) []byte {
	return appendTable(b, t, 0)
}

func appendTable(b []byte, t Table, depth int) []byte {
	start := len(b)
	b = append(b, 0, 0, 0, 0)
	var buf [16]string
	keys := buf[:0]
	for k := range t {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		b = appendShortstr(b, k)
		b = appendFieldValue(b, t[k], depth)
	}
	binary.BigEndian.PutUint32(b[start:], uint32(len(b)-start-4))
	return b
}

// AppendFieldValue appends one field value: its type octet and encoding, with
// the type mapping of AppendTable.
func AppendFieldValue(b []byte, v any) []byte {
	return appendFieldValue(b, v, 0)
}

// AppendArray appends a as a field array: a 4-byte length then typed values.
func AppendArray(b []byte, a []any) []byte {
	return appendArray(b, a, 0)
}

func appendArray(b []byte, a []any, depth int) []byte {
	start := len(b)
	b = append(b, 0, 0, 0, 0)
	for _, v := range a {
		b = appendFieldValue(b, v, depth)
	}
	binary.BigEndian.PutUint32(b[start:], uint32(len(b)-start-4))
	return b
}

func appendFieldValue(b []byte, v any, depth int) []byte {
	switch v := v.(type) {
	case bool:
		if v {
			return append(b, 't', 1)
		}
		return append(b, 't', 0)
	case int8:
		return append(b, 'b', byte(v))
	case uint8:
		return append(b, 'B', v)
	case int16:
		return binary.BigEndian.AppendUint16(append(b, 's'), uint16(v))
	case uint16:
		return binary.BigEndian.AppendUint16(append(b, 'u'), v)
	case int32:
		return binary.BigEndian.AppendUint32(append(b, 'I'), uint32(v))
	case uint32:
		return binary.BigEndian.AppendUint32(append(b, 'i'), v)
	case int64:
		return binary.BigEndian.AppendUint64(append(b, 'l'), uint64(v))
	case int:
		return binary.BigEndian.AppendUint64(append(b, 'l'), uint64(v))
	case uint:
		return binary.BigEndian.AppendUint64(append(b, 'l'), uint64(v))
	case uint64:
		return binary.BigEndian.AppendUint64(append(b, 'l'), v)
	case float32:
		return binary.BigEndian.AppendUint32(append(b, 'f'), math.Float32bits(v))
	case float64:
		return binary.BigEndian.AppendUint64(append(b, 'd'), math.Float64bits(v))
	case Decimal:
		return binary.BigEndian.AppendUint32(append(b, 'D', v.Scale), uint32(v.Value))
	case string:
		return appendLongstr(append(b, 'S'), v)
	case []byte:
		b = binary.BigEndian.AppendUint32(append(b, 'x'), uint32(len(v)))
		return append(b, v...)
	case time.Time:
		return appendTimestamp(append(b, 'T'), v)
	}
	if depth+1 >= MaxTableDepth {
		return append(b, 'V') // the decoder would reject one more level
	}
	switch v := v.(type) {
	case Table:
		return appendTable(append(b, 'F'), v, depth+1)
	case map[string]any:
		return appendTable(append(b, 'F'), Table(v), depth+1)
	case []any:
		return appendArray(append(b, 'A'), v, depth+1)
	}
	return append(b, 'V')
}

// DecodeTable decodes a field table starting with its 4-byte length and returns
// the table and the number of bytes consumed. It never allocates more than the
// input justifies: every claimed length is checked against the bytes present
// before anything is allocated. An empty table decodes as an empty, non-nil
// Table so that "present but empty" survives a round trip.
func DecodeTable(b []byte) (Table, int, error) {
	return decodeTable(b, 0)
}

func decodeTable(b []byte, depth int) (Table, int, error) {
	body, n, err := lengthPrefixed(b)
	if err != nil {
		return nil, 0, err
	}
	if depth >= MaxTableDepth {
		return nil, 0, errTableDepth
	}
	t := Table{}
	for off := 0; off < len(body); {
		klen := int(body[off])
		off++
		if len(body)-off < klen {
			return nil, 0, errTableOverrun
		}
		key := string(body[off : off+klen])
		off += klen
		v, vn, err := decodeFieldValue(body[off:], depth)
		if err != nil {
			return nil, 0, err
		}
		off += vn
		t[key] = v
	}
	return t, n, nil
}

// decodeArray decodes a field array (4-byte length then values).
func decodeArray(b []byte, depth int) ([]any, int, error) {
	body, n, err := lengthPrefixed(b)
	if err != nil {
		return nil, 0, err
	}
	if depth >= MaxTableDepth {
		return nil, 0, errTableDepth
	}
	// No capacity hint: the element count is unknown, and guessing from the
	// byte length could over-allocate for hostile input.
	var a []any
	for off := 0; off < len(body); {
		v, vn, err := decodeFieldValue(body[off:], depth)
		if err != nil {
			return nil, 0, err
		}
		off += vn
		a = append(a, v)
	}
	if a == nil {
		a = []any{}
	}
	return a, n, nil
}

// lengthPrefixed splits a 4-byte length and the bytes it claims off b.
func lengthPrefixed(b []byte) (body []byte, n int, err error) {
	if len(b) < 4 {
		return nil, 0, errTableShort
	}
	size := binary.BigEndian.Uint32(b)
	if uint64(size) > uint64(len(b)-4) {
		return nil, 0, errTableShort
	}
	return b[4 : 4+int(size)], 4 + int(size), nil
}

// fixedSize is the encoded size of the fixed-width value types, 0 for others.
var fixedSize = [256]uint8{
	't': 1, 'b': 1, 'B': 1, 's': 2, 'u': 2, 'I': 4, 'i': 4, 'l': 8,
	'f': 4, 'd': 8, 'D': 5, 'T': 8,
}

// decodeFieldValue decodes one type octet and value from b, which must be the
// rest of the enclosing table or array so overruns are detected.
func decodeFieldValue(b []byte, depth int) (any, int, error) {
	if len(b) == 0 {
		return nil, 0, errTableOverrun
	}
	typ, p := b[0], b[1:]
	if size := int(fixedSize[typ]); size > 0 {
		if len(p) < size {
			return nil, 0, errTableOverrun
		}
		var v any
		switch typ {
		case 't':
			v = p[0] != 0
		case 'b':
			v = int8(p[0])
		case 'B':
			v = p[0]
		case 's':
			v = int16(binary.BigEndian.Uint16(p))
		case 'u':
			v = binary.BigEndian.Uint16(p)
		case 'I':
			v = int32(binary.BigEndian.Uint32(p))
		case 'i':
			v = binary.BigEndian.Uint32(p)
		case 'l':
			v = int64(binary.BigEndian.Uint64(p))
		case 'f':
			v = math.Float32frombits(binary.BigEndian.Uint32(p))
		case 'd':
			v = math.Float64frombits(binary.BigEndian.Uint64(p))
		case 'D':
			v = Decimal{Scale: p[0], Value: int32(binary.BigEndian.Uint32(p[1:]))}
		case 'T':
			v = time.Unix(int64(binary.BigEndian.Uint64(p)), 0).UTC()
		}
		return v, 1 + size, nil
	}
	switch typ {
	case 'V':
		return nil, 1, nil
	case 'S', 'x':
		body, n, err := lengthPrefixed(p)
		if err != nil {
			return nil, 0, errTableOverrun
		}
		if typ == 'S' {
			return string(body), 1 + n, nil
		}
		return slices.Clone(body), 1 + n, nil
	case 'F':
		t, n, err := decodeTable(p, depth+1)
		if err != nil {
			return nil, 0, err
		}
		return t, 1 + n, nil
	case 'A':
		a, n, err := decodeArray(p, depth+1)
		if err != nil {
			return nil, 0, err
		}
		return a, 1 + n, nil
	}
	return nil, 0, errTableType
}

// ValidateTable walks an encoded field table (starting with its 4-byte length)
// without allocating and returns its encoded size. It accepts exactly what
// DecodeTable accepts, so the hot path can check headers it passes through.
func ValidateTable(b []byte) (n int, err error) {
	return validateTable(b, 0)
}

func validateTable(b []byte, depth int) (int, error) {
	body, n, err := lengthPrefixed(b)
	if err != nil {
		return 0, err
	}
	if depth >= MaxTableDepth {
		return 0, errTableDepth
	}
	for off := 0; off < len(body); {
		klen := int(body[off])
		off++
		if len(body)-off < klen {
			return 0, errTableOverrun
		}
		off += klen
		vn, err := validateFieldValue(body[off:], depth)
		if err != nil {
			return 0, err
		}
		off += vn
	}
	return n, nil
}

func validateArray(b []byte, depth int) (int, error) {
	body, n, err := lengthPrefixed(b)
	if err != nil {
		return 0, err
	}
	if depth >= MaxTableDepth {
		return 0, errTableDepth
	}
	for off := 0; off < len(body); {
		vn, err := validateFieldValue(body[off:], depth)
		if err != nil {
			return 0, err
		}
		off += vn
	}
	return n, nil
}

func validateFieldValue(b []byte, depth int) (int, error) {
	if len(b) == 0 {
		return 0, errTableOverrun
	}
	typ, p := b[0], b[1:]
	if size := int(fixedSize[typ]); size > 0 {
		if len(p) < size {
			return 0, errTableOverrun
		}
		return 1 + size, nil
	}
	var n int
	var err error
	switch typ {
	case 'V':
		return 1, nil
	case 'S', 'x':
		if _, n, err = lengthPrefixed(p); err != nil {
			return 0, errTableOverrun
		}
	case 'F':
		n, err = validateTable(p, depth+1)
	case 'A':
		n, err = validateArray(p, depth+1)
	default:
		return 0, errTableType
	}
	if err != nil {
		return 0, err
	}
	return 1 + n, nil
}
