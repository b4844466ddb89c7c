// Command kafkaapis tells whether a Kafka broker advertises the APIs a check
// needs, so .ci/run can say which are missing instead of failing kcat on a
// listener that does not serve them yet.
//
// Usage: kafkaapis HOST:PORT API...   (kmsg's names: Metadata, Produce, ...)
//
// Exit status 0 when every API is advertised, 3 when some are not (their
// names printed, space-separated), 1 when the broker cannot be asked.
package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/warren-mq/warren/test/kafka"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: kafkaapis HOST:PORT API...")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	missing, err := kafka.MissingAPIs(ctx, os.Args[1], os.Args[2:]...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kafkaapis:", err)
		os.Exit(1)
	}
	if len(missing) > 0 {
		fmt.Println(strings.Join(missing, " "))
		os.Exit(3)
	}
}
