// Package kafka checks Warren's Kafka listener from the outside, with real
// Kafka clients (franz-go's kgo, segmentio/kafka-go, kcat) and, where a test
// crosses protocols, amqp091-go on the same broker.
//
// The tests run against whatever Kafka address they are given, so a failure
// is the broker's, not the test's:
//
//   - WARREN_KAFKA_ADDR=HOST:PORT: that broker (a real Kafka, or a Warren
//     started by hand); WARREN_AMQP_URL then names its AMQP side for the
//     cross-protocol tests, which are skipped without it.
//   - WARREN_KAFKA_ADDR=kfake: franz-go's in-memory kfake cluster, started in
//     the test process: the reference the Kafka-only tests were checked
//     against. It speaks no AMQP, so the cross-protocol tests are skipped.
//   - unset: the package builds cmd/warren once and runs it on loopback ports
//     with a temporary data directory (a binary without the --kafka-addr
//     flag fails every test, saying so).
//
// No test is skipped because the broker lacks an API: TestKafkaAPIsAdvertised
// fails naming any API of ServedAPIs the broker does not advertise.
//
// Every test works in topics and groups named uniquely for its run, so the
// tests share one broker and may be repeated (-count).
package kafka
