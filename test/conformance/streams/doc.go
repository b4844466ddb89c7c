// Package streams holds black-box conformance tests for stream queues
// (x-queue-type=stream) over AMQP 0-9-1: declaring them, publishing into
// them and consuming them from an offset. Every expectation is what RabbitMQ
// 3.10 does, codes and texts included; run the suite against it with
// WARREN_TEST_URL set. Where RabbitMQ 3.10 lacks a feature Warren has as
// 3.13 does it (stream filtering), the test says so and skips against 3.10.
package streams
