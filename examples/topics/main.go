// Command topics routes on patterns: routing keys are dot-separated words
// ("<speed>.<colour>.<species>") and a topic exchange matches them against
// binding patterns where "*" stands for exactly one word and "#" for zero or
// more. A message reaches each matching queue once, however many of that
// queue's bindings match.
//
//	go run ./examples/topics receive_logs_topic "*.orange.*"       # Ctrl-C to stop
//	go run ./examples/topics receive_logs_topic "*.*.rabbit" "lazy.#"
//	go run ./examples/topics emit_log_topic quick.orange.rabbit "A message"
//	go run ./examples/topics                                      # self-check, exits when done
//
// The broker is taken from AMQP_URL (default amqp://guest:guest@localhost:5672/).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

const exchangeName = "topic_logs"

func main() {
	url := os.Getenv("AMQP_URL")
	if url == "" {
		url = "amqp://guest:guest@localhost:5672/"
	}
	var err error
	switch cmd := arg(1); cmd {
	case "", "selfcheck":
		err = selfCheck(url)
	case "emit_log_topic":
		key, body := arg(2), strings.Join(os.Args[min(3, len(os.Args)):], " ")
		if key == "" {
			key = "anonymous.info"
		}
		if body == "" {
			body = "Hello World!"
		}
		err = emitLog(url, key, body)
	case "receive_logs_topic":
		if len(os.Args) < 3 {
			err = errors.New("usage: receive_logs_topic BINDING_PATTERN [BINDING_PATTERN ...]")
			break
		}
		err = receiveLogs(url, os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q; use emit_log_topic, receive_logs_topic, or no argument", cmd)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "topics:", err)
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
	return ch.ExchangeDeclare(name, amqp.ExchangeTopic, false, autoDelete, false, false, nil)
}

// subscribe binds a fresh exclusive, server-named queue once per pattern.
func subscribe(ch *amqp.Channel, exchange string, patterns []string) (<-chan amqp.Delivery, error) {
	q, err := ch.QueueDeclare("", false, false, true, false, nil)
	if err != nil {
		return nil, err
	}
	for _, p := range patterns {
		if err := ch.QueueBind(q.Name, p, exchange, false, nil); err != nil {
			return nil, err
		}
	}
	return ch.Consume(q.Name, "", true, false, false, false, nil)
}

func publish(ch *amqp.Channel, exchange, key, body string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return ch.PublishWithContext(ctx, exchange, key, false, false, amqp.Publishing{
		ContentType: "text/plain",
		Body:        []byte(body),
	})
}

func emitLog(url, key, body string) error {
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
	if err := publish(ch, exchangeName, key, body); err != nil {
		return err
	}
	fmt.Printf(" [x] Sent %s: %q\n", key, body)
	return nil
}

func receiveLogs(url string, patterns []string) error {
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
	msgs, err := subscribe(ch, exchangeName, patterns)
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
			fmt.Printf(" [x] %s: %s\n", d.RoutingKey, d.Body)
		case <-ctx.Done():
			return nil
		}
	}
}

// collectUntil reads routing keys until the key last arrives. The producer
// sends last after everything else and a queue keeps publish order, so any
// key wrongly routed to this queue shows up before it.
func collectUntil(msgs <-chan amqp.Delivery, last string, deadline <-chan time.Time) ([]string, error) {
	var got []string
	for {
		select {
		case d, ok := <-msgs:
			if !ok {
				return got, fmt.Errorf("consumer closed after %q", got)
			}
			got = append(got, d.RoutingKey)
			if d.RoutingKey == last {
				return got, nil
			}
		case <-deadline:
			return got, fmt.Errorf("timed out after %q", got)
		}
	}
}

// selfCheck sets up the two subscribers of the tutorial and sends keys that
// exercise each rule of topic matching.
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

	// Each key lists the subscribers (1, 2) it must reach. The last key
	// reaches both and marks the end of the run.
	keys := []struct{ key, to string }{
		{"lazy.orange.elephant", "12"},
		{"quick.orange.fox", "1"},
		{"lazy.brown.fox", "2"},
		{"lazy.pink.rabbit", "2"}, // matches both of subscriber 2's patterns: delivered once
		{"quick.brown.fox", ""},   // matches nothing: dropped
		{"orange", ""},            // "*" needs exactly one word on each side
		{"quick.orange.male.rabbit", ""},
		{"lazy.orange.male.rabbit", "2"},
		{"lazy", "2"}, // "#" also matches zero words
		{"quick.orange.rabbit", "12"},
	}
	subs := []struct {
		id       string
		patterns []string
	}{
		{"1", []string{"*.orange.*"}},
		{"2", []string{"*.*.rabbit", "lazy.#"}},
	}
	var queues []<-chan amqp.Delivery
	for _, s := range subs {
		sch, err := conn.Channel()
		if err != nil {
			return err
		}
		msgs, err := subscribe(sch, exchange, s.patterns)
		if err != nil {
			return err
		}
		queues = append(queues, msgs)
	}
	for _, k := range keys {
		if err := publish(ch, exchange, k.key, "log for "+k.key); err != nil {
			return err
		}
	}
	deadline := time.After(10 * time.Second)
	last := keys[len(keys)-1].key
	for i, s := range subs {
		var want []string
		for _, k := range keys {
			if strings.Contains(k.to, s.id) {
				want = append(want, k.key)
			}
		}
		got, err := collectUntil(queues[i], last, deadline)
		if err != nil {
			return fmt.Errorf("subscriber %v: %w", s.patterns, err)
		}
		if !slices.Equal(got, want) {
			return fmt.Errorf("subscriber %v got %q, want %q", s.patterns, got, want)
		}
		fmt.Printf(" [subscriber %v] %q\n", s.patterns, got)
	}
	fmt.Println("topics: ok")
	return nil
}
