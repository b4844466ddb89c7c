// Package messaging holds black-box conformance tests for the message-moving
// parts of AMQP 0-9-1 (basic, confirm, tx, direct reply-to) and for connection
// setup (auth, vhosts, tuning, server properties), written against
// github.com/rabbitmq/amqp091-go.
//
// Every assertion encodes what RabbitMQ 3.x really does, down to reply codes
// and reply texts, because applications and people match on those. The suite
// is proven against a real RabbitMQ by setting WARREN_TEST_URL; without it the
// tests run against an in-process Warren, so any failure there is a place where
// Warren differs from RabbitMQ.
package messaging
