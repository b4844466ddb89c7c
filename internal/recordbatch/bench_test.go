package recordbatch

import (
	"fmt"
	"testing"

	"github.com/warren-mq/warren/internal/amqp091"
)

// benchRecords are n records of valueSize bytes with a key and the reserved
// header, what an AMQP publish into a stream makes.
func benchRecords(n, valueSize int) []Record {
	recs := make([]Record, n)
	for i := range recs {
		recs[i] = FromAMQP(AMQPMessage{RoutingKey: fmt.Sprintf("customer-%d", i%100), Body: make([]byte, valueSize), ArrivalMs: 1})
	}
	return recs
}

// BenchmarkRecordbatchBuild reports the cost per record of building a batch
// of 100 records of 100 bytes (b.N counts records).
func BenchmarkRecordbatchBuild(b *testing.B) {
	recs := benchRecords(100, 100)
	for _, c := range codecs {
		b.Run(c.String(), func(b *testing.B) {
			var buf []byte
			b.ReportAllocs()
			for i := 0; i < b.N; i += len(recs) {
				buf = AppendBuild(buf[:0], recs, BuildOptions{Compression: c})
			}
			b.SetBytes(int64(len(Build(recs, BuildOptions{})) / len(recs)))
		})
	}
}

// BenchmarkRecordbatchDecode reports the cost per record of walking a batch
// of 100 records with an Iterator, and with Decode (b.N counts records).
func BenchmarkRecordbatchDecode(b *testing.B) {
	recs := benchRecords(100, 100)
	for _, c := range codecs {
		batch := Build(recs, BuildOptions{Compression: c})
		b.Run("iterator/"+c.String(), func(b *testing.B) {
			var it Iterator
			var r Record
			b.ReportAllocs()
			for i := 0; i < b.N; i += len(recs) {
				if err := it.Reset(batch, 1<<20); err != nil {
					b.Fatal(err)
				}
				for it.Next(&r) {
				}
			}
		})
		b.Run("decode/"+c.String(), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i += len(recs) {
				if _, _, err := Decode(batch, 1<<20); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRecordbatchFromAMQPRaw is the per-publish cost of mapping an AMQP
// publish (persistent, content type, no headers; and with two headers) to a record.
func BenchmarkRecordbatchFromAMQPRaw(b *testing.B) {
	body := make([]byte, 100)
	for name, p := range map[string]amqp091.Properties{
		"plain":   {ContentType: "application/json", DeliveryMode: 2},
		"headers": {ContentType: "application/json", DeliveryMode: 2, Headers: amqp091.Table{"a": "x", "n": int32(1)}},
	} {
		raw := p.Append(nil)
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				if _, err := FromAMQPRaw("ex", "customer-1", raw, body, 1); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
