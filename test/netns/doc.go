// Package netns checks logins from a non-loopback address, the way a client
// on another machine connects: the test (as root) makes a network namespace
// joined to the host by a veth pair, runs Warren on the host side's address
// and pika and amqp091-go inside the namespace.
package netns
