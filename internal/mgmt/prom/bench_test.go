package prom_test

import (
	"fmt"
	"io"
	"net/http/httptest"
	"testing"

	"github.com/warren-mq/warren/internal/broker"
	"github.com/warren-mq/warren/internal/mgmt/prom"
)

// BenchmarkPromScrape10kQueues: one scrape of a broker with 10,000 queues,
// summed (/metrics) and per queue (/metrics/per-object).
func BenchmarkPromScrape10kQueues(b *testing.B) {
	br, err := broker.New(broker.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer br.Close()
	v, _ := br.VHost("/")
	for i := range 10000 {
		if _, _, _, err := v.DeclareQueue(broker.QueueDecl{Name: fmt.Sprintf("q-%05d", i)}); err != nil {
			b.Fatal(err)
		}
	}
	h := prom.New(prom.Config{Broker: br, Node: "warren@bench"})
	for _, path := range []string{"/metrics", "/metrics/per-object"} {
		b.Run(path, func(b *testing.B) {
			var size int
			for b.Loop() {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
				size = w.Body.Len()
				_, _ = io.Discard.Write(w.Body.Bytes())
			}
			b.ReportMetric(float64(size), "bytes/scrape")
		})
	}
}
