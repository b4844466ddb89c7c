package amqp091

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
