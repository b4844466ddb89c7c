package main

import (
	"math"
	"math/bits"
	"sync/atomic"
)

// Latencies go into a log-linear histogram, as HdrHistogram does: values below
// 2*histSub nanoseconds have a bucket each, and every further power of two is
// split into histSub equal buckets, so any value is known to within 1/histSub
// (1.6%) of itself. Recording is one atomic add into a fixed array: no
// allocation and no lock per sample, and the reporter can drain the counts
// every second while consumers keep recording.
const (
	histSubBits = 6
	histSub     = 1 << histSubBits
	// Values are capped at 2^histMaxBits-1 ns, about 18 minutes.
	histMaxBits  = 40
	histMaxValue = 1<<histMaxBits - 1
	histBuckets  = histSub*(histMaxBits-histSubBits-1) + 2*histSub
)

// bucketOf returns the bucket index for v (nanoseconds).
func bucketOf(v uint64) int {
	v = min(v, histMaxValue)
	e := max(0, bits.Len64(v)-histSubBits-1)
	return histSub*e + int(v>>e)
}

// bucketRange returns the smallest and largest value that land in bucket i.
func bucketRange(i int) (lo, hi uint64) {
	if i < 2*histSub {
		return uint64(i), uint64(i)
	}
	e := i/histSub - 1
	m := uint64(i - histSub*e)
	return m << e, (m+1)<<e - 1
}

// histogram counts samples; safe for one or more recorders and a concurrent drain.
type histogram struct {
	counts [histBuckets]atomic.Uint64
}

// record adds one sample in nanoseconds; negative values (a clock step) count as 0.
func (h *histogram) record(ns int64) {
	h.counts[bucketOf(uint64(max(ns, 0)))].Add(1)
}

// drainInto moves the counts into s and leaves h empty. Samples recorded
// concurrently land either in this drain or the next one, never in neither.
func (h *histogram) drainInto(s *histSnapshot) {
	for i := range h.counts {
		if h.counts[i].Load() == 0 {
			continue
		}
		n := h.counts[i].Swap(0)
		s.counts[i] += n
		s.n += n
	}
}

// histSnapshot is a histogram owned by one goroutine, for computing percentiles.
type histSnapshot struct {
	counts [histBuckets]uint64
	n      uint64
}

func (s *histSnapshot) reset() { *s = histSnapshot{} }

// add merges o into s.
func (s *histSnapshot) add(o *histSnapshot) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		s.counts[i] += c
	}
	s.n += o.n
}

// count is the number of samples.
func (s *histSnapshot) count() uint64 { return s.n }

// min returns the lowest value that the smallest sample may have had.
func (s *histSnapshot) min() uint64 {
	for i, c := range s.counts {
		if c != 0 {
			lo, _ := bucketRange(i)
			return lo
		}
	}
	return 0
}

// max returns the highest value that the largest sample may have had.
func (s *histSnapshot) max() uint64 {
	for i := len(s.counts) - 1; i >= 0; i-- {
		if s.counts[i] != 0 {
			_, hi := bucketRange(i)
			return hi
		}
	}
	return 0
}

// quantile returns the value at quantile q (0 < q <= 1): the highest value
// equivalent to the sample of rank ceil(q*n), as HdrHistogram reports it, so
// the error is on the pessimistic side. 0 for an empty histogram.
func (s *histSnapshot) quantile(q float64) uint64 {
	if s.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(s.n)))
	rank = min(max(rank, 1), s.n)
	var seen uint64
	for i, c := range s.counts {
		seen += c
		if seen >= rank {
			_, hi := bucketRange(i)
			return hi
		}
	}
	return s.max()
}

// latencySummary is the figures printed for a latency histogram, in nanoseconds.
type latencySummary struct {
	Count                        uint64
	Min, P50, P75, P95, P99, Max uint64
}

func (s *histSnapshot) summary() latencySummary {
	return latencySummary{
		Count: s.n,
		Min:   s.min(),
		P50:   s.quantile(0.50),
		P75:   s.quantile(0.75),
		P95:   s.quantile(0.95),
		P99:   s.quantile(0.99),
		Max:   s.max(),
	}
}
