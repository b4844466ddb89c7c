// Command rpc does request/reply over a broker: clients put requests on the
// server's queue, naming their own exclusive callback queue in reply_to and
// tagging each request with a correlation_id; the server publishes the answer
// to that queue with the same correlation_id, so one client can have many
// calls in flight and match each reply to its call. The "service" computes
// Fibonacci numbers.
//
//	go run ./examples/rpc rpc_server          # Ctrl-C to stop
//	go run ./examples/rpc rpc_client 30
//	go run ./examples/rpc                     # server + concurrent calls in one process
//
// The broker is taken from AMQP_URL (default amqp://guest:guest@localhost:5672/).
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

const queueName = "rpc_queue"

func main() {
	url := os.Getenv("AMQP_URL")
	if url == "" {
		url = "amqp://guest:guest@localhost:5672/"
	}
	var err error
	switch cmd := arg(1); cmd {
	case "", "selfcheck":
		err = selfCheck(url)
	case "rpc_server":
		err = runServer(url)
	case "rpc_client":
		n := 30
		if s := arg(2); s != "" {
			if n, err = strconv.Atoi(s); err != nil {
				break
			}
		}
		err = runClient(url, n)
	default:
		err = fmt.Errorf("unknown command %q; use rpc_server, rpc_client [n], or no argument", cmd)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "rpc:", err)
		os.Exit(1)
	}
}

func arg(i int) string {
	if len(os.Args) > i {
		return os.Args[i]
	}
	return ""
}

func fib(n int) int {
	a, b := 0, 1
	for range n {
		a, b = b, a+b
	}
	return a
}

// serve answers requests from queue until ctx ends. Prefetch 1 spreads load
// evenly when several servers share the queue; a request is acked only after
// its reply went out, so a crashed server's request goes to another one.
func serve(ctx context.Context, ch *amqp.Channel, queue string) error {
	if err := ch.Qos(1, 0, false); err != nil {
		return err
	}
	msgs, err := ch.Consume(queue, "", false, false, false, false, nil)
	if err != nil {
		return err
	}
	for {
		select {
		case d, ok := <-msgs:
			if !ok {
				return errors.New("server stopped: channel or connection closed")
			}
			reply := "error: want a number from 0 to 90"
			if n, err := strconv.Atoi(string(d.Body)); err == nil && n >= 0 && n <= 90 {
				reply = strconv.Itoa(fib(n))
			}
			err := ch.PublishWithContext(ctx, "", d.ReplyTo, false, false, amqp.Publishing{
				ContentType:   "text/plain",
				CorrelationId: d.CorrelationId,
				Body:          []byte(reply),
			})
			if err != nil {
				return err
			}
			if err := d.Ack(false); err != nil {
				return err
			}
		case <-ctx.Done():
			return nil
		}
	}
}

// Client makes calls to the server's queue. It is safe for concurrent use.
type Client struct {
	ch      *amqp.Channel
	queue   string
	replyTo string

	mu      sync.Mutex
	pending map[string]chan amqp.Delivery // correlation_id -> waiting call
}

// NewClient declares the client's callback queue and starts routing replies
// to waiting calls.
func NewClient(conn *amqp.Connection, queue string) (*Client, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, err
	}
	q, err := ch.QueueDeclare("", false, false, true, false, nil)
	if err != nil {
		return nil, err
	}
	replies, err := ch.Consume(q.Name, "", true, false, false, false, nil)
	if err != nil {
		return nil, err
	}
	c := &Client{ch: ch, queue: queue, replyTo: q.Name, pending: map[string]chan amqp.Delivery{}}
	go func() {
		for d := range replies {
			c.mu.Lock()
			call := c.pending[d.CorrelationId]
			delete(c.pending, d.CorrelationId)
			c.mu.Unlock()
			// A reply nobody waits for (e.g. to a call that timed out) is dropped.
			if call != nil {
				call <- d
			}
		}
	}()
	return c, nil
}

// Call asks the server for fib(n) and waits for the answer or ctx's end.
func (c *Client) Call(ctx context.Context, n int) (int, error) {
	id := rand.Text()
	call := make(chan amqp.Delivery, 1)
	c.mu.Lock()
	c.pending[id] = call
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
	}()
	err := c.ch.PublishWithContext(ctx, "", c.queue, false, false, amqp.Publishing{
		ContentType:   "text/plain",
		CorrelationId: id,
		ReplyTo:       c.replyTo,
		Body:          []byte(strconv.Itoa(n)),
	})
	if err != nil {
		return 0, err
	}
	select {
	case d := <-call:
		return strconv.Atoi(string(d.Body))
	case <-ctx.Done():
		return 0, fmt.Errorf("fib(%d): %w", n, ctx.Err())
	}
}

func runServer(url string) error {
	conn, err := amqp.Dial(url)
	if err != nil {
		return err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	if _, err := ch.QueueDeclare(queueName, false, false, false, false, nil); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Println(" [x] Awaiting RPC requests. To exit press CTRL+C")
	return serve(ctx, ch, queueName)
}

func runClient(url string, n int) error {
	conn, err := amqp.Dial(url)
	if err != nil {
		return err
	}
	defer conn.Close()
	client, err := NewClient(conn, queueName)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	fmt.Printf(" [x] Requesting fib(%d)\n", n)
	res, err := client.Call(ctx, n)
	if err != nil {
		return err
	}
	fmt.Printf(" [.] Got %d\n", res)
	return nil
}

// selfCheck runs a server on a private queue and makes concurrent calls
// through one client; it fails unless every call gets its own right answer.
func selfCheck(url string) error {
	conn, err := amqp.Dial(url)
	if err != nil {
		return err
	}
	defer conn.Close()
	sch, err := conn.Channel()
	if err != nil {
		return err
	}
	queue := fmt.Sprintf("%s.selfcheck.%d", queueName, time.Now().UnixNano())
	if _, err := sch.QueueDeclare(queue, false, true, false, false, nil); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	serverDone := make(chan error, 1)
	go func() { serverDone <- serve(ctx, sch, queue) }()

	client, err := NewClient(conn, queue)
	if err != nil {
		return err
	}
	ns := []int{0, 1, 2, 10, 30, 90}
	results := make([]int, len(ns))
	errs := make([]error, len(ns))
	var wg sync.WaitGroup
	for i, n := range ns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = client.Call(ctx, n)
		}()
	}
	wg.Wait()
	cancel()
	for i, n := range ns {
		if errs[i] != nil {
			return errs[i]
		}
		if results[i] != fib(n) {
			return fmt.Errorf("fib(%d): got %d, want %d", n, results[i], fib(n))
		}
		fmt.Printf(" [.] fib(%d) = %d\n", n, results[i])
	}
	if err := <-serverDone; err != nil {
		return err
	}
	fmt.Println("rpc: ok")
	return nil
}
