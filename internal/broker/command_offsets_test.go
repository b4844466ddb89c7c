package broker

import (
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"testing"

	"github.com/warren-mq/warren/internal/store"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestOffsetsCommandRoundTrip(t *testing.T) {
	cmds := []command{
		&commitOffsetsCmd{VHost: "v", Group: "g", TimeMs: 1700000000123, Entries: offsetEntries{
			{Stream: "orders", Partition: 3, Offset: 42, LeaderEpoch: -1, Metadata: "m"},
			{Stream: "orders", Partition: 0, Offset: 0},
		}},
		&deleteOffsetsCmd{VHost: "v", Group: "g", Partitions: offsetEntries{{Stream: "orders", Partition: 3}}},
		&deleteOffsetsCmd{VHost: "v", Group: "g", All: true},
	}
	for _, c := range cmds {
		got, err := decodeCommand(encodeCommand(c))
		if err != nil || !reflect.DeepEqual(got, c) {
			t.Fatalf("round trip %+v: %+v %v", c, got, err)
		}
	}
	// A field a newer Warren adds to an entry: odd skipped, even refused.
	entry := func(extraTag uint64) []byte {
		e := offsetEntry{Stream: "s", Offset: 7}
		b := appendFields(nil, e.fields(), nil)
		b = binary.AppendUvarint(b, extraTag)
		return append(binary.AppendUvarint(b, 1), 'x')
	}
	rec := func(extraTag uint64) []byte {
		b := encodeCommand(&commitOffsetsCmd{VHost: "v", Group: "g"})
		e := entry(extraTag)
		b = binary.AppendUvarint(b, 8)
		b = binary.AppendUvarint(b, uint64(len(e)))
		return append(b, e...)
	}
	got, err := decodeCommand(rec(11))
	if err != nil || got.(*commitOffsetsCmd).Entries[0].Offset != 7 {
		t.Fatalf("optional entry field: %+v %v", got, err)
	}
	if _, err := decodeCommand(rec(12)); err == nil {
		t.Fatal("unknown required entry field decoded")
	}
}

func newOffsetsBroker(t *testing.T, st store.Store) *Broker {
	t.Helper()
	b, err := New(Config{Store: st, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestOffsetsCommitQueryDelete(t *testing.T) {
	b := newOffsetsBroker(t, nil)
	defer b.Close()
	if got := b.CommittedOffsets("/", "g"); len(got) != 0 {
		t.Fatalf("unknown group: %v", got)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(b.CommitOffsets("/", "g", []CommittedOffset{
		{StreamPartition: StreamPartition{"t", 1}, Offset: 10, LeaderEpoch: 2, Metadata: "a"},
		{StreamPartition: StreamPartition{"t", 0}, Offset: 5, LeaderEpoch: -1},
	}))
	must(b.CommitOffsets("/", "g", []CommittedOffset{{StreamPartition: StreamPartition{"t", 0}, Offset: 6, LeaderEpoch: -1}}))
	must(b.CommitOffsets("/", "h", []CommittedOffset{{StreamPartition: StreamPartition{"u", 0}, Offset: 1}}))
	got := b.CommittedOffsets("/", "g")
	if len(got) != 2 || got[0].Partition != 0 || got[0].Offset != 6 || got[1].Offset != 10 || got[1].Metadata != "a" || got[1].LeaderEpoch != 2 || got[0].CommitTime.IsZero() {
		t.Fatalf("committed: %+v", got)
	}
	if o, ok := b.CommittedOffset("/", "g", StreamPartition{"t", 1}); !ok || o.Offset != 10 {
		t.Fatalf("one: %+v %v", o, ok)
	}
	if g := b.OffsetGroups("/"); !reflect.DeepEqual(g, []string{"g", "h"}) {
		t.Fatalf("groups: %v", g)
	}
	must(b.DeleteOffsets("/", "g", []StreamPartition{{"t", 1}}))
	if got := b.CommittedOffsets("/", "g"); len(got) != 1 || got[0].Partition != 0 {
		t.Fatalf("after OffsetDelete: %+v", got)
	}
	must(b.DeleteOffsetGroup("/", "g"))
	if g := b.OffsetGroups("/"); !reflect.DeepEqual(g, []string{"h"}) {
		t.Fatalf("groups after delete: %v", g)
	}
	if err := b.CommitOffsets("nope", "g", nil); err == nil {
		t.Fatal("commit in a missing vhost")
	}
}

func TestOffsetsGoneWithVHost(t *testing.T) {
	b := newOffsetsBroker(t, nil)
	defer b.Close()
	if _, err := b.PutVHost("v1", VHostInfo{}); err != nil {
		t.Fatal(err)
	}
	if err := b.CommitOffsets("v1", "g", []CommittedOffset{{StreamPartition: StreamPartition{"t", 0}, Offset: 3}}); err != nil {
		t.Fatal(err)
	}
	if err := b.DeleteVHost("v1"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.PutVHost("v1", VHostInfo{}); err != nil {
		t.Fatal(err)
	}
	if g := b.OffsetGroups("v1"); len(g) != 0 {
		t.Fatalf("groups of a recreated vhost: %v", g)
	}
}

// Offsets survive a restart on the same data directory, also after the
// metadata log was compacted to the snapshot many times over.
func TestOffsetsSurviveRestartAndCompaction(t *testing.T) {
	dir := t.TempDir()
	open := func() *Broker {
		st, err := store.Open(dir, store.Options{Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		return newOffsetsBroker(t, st)
	}
	b := open()
	const commits = 1200 // several compactions (the log compacts past 256 records)
	for i := range commits {
		err := b.CommitOffsets("/", fmt.Sprintf("g%d", i%3), []CommittedOffset{
			{StreamPartition: StreamPartition{"t", int32(i % 4)}, Offset: int64(i), LeaderEpoch: int32(i % 5), Metadata: fmt.Sprint("m", i)},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := b.DeleteOffsets("/", "g0", []StreamPartition{{"t", 0}}); err != nil {
		t.Fatal(err)
	}
	want := map[string][]CommittedOffset{}
	for _, g := range b.OffsetGroups("/") {
		want[g] = b.CommittedOffsets("/", g)
	}
	if len(want) != 3 || len(want["g0"]) != 3 || len(want["g1"]) != 4 {
		t.Fatalf("before restart: %+v", want)
	}
	b.Close()
	b = open()
	defer b.Close()
	for g, w := range want {
		got := b.CommittedOffsets("/", g)
		for i := range got { // times are kept to the millisecond
			if !got[i].CommitTime.Equal(w[i].CommitTime.Truncate(1e6)) {
				t.Fatalf("group %s: commit time %v, want %v", g, got[i].CommitTime, w[i].CommitTime)
			}
			got[i].CommitTime = w[i].CommitTime
		}
		if !reflect.DeepEqual(got, w) {
			t.Fatalf("group %s after restart:\n%+v\nwant\n%+v", g, got, w)
		}
	}
}

func TestOffsetsGroupsView(t *testing.T) {
	b := newOffsetsBroker(t, nil)
	defer b.Close()
	if err := b.CommitOffsets("/", "idle", []CommittedOffset{{StreamPartition: StreamPartition{"t", 0}, Offset: 1}}); err != nil {
		t.Fatal(err)
	}
	unregister := b.RegisterGroupSource(func(vhost string) []GroupInfo {
		if vhost != "/" {
			return nil
		}
		return []GroupInfo{{VHost: "/", Name: "live", State: "Stable", ProtocolType: "consumer", Protocol: "range", Generation: 3,
			Members: []GroupMemberInfo{{ID: "m-1", ClientID: "c", Assignment: []StreamPartition{{"t", 0}}}}}}
	})
	got := b.Groups("/")
	if len(got) != 2 || got[0].Name != "idle" || got[0].State != "Empty" || got[1].Name != "live" || len(got[1].Members) != 1 {
		t.Fatalf("groups: %+v", got)
	}
	unregister()
	if got := b.Groups("/"); len(got) != 1 {
		t.Fatalf("after unregister: %+v", got)
	}
}
