// Package wire holds black-box conformance tests that speak AMQP 0-9-1 over a
// bare TCP connection with hand-built frames, to pin down how the broker
// reacts to malformed or out-of-order input: which bytes it writes back,
// which connection.close or channel.close code and text it sends, and when it
// drops the socket.
//
// Each test records in a comment exactly what RabbitMQ 3.10 does, and asserts
// exactly that, so Warren can be matched byte for byte. The raw client lives
// in this package's test files and deliberately imports nothing from Warren's
// own codec, so a codec bug cannot hide itself.
package wire
