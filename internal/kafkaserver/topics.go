package kafkaserver

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/warren-mq/warren/internal/amqp091"
	"github.com/warren-mq/warren/internal/broker"
)

// Topics, permissions and names as the Kafka APIs see them.
//
// Permissions are the vhost's, on the resource a topic is: a
// single-partition topic S is the queue S (a stream), a partitioned topic T
// the exchange T (its super stream). Producing needs write on that
// resource; fetching and listing offsets need read; creating, deleting,
// growing and changing configs need configure. A topic the user may neither
// read nor write is left out of a full Metadata listing and answered with
// TOPIC_AUTHORIZATION_FAILED when named.

// topicKind is the permission kind of a topic with n partitions.
func topicKind(super bool) string {
	if super {
		return "exchange"
	}
	return "queue"
}

// allowed reports whether the user has perm on the topic's resource.
func (c *conn) allowed(t broker.Topic, perm broker.Perm) bool {
	return c.access.Check(topicKind(t.Super), t.Name, perm) == nil
}

// mayCreate reports whether the user may create a topic of n partitions.
func (c *conn) mayCreate(name string, n int) bool {
	return c.access.Check(topicKind(n > 1), name, broker.Configure) == nil
}

// describable: a topic the user may read or write.
func (c *conn) describable(t broker.Topic) bool {
	return c.allowed(t, broker.Read) || c.allowed(t, broker.Write)
}

// validTopicName applies Kafka's rules for a topic name a client creates:
// 1 to 249 of [a-zA-Z0-9._-], not "." or "..". (A stream an AMQP client
// declared may have any name; it is still found by that name.)
func validTopicName(name string) bool {
	if name == "" || len(name) > 249 || name == "." || name == ".." {
		return false
	}
	for i := 0; i < len(name); i++ {
		switch b := name[i]; {
		case b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z', b >= '0' && b <= '9', b == '.', b == '_', b == '-':
		default:
			return false
		}
	}
	return true
}

// autoCreate creates an unknown topic with the default partition count when
// auto-creation is on and the user may; it returns the Kafka error code
// otherwise.
func (c *conn) autoCreate(name string) (broker.Topic, int16) {
	if c.srv.cfg.DisableAutoCreate {
		return broker.Topic{}, kerr.UnknownTopicOrPartition.Code
	}
	if !validTopicName(name) {
		return broker.Topic{}, kerr.InvalidTopicException.Code
	}
	n := c.srv.cfg.NumPartitions
	if !c.mayCreate(name, n) {
		return broker.Topic{}, kerr.TopicAuthorizationFailed.Code
	}
	t, err := c.vhost.CreateTopic(name, n)
	if err != nil {
		var exists broker.ErrTopicExists
		if errors.As(err, &exists) {
			if t, ok := c.vhost.Topic(name); ok { // created meanwhile
				return t, 0
			}
		}
		c.log.Warn("auto-creating a Kafka topic failed", "topic", name, "err", err)
		return broker.Topic{}, errorCode(err)
	}
	c.log.Info("Kafka topic auto-created", "topic", name, "partitions", n)
	return t, 0
}

// errorCode maps a broker error to the closest Kafka error code.
func errorCode(err error) int16 {
	var ae *amqp091.Error
	var exists broker.ErrTopicExists
	var badCfg broker.ErrTopicConfig
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exists):
		return kerr.TopicAlreadyExists.Code
	case errors.As(err, &badCfg):
		return kerr.InvalidConfig.Code
	case errors.As(err, &ae):
		switch ae.Code {
		case amqp091.NotFound:
			return kerr.UnknownTopicOrPartition.Code
		case amqp091.AccessRefused:
			return kerr.TopicAuthorizationFailed.Code
		case amqp091.PreconditionFailed, amqp091.NotAllowed:
			return kerr.InvalidRequest.Code
		}
	}
	return kerr.UnknownServerError.Code
}
