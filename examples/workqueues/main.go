// Command workqueues distributes time-consuming tasks among several workers.
// Each task is a text whose dots say how many seconds of "work" it takes.
// Tasks are persistent messages on a durable queue, workers ack each task only
// when done (a crashed worker's task goes to another worker), and prefetch 1
// makes the broker hand a new task only to a worker that has finished its last
// one, instead of strictly alternating.
//
//	go run ./examples/workqueues worker            # start one or more, Ctrl-C to stop
//	go run ./examples/workqueues new_task "A task..."
//	go run ./examples/workqueues                   # two workers + producer in one process
//
// The broker is taken from AMQP_URL (default amqp://guest:guest@localhost:5672/).
package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

const queueName = "task_queue"

func main() {
	url := os.Getenv("AMQP_URL")
	if url == "" {
		url = "amqp://guest:guest@localhost:5672/"
	}
	var err error
	switch cmd := arg(1); cmd {
	case "", "selfcheck":
		err = selfCheck(url)
	case "new_task":
		body := strings.Join(os.Args[2:], " ")
		if body == "" {
			body = "Hello..."
		}
		err = newTask(url, body)
	case "worker":
		err = runWorker(url)
	default:
		err = fmt.Errorf("unknown command %q; use new_task [message], worker, or no argument", cmd)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "workqueues:", err)
		os.Exit(1)
	}
}

func arg(i int) string {
	if len(os.Args) > i {
		return os.Args[i]
	}
	return ""
}

// declare makes the queue durable so that tasks (sent persistent) survive a
// broker restart. autoDelete is only used by the self-check's private queue.
func declare(ch *amqp.Channel, name string, autoDelete bool) error {
	_, err := ch.QueueDeclare(name, true, autoDelete, false, false, nil)
	return err
}

func publish(ch *amqp.Channel, queue, body string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return ch.PublishWithContext(ctx, "", queue, false, false, amqp.Publishing{
		DeliveryMode: amqp.Persistent,
		ContentType:  "text/plain",
		Body:         []byte(body),
	})
}

func newTask(url, body string) error {
	conn, err := amqp.Dial(url)
	if err != nil {
		return err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	if err := declare(ch, queueName, false); err != nil {
		return err
	}
	if err := publish(ch, queueName, body); err != nil {
		return err
	}
	fmt.Printf(" [x] Sent %q\n", body)
	return nil
}

// consume starts a worker on its own channel: prefetch 1, manual acks.
func consume(conn *amqp.Connection, queue string) (<-chan amqp.Delivery, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, err
	}
	if err := ch.Qos(1, 0, false); err != nil {
		return nil, err
	}
	return ch.Consume(queue, "", false, false, false, false, nil)
}

// work processes deliveries until ctx ends, acking each only after the work
// is done; done, if set, is told about each finished task.
func work(ctx context.Context, name string, msgs <-chan amqp.Delivery, perDot time.Duration, done func(string)) {
	for {
		select {
		case d, ok := <-msgs:
			if !ok {
				return
			}
			fmt.Printf(" [%s] Received %q\n", name, d.Body)
			time.Sleep(time.Duration(bytes.Count(d.Body, []byte("."))) * perDot) // simulated work
			if err := d.Ack(false); err != nil {
				fmt.Fprintf(os.Stderr, " [%s] ack: %v\n", name, err)
				return
			}
			if done != nil {
				done(string(d.Body))
			}
		case <-ctx.Done():
			return
		}
	}
}

func runWorker(url string) error {
	conn, err := amqp.Dial(url)
	if err != nil {
		return err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	if err := declare(ch, queueName, false); err != nil {
		return err
	}
	msgs, err := consume(conn, queueName)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Println(" [*] Waiting for tasks. To exit press CTRL+C")
	work(ctx, "worker", msgs, time.Second, nil)
	return nil
}

// selfCheck starts two workers and sends ten tasks to a private queue; it
// fails unless every task is done exactly once within the timeout.
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
	queue := fmt.Sprintf("%s.selfcheck.%d", queueName, time.Now().UnixNano())
	if err := declare(ch, queue, true); err != nil {
		return err
	}
	defer ch.QueueDelete(queue, false, false, false)

	const tasks = 10
	var (
		mu       sync.Mutex
		doneBy   = map[string][]string{}
		total    int
		finished = make(chan struct{})
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for _, name := range []string{"w1", "w2"} {
		msgs, err := consume(conn, queue)
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			work(ctx, name, msgs, time.Millisecond, func(body string) {
				mu.Lock()
				defer mu.Unlock()
				doneBy[name] = append(doneBy[name], body)
				if total++; total == tasks {
					close(finished)
				}
			})
		}()
	}
	for i := range tasks {
		if err := publish(ch, queue, fmt.Sprintf("task %d%s", i, strings.Repeat(".", i%3))); err != nil {
			return err
		}
	}
	select {
	case <-finished:
	case <-time.After(10 * time.Second):
		mu.Lock()
		defer mu.Unlock()
		return fmt.Errorf("timed out: %d of %d tasks done", total, tasks)
	}
	cancel()
	wg.Wait()

	seen := map[string]int{}
	for _, bodies := range doneBy {
		for _, b := range bodies {
			seen[b]++
		}
	}
	if len(seen) != tasks {
		return fmt.Errorf("%d distinct tasks done, want %d: %v", len(seen), tasks, doneBy)
	}
	fmt.Printf("workqueues: ok, %d tasks each done once (w1: %d, w2: %d)\n",
		tasks, len(doneBy["w1"]), len(doneBy["w2"]))
	return nil
}
