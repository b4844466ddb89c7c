package recordbatch

import "testing"

// TestRecordbatchPartitionMurmur2 checks Kafka's own vectors: UtilsTest's
// testMurmur2 and the single-digit keys other Kafka-compatible clients test.
func TestRecordbatchPartitionMurmur2(t *testing.T) {
	vectors := []struct {
		key  string
		want int32
	}{
		{"21", -973932308},
		{"foobar", -790332482},
		{"a-little-bit-long-string", -985981536},
		{"a-little-bit-longer-string", -1486304829},
		{"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
		{"abc", 479470107},
		{"1", -1993445489},
		{"12", 126087238},
		{"123", -267702483},
		{"1234", -1614185708},
		{"12345", -1188365604},
	}
	for _, v := range vectors {
		if got := Murmur2([]byte(v.key)); got != v.want {
			t.Errorf("murmur2(%q) = %d, want %d", v.key, got, v.want)
		}
		if got, want := Partition([]byte(v.key), 12), int(v.want&0x7fffffff)%12; got != want {
			t.Errorf("Partition(%q, 12) = %d, want %d", v.key, got, want)
		}
	}
	// toPositive masks the sign bit; it is not abs(): -973932308 & 0x7fffffff = 1173551340.
	if got := Partition([]byte("21"), 1<<30); got != 1173551340%(1<<30) {
		t.Errorf("Partition(21) = %d", got)
	}
	if Partition(nil, 7) != Partition([]byte{}, 7) {
		t.Error("nil and empty keys differ")
	}
}
