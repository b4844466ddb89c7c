// Package policy holds black-box conformance tests for policies, operator
// policies and the consumer delivery acknowledgement timeout. Each assertion
// encodes what RabbitMQ really does: with WARREN_TEST_URL set the tests run
// against that RabbitMQ (policies set with rabbitmqctl, each test in a vhost
// of its own), without it against an in-process Warren (policies set through
// the broker's API).
package policy
