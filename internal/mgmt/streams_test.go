package mgmt

import (
	"encoding/json"
	"net/http"
	"os"
	"slices"
	"testing"

	"github.com/warren-mq/warren/internal/broker"
	"github.com/warren-mq/warren/internal/recordbatch"
	"github.com/warren-mq/warren/internal/streamlog"
)

// appendRecords writes n records to the stream's log and waits until they are durable.
func appendRecords(t *testing.T, st *broker.Stream, n int) {
	t.Helper()
	recs := make([]recordbatch.Record, n)
	for i := range recs {
		recs[i] = recordbatch.Record{TimestampMs: 1, Value: []byte("v")}
	}
	done := make(chan error, 1)
	st.Log().Append(recordbatch.Build(recs, recordbatch.BuildOptions{}), func(_ streamlog.AppendResult, err error) { done <- err })
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestMgmtStreamInQueues(t *testing.T) {
	a := newAPI(t)
	v, _ := a.b.VHost("/")
	st, err := v.DeclareStream("events", nil)
	if err != nil {
		t.Fatal(err)
	}
	appendRecords(t, st, 3)
	if _, err := v.Declare(broker.QueueDecl{Name: "a-classic"}); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Declare(broker.QueueDecl{Name: "z-classic"}); err != nil {
		t.Fatal(err)
	}

	list := a.get("/api/queues/%2F").list(t)
	var names []string
	for _, q := range list {
		names = append(names, q.(map[string]any)["name"].(string))
	}
	if !slices.Equal(names, []string{"a-classic", "events", "z-classic"}) {
		t.Fatalf("queues %v", names)
	}
	got := list[1].(map[string]any)
	if got["type"] != "stream" || got["messages"] != 3.0 || got["messages_ready"] != 3.0 || got["messages_unacknowledged"] != 0.0 ||
		got["next_offset"] != 3.0 || got["first_offset"] != 0.0 {
		t.Errorf("stream in the list: %v", got)
	}

	// The single object has every field RabbitMQ 3.10's has.
	one := a.get("/api/queues/%2F/events").obj(t)
	raw, err := os.ReadFile("testdata/rabbitmq-3.10-stream-queue.json")
	if err != nil {
		t.Fatal(err)
	}
	var want map[string]any
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	for k, wv := range want {
		gv, ok := one[k]
		if !ok {
			t.Errorf("field %q missing", k)
			continue
		}
		if _, isObj := wv.(map[string]any); isObj {
			if _, ok := gv.(map[string]any); !ok {
				t.Errorf("field %q is %T, RabbitMQ's an object", k, gv)
			}
		}
	}
	if one["arguments"].(map[string]any)["x-queue-type"] != "stream" || one["durable"] != true {
		t.Errorf("stream object %v", one)
	}
	ov := a.get("/api/overview").obj(t)
	if qt := ov["queue_totals"].(map[string]any); qt["messages"] != 3.0 {
		t.Errorf("overview totals %v", qt)
	}
	if ot := ov["object_totals"].(map[string]any); ot["queues"] != 3.0 {
		t.Errorf("object totals %v", ot)
	}

	if bs := a.get("/api/queues/%2F/events/bindings").list(t); len(bs) != 1 || bs[0].(map[string]any)["source"] != "" {
		t.Errorf("stream bindings %v", bs)
	}
	if r := a.do(http.MethodDelete, "/api/queues/%2F/events", "", "", ""); r.code != http.StatusNoContent {
		t.Fatalf("delete: %d %s", r.code, r.body)
	}
	if _, ok := v.Stream("events"); ok {
		t.Error("stream not deleted")
	}
	if r := a.do(http.MethodGet, "/api/queues/%2F/events", "", "", ""); r.code != http.StatusNotFound {
		t.Errorf("deleted stream: %d", r.code)
	}
}
