package kafkaserver

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// FindCoordinator: Warren is one node, so it coordinates every consumer
// group (key type 0) and every transactional id (key type 1) itself and
// answers with the address Metadata gives. Versions 0-4 (v4 batches keys;
// v5 and v6 add KIP-890's and share groups' codes).

func init() { registerVersions(kmsg.FindCoordinator, 0, 4, handleFindCoordinator) }

func handleFindCoordinator(c *conn, req kmsg.Request) (kmsg.Response, error) {
	r := req.(*kmsg.FindCoordinatorRequest)
	resp := r.ResponseKind().(*kmsg.FindCoordinatorResponse)
	host, port := c.advertised()
	code := func(key string) int16 {
		switch {
		case r.CoordinatorType != 0 && r.CoordinatorType != 1:
			return kerr.InvalidRequest.Code
		case r.CoordinatorType == 1 && key == "":
			return kerr.InvalidRequest.Code
		}
		return 0
	}
	if r.Version < 4 {
		resp.ErrorCode = code(r.CoordinatorKey)
		resp.NodeID, resp.Host, resp.Port = nodeID, host, port
		if resp.ErrorCode != 0 {
			resp.NodeID, resp.Host, resp.Port = -1, "", -1
		}
		return resp, nil
	}
	for _, key := range r.CoordinatorKeys {
		co := kmsg.NewFindCoordinatorResponseCoordinator()
		co.Key, co.NodeID, co.Host, co.Port = key, nodeID, host, port
		if co.ErrorCode = code(key); co.ErrorCode != 0 {
			co.NodeID, co.Host, co.Port = -1, "", -1
		}
		resp.Coordinators = append(resp.Coordinators, co)
	}
	return resp, nil
}
