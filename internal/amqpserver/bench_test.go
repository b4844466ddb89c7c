package amqpserver

import (
	"sync"
	"testing"

	"github.com/warren-mq/warren/internal/amqp091"
	"github.com/warren-mq/warren/internal/broker"
)

// BenchmarkServerTransientRoundTrip measures the whole transient path over
// loopback TCP — frames read and decoded, routed, queued, delivered, encoded
// and written — with raw clients that allocate nothing, so allocs/op is the
// broker's own per message (16-byte bodies, no-ack consumer).
func BenchmarkServerTransientRoundTrip(b *testing.B) {
	_, _, addr := startServer(b, broker.Config{}, "")
	cons := dialRaw(b, addr, 0)
	defer cons.nc.Close()
	cons.send(1, &amqp091.QueueDeclare{Queue: "bench", AutoDelete: true})
	cons.expect("queue.declare-ok")
	cons.send(1, &amqp091.BasicConsume{Queue: "bench", NoAck: true})
	cons.expect("basic.consume-ok")
	pub := dialRaw(b, addr, 0)
	defer pub.nc.Close()

	var msg []byte
	msg = amqp091.AppendMethodFrame(msg, 1, &amqp091.BasicPublish{RoutingKey: "bench"})
	msg = amqp091.AppendHeaderFrame(msg, 1, 60, 16, []byte{0, 0})
	msg = amqp091.AppendBodyFrames(msg, 1, make([]byte, 16), 131072)
	const batch = 256
	buf := make([]byte, 0, batch*len(msg))
	for i := 0; i < batch; i++ {
		buf = append(buf, msg...)
	}

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for got := 0; got < b.N; {
			f, err := cons.fr.ReadFrame()
			if err != nil {
				b.Error(err)
				return
			}
			if f.Type == amqp091.FrameBody {
				got++
			}
		}
	}()
	b.ReportAllocs()
	b.ResetTimer()
	for sent := 0; sent < b.N; sent += batch {
		n := min(batch, b.N-sent)
		if _, err := pub.nc.Write(buf[:n*len(msg)]); err != nil {
			b.Fatal(err)
		}
	}
	wg.Wait()
}
