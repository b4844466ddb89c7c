package kafkaserver

import (
	"net"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/warren-mq/warren/internal/broker"
)

// The group APIs, answered by the server's group coordinator (group*.go,
// offsets.go). JoinGroup and SyncGroup answer later (when the rebalance
// gets there); the others on the reader goroutine, OffsetCommit after the
// metadata log's fsync. Versions stop where Kafka moved to topic ids
// (OffsetCommit and OffsetFetch v10). Permissions: a group is used with
// read permission on a resource of the group's name in the Kafka vhost,
// and committing or fetching a topic's offsets needs read on the topic.

func init() {
	registerAsync(kmsg.JoinGroup, 0, 9, func(c *conn, req kmsg.Request, done func(kmsg.Response, error)) {
		c.srv.groups.joinGroup(c.groupCaller(), req.(*kmsg.JoinGroupRequest), func(r kmsg.Response) { done(r, nil) })
	})
	registerAsync(kmsg.SyncGroup, 0, 5, func(c *conn, req kmsg.Request, done func(kmsg.Response, error)) {
		c.srv.groups.syncGroup(c.groupCaller(), req.(*kmsg.SyncGroupRequest), func(r kmsg.Response) { done(r, nil) })
	})
	registerVersions(kmsg.Heartbeat, 0, 4, func(c *conn, req kmsg.Request) (kmsg.Response, error) {
		return c.srv.groups.heartbeat(c.groupCaller(), req.(*kmsg.HeartbeatRequest)), nil
	})
	registerVersions(kmsg.LeaveGroup, 0, 5, func(c *conn, req kmsg.Request) (kmsg.Response, error) {
		return c.srv.groups.leaveGroup(c.groupCaller(), req.(*kmsg.LeaveGroupRequest)), nil
	})
	registerVersions(kmsg.OffsetCommit, 0, 9, func(c *conn, req kmsg.Request) (kmsg.Response, error) {
		return c.srv.groups.offsetCommit(c.groupCaller(), req.(*kmsg.OffsetCommitRequest)), nil
	})
	registerVersions(kmsg.OffsetFetch, 0, 9, func(c *conn, req kmsg.Request) (kmsg.Response, error) {
		return c.srv.groups.offsetFetch(c.groupCaller(), req.(*kmsg.OffsetFetchRequest)), nil
	})
	registerVersions(kmsg.DescribeGroups, 0, 6, func(c *conn, req kmsg.Request) (kmsg.Response, error) {
		return c.srv.groups.describeGroups(c.groupCaller(), req.(*kmsg.DescribeGroupsRequest)), nil
	})
	registerVersions(kmsg.ListGroups, 0, 5, func(c *conn, req kmsg.Request) (kmsg.Response, error) {
		return c.srv.groups.listGroups(c.groupCaller(), req.(*kmsg.ListGroupsRequest)), nil
	})
	registerVersions(kmsg.DeleteGroups, 0, 2, func(c *conn, req kmsg.Request) (kmsg.Response, error) {
		return c.srv.groups.deleteGroups(c.groupCaller(), req.(*kmsg.DeleteGroupsRequest)), nil
	})
	registerVersions(kmsg.OffsetDelete, 0, 0, func(c *conn, req kmsg.Request) (kmsg.Response, error) {
		return c.srv.groups.offsetDelete(c.groupCaller(), req.(*kmsg.OffsetDeleteRequest)), nil
	})
}

// groupCaller describes the connection to the coordinator. Its permission
// checks use the connection's access, so the coordinator calls them only on
// the reader goroutine (before it hands a request to a group).
func (c *conn) groupCaller() *groupCaller {
	c.infoMu.Lock()
	clientID := c.clientID
	c.infoMu.Unlock()
	return &groupCaller{
		vhost: c.vhost.Name, clientID: clientID, clientHost: "/" + remoteHost(c.nc),
		groupAllowed: func(group string) bool { return c.access.Check("group", group, broker.Read) == nil },
		topicAllowed: c.mayTopic(broker.Read),
	}
}

// newServerGroups is the server's group coordinator.
func newServerGroups(s *Server) *coordinator {
	co := newCoordinator(s.broker, groupConfig{InitialRebalanceDelay: s.cfg.GroupInitialRebalanceDelay}, nil, s.log)
	co.partitionExists = func(vhost, topic string, p int32) bool {
		v, ok := s.broker.VHost(vhost)
		if !ok {
			return false
		}
		t, ok := v.Topic(topic)
		return ok && p >= 0 && int(p) < len(t.Partitions)
	}
	co.unstableOffset = func(_, group, topic string, p int32) bool { return s.txn.unstableOffset(group, topic, p) }
	return co
}

// remoteHost is the client's address without the port, as Kafka shows a
// member's client host ("/127.0.0.1").
func remoteHost(nc net.Conn) string {
	addr := nc.RemoteAddr().String()
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}
