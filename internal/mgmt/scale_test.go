package mgmt

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warren-mq/warren/internal/broker"
	"github.com/warren-mq/warren/internal/testbroker"
)

// TestMgmtScaleLatency measures list latency with many queues and
// connections: WARREN_MGMT_SCALE=QUEUES,CONNECTIONS (e.g. 50000,5000) runs
// it; the figures are logged, never asserted.
//
//	WARREN_MGMT_SCALE=50000,5000 go test -run ScaleLatency -v -timeout 30m ./internal/mgmt/
func TestMgmtScaleLatency(t *testing.T) {
	spec := os.Getenv("WARREN_MGMT_SCALE")
	if spec == "" {
		t.Skip("WARREN_MGMT_SCALE not set")
	}
	var nq, nc int
	if _, err := fmt.Sscanf(spec, "%d,%d", &nq, &nc); err != nil {
		t.Fatalf("WARREN_MGMT_SCALE=%q: want QUEUES,CONNECTIONS", spec)
	}
	a := newAPI(t)
	v, _ := a.b.VHost("/")
	start := time.Now()
	for i := range nq {
		if _, _, _, err := v.DeclareQueue(broker.QueueDecl{Name: "scale-" + strconv.Itoa(i), Durable: true}); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("declared %d queues in %v", nq, time.Since(start).Round(time.Millisecond))
	start = time.Now()
	opened := 0
	for i := range nc {
		c, err := amqp.DialConfig(a.inst.URL, amqp.Config{Properties: amqp.Table{"connection_name": "scale-" + strconv.Itoa(i)}})
		if err != nil {
			t.Logf("stopped at %d connections: %v", i, err)
			break
		}
		defer c.Close()
		if _, err := c.Channel(); err != nil {
			t.Fatal(err)
		}
		opened++
	}
	t.Logf("opened %d connections (one channel each) in %v", opened, time.Since(start).Round(time.Millisecond))
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	t.Logf("heap in use (broker + clients + API, one process): %d MiB", ms.HeapInuse>>20)

	start = time.Now()
	a.s.rates.take(time.Now())
	t.Logf("rate sample of everything: %v", time.Since(start).Round(time.Millisecond))
	for _, path := range []string{"/api/overview", "/api/queues", "/api/queues?page=1&page_size=100",
		"/api/queues?page=500&page_size=100", "/api/queues?page=1&page_size=100&name=scale-4999&use_regex=false",
		"/api/queues?page=1&page_size=100&sort=messages&sort_reverse=true", "/api/queues?columns=name,messages",
		"/api/queues/%2F/scale-1", "/api/exchanges", "/api/bindings?page=1&page_size=100", "/api/connections",
		"/api/connections?page=1&page_size=100", "/api/channels", "/api/consumers", "/api/vhosts", "/api/nodes", "/api/definitions"} {
		var best time.Duration
		var size int
		for i := range 3 {
			start := time.Now()
			r := a.get(path)
			d := time.Since(start)
			if r.code != 200 {
				t.Fatalf("%s: %d %s", path, r.code, r.body)
			}
			if i == 0 || d < best {
				best = d
			}
			size = len(r.body)
		}
		t.Logf("GET %-70s %8v  %7d KiB", path, best.Round(time.Millisecond), size>>10)
	}
	runtime.ReadMemStats(&ms)
	t.Logf("heap in use after the lists: %d MiB", ms.HeapInuse>>20)
	testbroker.CheckFor(t, time.Second, func() bool { return true })
}
