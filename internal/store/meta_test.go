package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// commitMeta commits one record and waits for its done.
func commitMeta(s Store, rec []byte) error {
	ch := make(chan error, 1)
	s.CommitMeta(rec, func(err error) { ch <- err })
	return <-ch
}

func mustCommit(t *testing.T, s Store, recs ...[]byte) {
	t.Helper()
	for _, r := range recs {
		if err := commitMeta(s, r); err != nil {
			t.Fatal(err)
		}
	}
}

func sampleMeta() [][]byte {
	return [][]byte{[]byte("vhost v"), []byte("exchange x"), []byte("queue q"), {0, 1, 2, 0xff}, []byte("bind x q"), []byte("exchange y"), []byte("bind x y")}
}

// metaData returns the records' data; a legacy record reads as "legacy:" and its op.
func metaData(t *testing.T, s Store) [][]byte {
	t.Helper()
	recs, err := s.MetaLog()
	if err != nil {
		t.Fatal(err)
	}
	out := make([][]byte, len(recs))
	for i, r := range recs {
		if r.Legacy != nil {
			out[i] = fmt.Appendf(nil, "legacy:%d", r.Legacy.Op)
			continue
		}
		out[i] = r.Data
	}
	return out
}

func equalRecs(a, b [][]byte) bool {
	return slices.EqualFunc(a, b, func(x, y []byte) bool { return string(x) == string(y) })
}

func confMeta(t *testing.T, s Store) {
	mustCommit(t, s, sampleMeta()...)
	if got := metaData(t, s); !equalRecs(got, sampleMeta()) {
		t.Fatalf("meta log %q, want %q", got, sampleMeta())
	}
	if err := commitMeta(s, nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("empty record: %v", err)
	}
}

// confMetaOrder: concurrent commits run their done callbacks one at a time,
// in exactly the order of the log.
func confMetaOrder(t *testing.T, s Store) {
	var mu sync.Mutex
	var applied [][]byte
	running := 0
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				rec := fmt.Appendf(nil, "g%d-%d", g, i)
				ch := make(chan error, 1)
				s.CommitMeta(rec, func(err error) {
					mu.Lock()
					running++
					if running != 1 {
						t.Error("done callbacks overlap")
					}
					applied = append(applied, rec)
					running--
					mu.Unlock()
					ch <- err
				})
				if err := <-ch; err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if got := metaData(t, s); !equalRecs(got, applied) {
		t.Fatalf("log order differs from apply order (%d records, %d applied)", len(got), len(applied))
	}
}

func confMetaCompaction(t *testing.T, s Store) {
	var mu sync.Mutex
	var live [][]byte // what the "broker" holds: the last 10 records
	snapshots := 0
	s.SetMetaSnapshot(func() [][]byte {
		mu.Lock()
		defer mu.Unlock()
		snapshots++
		return slices.Clone(live)
	})
	for i := range 1000 {
		rec := fmt.Appendf(nil, "r%d", i)
		ch := make(chan error, 1)
		s.CommitMeta(rec, func(err error) {
			mu.Lock()
			live = append(live, rec)
			if len(live) > 10 {
				live = live[1:]
			}
			mu.Unlock()
			ch <- err
		})
		if err := <-ch; err != nil {
			t.Fatal(err)
		}
	}
	got := metaData(t, s)
	if snapshots == 0 || len(got) >= 600 {
		t.Fatalf("meta log not compacted: %d records, %d snapshots", len(got), snapshots)
	}
	// The log is the last snapshot followed by what came after it, in order.
	if last := string(got[len(got)-1]); last != "r999" {
		t.Fatalf("log ends with %q", last)
	}
}

func TestStoreMetaReopen(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{})
	mustCommit(t, s, sampleMeta()...)
	s.Close()
	s = openTest(t, dir, Options{})
	if got := metaData(t, s); !equalRecs(got, sampleMeta()) {
		t.Fatalf("after reopen %q", got)
	}
	if recs, _ := s.MetaLog(); recs[1].Where == "" || !strings.Contains(recs[1].Where, "meta.log at offset") {
		t.Fatalf("record position %q", recs[1].Where)
	}
}

// A data directory written by format 1 (the store's own commands) opens: its
// records come back as Legacy, and new records follow them.
func TestStoreMetaLegacyFormat(t *testing.T) {
	dir := t.TempDir()
	legacy := []MetaCommand{
		{Op: MetaDeclareVHost, VHost: "v"},
		{Op: MetaDeclareExchange, VHost: "v", Name: "x", Kind: "topic", Flags: 1, Args: []byte{0, 0, 0, 0}},
		{Op: MetaDeclareQueue, VHost: "v", Name: "q", Flags: 1},
		{Op: MetaBind, VHost: "v", Name: "x", Destination: "q", Key: "a.#"},
	}
	b := appendLogHeader(nil, metaMagic)
	for _, c := range legacy {
		var start int
		b, start = beginRecord(b, recMeta)
		b = appendMetaPayload(b, c)
		endRecord(b, start)
	}
	if err := os.WriteFile(filepath.Join(dir, "meta.log"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	s := openTest(t, dir, Options{})
	mustCommit(t, s, []byte("new"))
	recs, err := s.MetaLog()
	if err != nil || len(recs) != 5 {
		t.Fatalf("%d records, %v", len(recs), err)
	}
	for i, c := range legacy {
		if recs[i].Legacy == nil || string(appendMetaPayload(nil, *recs[i].Legacy)) != string(appendMetaPayload(nil, c)) {
			t.Fatalf("record %d: %+v", i, recs[i])
		}
	}
	if string(recs[4].Data) != "new" {
		t.Fatalf("new record %+v", recs[4])
	}
}

// A record whose CRC is valid but that is not a metadata record stops Open
// with an error naming the file and offset; it is not cut off as a torn tail.
func TestStoreMetaUndecodableRecordStopsOpen(t *testing.T) {
	for name, rec := range map[string]func([]byte) []byte{
		"unknown type": func(b []byte) []byte {
			b, start := beginRecord(b, 99)
			b = append(b, "x"...)
			endRecord(b, start)
			return b
		},
		"bad format 1 payload": func(b []byte) []byte {
			b, start := beginRecord(b, recMeta)
			b = append(b, 1, 0, 7) // to-exchange byte must be 0 or 1
			endRecord(b, start)
			return b
		},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			s := openTest(t, dir, Options{})
			mustCommit(t, s, []byte("first"))
			s.Close()
			path := filepath.Join(dir, "meta.log")
			b, _ := os.ReadFile(path)
			off := len(b)
			os.WriteFile(path, rec(b), 0o644)
			_, err := Open(dir, Options{Logger: quietLogger()})
			if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("meta.log at offset %d", off)) || !strings.Contains(err.Error(), "warren --help") {
				t.Fatalf("open: %v", err)
			}
			after, _ := os.ReadFile(path)
			if len(after) != len(rec(b[:off])) {
				t.Fatalf("meta.log changed: %d bytes, was %d", len(after), len(rec(b[:off])))
			}
		})
	}
}

// orderFS records which files are synced, in order.
type orderFS struct {
	osFS
	mu    sync.Mutex
	syncs []string
}

type orderFile struct {
	file
	fs   *orderFS
	name string
}

func (fs *orderFS) OpenFile(name string, flag int, perm os.FileMode) (file, error) {
	f, err := fs.osFS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return orderFile{f, fs, filepath.Base(name)}, nil
}

func (f orderFile) Sync() error {
	f.fs.mu.Lock()
	f.fs.syncs = append(f.fs.syncs, f.name)
	f.fs.mu.Unlock()
	return f.file.Sync()
}

// A queue deleted before a metadata commit has its acks made durable first,
// so that declaring it again can never bring its old messages back.
func TestStoreMetaSyncsQueueDeletesFirst(t *testing.T) {
	fs := &orderFS{}
	s := openTest(t, t.TempDir(), Options{fs: fs, Sync: SyncInterval, Interval: 1 << 40})
	mustAppend(t, s, msg("/", "q", 1), msg("/", "q", 2))
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	fs.mu.Lock()
	fs.syncs = nil
	fs.mu.Unlock()
	s.DeleteQueue("/", "q")
	mustCommit(t, s, []byte("declare q again"))
	fs.mu.Lock()
	defer fs.mu.Unlock()
	ack, meta := slices.Index(fs.syncs, "acks.log"), slices.Index(fs.syncs, "meta.log")
	if ack < 0 || meta < ack {
		t.Fatalf("syncs %v: the ack log must be synced before meta.log", fs.syncs)
	}
}
