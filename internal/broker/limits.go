package broker

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/warren-mq/warren/internal/amqp091"
)

// Limits as RabbitMQ's set_vhost_limits and set_user_limits take them: a
// JSON object of integer limits. A negative value means no limit; a limit
// not set is no limit either.
const (
	LimitMaxConnections = "max-connections" // vhost and user
	LimitMaxQueues      = "max-queues"      // vhost
	LimitMaxChannels    = "max-channels"    // user
)

// ParseLimits reads a limits object such as {"max-connections": 10} and
// checks its keys for a vhost (forUser false) or a user.
func ParseLimits(text string, forUser bool) (map[string]int64, error) {
	var raw map[string]json.Number
	d := json.NewDecoder(strings.NewReader(text))
	d.UseNumber()
	if err := d.Decode(&raw); err != nil {
		return nil, fmt.Errorf("limits must be a JSON object of integers, like {\"max-connections\": 10}: %v", err)
	}
	allowed := []string{LimitMaxConnections, LimitMaxQueues}
	if forUser {
		allowed = []string{LimitMaxConnections, LimitMaxChannels}
	}
	out := map[string]int64{}
	for k, v := range raw {
		if !slices.Contains(allowed, k) {
			return nil, fmt.Errorf("unknown limit '%s' (want %s)", k, strings.Join(allowed, ", "))
		}
		n, err := v.Int64()
		if err != nil {
			return nil, fmt.Errorf("limit '%s': want an integer, got %s", k, v)
		}
		out[k] = n
	}
	return out, nil
}

func encodeLimits(l map[string]int64) string {
	if len(l) == 0 {
		return ""
	}
	b, _ := json.Marshal(l) // maps marshal with sorted keys: deterministic
	return string(b)
}

func decodeLimits(s string) map[string]int64 {
	if s == "" {
		return nil
	}
	var l map[string]int64
	if json.Unmarshal([]byte(s), &l) != nil {
		return nil
	}
	return l
}

// SetVHostLimits replaces a vhost's limits (max-connections, max-queues); an
// empty map clears them. Durable.
func (b *Broker) SetVHostLimits(vhost string, limits map[string]int64) error {
	if _, ok := b.VHost(vhost); !ok {
		return amqp091.NewError(amqp091.NotFound, "no vhost '%s'", vhost)
	}
	if _, err := ParseLimits(encodeLimitsOrEmpty(limits), false); err != nil {
		return err
	}
	_, _, err := b.commit(&setVHostLimitsCmd{VHost: vhost, Limits: encodeLimits(limits)}, true)
	return err
}

// SetUserLimits replaces a user's limits (max-connections, max-channels); an
// empty map clears them. Durable.
func (b *Broker) SetUserLimits(user string, limits map[string]int64) error {
	if _, ok := b.User(user); !ok {
		return amqp091.NewError(amqp091.NotFound, "no user '%s'", user)
	}
	if _, err := ParseLimits(encodeLimitsOrEmpty(limits), true); err != nil {
		return err
	}
	_, _, err := b.commit(&setUserLimitsCmd{User: user, Limits: encodeLimits(limits)}, true)
	return err
}

func encodeLimitsOrEmpty(l map[string]int64) string {
	if s := encodeLimits(l); s != "" {
		return s
	}
	return "{}"
}

// VHostLimits returns a vhost's limits (nil if none).
func (b *Broker) VHostLimits(vhost string) map[string]int64 {
	b.acc.mu.RLock()
	defer b.acc.mu.RUnlock()
	return maps.Clone(b.acc.vhostLimits[vhost])
}

// UserLimits returns a user's limits (nil if none).
func (b *Broker) UserLimits(user string) map[string]int64 {
	b.acc.mu.RLock()
	defer b.acc.mu.RUnlock()
	return maps.Clone(b.acc.userLimits[user])
}

// AllVHostLimits returns every vhost's limits, by vhost.
func (b *Broker) AllVHostLimits() map[string]map[string]int64 { return b.allLimits(b.acc.vhostLimits) }

// AllUserLimits returns every user's limits, by user.
func (b *Broker) AllUserLimits() map[string]map[string]int64 { return b.allLimits(b.acc.userLimits) }

func (b *Broker) allLimits(m map[string]map[string]int64) map[string]map[string]int64 {
	b.acc.mu.RLock()
	defer b.acc.mu.RUnlock()
	out := make(map[string]map[string]int64, len(m))
	for k, v := range m {
		out[k] = maps.Clone(v)
	}
	return out
}

// Limit returns a limit and whether it is in force (set and not negative).
func Limit(limits map[string]int64, name string) (int64, bool) {
	n, ok := limits[name]
	return n, ok && n >= 0
}

// QueueLimitReached returns RabbitMQ's refusal when declaring a new queue
// named name would pass the vhost's max-queues, or nil. DeclareQueue checks
// again, counting declares in flight.
func (v *VHost) QueueLimitReached(name string) error {
	v.resMu.Lock()
	defer v.resMu.Unlock()
	return v.queueLimitLocked(name)
}

// queueLimitLocked is QueueLimitReached with v.resMu held.
func (v *VHost) queueLimitLocked(name string) error {
	limit, ok := Limit(v.broker.VHostLimits(v.Name), LimitMaxQueues)
	if !ok {
		return nil
	}
	v.mu.RLock()
	n := len(v.queues) + len(v.streams)
	for q := range v.queuesPending {
		if !v.hasQueueLocked(q) {
			n++
		}
	}
	v.mu.RUnlock()
	if int64(n) < limit {
		return nil
	}
	return amqp091.NewError(amqp091.PreconditionFailed, "cannot declare queue '%s': queue limit in vhost '%s' (%d) is reached", name, v.Name, limit)
}

// takeQueueSlot reserves room for one new queue under max-queues until
// releaseQueueSlot; by then the queue is in v.queues, or was not made.
func (v *VHost) takeQueueSlot(name string) error {
	v.resMu.Lock()
	defer v.resMu.Unlock()
	if err := v.queueLimitLocked(name); err != nil {
		return err
	}
	if v.queuesPending == nil {
		v.queuesPending = map[string]bool{}
	}
	v.queuesPending[name] = true
	return nil
}

func (v *VHost) releaseQueueSlot(name string) {
	v.resMu.Lock()
	delete(v.queuesPending, name)
	v.resMu.Unlock()
}
