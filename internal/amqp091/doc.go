// Package amqp091 is Warren's AMQP 0-9-1 codec: method structs generated from the
// specification, frame reading and writing, field tables, content properties and
// reply codes. It imports nothing else from Warren.
package amqp091

//go:generate go run ./spec
