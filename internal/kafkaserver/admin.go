package kafkaserver

import (
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/warren-mq/warren/internal/broker"
)

// CreateTopics, DeleteTopics and CreatePartitions over the broker's topic
// API (a stream for one partition, a super stream for more). Replication
// factor -1 or 1 and manual assignments to node 0 are accepted: there is one
// node. Every operation needs configure on the topic's resource.

func init() {
	registerVersions(kmsg.CreateTopics, 0, 7, handleCreateTopics)
	registerVersions(kmsg.DeleteTopics, 0, 6, handleDeleteTopics)
	registerVersions(kmsg.CreatePartitions, 0, 3, handleCreatePartitions)
}

func handleCreateTopics(c *conn, req kmsg.Request) (kmsg.Response, error) {
	r := req.(*kmsg.CreateTopicsRequest)
	resp := kmsg.NewPtrCreateTopicsResponse()
	seen := map[string]int{}
	for _, rt := range r.Topics {
		seen[rt.Topic]++
	}
	for _, rt := range r.Topics {
		st := kmsg.NewCreateTopicsResponseTopic()
		st.Topic, st.NumPartitions, st.ReplicationFactor = rt.Topic, -1, -1
		code, msg, n, cfg := c.checkCreate(rt, seen[rt.Topic] > 1)
		if code == 0 && !r.ValidateOnly {
			code, msg = c.createTopic(rt.Topic, n, cfg)
		}
		st.ErrorCode = code
		if msg != "" {
			st.ErrorMessage = kmsg.StringPtr(msg)
		}
		if code == 0 {
			st.NumPartitions, st.ReplicationFactor = int32(n), 1
			for _, e := range configEntries(c, rt.Topic, cfg) {
				rc := kmsg.NewCreateTopicsResponseTopicConfig()
				rc.Name, rc.Value, rc.Source = e.Name, kmsg.StringPtr(e.Value), int8(configSource(e.Source))
				st.Configs = append(st.Configs, rc)
			}
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}

// checkCreate validates one topic of a CreateTopics request: the error
// code and message, the partition count and the configs.
func (c *conn) checkCreate(rt kmsg.CreateTopicsRequestTopic, dup bool) (int16, string, int, map[string]string) {
	n := int(rt.NumPartitions)
	if len(rt.ReplicaAssignment) > 0 {
		n = len(rt.ReplicaAssignment)
	} else if n == -1 {
		n = c.srv.cfg.NumPartitions
	}
	switch {
	case dup:
		return kerr.InvalidRequest.Code, "topic named more than once in the request", 0, nil
	case !validTopicName(rt.Topic):
		return kerr.InvalidTopicException.Code, fmt.Sprintf("topic name '%s' is illegal: up to 249 of the characters [a-zA-Z0-9._-]", rt.Topic), 0, nil
	case !c.mayCreate(rt.Topic, n):
		return kerr.TopicAuthorizationFailed.Code, "", 0, nil
	case n <= 0 || n > maxPartitions:
		return kerr.InvalidPartitions.Code, fmt.Sprintf("number of partitions must be from 1 to %d", maxPartitions), 0, nil
	case len(rt.ReplicaAssignment) == 0 && rt.ReplicationFactor != -1 && rt.ReplicationFactor != 1:
		return kerr.InvalidReplicationFactor.Code, "replication factor must be 1: Warren is one node", 0, nil
	}
	for i, a := range rt.ReplicaAssignment {
		if int(a.Partition) != i || len(a.Replicas) != 1 || a.Replicas[0] != nodeID {
			return kerr.InvalidReplicaAssignment.Code, "partitions can be assigned only to node 0, one replica each, numbered from 0", 0, nil
		}
	}
	cfg := map[string]string{}
	for _, kc := range rt.Configs {
		if kc.Value == nil {
			continue
		}
		if err := broker.CheckTopicConfig(kc.Name, *kc.Value); err != nil {
			return kerr.InvalidConfig.Code, err.Error(), 0, nil
		}
		cfg[kc.Name] = *kc.Value
	}
	if _, exists := c.vhost.Topic(rt.Topic); exists {
		return kerr.TopicAlreadyExists.Code, fmt.Sprintf("topic '%s' already exists", rt.Topic), 0, nil
	}
	return 0, "", n, cfg
}

// maxPartitions bounds a topic's partitions (each is a stream with its own
// directory and writer).
const maxPartitions = 10000

// createTopic creates a checked topic with its configs (one metadata
// command: a crash leaves all of it or nothing).
func (c *conn) createTopic(name string, n int, cfg map[string]string) (int16, string) {
	if _, err := c.vhost.CreateTopicWithConfig(name, n, cfg); err != nil {
		return errorCode(err), err.Error()
	}
	c.log.Info("Kafka topic created", "topic", name, "partitions", n)
	return 0, ""
}

// setTopicConfig sets cfg on every partition of t.
func setTopicConfig(t broker.Topic, cfg map[string]string) error {
	for _, s := range t.Partitions {
		if s == nil {
			continue
		}
		if err := s.SetTopicConfig(cfg); err != nil {
			return err
		}
	}
	return nil
}

// configEntries describes a topic's configs, or the defaults overlaid with
// cfg for one not created (validate_only).
func configEntries(c *conn, name string, cfg map[string]string) []broker.TopicConfigEntry {
	if t, ok := c.vhost.Topic(name); ok && len(t.Partitions) > 0 && t.Partitions[0] != nil {
		return t.Partitions[0].DescribeTopicConfig()
	}
	var out []broker.TopicConfigEntry
	for _, e := range defaultConfigEntries() {
		if v, ok := cfg[e.Name]; ok {
			e.Value, e.Source = v, "topic"
		}
		out = append(out, e)
	}
	return out
}

func handleDeleteTopics(c *conn, req kmsg.Request) (kmsg.Response, error) {
	r := req.(*kmsg.DeleteTopicsRequest)
	resp := kmsg.NewPtrDeleteTopicsResponse()
	names := r.TopicNames
	if r.Version >= 6 {
		names = nil
		for _, rt := range r.Topics {
			if rt.Topic == nil {
				st := kmsg.NewDeleteTopicsResponseTopic()
				st.TopicID, st.ErrorCode = rt.TopicID, kerr.UnknownTopicID.Code
				resp.Topics = append(resp.Topics, st)
				continue
			}
			names = append(names, *rt.Topic)
		}
	}
	for _, name := range names {
		st := kmsg.NewDeleteTopicsResponseTopic()
		st.Topic = kmsg.StringPtr(name)
		t, ok := c.vhost.Topic(name)
		switch {
		case !ok:
			st.ErrorCode = kerr.UnknownTopicOrPartition.Code
		case !c.allowed(t, broker.Configure):
			st.ErrorCode = kerr.TopicAuthorizationFailed.Code
		default:
			if err := c.vhost.DeleteTopic(name); err != nil {
				st.ErrorCode, st.ErrorMessage = errorCode(err), kmsg.StringPtr(err.Error())
			} else {
				c.log.Info("Kafka topic deleted", "topic", name)
			}
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}

func handleCreatePartitions(c *conn, req kmsg.Request) (kmsg.Response, error) {
	r := req.(*kmsg.CreatePartitionsRequest)
	resp := kmsg.NewPtrCreatePartitionsResponse()
	for _, rt := range r.Topics {
		st := kmsg.NewCreatePartitionsResponseTopic()
		st.Topic = rt.Topic
		code, msg := c.createPartitions(rt, r.ValidateOnly)
		st.ErrorCode = code
		if msg != "" {
			st.ErrorMessage = kmsg.StringPtr(msg)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}

func (c *conn) createPartitions(rt kmsg.CreatePartitionsRequestTopic, validateOnly bool) (int16, string) {
	t, ok := c.vhost.Topic(rt.Topic)
	switch {
	case !ok:
		return kerr.UnknownTopicOrPartition.Code, ""
	case !c.allowed(t, broker.Configure):
		return kerr.TopicAuthorizationFailed.Code, ""
	case int(rt.Count) <= len(t.Partitions):
		return kerr.InvalidPartitions.Code, fmt.Sprintf("topic currently has %d partitions, which is higher than or equal to the requested %d", len(t.Partitions), rt.Count)
	case rt.Count > maxPartitions:
		return kerr.InvalidPartitions.Code, fmt.Sprintf("number of partitions must be from 1 to %d", maxPartitions)
	case !t.Super:
		return kerr.InvalidPartitions.Code, broker.ErrCannotGrow.Error()
	}
	for _, a := range rt.Assignment {
		if len(a.Replicas) != 1 || a.Replicas[0] != nodeID {
			return kerr.InvalidReplicaAssignment.Code, "partitions can be assigned only to node 0"
		}
	}
	if validateOnly {
		return 0, ""
	}
	// The new partitions get the topic's configs in the same command.
	if _, err := c.vhost.AddPartitions(rt.Topic, int(rt.Count)); err != nil {
		if errors.Is(err, broker.ErrCannotGrow) {
			return kerr.InvalidPartitions.Code, err.Error()
		}
		return errorCode(err), err.Error()
	}
	c.log.Info("Kafka topic partitions added", "topic", rt.Topic, "partitions", rt.Count)
	return 0, ""
}
