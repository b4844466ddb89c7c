// Package access holds black-box conformance tests for users, permissions,
// topic permissions and limits. Every assertion encodes what RabbitMQ 3.10
// does, reply codes and texts included. Against RabbitMQ (WARREN_TEST_URL set,
// as root) the tests set users, vhosts and permissions up with rabbitmqctl;
// against an in-process Warren, through the broker's API.
package access
