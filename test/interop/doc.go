// Package interop checks Warren with real clients from Debian: the scripts
// here (python3-pika, amqp-tools, Node's amqplib, and on the Kafka listener
// kcat.sh with Debian's kcat and node/kafka.js with kafkajs) run from .ci/run
// against the built broker, and the Go tests run the TLS script against a
// broker binary they start with generated certificates. test/kafka runs
// kcat.sh against its own broker too.
package interop
