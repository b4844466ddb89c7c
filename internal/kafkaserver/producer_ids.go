package kafkaserver

import (
	"sync"

	"github.com/warren-mq/warren/internal/broker"
)

// producerIDBlock is how many producer ids one metadata commit reserves: a
// crash skips at most this many, and idempotent producers cost one fsync
// per this many InitProducerId calls.
const producerIDBlock = 1000

// producerIDs hands out producer ids from durably reserved blocks, so an id
// is never given twice, even after a kill -9 (the rest of a block reserved
// before the crash is skipped).
type producerIDs struct {
	b         *broker.Broker
	mu        sync.Mutex
	next, end int64
}

func (p *producerIDs) allocate() (int64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.next == p.end {
		first, err := p.b.ReserveProducerIDs(producerIDBlock)
		if err != nil {
			return -1, err
		}
		p.next, p.end = first, first+producerIDBlock
	}
	id := p.next
	p.next++
	return id, nil
}
