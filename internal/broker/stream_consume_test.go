package broker

import (
	"testing"

	"github.com/warren-mq/warren/internal/recordbatch"
)

// TestStreamChunkOffsetsSpanGaps: a chunk's offset span comes from its
// batches' headers, so a compaction gap (offsets far beyond the chunk's byte
// length) still puts a later aborted transaction inside the span; a batch
// cut off at the end of the chunk does not count.
func TestStreamChunkOffsetsSpanGaps(t *testing.T) {
	batch := func(base int64, n int) []byte {
		recs := make([]recordbatch.Record, n)
		for i := range recs {
			recs[i] = recordbatch.Record{OffsetDelta: int32(i), Value: []byte("v")}
		}
		b := recordbatch.Build(recs, recordbatch.BuildOptions{})
		recordbatch.SetBaseOffset(b, base)
		return b
	}
	a, c := batch(7, 3), batch(100_000, 2)
	chunk := append(append([]byte(nil), a...), c...)
	if first, last, ok := chunkOffsets(chunk); !ok || first != 7 || last != 100_001 {
		t.Fatalf("chunkOffsets = %d, %d, %v; want 7, 100001, true", first, last, ok)
	}
	if first, last, ok := chunkOffsets(chunk[:len(chunk)-1]); !ok || first != 7 || last != 9 {
		t.Fatalf("with the second batch cut: %d, %d, %v; want 7, 9, true", first, last, ok)
	}
	if _, _, ok := chunkOffsets(a[:10]); ok {
		t.Fatal("a partial header gave offsets")
	}
	if int64(len(chunk)) > 100_000-7 {
		t.Fatal("the test needs a gap larger than the chunk")
	}
}
