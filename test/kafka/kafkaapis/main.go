// Command kafkaapis checks that a Kafka broker advertises (ApiVersions) the
// APIs Warren serves, so .ci/run fails naming a missing API rather than
// letting kcat or kafkajs fail later with a less clear error.
//
// Usage: kafkaapis HOST:PORT [API...]   (kmsg's names: Metadata, Produce, ...;
// default: every API of kafka.ServedAPIs)
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
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: kafkaapis HOST:PORT [API...]")
		os.Exit(2)
	}
	names := os.Args[2:]
	if len(names) == 0 {
		names = kafka.ServedAPIs
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	missing, err := kafka.MissingAPIs(ctx, os.Args[1], names...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kafkaapis:", err)
		os.Exit(1)
	}
	if len(missing) > 0 {
		fmt.Println(strings.Join(missing, " "))
		os.Exit(3)
	}
}
