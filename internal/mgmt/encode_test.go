package mgmt

import (
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/warren-mq/warren/internal/amqp091"
	"github.com/warren-mq/warren/internal/broker"
)

// TestMgmtEncodeMatchesEncodingJSON: appendJSON writes what json.Marshal does.
func TestMgmtEncodeMatchesEncodingJSON(t *testing.T) {
	a := newAPI(t)
	qi := broker.QueueInfo{Name: "q <&> \"x\" \u2028 é", VHost: "/", Args: amqp091.Table{"x-max-length": int64(5), "t": amqp091.Table{"n": 1.5}}}
	si := broker.SessionInfo{Name: "127.0.0.1:1 -> 127.0.0.1:2", ClientProperties: map[string]any{"k": []any{"a", int64(1), true, nil}}, ConnectedAt: time.Now()}
	values := []any{
		a.s.queueObj(&qi, true), a.s.connectionObj(&si), a.s.nodeObj(), vhostObj(a.s, mustVHost(t, a)),
		[]obj{{"a": 1}, {"b": []string{"x"}}}, []any{0.0, math.Copysign(0, -1), 1e-7, 1e21, 123456789.125, 2.5e-5, math.MaxFloat64, uint64(math.MaxUint64)},
		"\xff invalid", obj{"raw": json.RawMessage(`{"z":1,"a":[2]}`)}, obj(nil), []any{},
	}
	for _, v := range values {
		want, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		got, err := appendJSON(nil, v)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("appendJSON:\n%s\njson.Marshal:\n%s", got, want)
		}
	}
	if _, err := appendJSON(nil, math.NaN()); err == nil {
		t.Error("NaN encoded")
	}
}

func mustVHost(t *testing.T, a *api) *broker.VHost {
	v, ok := a.b.VHost("/")
	if !ok {
		t.Fatal("no vhost /")
	}
	return v
}
