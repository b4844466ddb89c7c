// Command hello is the smallest AMQP program: one producer sends a message to a
// named queue through the default exchange, one consumer prints it.
//
//	go run ./examples/hello send "Hello World!"   # producer
//	go run ./examples/hello receive               # consumer, Ctrl-C to stop
//	go run ./examples/hello                       # both in one process, exits when done
//
// The broker is taken from AMQP_URL (default amqp://guest:guest@localhost:5672/).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

const queueName = "hello"

func main() {
	url := os.Getenv("AMQP_URL")
	if url == "" {
		url = "amqp://guest:guest@localhost:5672/"
	}
	var err error
	switch cmd := arg(1); cmd {
	case "", "selfcheck":
		err = selfCheck(url)
	case "send":
		body := strings.Join(os.Args[2:], " ")
		if body == "" {
			body = "Hello World!"
		}
		err = send(url, queueName, body)
	case "receive":
		err = receive(url, queueName)
	default:
		err = fmt.Errorf("unknown command %q; use send [message], receive, or no argument", cmd)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "hello:", err)
		os.Exit(1)
	}
}

func arg(i int) string {
	if len(os.Args) > i {
		return os.Args[i]
	}
	return ""
}

// declare makes sure the queue exists. Producer and consumer both declare it,
// because either may start first and declaring is idempotent.
func declare(ch *amqp.Channel, name string, autoDelete bool) error {
	_, err := ch.QueueDeclare(name, false, autoDelete, false, false, nil)
	return err
}

func send(url, queue, body string) error {
	conn, err := amqp.Dial(url)
	if err != nil {
		return err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	if err := declare(ch, queue, false); err != nil {
		return err
	}
	return publish(ch, queue, body)
}

func publish(ch *amqp.Channel, queue, body string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// The default exchange ("") routes to the queue whose name is the routing key.
	err := ch.PublishWithContext(ctx, "", queue, false, false, amqp.Publishing{
		ContentType: "text/plain",
		Body:        []byte(body),
	})
	if err == nil {
		fmt.Printf(" [x] Sent %q\n", body)
	}
	return err
}

func receive(url, queue string) error {
	conn, err := amqp.Dial(url)
	if err != nil {
		return err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	if err := declare(ch, queue, false); err != nil {
		return err
	}
	msgs, err := ch.Consume(queue, "", true, false, false, false, nil)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Println(" [*] Waiting for messages. To exit press CTRL+C")
	for {
		select {
		case d, ok := <-msgs:
			if !ok {
				return fmt.Errorf("consumer stopped: channel or connection closed")
			}
			fmt.Printf(" [x] Received %q\n", d.Body)
		case <-ctx.Done():
			return nil
		}
	}
}

// selfCheck runs consumer and producer in one process on a private queue, so a
// CI job can check a broker unattended: it fails unless the message arrives
// unchanged within the timeout.
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
	// A name of our own keeps concurrent runs apart; auto-delete removes the
	// queue once our consumer goes away.
	queue := fmt.Sprintf("%s.selfcheck.%d", queueName, time.Now().UnixNano())
	if err := declare(ch, queue, true); err != nil {
		return err
	}
	msgs, err := ch.Consume(queue, "", true, false, false, false, nil)
	if err != nil {
		return err
	}
	const want = "Hello World!"
	if err := publish(ch, queue, want); err != nil {
		return err
	}
	select {
	case d, ok := <-msgs:
		if !ok {
			return fmt.Errorf("consumer closed before the message arrived")
		}
		if string(d.Body) != want || d.ContentType != "text/plain" {
			return fmt.Errorf("got body %q type %q, want %q text/plain", d.Body, d.ContentType, want)
		}
		fmt.Printf(" [x] Received %q\nhello: ok\n", d.Body)
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("timed out waiting for the message")
	}
}
