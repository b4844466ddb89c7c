package store

import (
	"runtime"
	"sync"
	"testing"
)

// heapAlloc is the live heap after a full collection.
func heapAlloc() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// fillTail appends n tail records of 16 bytes to queue "q", many batches in
// flight, and waits for all of them.
func fillTail(t testing.TB, s Store, from, n int) {
	t.Helper()
	fillTailData(t, s, from, n, []byte("0123456789abcdef"))
}

func fillTailData(t testing.TB, s Store, from, n int, data []byte) {
	t.Helper()
	const batch = 4096
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for i := from; i < from+n; i += batch {
		recs := make([]MessageRecord, 0, batch)
		for j := i; j < min(from+n, i+batch); j++ {
			recs = append(recs, MessageRecord{VHost: "/", Queue: "q", ID: uint64(j), Tail: true, Data: data})
		}
		wg.Add(1)
		s.AppendMessages(recs, func(err error) {
			if err != nil {
				mu.Lock()
				firstErr = err
				mu.Unlock()
			}
			wg.Done()
		})
	}
	wg.Wait()
	if firstErr != nil {
		t.Fatal(firstErr)
	}
}

// A million tail records cost the File store at most 8 bytes each, appended
// live and after a restart (Open + Recover leaving all but 4096 in the tail,
// in bulk).
func TestStoreTailHeap(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a million records")
	}
	const n = 1_000_000
	const window = 4096
	dir := t.TempDir()
	opts := Options{Sync: SyncNever}
	s := openTest(t, dir, opts)
	fillTail(t, s, 0, 1) // the store's own buffers are a fixed cost
	before := heapAlloc()
	fillTail(t, s, 1, n-1)
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	live := heapAlloc() - before
	if st := s.Stats(); st.TailMessages != n {
		t.Fatalf("stats %+v", st)
	}
	runtime.KeepAlive(s)
	t.Logf("live: %d bytes of heap for %d tail records: %.2f B/record", live, n, float64(live)/n)
	if live > 8*n {
		t.Errorf("live tail costs %.1f B/record, want <= 8", float64(live)/n)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	before = heapAlloc()
	s = openTest(t, dir, opts)
	seen := 0
	next := uint64(0)
	err := s.Recover(func(rec MessageRecord, delivered bool) (bool, error) {
		if rec.ID != next {
			t.Fatalf("recovered #%d, want #%d", rec.ID, next)
		}
		next++
		seen++
		return seen > window, nil
	}, func(run TailRun) error {
		next = run.LastID + 1
		return nil
	})
	// In bulk (as the broker recovers): fn sees the window and one more.
	if err != nil || seen != window+1 || next != n {
		t.Fatalf("recovered %d, up to #%d: %v", seen, next, err)
	}
	reopened := heapAlloc() - before
	if st := s.Stats(); st.TailMessages != n-window || st.LiveMessages != n {
		t.Fatalf("stats %+v", st)
	}
	runtime.KeepAlive(s)
	t.Logf("after Open+Recover: %d bytes of heap for %d records (%d in the window): %.2f B/record", reopened, n, window, float64(reopened)/n)
	if reopened > 8*n {
		t.Errorf("recovered tail costs %.1f B/record, want <= 8", float64(reopened)/n)
	}
	// The whole tail reads back in order, across segment boundaries.
	next = window
	for {
		recs, err := s.ReadTail("/", "q", 2048, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			break
		}
		for _, r := range recs {
			if r.ID != next || string(r.Data) != "0123456789abcdef" {
				t.Fatalf("tail #%d %q, want #%d", r.ID, r.Data, next)
			}
			next++
		}
	}
	if next != n {
		t.Fatalf("tail ended at #%d, want #%d", next, n)
	}
}
