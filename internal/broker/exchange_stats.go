package broker

import "sync"

// exchangeStats counts messages published to an exchange (RabbitMQ's
// publish_in) and routed from it to queues (publish_out). An exchange is
// shared by every publisher, so front ends count per channel and add their
// counts here once per read batch, not once per message.
type exchangeStats struct {
	mu      sync.Mutex
	in, out uint64
}

// AddPublished adds a channel's counts of messages published to the exchange
// and of queue deliveries they were routed to.
func (e *Exchange) AddPublished(in, out uint64) {
	e.stats.mu.Lock()
	e.stats.in += in
	e.stats.out += out
	e.stats.mu.Unlock()
}

// PublishStats returns the messages published to the exchange and routed
// from it, since it was declared.
func (e *Exchange) PublishStats() (in, out uint64) {
	e.stats.mu.Lock()
	defer e.stats.mu.Unlock()
	return e.stats.in, e.stats.out
}
