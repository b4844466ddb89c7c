// Package entities holds black-box conformance tests for AMQP 0-9-1 exchanges, queues
// and queue arguments. Every assertion encodes what RabbitMQ 3.10 really does (reply
// codes and texts included), because Warren promises that code written for RabbitMQ
// runs against it unchanged. Run the suite against RabbitMQ with WARREN_TEST_URL set to
// prove the expectations, and without it to check Warren itself.
package entities
