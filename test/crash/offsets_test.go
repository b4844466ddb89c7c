package crash

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
)

// TestOffsetsSurviveCrash commits offsets for several groups through the
// Kafka listener — more commits than the metadata log holds before it is
// compacted to the snapshot — and checks that every group's last commit,
// with its leader epoch and metadata, comes back after SIGTERM and after
// kill -9; a deleted group stays deleted.
func TestOffsetsSurviveCrash(t *testing.T) {
	w := newKafkaWarren(t, "OffsetCommit", "OffsetFetch", "DeleteGroups")
	defer w.checkLogs()
	const topic = "offsets-crash"
	w.createTopic(topic, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	adm := kadm.NewClient(w.client())
	const groups, commits = 3, 300
	for i := range commits {
		offs := kadm.Offsets{}
		offs.Add(kadm.Offset{Topic: topic, Partition: 0, At: int64(i), LeaderEpoch: int32(i % 7), Metadata: fmt.Sprint("m", i)})
		resp, err := adm.CommitOffsets(ctx, fmt.Sprint("g", i%groups), offs)
		if err == nil {
			err = resp.Error()
		}
		if err != nil {
			t.Fatalf("commit %d: %v", i, err)
		}
	}
	offs := kadm.Offsets{}
	offs.Add(kadm.Offset{Topic: topic, Partition: 0, At: 9, LeaderEpoch: -1})
	if _, err := adm.CommitOffsets(ctx, "doomed", offs); err != nil {
		t.Fatal(err)
	}
	if resp, err := adm.DeleteGroups(ctx, "doomed"); err != nil || resp.Error() != nil {
		t.Fatalf("delete group: %v %v", err, resp.Error())
	}
	check := func(how string) {
		t.Helper()
		adm := kadm.NewClient(w.client())
		for g := range groups {
			last := commits - groups + g // the last i with i%groups == g
			var o kadm.OffsetResponse
			pollUntil(t, 30*time.Second, func() error {
				fo, err := adm.FetchOffsets(ctx, fmt.Sprint("g", g))
				if err != nil {
					return err
				}
				o, _ = fo.Lookup(topic, 0)
				return o.Err
			})
			if o.At != int64(last) || o.LeaderEpoch != int32(last%7) || o.Metadata != fmt.Sprint("m", last) {
				t.Fatalf("after %s: group g%d has %+v, want offset %d", how, g, o.Offset, last)
			}
		}
		fo, err := adm.FetchOffsets(ctx, "doomed")
		if err != nil {
			t.Fatal(err)
		}
		if o, ok := fo.Lookup(topic, 0); ok && o.At != -1 {
			t.Fatalf("after %s: the deleted group has %+v", how, o.Offset)
		}
	}
	w.stop()
	w.start()
	check("SIGTERM")
	w.kill()
	w.start()
	check("kill -9")
}
