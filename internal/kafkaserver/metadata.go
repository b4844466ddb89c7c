package kafkaserver

import (
	"net"
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/warren-mq/warren/internal/broker"
)

// Metadata: one broker (node 0, this listener or the advertised address),
// the leader and only replica of every partition, the vhost's topics.
// Versions up to 12: 10 and later carry topic IDs, which Warren leaves zero
// (Kafka's "no ID"), and 13 adds nothing a client needs.

func init() {
	registerVersions(kmsg.Metadata, 0, 12, handleMetadata)
}

// nodeID is the one broker's id.
const nodeID = 0

// clusterID is what Metadata v2+ names the cluster.
const clusterID = "warren"

// advertised is the host and port clients should connect to.
func (c *conn) advertised() (string, int32) {
	addr := c.srv.cfg.AdvertisedAddr
	if addr == "" || c.isTLS() {
		addr = c.nc.LocalAddr().String()
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr, 9092
	}
	p, _ := strconv.Atoi(port)
	return host, int32(p)
}

func handleMetadata(c *conn, req kmsg.Request) (kmsg.Response, error) {
	r := req.(*kmsg.MetadataRequest)
	resp := kmsg.NewPtrMetadataResponse()
	host, port := c.advertised()
	b := kmsg.NewMetadataResponseBroker()
	b.NodeID, b.Host, b.Port = nodeID, host, port
	resp.Brokers = []kmsg.MetadataResponseBroker{b}
	resp.ClusterID = kmsg.StringPtr(clusterID)
	resp.ControllerID = nodeID
	resp.AuthorizedOperations = -2147483648

	// v0: an empty list means all topics; v1+: null means all.
	all := r.Topics == nil || (r.Version == 0 && len(r.Topics) == 0)
	if all {
		for _, t := range c.vhost.Topics() {
			if c.describable(t) {
				resp.Topics = append(resp.Topics, metadataTopic(t, 0))
			}
		}
		return resp, nil
	}
	autoCreate := r.Version < 4 || r.AllowAutoTopicCreation
	for _, rt := range r.Topics {
		if rt.Topic == nil {
			mt := kmsg.NewMetadataResponseTopic()
			mt.TopicID, mt.ErrorCode = rt.TopicID, kerr.UnknownTopicID.Code
			resp.Topics = append(resp.Topics, mt)
			continue
		}
		name := *rt.Topic
		t, ok := c.vhost.Topic(name)
		var code int16
		switch {
		case ok && !c.describable(t):
			code = kerr.TopicAuthorizationFailed.Code
		case !ok && autoCreate:
			t, code = c.autoCreate(name)
		case !ok:
			code = kerr.UnknownTopicOrPartition.Code
		}
		if code != 0 {
			mt := kmsg.NewMetadataResponseTopic()
			mt.Topic, mt.ErrorCode = kmsg.StringPtr(name), code
			mt.AuthorizedOperations = -2147483648
			resp.Topics = append(resp.Topics, mt)
			continue
		}
		resp.Topics = append(resp.Topics, metadataTopic(t, 0))
	}
	return resp, nil
}

// metadataTopic describes t's partitions, all led by this node.
func metadataTopic(t broker.Topic, code int16) kmsg.MetadataResponseTopic {
	mt := kmsg.NewMetadataResponseTopic()
	mt.Topic, mt.ErrorCode = kmsg.StringPtr(t.Name), code
	mt.AuthorizedOperations = -2147483648
	for i, s := range t.Partitions {
		p := kmsg.NewMetadataResponseTopicPartition()
		p.Partition, p.Leader, p.LeaderEpoch = int32(i), nodeID, 0
		p.Replicas, p.ISR = []int32{nodeID}, []int32{nodeID}
		if s == nil {
			p.ErrorCode, p.Leader = kerr.LeaderNotAvailable.Code, -1
		}
		mt.Partitions = append(mt.Partitions, p)
	}
	return mt
}
