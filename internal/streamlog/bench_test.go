package streamlog

import (
	"io"
	"sync"
	"testing"

	"github.com/warren-mq/warren/internal/recordbatch"
)

// BenchmarkStreamlogAppend: producers each waiting for their 1 KB batch to
// be durable (acks=all), so group commit is what makes it fast.
func BenchmarkStreamlogAppend(b *testing.B) {
	for _, producers := range []int{1, 16, 64} {
		b.Run(itoa(producers)+"producers", func(b *testing.B) {
			l := openTest(b, b.TempDir(), Options{})
			defer l.Close()
			batch := valueBatch(1, 1024-recordbatch.HeaderSize-10, 1)
			b.SetBytes(int64(len(batch)))
			var wg sync.WaitGroup
			per := b.N / producers
			b.ResetTimer()
			for p := 0; p < producers; p++ {
				n := per
				if p == 0 {
					n += b.N % producers
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					done := make(chan struct{}, 1)
					for i := 0; i < n; i++ {
						l.Append(batch, func(AppendResult, error) { done <- struct{}{} })
						<-done
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(b.N)/float64(max(l.syncs.Load(), 1)), "batches/sync")
		})
	}
}

// BenchmarkStreamlogAppendWritten: producers each waiting for their 1 KB
// batch to be written (acks=1, AppendWritten's written) or synced (acks=all,
// done), for the difference between the two.
func BenchmarkStreamlogAppendWritten(b *testing.B) {
	for _, acks := range []string{"1", "all"} {
		for _, producers := range []int{1, 16} {
			b.Run("acks="+acks+"/"+itoa(producers)+"producers", func(b *testing.B) {
				l := openTest(b, b.TempDir(), Options{})
				defer l.Close()
				batch := valueBatch(1, 1024-recordbatch.HeaderSize-10, 1)
				b.SetBytes(int64(len(batch)))
				var wg sync.WaitGroup
				per := b.N / producers
				b.ResetTimer()
				for p := 0; p < producers; p++ {
					n := per
					if p == 0 {
						n += b.N % producers
					}
					wg.Add(1)
					go func() {
						defer wg.Done()
						ack := make(chan struct{}, 1)
						signal := func() { ack <- struct{}{} }
						for i := 0; i < n; i++ {
							if acks == "1" {
								l.AppendWritten(batch, func(AppendResult) { signal() }, nil)
							} else {
								l.Append(batch, func(AppendResult, error) { signal() })
							}
							<-ack
						}
					}()
				}
				wg.Wait()
				b.StopTimer()
				b.ReportMetric(float64(b.N)/float64(max(l.syncs.Load(), 1)), "batches/sync")
			})
		}
	}
}

// BenchmarkStreamlogAppendPipelined: one producer with everything in
// flight, as a Kafka client with many outstanding produce requests.
func BenchmarkStreamlogAppendPipelined(b *testing.B) {
	l := openTest(b, b.TempDir(), Options{})
	defer l.Close()
	batch := valueBatch(1, 1024-recordbatch.HeaderSize-10, 1)
	b.SetBytes(int64(len(batch)))
	var wg sync.WaitGroup
	wg.Add(b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		l.Append(batch, func(AppendResult, error) { wg.Done() })
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/float64(max(l.syncs.Load(), 1)), "batches/sync")
}

// BenchmarkStreamlogRead: sequential reads of 1 MiB chunks of 1 KB batches
// (from the page cache), copied out as a fetch to a non-socket writer is.
func BenchmarkStreamlogRead(b *testing.B) {
	l := openTest(b, b.TempDir(), Options{SegmentBytes: 64 << 20})
	defer l.Close()
	batch := valueBatch(1, 1024-recordbatch.HeaderSize-10, 1)
	var wg sync.WaitGroup
	const n = 64 << 10 // 64 MiB
	wg.Add(n)
	for i := 0; i < n; i++ {
		l.Append(batch, func(AppendResult, error) { wg.Done() })
	}
	wg.Wait()
	b.ResetTimer()
	var total int64
	off := int64(0)
	for i := 0; i < b.N; i++ {
		if off >= l.NextOffset() {
			off = 0
		}
		c, err := l.Read(off, 1<<20)
		if err != nil {
			b.Fatal(err)
		}
		m, err := c.WriteTo(io.Discard)
		c.Close()
		if err != nil {
			b.Fatal(err)
		}
		total += m
		off += m / int64(len(batch))
	}
	b.SetBytes(total / int64(b.N))
}

func itoa(n int) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}
