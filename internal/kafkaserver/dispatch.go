package kafkaserver

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// The dispatch table. Each API lives in its own file, which registers its
// handler from an init function:
//
//	func init() { registerVersions(kmsg.JoinGroup, 0, 9, handleJoinGroup) }
//
// The table is written only by init functions and read-only afterwards, so
// readers need no lock. Only registered APIs are advertised by ApiVersions;
// a request for any other key closes the connection, as Kafka does.

// handler answers one request on the connection's reader goroutine, which
// owns conn's unsynchronised fields (c.access, c.vhost...). The request is
// already decoded at its version; the response gets the same version set
// when queued. It returns:
//   - (resp, nil): send resp;
//   - (nil, nil): send nothing (acks=0 produce);
//   - (resp, errCloseAfter): send resp, then close the connection;
//   - (_, err): close the connection (a request Kafka would close it for).
//
// A handler blocks the connection's reading while it runs (Kafka processes
// one request per connection at a time); one that waits for something
// (the log's fsync, a rebalance, long polling) should be registered with
// registerAsync instead, so pipelined requests keep flowing.
type handler func(c *conn, req kmsg.Request) (kmsg.Response, error)

// asyncHandler starts answering a request on the reader goroutine and calls
// done exactly once, from any goroutine, when the answer is ready; done's
// arguments mean what handler's results mean. Answers still go out in
// request order. done may be called during the handler or later, does not
// block, and is harmless after the connection ended; a handler that waits
// should also stop waiting when c.done is closed.
type asyncHandler func(c *conn, req kmsg.Request, done func(kmsg.Response, error))

// api is one table entry.
type api struct {
	min, max int16
	sync     handler
	async    asyncHandler
	// preAuth: allowed before the client has authenticated (ApiVersions
	// and the SASL APIs).
	preAuth bool
}

// apis is the dispatch table, by API key.
var apis [kmsg.MaxKey + 1]*api

// lookupAPI returns the table entry of key, nil if none.
func lookupAPI(key int16) *api {
	if key < 0 || int(key) >= len(apis) {
		return nil
	}
	return apis[key]
}

// registerVersions adds a handler for versions min to max of an API.
func registerVersions(key kmsg.Key, min, max int16, h handler) {
	add(key, &api{min: min, max: max, sync: h})
}

// registerAsync adds an answer-later handler for versions min to max.
func registerAsync(key kmsg.Key, min, max int16, h asyncHandler) {
	add(key, &api{min: min, max: max, async: h})
}

func add(key kmsg.Key, a *api) {
	if key < 0 || int(key) >= len(apis) {
		panic(fmt.Sprintf("kafkaserver: API key %d out of range", key))
	}
	if apis[key] != nil {
		panic(fmt.Sprintf("kafkaserver: API %s registered twice", kmsg.NameForKey(int16(key))))
	}
	if kmax := kmsg.RequestForKey(int16(key)).MaxVersion(); a.max > kmax || a.min < 0 || a.min > a.max {
		panic(fmt.Sprintf("kafkaserver: API %s versions %d-%d outside kmsg's 0-%d", kmsg.NameForKey(int16(key)), a.min, a.max, kmax))
	}
	switch key {
	case kmsg.ApiVersions, kmsg.SASLHandshake, kmsg.SASLAuthenticate:
		a.preAuth = true
	}
	apis[key] = a
}
