package main

import (
	"math"
	"testing"
)

func TestPerfHistogramBuckets(t *testing.T) {
	prev := -1
	for _, v := range testValues() {
		i := bucketOf(v)
		if i < 0 || i >= histBuckets {
			t.Fatalf("bucketOf(%d) = %d, outside [0,%d)", v, i, histBuckets)
		}
		lo, hi := bucketRange(i)
		if want := min(v, histMaxValue); want < lo || want > hi {
			t.Fatalf("value %d in bucket %d = [%d,%d]", v, i, lo, hi)
		}
		if hi-lo > lo/histSub {
			t.Fatalf("bucket %d = [%d,%d] wider than 1/%d of its value", i, lo, hi, histSub)
		}
		if i < prev {
			t.Fatalf("bucketOf not monotonic at %d", v)
		}
		prev = i
	}
	// Buckets tile the value range without gaps.
	for i := 1; i < histBuckets; i++ {
		_, hi := bucketRange(i - 1)
		lo, _ := bucketRange(i)
		if lo != hi+1 {
			t.Fatalf("gap between bucket %d (hi %d) and %d (lo %d)", i-1, hi, i, lo)
		}
	}
	if _, hi := bucketRange(histBuckets - 1); hi != histMaxValue {
		t.Fatalf("last bucket ends at %d, want %d", hi, histMaxValue)
	}
}

// testValues are increasing values around every power of two, up past the cap.
func testValues() []uint64 {
	var vs []uint64
	for v := uint64(0); v < 300; v++ {
		vs = append(vs, v)
	}
	for e := 9; e < 44; e++ {
		p := uint64(1) << e
		vs = append(vs, p-1, p, p+1, p+p/3)
	}
	return append(vs, math.MaxUint64)
}

func TestPerfHistogramQuantiles(t *testing.T) {
	var h histogram
	for v := int64(1); v <= 10000; v++ {
		h.record(v * 1000) // 1 µs .. 10 ms
	}
	var s histSnapshot
	h.drainInto(&s)
	if s.count() != 10000 {
		t.Fatalf("count = %d", s.count())
	}
	check := func(name string, got uint64, want float64) {
		t.Helper()
		// Percentiles report the bucket's highest value: at most 1/64 above.
		if float64(got) < want || float64(got) > want*(1+1.0/histSub) {
			t.Errorf("%s = %d, want %.0f (+1/%d)", name, got, want, histSub)
		}
	}
	sum := s.summary()
	check("p50", sum.P50, 5000e3)
	check("p75", sum.P75, 7500e3)
	check("p95", sum.P95, 9500e3)
	check("p99", sum.P99, 9900e3)
	check("max", sum.Max, 10000e3)
	if sum.Min > 1000 || float64(sum.Min) < 1000*(1-1.0/histSub) {
		t.Errorf("min = %d, want about 1000", sum.Min)
	}

	// Draining empties the histogram; a second drain adds nothing.
	var again histSnapshot
	h.drainInto(&again)
	if again.count() != 0 {
		t.Fatalf("second drain found %d samples", again.count())
	}
	var empty histSnapshot
	if empty.quantile(0.5) != 0 || empty.min() != 0 || empty.max() != 0 {
		t.Fatal("empty histogram reports non-zero values")
	}
	var total histSnapshot
	total.add(&s)
	total.add(&s)
	if total.count() != 20000 || total.quantile(0.5) != s.quantile(0.5) {
		t.Fatalf("merged: count %d, p50 %d vs %d", total.count(), total.quantile(0.5), s.quantile(0.5))
	}
}

func TestPerfHistogramEdges(t *testing.T) {
	var h histogram
	h.record(-5)            // clock step: counted as 0
	h.record(math.MaxInt64) // capped
	var s histSnapshot
	h.drainInto(&s)
	if s.count() != 2 || s.min() != 0 || s.max() != histMaxValue {
		t.Fatalf("count %d min %d max %d", s.count(), s.min(), s.max())
	}
}

func TestPerfHistogramRecordAllocates(t *testing.T) {
	var h histogram
	if n := testing.AllocsPerRun(1000, func() { h.record(123456) }); n != 0 {
		t.Fatalf("record allocates %.1f times", n)
	}
}
