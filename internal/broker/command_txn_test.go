package broker

import (
	"log/slog"
	"reflect"
	"testing"

	"github.com/warren-mq/warren/internal/store"
)

func sampleTxnRecord() TxnRecord {
	return TxnRecord{VHost: "/", TransactionalID: "tx-1", ProducerID: 7, ProducerEpoch: 3, LastProducerEpoch: 2,
		TimeoutMs: 60000, State: "PrepareCommit", StartMs: 1700000000000, UpdatedMs: 1700000000500,
		Partitions: []TxnPartition{{Topic: "a b", Partition: 0}, {Topic: "out", Partition: 11}},
		Groups:     []string{"g"},
		Offsets:    []TxnOffset{{Group: "g", Topic: "in", Partition: 2, Offset: 42, LeaderEpoch: -1, Metadata: "m"}}}
}

func TestTxnCommandRoundTrip(t *testing.T) {
	for _, c := range []command{&reserveProducerIDsCmd{Next: 5000}, newPutTxnCmd(sampleTxnRecord()), &deleteTxnCmd{VHost: "/", ID: "tx"}} {
		got, err := decodeCommand(encodeCommand(c))
		if err != nil || !reflect.DeepEqual(got, c) {
			t.Fatalf("%T: %+v %v, want %+v", c, got, err, c)
		}
	}
	r, err := newPutTxnCmd(sampleTxnRecord()).record()
	if err != nil || !reflect.DeepEqual(r, sampleTxnRecord()) {
		t.Fatalf("record %+v %v", r, err)
	}
}

// Producer ids never repeat across restarts (a reserved block is skipped,
// not reused), and transactional ids keep their state, also through the
// snapshot the log is compacted to.
func TestTxnStateSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	open := func() *Broker {
		st, err := store.Open(dir, store.Options{Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		b, err := New(Config{Store: st, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	b := open()
	first, err := b.ReserveProducerIDs(100)
	if err != nil || first != 0 {
		t.Fatalf("first block %d %v", first, err)
	}
	if next, _ := b.ReserveProducerIDs(100); next != 100 {
		t.Fatalf("second block at %d", next)
	}
	if err := b.PutTxn(sampleTxnRecord()); err != nil {
		t.Fatal(err)
	}
	gone := sampleTxnRecord()
	gone.TransactionalID = "gone"
	if err := b.PutTxn(gone); err != nil {
		t.Fatal(err)
	}
	if err := b.DeleteTxn("/", "gone"); err != nil {
		t.Fatal(err)
	}
	snap := b.snapshot()
	_ = b.Close()

	b = open()
	if next, _ := b.ReserveProducerIDs(10); next != 200 {
		t.Fatalf("after restart the next block starts at %d, want 200", next)
	}
	if got := b.Txns("/"); !reflect.DeepEqual(got, []TxnRecord{sampleTxnRecord()}) {
		t.Fatalf("after restart %+v", got)
	}
	_ = b.Close()

	mem := store.NewMemory()
	for _, rec := range snap {
		mem.CommitMeta(rec, func(error) {})
	}
	b2, err := New(Config{Store: mem})
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	if next, _ := b2.ReserveProducerIDs(1); next != 200 {
		t.Fatalf("from the snapshot the next block starts at %d", next)
	}
	if got := b2.Txns("/"); !reflect.DeepEqual(got, []TxnRecord{sampleTxnRecord()}) {
		t.Fatalf("from the snapshot %+v", got)
	}
}
