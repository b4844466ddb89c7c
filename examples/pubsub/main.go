// Command pubsub broadcasts log messages to every subscriber: the producer
// publishes to a fanout exchange, which copies each message to all queues bound
// to it. Each subscriber declares its own exclusive, server-named queue, so it
// sees only messages published while it runs and its queue vanishes with it.
//
//	go run ./examples/pubsub receive_logs         # start one or more, Ctrl-C to stop
//	go run ./examples/pubsub emit_log "info: Hello World!"
//	go run ./examples/pubsub                      # two subscribers + producer in one process
//
// The broker is taken from AMQP_URL (default amqp://guest:guest@localhost:5672/).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

const exchangeName = "logs"

func main() {
	url := os.Getenv("AMQP_URL")
	if url == "" {
		url = "amqp://guest:guest@localhost:5672/"
	}
	var err error
	switch cmd := arg(1); cmd {
	case "", "selfcheck":
		err = selfCheck(url)
	case "emit_log":
		body := strings.Join(os.Args[2:], " ")
		if body == "" {
			body = "info: Hello World!"
		}
		err = emitLog(url, body)
	case "receive_logs":
		err = receiveLogs(url)
	default:
		err = fmt.Errorf("unknown command %q; use emit_log [message], receive_logs, or no argument", cmd)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "pubsub:", err)
		os.Exit(1)
	}
}

func arg(i int) string {
	if len(os.Args) > i {
		return os.Args[i]
	}
	return ""
}

func declareExchange(ch *amqp.Channel, name string, autoDelete bool) error {
	return ch.ExchangeDeclare(name, amqp.ExchangeFanout, false, autoDelete, false, false, nil)
}

// subscribe binds a fresh exclusive queue (name chosen by the broker) to the
// exchange and consumes from it. A fanout exchange ignores routing keys.
func subscribe(ch *amqp.Channel, exchange string) (<-chan amqp.Delivery, error) {
	q, err := ch.QueueDeclare("", false, false, true, false, nil)
	if err != nil {
		return nil, err
	}
	if err := ch.QueueBind(q.Name, "", exchange, false, nil); err != nil {
		return nil, err
	}
	return ch.Consume(q.Name, "", true, false, false, false, nil)
}

func publish(ch *amqp.Channel, exchange, body string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return ch.PublishWithContext(ctx, exchange, "", false, false, amqp.Publishing{
		ContentType: "text/plain",
		Body:        []byte(body),
	})
}

func emitLog(url, body string) error {
	conn, err := amqp.Dial(url)
	if err != nil {
		return err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	if err := declareExchange(ch, exchangeName, false); err != nil {
		return err
	}
	if err := publish(ch, exchangeName, body); err != nil {
		return err
	}
	fmt.Printf(" [x] Sent %q\n", body)
	return nil
}

func receiveLogs(url string) error {
	conn, err := amqp.Dial(url)
	if err != nil {
		return err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	if err := declareExchange(ch, exchangeName, false); err != nil {
		return err
	}
	msgs, err := subscribe(ch, exchangeName)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Println(" [*] Waiting for logs. To exit press CTRL+C")
	for {
		select {
		case d, ok := <-msgs:
			if !ok {
				return fmt.Errorf("consumer stopped: channel or connection closed")
			}
			fmt.Printf(" [x] %s\n", d.Body)
		case <-ctx.Done():
			return nil
		}
	}
}

// collect reads bodies until it has n of them or the deadline passes.
func collect(msgs <-chan amqp.Delivery, n int, deadline <-chan time.Time) ([]string, error) {
	var got []string
	for len(got) < n {
		select {
		case d, ok := <-msgs:
			if !ok {
				return got, fmt.Errorf("consumer closed after %d messages", len(got))
			}
			got = append(got, string(d.Body))
		case <-deadline:
			return got, fmt.Errorf("timed out after %d of %d messages", len(got), n)
		}
	}
	return got, nil
}

// selfCheck subscribes twice to a private fanout exchange, publishes three
// logs and fails unless both subscribers receive all of them, in order.
func selfCheck(url string) error {
	conn, err := amqp.Dial(url)
	if err != nil {
		return err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	exchange := fmt.Sprintf("%s.selfcheck.%d", exchangeName, time.Now().UnixNano())
	if err := declareExchange(ch, exchange, true); err != nil {
		return err
	}
	defer ch.ExchangeDelete(exchange, false, false)

	var subs []<-chan amqp.Delivery
	for range 2 {
		sch, err := conn.Channel() // one channel per consumer
		if err != nil {
			return err
		}
		msgs, err := subscribe(sch, exchange)
		if err != nil {
			return err
		}
		subs = append(subs, msgs)
	}
	// Binding is synchronous, so everything published from here on reaches both.
	want := []string{"info: starting", "warning: disk 91% full", "error: disk full"}
	for _, body := range want {
		if err := publish(ch, exchange, body); err != nil {
			return err
		}
	}
	deadline := time.After(10 * time.Second)
	for i, msgs := range subs {
		got, err := collect(msgs, len(want), deadline)
		if err != nil {
			return fmt.Errorf("subscriber %d: %w", i+1, err)
		}
		if !slices.Equal(got, want) {
			return fmt.Errorf("subscriber %d got %q, want %q", i+1, got, want)
		}
		fmt.Printf(" [subscriber %d] %q\n", i+1, got)
	}
	fmt.Println("pubsub: ok")
	return nil
}
