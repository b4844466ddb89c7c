// Package interop checks Warren with real clients from Debian: the scripts
// here (python3-pika, amqp-tools, Node's amqplib) run from .ci/run against
// the built broker, and the Go tests run the TLS script against a broker
// binary they start with generated certificates.
package interop
