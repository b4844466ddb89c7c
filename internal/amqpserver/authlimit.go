package amqpserver

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// Refused logins are throttled per source address with a token bucket: a few
// mistakes pass at full speed, then each further refusal from that address
// waits for a token, so a password guesser gets about authRate tries a second
// however many connections it opens. Only the refusal is delayed: the
// password is checked first and a correct login never waits, so a user
// sharing the address (NAT, the same host) still gets in; other addresses
// are not affected at all.
const (
	authBurst   = 10              // refusals from one address before any delay
	authRate    = 2.0             // refusals per second allowed after the burst
	authMaxWait = 5 * time.Second // longest one refusal is delayed
	// authMaxAddrs bounds the table; addresses whose bucket is full again are
	// forgotten first.
	authMaxAddrs = 4096
)

// authThrottle tracks refused logins per source address.
type authThrottle struct {
	mu    sync.Mutex
	addrs map[netip.Addr]*authBucket
	now   func() time.Time // for tests
}

// authBucket is one address's tokens at a point in time; tokens go negative
// while refusals queue up for a delay.
type authBucket struct {
	tokens float64
	at     time.Time
}

func newAuthThrottle() authThrottle {
	return authThrottle{addrs: map[netip.Addr]*authBucket{}, now: time.Now}
}

// refused records a refused login from addr and returns how long to wait
// before answering it.
func (a *authThrottle) refused(addr net.Addr) time.Duration {
	ip, ok := sourceIP(addr)
	if !ok {
		return 0
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	b := a.addrs[ip]
	if b == nil {
		if len(a.addrs) >= authMaxAddrs {
			a.pruneLocked(now)
		}
		b = &authBucket{tokens: authBurst, at: now}
		a.addrs[ip] = b
	}
	b.refill(now)
	// The debt is bounded so a flood of parallel attempts cannot push the wait
	// past authMaxWait (each waits at most that, holding its socket no longer).
	b.tokens = max(b.tokens-1, -authMaxWait.Seconds()*authRate)
	if b.tokens >= 0 {
		return 0
	}
	return time.Duration(-b.tokens / authRate * float64(time.Second))
}

func (b *authBucket) refill(now time.Time) {
	b.tokens = min(authBurst, b.tokens+now.Sub(b.at).Seconds()*authRate)
	b.at = now
}

// pruneLocked forgets addresses that have not failed lately; if all have, it
// forgets half of them at random (map order) so the table stays bounded.
func (a *authThrottle) pruneLocked(now time.Time) {
	for ip, b := range a.addrs {
		if b.refill(now); b.tokens >= authBurst {
			delete(a.addrs, ip)
		}
	}
	for ip := range a.addrs {
		if len(a.addrs) < authMaxAddrs/2 {
			break
		}
		delete(a.addrs, ip)
	}
}

// sourceIP is the address logins are throttled by: the client's IP, IPv4 in
// IPv6 unmapped so both forms share one bucket.
func sourceIP(addr net.Addr) (netip.Addr, bool) {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok {
		return netip.Addr{}, false
	}
	ip, ok := netip.AddrFromSlice(tcp.IP)
	return ip.Unmap(), ok
}
