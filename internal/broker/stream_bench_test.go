package broker

import (
	"log/slog"
	"sync"
	"testing"

	"github.com/warren-mq/warren/internal/amqp091"
)

// BenchmarkStreamPublish publishes 100-byte messages into a stream through
// the default exchange, as many in flight as a confirm window of 500 allows.
func BenchmarkStreamPublish(b *testing.B) {
	br, err := New(Config{StreamDir: b.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer br.Close()
	v, _ := br.VHost("/")
	if _, err := v.DeclareStream("bench", nil); err != nil {
		b.Fatal(err)
	}
	e, _ := v.Exchange("")
	p := amqp091.Properties{DeliveryMode: 2, ContentType: "text/plain"}
	props := p.Append(nil)
	body := make([]byte, 100)
	var r Router
	window := make(chan struct{}, 500)
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		window <- struct{}{}
		wg.Add(1)
		m, _ := NewMessage("", "bench", props, body)
		v.Publish(&r, e, m, func(bool) { <-window; wg.Done() })
	}
	wg.Wait()
}
