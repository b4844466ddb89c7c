package store

import (
	"bytes"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"
)

// BenchmarkStoreAppend measures the write path without fsync: encoding,
// batching and write(2) of 1 KiB messages.
func BenchmarkStoreAppend(b *testing.B) {
	s := openTest(b, b.TempDir(), Options{Sync: SyncNever})
	data := bytes.Repeat([]byte{'m'}, 1024)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	var wg sync.WaitGroup
	wg.Add(b.N)
	done := func(err error) {
		if err != nil {
			b.Error(err)
		}
		wg.Done()
	}
	b.ResetTimer()
	for i := range b.N {
		s.AppendMessages([]MessageRecord{{VHost: "/", Queue: "q", ID: uint64(i), Data: data}}, done)
	}
	wg.Wait()
}

// BenchmarkStoreAppendSync measures group commit: many publishers each waiting
// for their confirm (fdatasync), as with publisher confirms.
func BenchmarkStoreAppendSync(b *testing.B) {
	for _, publishers := range []int{1, 16, 128} {
		b.Run(fmt.Sprintf("publishers=%d", publishers), func(b *testing.B) {
			s := openTest(b, b.TempDir(), Options{Sync: SyncAlways})
			data := bytes.Repeat([]byte{'m'}, 1024)
			b.SetBytes(int64(len(data)))
			var mu sync.Mutex
			next := uint64(0)
			b.ResetTimer()
			var wg sync.WaitGroup
			per := b.N / publishers
			for p := range publishers {
				n := per
				if p == 0 {
					n += b.N % publishers
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					ch := make(chan error, 1)
					for range n {
						mu.Lock()
						id := next
						next++
						mu.Unlock()
						s.AppendMessages([]MessageRecord{{VHost: "/", Queue: "q", ID: id, Data: data}}, func(err error) { ch <- err })
						if err := <-ch; err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			st := s.Stats()
			if st.Syncs > 0 {
				b.ReportMetric(float64(st.SyncedAppends)/float64(st.Syncs), "appends/fsync")
			}
		})
	}
}

// fillStore writes n persistent messages of size bytes to dir, unsynced (the
// page cache holds them, which is what a restart after a clean stop sees).
func fillStore(b testing.TB, dir string, n, size int) {
	s, err := Open(dir, Options{Sync: SyncNever, Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	data := bytes.Repeat([]byte{'m'}, size)
	const batch = 1000
	for i := 0; i < n; i += batch {
		recs := make([]MessageRecord, 0, batch)
		for j := i; j < min(n, i+batch); j++ {
			recs = append(recs, MessageRecord{VHost: "/", Queue: fmt.Sprintf("q%d", j%4), ID: uint64(j), Data: data})
		}
		ch := make(chan error, 1)
		s.AppendMessages(recs, func(err error) { ch <- err })
		if err := <-ch; err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
}

// benchRecover measures Open (scan, CRC check, index rebuild) plus Recover
// (reading every message back in queue order) of n messages.
func benchRecover(b *testing.B, n, size int) {
	dir := b.TempDir()
	fillStore(b, dir, n, size)
	syscall.Sync() // writeback of the fill must not compete with the timed part
	b.SetBytes(int64(n * size))
	cpu0 := cpuTime()
	b.ResetTimer()
	for range b.N {
		s, err := Open(dir, Options{Sync: SyncNever, Logger: quietLogger()})
		if err != nil {
			b.Fatal(err)
		}
		got := 0
		if err := s.Recover(func(MessageRecord, bool) (bool, error) { got++; return false, nil }, nil); err != nil {
			b.Fatal(err)
		}
		if got != n {
			b.Fatalf("recovered %d, want %d", got, n)
		}
		s.Close()
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	// On a shared machine wall time says more about the neighbours than about
	// the store: CPU time per recovery is the steadier figure.
	b.ReportMetric((cpuTime()-cpu0).Seconds()/float64(b.N), "cpu-s/op")
}

// cpuTime is the process's user plus system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkStoreRecover recovers 100k persistent 1 KiB messages in 4 queues.
func BenchmarkStoreRecover(b *testing.B) { benchRecover(b, 100_000, 1024) }

// BenchmarkStoreRecover1M recovers 1M persistent 1 KiB messages (1 GiB on
// disk; the setup writes it first). Run it with -benchtime=1x.
func BenchmarkStoreRecover1M(b *testing.B) {
	if testing.Short() {
		b.Skip("writes 1 GiB")
	}
	benchRecover(b, 1_000_000, 1024)
}

// BenchmarkStoreReadTail measures ReadTail draining a queue's tail in
// batches of 2048 (the broker's refill): sequential reads of the segments,
// copies of the data, window slots for what it returns.
func BenchmarkStoreReadTail(b *testing.B) {
	for _, c := range []struct{ n, size int }{{500_000, 16}, {50_000, 1024}} {
		b.Run(fmt.Sprintf("size=%d", c.size), func(b *testing.B) {
			s := openTest(b, b.TempDir(), Options{Sync: SyncNever})
			data := bytes.Repeat([]byte{'m'}, c.size)
			b.SetBytes(int64(c.n * c.size))
			next := 0
			var ids []uint64
			for range b.N {
				b.StopTimer()
				fillTailData(b, s, next, c.n, data)
				b.StartTimer()
				got := 0
				for {
					recs, err := s.ReadTail("/", "q", 2048, 8<<20)
					if err != nil {
						b.Fatal(err)
					}
					if len(recs) == 0 {
						break
					}
					got += len(recs)
					// Consumers ack as the broker delivers: the window stays small.
					b.StopTimer()
					ids = ids[:0]
					for _, r := range recs {
						ids = append(ids, r.ID)
					}
					s.Ack("/", "q", ids)
					b.StartTimer()
				}
				if got != c.n {
					b.Fatalf("read %d, want %d", got, c.n)
				}
				next += c.n
			}
			b.ReportMetric(float64(c.n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// BenchmarkStoreRecoverTail measures a restart with a long backlog: Open plus
// a Recover that keeps 4096 messages in the window and leaves the rest (1M
// 16-byte messages in all, one queue) in the tail.
func BenchmarkStoreRecoverTail(b *testing.B) {
	const n, window = 1_000_000, 4096
	dir := b.TempDir()
	s := openTest(b, dir, Options{Sync: SyncNever})
	fillTail(b, s, 0, n)
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	syscall.Sync()
	cpu0 := cpuTime()
	b.ResetTimer()
	for range b.N {
		s, err := Open(dir, Options{Sync: SyncNever, Logger: quietLogger()})
		if err != nil {
			b.Fatal(err)
		}
		got := 0
		if err := s.Recover(func(MessageRecord, bool) (bool, error) { got++; return got > window, nil }, nil); err != nil {
			b.Fatal(err)
		}
		if got != n || s.Stats().TailMessages != n-window {
			b.Fatalf("recovered %d, %+v", got, s.Stats())
		}
		s.Close()
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric((cpuTime()-cpu0).Seconds()/float64(b.N), "cpu-s/op")
}
