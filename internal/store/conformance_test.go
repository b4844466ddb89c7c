package store

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
)

// The conformance suite runs over every Store implementation: what the broker
// sees must not depend on which one it has.

func TestStoreConformanceMemory(t *testing.T) {
	runConformance(t, func(t *testing.T) Store { return NewMemory() })
}

func TestStoreConformanceFile(t *testing.T) {
	for _, mode := range []struct {
		name string
		sync SyncMode
	}{{"always", SyncAlways}, {"interval", SyncInterval}, {"never", SyncNever}} {
		t.Run(mode.name, func(t *testing.T) {
			runConformance(t, func(t *testing.T) Store {
				// Small segments so that every test crosses segment boundaries.
				return openTest(t, t.TempDir(), Options{Sync: mode.sync, SegmentSize: 4096})
			})
		})
	}
}

func runConformance(t *testing.T, open func(t *testing.T) Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s Store)
	}{
		{"AppendReadAck", confAppendReadAck},
		{"RecoverOrder", confRecoverOrder},
		{"Transient", confTransient},
		{"Delivered", confDelivered},
		{"DeleteQueue", confDeleteQueue},
		{"Replace", confReplace},
		{"AckBeforeDone", confAckBeforeDone},
		{"Concurrent", confConcurrent},
		{"Invalid", confInvalid},
		{"Meta", confMeta},
		{"MetaOrder", confMetaOrder},
		{"MetaCompaction", confMetaCompaction},
		{"Closed", confClosed},
		{"TailOrder", confTailOrder},
		{"TailLimits", confTailLimits},
		{"TailBecomesOrdinary", confTailBecomesOrdinary},
		{"TailDrop", confTailDrop},
		{"TailDeleteQueue", confTailDeleteQueue},
		{"TailTransient", confTailTransient},
		{"TailInvalid", confTailInvalid},
		{"TailRecover", confTailRecover},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			defer s.Close()
			tc.fn(t, s)
		})
	}
}

// msg builds a record with data derived from its identity.
func msg(vhost, queue string, id uint64) MessageRecord {
	return MessageRecord{VHost: vhost, Queue: queue, ID: id, Data: fmt.Appendf(nil, "%s/%s#%d:%s", vhost, queue, id, bytes.Repeat([]byte{'x'}, int(id%97)))}
}

// appendWait appends and waits for done.
func appendWait(t testing.TB, s Store, recs ...MessageRecord) error {
	t.Helper()
	ch := make(chan error, 1)
	s.AppendMessages(recs, func(err error) { ch <- err })
	return <-ch
}

func mustAppend(t testing.TB, s Store, recs ...MessageRecord) {
	t.Helper()
	if err := appendWait(t, s, recs...); err != nil {
		t.Fatalf("append: %v", err)
	}
}

type recovered struct {
	rec       MessageRecord
	delivered bool
}

func recoverAll(t testing.TB, s Store) []recovered {
	t.Helper()
	var out []recovered
	err := s.Recover(func(rec MessageRecord, delivered bool) (bool, error) {
		rec.Data = slices.Clone(rec.Data)
		out = append(out, recovered{rec, delivered})
		return false, nil
	}, nil)
	if err != nil {
		t.Fatalf("recover: %v", err)
	}
	return out
}

// ids lists the recovered IDs of one queue.
func ids(rs []recovered, vhost, queue string) []uint64 {
	var out []uint64
	for _, r := range rs {
		if r.rec.VHost == vhost && r.rec.Queue == queue {
			out = append(out, r.rec.ID)
		}
	}
	return out
}

func checkRecovered(t testing.TB, rs []recovered) {
	t.Helper()
	for _, r := range rs {
		want := msg(r.rec.VHost, r.rec.Queue, r.rec.ID)
		if !bytes.Equal(r.rec.Data, want.Data) {
			t.Fatalf("recovered %s/%s#%d data %q, want %q", r.rec.VHost, r.rec.Queue, r.rec.ID, r.rec.Data, want.Data)
		}
	}
}

func confAppendReadAck(t *testing.T, s Store) {
	mustAppend(t, s, msg("/", "q", 1), msg("/", "q", 2), msg("/", "q", 3))
	for id := uint64(1); id <= 3; id++ {
		m, err := s.ReadMessage("/", "q", id)
		if err != nil || !bytes.Equal(m.Data, msg("/", "q", id).Data) || m.ID != id || m.Queue != "q" || m.VHost != "/" {
			t.Fatalf("read #%d: %+v, %v", id, m, err)
		}
	}
	if err := s.Ack("/", "q", []uint64{2, 99}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReadMessage("/", "q", 2); !errors.Is(err, ErrNotFound) {
		t.Fatalf("read acked: %v, want ErrNotFound", err)
	}
	if _, err := s.ReadMessage("/", "other", 1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("read unknown queue: %v, want ErrNotFound", err)
	}
	if err := s.Ack("/", "nosuch", []uint64{1}); err != nil {
		t.Fatalf("ack on unknown queue: %v", err)
	}
	rs := recoverAll(t, s)
	if got := ids(rs, "/", "q"); !reflect.DeepEqual(got, []uint64{1, 3}) {
		t.Fatalf("recovered %v, want [1 3]", got)
	}
	checkRecovered(t, rs)
	if st := s.Stats(); st.LiveMessages != 2 {
		t.Fatalf("live %d, want 2", st.LiveMessages)
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
}

func confRecoverOrder(t *testing.T, s Store) {
	mustAppend(t, s, msg("/", "b", 5), msg("/", "b", 1), msg("v2", "a", 7))
	mustAppend(t, s, msg("/", "a", 2), msg("/", "b", 3))
	rs := recoverAll(t, s)
	// Each queue in ID order; queues may interleave.
	want := map[string][]uint64{"//a": {2}, "//b": {1, 3, 5}, "v2/a": {7}}
	got := map[string][]uint64{}
	for _, r := range rs {
		k := r.rec.VHost + "/" + r.rec.Queue
		got[k] = append(got[k], r.rec.ID)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("recovered %v, want %v", got, want)
	}
	checkRecovered(t, rs)
	stop := errors.New("stop")
	n := 0
	err := s.Recover(func(MessageRecord, bool) (bool, error) { n++; return false, stop }, nil)
	if err != stop || n != 1 {
		t.Fatalf("recover with failing fn: %v after %d calls", err, n)
	}
}

func confTransient(t *testing.T, s Store) {
	tr := msg("/", "q", 1)
	tr.Transient = true
	mustAppend(t, s, tr, msg("/", "q", 2))
	m, err := s.ReadMessage("/", "q", 1)
	if err != nil || !m.Transient || !bytes.Equal(m.Data, tr.Data) {
		t.Fatalf("read transient: %+v %v", m, err)
	}
	if got := ids(recoverAll(t, s), "/", "q"); !reflect.DeepEqual(got, []uint64{2}) {
		t.Fatalf("recovered %v, want only the persistent one", got)
	}
	if err := s.Ack("/", "q", []uint64{1}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReadMessage("/", "q", 1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("read acked transient: %v", err)
	}
	if st := s.Stats(); st.LiveMessages != 1 {
		t.Fatalf("live %d, want 1", st.LiveMessages)
	}
}

func confDelivered(t *testing.T, s Store) {
	mustAppend(t, s, msg("/", "q", 1), msg("/", "q", 2), msg("/", "q", 3))
	if err := s.MarkDelivered("/", "q", []uint64{2, 3, 42}); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkDelivered("/", "none", []uint64{1}); err != nil {
		t.Fatal(err)
	}
	if err := s.Ack("/", "q", []uint64{3}); err != nil {
		t.Fatal(err)
	}
	rs := recoverAll(t, s)
	if len(rs) != 2 || rs[0].delivered || !rs[1].delivered || rs[1].rec.ID != 2 {
		t.Fatalf("recovered %+v, want #1 undelivered, #2 delivered", rs)
	}
}

func confDeleteQueue(t *testing.T, s Store) {
	var recs []MessageRecord
	for id := range uint64(50) {
		recs = append(recs, msg("/", "gone", id), msg("/", "kept", id))
	}
	mustAppend(t, s, recs...)
	if err := s.DeleteQueue("/", "gone"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteQueue("/", "never-was"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReadMessage("/", "gone", 3); !errors.Is(err, ErrNotFound) {
		t.Fatalf("read from deleted queue: %v", err)
	}
	// A queue declared again under the same name starts its ids again.
	again := MessageRecord{VHost: "/", Queue: "gone", ID: 0, Data: []byte("second life")}
	mustAppend(t, s, again)
	rs := recoverAll(t, s)
	if got := ids(rs, "/", "gone"); !reflect.DeepEqual(got, []uint64{0}) {
		t.Fatalf("recovered %v from re-declared queue", got)
	}
	if len(ids(rs, "/", "kept")) != 50 {
		t.Fatalf("other queue lost messages")
	}
	m, err := s.ReadMessage("/", "gone", 0)
	if err != nil || string(m.Data) != "second life" {
		t.Fatalf("read re-declared: %q %v", m.Data, err)
	}
	if st := s.Stats(); st.LiveMessages != 51 {
		t.Fatalf("live %d, want 51", st.LiveMessages)
	}
}

func confReplace(t *testing.T, s Store) {
	mustAppend(t, s, MessageRecord{VHost: "/", Queue: "q", ID: 1, Data: []byte("old")})
	mustAppend(t, s, MessageRecord{VHost: "/", Queue: "q", ID: 1, Data: []byte("new")})
	m, err := s.ReadMessage("/", "q", 1)
	if err != nil || string(m.Data) != "new" {
		t.Fatalf("read replaced: %q %v", m.Data, err)
	}
	rs := recoverAll(t, s)
	if len(rs) != 1 || string(rs[0].rec.Data) != "new" {
		t.Fatalf("recovered %+v", rs)
	}
	if st := s.Stats(); st.LiveMessages != 1 {
		t.Fatalf("live %d, want 1", st.LiveMessages)
	}
}

func confAckBeforeDone(t *testing.T, s Store) {
	ch := make(chan error, 1)
	s.AppendMessages([]MessageRecord{msg("/", "q", 1), msg("/", "q", 2)}, func(err error) { ch <- err })
	if err := s.Ack("/", "q", []uint64{1}); err != nil {
		t.Fatal(err)
	}
	if err := <-ch; err != nil {
		t.Fatal(err)
	}
	if got := ids(recoverAll(t, s), "/", "q"); !reflect.DeepEqual(got, []uint64{2}) {
		t.Fatalf("recovered %v, want [2]", got)
	}
	if st := s.Stats(); st.LiveMessages != 1 {
		t.Fatalf("live %d, want 1", st.LiveMessages)
	}
}

func confConcurrent(t *testing.T, s Store) {
	const writers, per = 4, 200
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			q := fmt.Sprintf("q%d", w)
			for id := range uint64(per) {
				ch := make(chan error, 1)
				s.AppendMessages([]MessageRecord{msg("/", q, id)}, func(err error) { ch <- err })
				if id%3 == 0 {
					s.MarkDelivered("/", q, []uint64{id})
				}
				if id%2 == 0 {
					s.Ack("/", q, []uint64{id})
				}
				if err := <-ch; err != nil {
					t.Error(err)
					return
				}
				if id%2 == 1 {
					if _, err := s.ReadMessage("/", q, id); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	rs := recoverAll(t, s)
	if len(rs) != writers*per/2 {
		t.Fatalf("recovered %d, want %d", len(rs), writers*per/2)
	}
	for _, r := range rs {
		if r.rec.ID%2 == 0 || r.delivered != (r.rec.ID%3 == 0) {
			t.Fatalf("recovered %s#%d delivered=%v", r.rec.Queue, r.rec.ID, r.delivered)
		}
	}
	checkRecovered(t, rs)
}

func confInvalid(t *testing.T, s Store) {
	long := string(bytes.Repeat([]byte{'q'}, 256))
	if err := appendWait(t, s, MessageRecord{VHost: "/", Queue: long}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("256-byte queue name: %v, want ErrInvalid", err)
	}
	if err := appendWait(t, s); err != nil {
		t.Fatalf("empty append: %v", err)
	}
	max := string(bytes.Repeat([]byte{'q'}, 255))
	mustAppend(t, s, MessageRecord{VHost: max, Queue: max, ID: 1, Data: []byte("ok")})
	if m, err := s.ReadMessage(max, max, 1); err != nil || string(m.Data) != "ok" {
		t.Fatalf("255-byte names: %v", err)
	}
}

func confClosed(t *testing.T, s Store) {
	mustAppend(t, s, msg("/", "q", 1))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if err := appendWait(t, s, msg("/", "q", 2)); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}
	checks := map[string]error{
		"ack":       s.Ack("/", "q", []uint64{1}),
		"delivered": s.MarkDelivered("/", "q", []uint64{1}),
		"delete":    s.DeleteQueue("/", "q"),
		"sync":      s.Sync(),
		"meta":      commitMeta(s, []byte("x")),
		"recover":   s.Recover(func(MessageRecord, bool) (bool, error) { return false, nil }, nil),
	}
	_, checks["read"] = s.ReadMessage("/", "q", 1)
	_, checks["metalog"] = s.MetaLog()
	for name, err := range checks {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after close: %v, want ErrClosed", name, err)
		}
	}
}

// tailMsg is msg as a tail record.
func tailMsg(vhost, queue string, id uint64) MessageRecord {
	r := msg(vhost, queue, id)
	r.Tail = true
	return r
}

// readTail reads a queue's tail and checks what comes back against msg.
func readTail(t testing.TB, s Store, vhost, queue string, max int, maxBytes int64) []uint64 {
	t.Helper()
	recs, err := s.ReadTail(vhost, queue, max, maxBytes)
	if err != nil {
		t.Fatalf("read tail: %v", err)
	}
	var out []uint64
	for _, r := range recs {
		if want := msg(vhost, queue, r.ID).Data; !bytes.Equal(r.Data, want) {
			t.Fatalf("tail #%d data %q, want %q", r.ID, r.Data, want)
		}
		out = append(out, r.ID)
	}
	return out
}

func seq(from, to uint64) []uint64 {
	var out []uint64
	for id := from; id < to; id++ {
		out = append(out, id)
	}
	return out
}

func confTailOrder(t *testing.T, s Store) {
	mustAppend(t, s, msg("/", "q", 0), msg("/", "q", 1))
	const n = 2000
	for id := uint64(2); id < n; {
		// Batches of varying size, interleaved with another queue's tail.
		var recs []MessageRecord
		for k := 0; k < int(id%7)+1 && id < n; k++ {
			recs = append(recs, tailMsg("/", "q", id), tailMsg("/", "other", id))
			id++
		}
		mustAppend(t, s, recs...)
	}
	if st := s.Stats(); st.TailMessages != 2*(n-2) || st.LiveMessages != 2*(n-2)+2 {
		t.Fatalf("stats %+v, want %d in tails", st, 2*(n-2))
	}
	var got []uint64
	for {
		b := readTail(t, s, "/", "q", 37, 1<<20)
		if len(b) == 0 {
			break
		}
		got = append(got, b...)
	}
	if !slices.Equal(got, seq(2, n)) {
		t.Fatalf("tail read back as %v", got)
	}
	if st := s.Stats(); st.TailMessages != n-2 || st.LiveMessages != 2*(n-2)+2 {
		t.Fatalf("stats after reading one tail: %+v", st)
	}
	if got := readTail(t, s, "/", "other", n, 1<<30); !slices.Equal(got, seq(2, n)) {
		t.Fatalf("other tail read back as %v", got)
	}
	if got := readTail(t, s, "/", "nosuch", 10, 1<<20); len(got) != 0 {
		t.Fatalf("tail of an unknown queue: %v", got)
	}
	// A new tail may start after the old one was read; only the IDs in the
	// tail now bound the next ones.
	mustAppend(t, s, tailMsg("/", "q", n+5))
	if got := readTail(t, s, "/", "q", 10, 1<<20); !slices.Equal(got, []uint64{n + 5}) {
		t.Fatalf("second tail: %v", got)
	}
	mustAppend(t, s, tailMsg("/", "q", n+1))
	if got := readTail(t, s, "/", "q", 10, 1<<20); !slices.Equal(got, []uint64{n + 1}) {
		t.Fatalf("third tail: %v", got)
	}
}

func confTailLimits(t *testing.T, s Store) {
	var recs []MessageRecord
	for id := range uint64(20) {
		recs = append(recs, tailMsg("/", "q", id))
	}
	mustAppend(t, s, recs...)
	if got := readTail(t, s, "/", "q", 0, 1<<20); len(got) != 0 {
		t.Fatalf("max 0 read %v", got)
	}
	if got := readTail(t, s, "/", "q", 3, 1<<20); !slices.Equal(got, []uint64{0, 1, 2}) {
		t.Fatalf("max 3 read %v", got)
	}
	// The first record comes even when it alone is over maxBytes.
	if got := readTail(t, s, "/", "q", 10, 0); !slices.Equal(got, []uint64{3}) {
		t.Fatalf("maxBytes 0 read %v", got)
	}
	three := int64(len(recs[4].Data) + len(recs[5].Data) + len(recs[6].Data))
	if got := readTail(t, s, "/", "q", 10, three); !slices.Equal(got, []uint64{4, 5, 6}) {
		t.Fatalf("maxBytes of three read %v", got)
	}
	if got := readTail(t, s, "/", "q", 10, three-1); !slices.Equal(got, []uint64{7, 8}) {
		t.Fatalf("maxBytes under three read %v", got)
	}
	if got := readTail(t, s, "/", "q", 100, 1<<20); !slices.Equal(got, seq(9, 20)) {
		t.Fatalf("rest read %v", got)
	}
}

func confTailBecomesOrdinary(t *testing.T, s Store) {
	var recs []MessageRecord
	for id := range uint64(10) {
		recs = append(recs, tailMsg("/", "q", id))
	}
	mustAppend(t, s, recs...)
	// Not known by ID while in the tail.
	if _, err := s.ReadMessage("/", "q", 2); !errors.Is(err, ErrNotFound) {
		t.Fatalf("read of a tail record: %v, want ErrNotFound", err)
	}
	if err := s.Ack("/", "q", []uint64{0, 1}); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkDelivered("/", "q", []uint64{2}); err != nil {
		t.Fatal(err)
	}
	got, err := s.ReadTail("/", "q", 4, 1<<20)
	if err != nil || len(got) != 4 || got[0].ID != 0 || got[3].ID != 3 {
		t.Fatalf("read tail: %+v %v", got, err)
	}
	for _, r := range got {
		if r.Delivered || r.Transient {
			t.Fatalf("tail record %+v", r)
		}
	}
	if st := s.Stats(); st.TailMessages != 6 || st.LiveMessages != 10 {
		t.Fatalf("stats %+v", st)
	}
	for id := uint64(0); id < 4; id++ {
		if m, err := s.ReadMessage("/", "q", id); err != nil || !bytes.Equal(m.Data, msg("/", "q", id).Data) {
			t.Fatalf("read #%d after ReadTail: %v", id, err)
		}
	}
	if err := s.MarkDelivered("/", "q", []uint64{1, 2}); err != nil {
		t.Fatal(err)
	}
	if err := s.Ack("/", "q", []uint64{0, 3}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReadMessage("/", "q", 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("read acked #0: %v", err)
	}
	rs := recoverAll(t, s)
	if got := ids(rs, "/", "q"); !slices.Equal(got, []uint64{1, 2, 4, 5, 6, 7, 8, 9}) {
		t.Fatalf("recovered %v", got)
	}
	checkRecovered(t, rs)
	for _, r := range rs {
		if r.delivered != (r.rec.ID == 1 || r.rec.ID == 2) || r.rec.Tail != (r.rec.ID >= 4) {
			t.Fatalf("recovered #%d delivered=%v tail=%v", r.rec.ID, r.delivered, r.rec.Tail)
		}
	}
	if st := s.Stats(); st.TailMessages != 6 || st.LiveMessages != 8 {
		t.Fatalf("stats %+v", st)
	}
}

func confTailDrop(t *testing.T, s Store) {
	mustAppend(t, s, msg("/", "q", 0))
	var recs []MessageRecord
	for id := uint64(1); id <= 10; id++ {
		recs = append(recs, tailMsg("/", "q", id))
	}
	mustAppend(t, s, recs...)
	if n, err := s.DropTail("/", "q", 3); n != 3 || err != nil {
		t.Fatalf("drop 3: %d %v", n, err)
	}
	if got := readTail(t, s, "/", "q", 2, 1<<20); !slices.Equal(got, []uint64{4, 5}) {
		t.Fatalf("after drop read %v", got)
	}
	if n, err := s.DropTail("/", "q", 100); n != 5 || err != nil {
		t.Fatalf("drop rest: %d %v", n, err)
	}
	if n, err := s.DropTail("/", "nosuch", 100); n != 0 || err != nil {
		t.Fatalf("drop from unknown queue: %d %v", n, err)
	}
	if st := s.Stats(); st.TailMessages != 0 || st.LiveMessages != 3 {
		t.Fatalf("stats %+v", st)
	}
	if got := ids(recoverAll(t, s), "/", "q"); !slices.Equal(got, []uint64{0, 4, 5}) {
		t.Fatalf("recovered %v", got)
	}
}

func confTailDeleteQueue(t *testing.T, s Store) {
	var recs []MessageRecord
	for id := range uint64(50) {
		recs = append(recs, tailMsg("/", "gone", id+10), tailMsg("/", "kept", id))
	}
	mustAppend(t, s, msg("/", "gone", 1), msg("/", "gone", 2))
	mustAppend(t, s, recs...)
	if got := readTail(t, s, "/", "gone", 5, 1<<20); !slices.Equal(got, seq(10, 15)) {
		t.Fatalf("read %v", got)
	}
	if err := s.DeleteQueue("/", "gone"); err != nil {
		t.Fatal(err)
	}
	if got := readTail(t, s, "/", "gone", 100, 1<<20); len(got) != 0 {
		t.Fatalf("tail of a deleted queue: %v", got)
	}
	if st := s.Stats(); st.TailMessages != 50 || st.LiveMessages != 50 {
		t.Fatalf("stats %+v", st)
	}
	// Declared again, its IDs start again, also in the tail.
	mustAppend(t, s, tailMsg("/", "gone", 0))
	if got := readTail(t, s, "/", "gone", 100, 1<<20); !slices.Equal(got, []uint64{0}) {
		t.Fatalf("tail of the re-declared queue: %v", got)
	}
	rs := recoverAll(t, s)
	if got := ids(rs, "/", "gone"); !slices.Equal(got, []uint64{0}) {
		t.Fatalf("recovered %v from the re-declared queue", got)
	}
	if got := ids(rs, "/", "kept"); !slices.Equal(got, seq(0, 50)) {
		t.Fatalf("other queue recovered %v", got)
	}
}

func confTailTransient(t *testing.T, s Store) {
	var recs []MessageRecord
	for id := range uint64(6) {
		r := tailMsg("/", "q", id)
		r.Transient = id%2 == 0
		recs = append(recs, r)
	}
	mustAppend(t, s, recs...)
	if got := ids(recoverAll(t, s), "/", "q"); !slices.Equal(got, []uint64{1, 3, 5}) {
		t.Fatalf("recovered %v, want the persistent ones", got)
	}
	got, err := s.ReadTail("/", "q", 100, 1<<20)
	if err != nil || len(got) != 6 {
		t.Fatalf("read tail: %+v %v", got, err)
	}
	for _, r := range got {
		if r.Transient != (r.ID%2 == 0) || !bytes.Equal(r.Data, msg("/", "q", r.ID).Data) {
			t.Fatalf("tail record %+v", r)
		}
	}
	if m, err := s.ReadMessage("/", "q", 2); err != nil || !m.Transient {
		t.Fatalf("read transient after ReadTail: %+v %v", m, err)
	}
}

func confTailInvalid(t *testing.T, s Store) {
	mustAppend(t, s, tailMsg("/", "q", 5))
	for _, recs := range [][]MessageRecord{
		{tailMsg("/", "q", 5)},
		{tailMsg("/", "q", 4)},
		{tailMsg("/", "q", 7), tailMsg("/", "q", 6)},
	} {
		if err := appendWait(t, s, recs...); !errors.Is(err, ErrInvalid) {
			t.Fatalf("tail append out of order %v: %v, want ErrInvalid", recs[len(recs)-1].ID, err)
		}
	}
	// Nor may a window record take an ID at or above the tail's lowest.
	for _, recs := range [][]MessageRecord{
		{msg("/", "q", 5)},
		{msg("/", "q", 9)},
		{msg("/", "q", 4), tailMsg("/", "q", 8), msg("/", "q", 8)},
	} {
		if err := appendWait(t, s, recs...); !errors.Is(err, ErrInvalid) {
			t.Fatalf("window append %v above the tail: %v, want ErrInvalid", recs[len(recs)-1].ID, err)
		}
	}
	mustAppend(t, s, msg("/", "q", 4))
	// A refused batch left nothing behind.
	mustAppend(t, s, tailMsg("/", "q", 6), tailMsg("/", "other", 1))
	if got := readTail(t, s, "/", "q", 100, 1<<20); !slices.Equal(got, []uint64{5, 6}) {
		t.Fatalf("tail %v", got)
	}
	if st := s.Stats(); st.LiveMessages != 4 || st.TailMessages != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// In one store life Recover hands out tail records too (rec.Tail set) and
// its answer moves nothing.
func confTailRecover(t *testing.T, s Store) {
	mustAppend(t, s, msg("/", "q", 1), tailMsg("/", "q", 2), tailMsg("/", "q", 3))
	var got []uint64
	err := s.Recover(func(rec MessageRecord, delivered bool) (bool, error) {
		if rec.Tail != (rec.ID >= 2) {
			t.Errorf("#%d tail=%v", rec.ID, rec.Tail)
		}
		got = append(got, rec.ID)
		return rec.ID == 1, nil
	}, nil)
	if err != nil || !slices.Equal(got, []uint64{1, 2, 3}) {
		t.Fatalf("recover: %v %v", got, err)
	}
	if _, err := s.ReadMessage("/", "q", 1); err != nil {
		t.Fatalf("window record after Recover: %v", err)
	}
	if got := readTail(t, s, "/", "q", 100, 1<<20); !slices.Equal(got, []uint64{2, 3}) {
		t.Fatalf("tail after Recover: %v", got)
	}
}
