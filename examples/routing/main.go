// Command routing lets subscribers choose which logs they get: the producer
// publishes to a direct exchange with the severity as routing key, and each
// subscriber binds its queue once per severity it wants. A message goes to
// every queue bound with exactly its key, and is dropped if there is none.
//
//	go run ./examples/routing receive_logs_direct warning error   # Ctrl-C to stop
//	go run ./examples/routing emit_log_direct error "Run. Run. Or it will explode."
//	go run ./examples/routing                                     # self-check, exits when done
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

const exchangeName = "direct_logs"

func main() {
	url := os.Getenv("AMQP_URL")
	if url == "" {
		url = "amqp://guest:guest@localhost:5672/"
	}
	var err error
	switch cmd := arg(1); cmd {
	case "", "selfcheck":
		err = selfCheck(url)
	case "emit_log_direct":
		severity, body := arg(2), strings.Join(os.Args[min(3, len(os.Args)):], " ")
		if severity == "" {
			severity = "info"
		}
		if body == "" {
			body = "Hello World!"
		}
		err = emitLog(url, severity, body)
	case "receive_logs_direct":
		if len(os.Args) < 3 {
			err = fmt.Errorf("usage: receive_logs_direct [info] [warning] [error]")
			break
		}
		err = receiveLogs(url, os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q; use emit_log_direct, receive_logs_direct, or no argument", cmd)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "routing:", err)
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
	return ch.ExchangeDeclare(name, amqp.ExchangeDirect, false, autoDelete, false, false, nil)
}

// subscribe binds a fresh exclusive, server-named queue once per severity.
func subscribe(ch *amqp.Channel, exchange string, severities []string) (<-chan amqp.Delivery, error) {
	q, err := ch.QueueDeclare("", false, false, true, false, nil)
	if err != nil {
		return nil, err
	}
	for _, s := range severities {
		if err := ch.QueueBind(q.Name, s, exchange, false, nil); err != nil {
			return nil, err
		}
	}
	return ch.Consume(q.Name, "", true, false, false, false, nil)
}

func publish(ch *amqp.Channel, exchange, severity, body string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return ch.PublishWithContext(ctx, exchange, severity, false, false, amqp.Publishing{
		ContentType: "text/plain",
		Body:        []byte(body),
	})
}

func emitLog(url, severity, body string) error {
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
	if err := publish(ch, exchangeName, severity, body); err != nil {
		return err
	}
	fmt.Printf(" [x] Sent %s: %q\n", severity, body)
	return nil
}

func receiveLogs(url string, severities []string) error {
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
	msgs, err := subscribe(ch, exchangeName, severities)
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

// collectUntil reads "key: body" lines until one with the body last arrives.
// The producer sends last after everything else and a queue keeps publish
// order, so anything wrongly routed to this queue shows up before it.
func collectUntil(msgs <-chan amqp.Delivery, last string, deadline <-chan time.Time) ([]string, error) {
	var got []string
	for {
		select {
		case d, ok := <-msgs:
			if !ok {
				return got, fmt.Errorf("consumer closed after %q", got)
			}
			got = append(got, d.RoutingKey+": "+string(d.Body))
			if string(d.Body) == last {
				return got, nil
			}
		case <-deadline:
			return got, fmt.Errorf("timed out after %q", got)
		}
	}
}

// selfCheck has one subscriber for errors only and one for everything but
// debug, sends one log per severity and checks who got what.
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

	subs := []struct {
		severities []string
		want       []string
	}{
		{[]string{"error"}, []string{"error: disk full"}},
		{[]string{"info", "warning", "error"}, []string{"info: starting", "warning: disk 91% full", "error: disk full"}},
	}
	var queues []<-chan amqp.Delivery
	for _, s := range subs {
		sch, err := conn.Channel()
		if err != nil {
			return err
		}
		msgs, err := subscribe(sch, exchange, s.severities)
		if err != nil {
			return err
		}
		queues = append(queues, msgs)
	}
	// No queue is bound with "debug", so that message is dropped. The error
	// goes last: every subscriber gets it, and it marks the end.
	logs := [][2]string{{"debug", "cache miss"}, {"info", "starting"}, {"warning", "disk 91% full"}, {"error", "disk full"}}
	for _, l := range logs {
		if err := publish(ch, exchange, l[0], l[1]); err != nil {
			return err
		}
	}
	deadline := time.After(10 * time.Second)
	for i, s := range subs {
		got, err := collectUntil(queues[i], "disk full", deadline)
		if err != nil {
			return fmt.Errorf("subscriber %v: %w", s.severities, err)
		}
		if !slices.Equal(got, s.want) {
			return fmt.Errorf("subscriber %v got %q, want %q", s.severities, got, s.want)
		}
		fmt.Printf(" [subscriber %v] %q\n", s.severities, got)
	}
	fmt.Println("routing: ok")
	return nil
}
