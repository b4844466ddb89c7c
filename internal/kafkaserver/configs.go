package kafkaserver

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/warren-mq/warren/internal/broker"
)

// DescribeConfigs, AlterConfigs and IncrementalAlterConfigs for topics:
// retention.ms, retention.bytes, segment.bytes, cleanup.policy,
// max.message.bytes and delete.retention.ms, kept as durable topic configs
// on the topic's streams (broker/topic_config.go). Any other name is
// INVALID_CONFIG. A topic's values in effect come from its Kafka config,
// else from its stream's arguments or policies (shown as the topic's too:
// they are per topic), else Warren's defaults. Broker resources are
// described (what the command line set) but not altered.

func init() {
	registerVersions(kmsg.DescribeConfigs, 0, 4, handleDescribeConfigs)
	registerVersions(kmsg.AlterConfigs, 0, 2, handleAlterConfigs)
	registerVersions(kmsg.IncrementalAlterConfigs, 0, 1, handleIncrementalAlterConfigs)
}

// configSource maps an entry's source to Kafka's.
func configSource(s string) kmsg.ConfigSource {
	switch s {
	case "topic", "arguments":
		return kmsg.ConfigSourceDynamicTopicConfig
	case "broker":
		return kmsg.ConfigSourceStaticBrokerConfig
	}
	return kmsg.ConfigSourceDefaultConfig
}

// configType is each config's Kafka type (DescribeConfigs v3+).
func configType(name string) kmsg.ConfigType {
	switch name {
	case broker.ConfigCleanupPolicy:
		return kmsg.ConfigTypeList
	case broker.ConfigMaxMessageBytes, broker.ConfigSegmentBytes, "num.partitions", "message.max.bytes", "socket.request.max.bytes":
		return kmsg.ConfigTypeInt
	case "auto.create.topics.enable":
		return kmsg.ConfigTypeBoolean
	}
	return kmsg.ConfigTypeLong
}

// defaultConfigEntries are a new topic's configs.
func defaultConfigEntries() []broker.TopicConfigEntry {
	return []broker.TopicConfigEntry{
		{Name: broker.ConfigCleanupPolicy, Value: "delete", Source: "default"},
		{Name: broker.ConfigDeleteRetentionMs, Value: "86400000", Source: "default"},
		{Name: broker.ConfigMaxMessageBytes, Value: "1048588", Source: "default"},
		{Name: broker.ConfigRetentionBytes, Value: "-1", Source: "default"},
		{Name: broker.ConfigRetentionMs, Value: "-1", Source: "default"},
		{Name: broker.ConfigSegmentBytes, Value: "500000000", Source: "default"},
	}
}

// brokerConfigEntries describe the listener's settings.
func (c *conn) brokerConfigEntries() []broker.TopicConfigEntry {
	cfg := c.srv.cfg
	return []broker.TopicConfigEntry{
		{Name: "auto.create.topics.enable", Value: strconv.FormatBool(!cfg.DisableAutoCreate), Source: "broker"},
		{Name: "message.max.bytes", Value: "1048588", Source: "default"},
		{Name: "num.partitions", Value: strconv.Itoa(cfg.NumPartitions), Source: "broker"},
		{Name: "socket.request.max.bytes", Value: strconv.Itoa(cfg.MaxRequestSize), Source: "broker"},
	}
}

func handleDescribeConfigs(c *conn, req kmsg.Request) (kmsg.Response, error) {
	r := req.(*kmsg.DescribeConfigsRequest)
	resp := kmsg.NewPtrDescribeConfigsResponse()
	for _, rr := range r.Resources {
		res := kmsg.NewDescribeConfigsResponseResource()
		res.ResourceType, res.ResourceName = rr.ResourceType, rr.ResourceName
		var entries []broker.TopicConfigEntry
		switch rr.ResourceType {
		case kmsg.ConfigResourceTypeTopic:
			t, ok := c.vhost.Topic(rr.ResourceName)
			switch {
			case !ok:
				res.ErrorCode = kerr.UnknownTopicOrPartition.Code
			case !c.describable(t):
				res.ErrorCode = kerr.TopicAuthorizationFailed.Code
			case len(t.Partitions) == 0 || t.Partitions[0] == nil:
				entries = defaultConfigEntries()
			default:
				entries = t.Partitions[0].DescribeTopicConfig()
			}
		case kmsg.ConfigResourceTypeBroker:
			if rr.ResourceName != "" && rr.ResourceName != strconv.Itoa(nodeID) {
				res.ErrorCode, res.ErrorMessage = kerr.InvalidRequest.Code, kmsg.StringPtr("no broker "+rr.ResourceName)
				break
			}
			entries = c.brokerConfigEntries()
		default:
			res.ErrorCode, res.ErrorMessage = kerr.InvalidRequest.Code, kmsg.StringPtr(fmt.Sprintf("resource type %d is not supported", rr.ResourceType))
		}
		for _, e := range entries {
			if rr.ConfigNames != nil && !slices.Contains(rr.ConfigNames, e.Name) {
				continue
			}
			rc := kmsg.NewDescribeConfigsResponseResourceConfig()
			rc.Name, rc.Value = e.Name, kmsg.StringPtr(e.Value)
			rc.Source, rc.IsDefault = configSource(e.Source), e.Source == "default"
			rc.ConfigType = configType(e.Name)
			if r.IncludeSynonyms {
				syn := kmsg.NewDescribeConfigsResponseResourceConfigConfigSynonym()
				syn.Name, syn.Value, syn.Source = e.Name, rc.Value, rc.Source
				rc.ConfigSynonyms = append(rc.ConfigSynonyms, syn)
			}
			res.Configs = append(res.Configs, rc)
		}
		resp.Resources = append(resp.Resources, res)
	}
	return resp, nil
}

// alterTarget resolves an alter request's resource: the topic, or the
// error code and message.
func (c *conn) alterTarget(typ kmsg.ConfigResourceType, name string) (broker.Topic, int16, string) {
	switch typ {
	case kmsg.ConfigResourceTypeTopic:
	case kmsg.ConfigResourceTypeBroker:
		return broker.Topic{}, kerr.InvalidRequest.Code, "broker configs are Warren's command-line settings and cannot be altered"
	default:
		return broker.Topic{}, kerr.InvalidRequest.Code, fmt.Sprintf("resource type %d is not supported", typ)
	}
	t, ok := c.vhost.Topic(name)
	switch {
	case !ok:
		return t, kerr.UnknownTopicOrPartition.Code, ""
	case !c.allowed(t, broker.Configure):
		return t, kerr.TopicAuthorizationFailed.Code, ""
	}
	return t, 0, ""
}

// currentConfig is a topic's Kafka config (that of its first partition).
func currentConfig(t broker.Topic) map[string]string {
	for _, s := range t.Partitions {
		if s != nil {
			if cfg := s.TopicConfig(); cfg != nil {
				return cfg
			}
			break
		}
	}
	return map[string]string{}
}

// applyConfig checks cfg and, unless validating, sets it on the topic.
func applyConfig(c *conn, t broker.Topic, cfg map[string]string, validateOnly bool) (int16, string) {
	for k, v := range cfg {
		if err := broker.CheckTopicConfig(k, v); err != nil {
			return kerr.InvalidConfig.Code, err.Error()
		}
	}
	if validateOnly {
		return 0, ""
	}
	if err := setTopicConfig(t, cfg); err != nil {
		return errorCode(err), err.Error()
	}
	c.log.Info("Kafka topic configs changed", "topic", t.Name, "configs", fmt.Sprint(cfg))
	return 0, ""
}

// alterConfigs is what AlterConfigs and IncrementalAlterConfigs share: each
// resource is resolved by alterTarget (one named twice in the request is
// refused), given the config newConfig makes for it, and applied; done gets
// each resource's outcome for the response.
func alterConfigs[R any](c *conn, rs []R, validateOnly bool, name func(R) (kmsg.ConfigResourceType, string),
	newConfig func(R, broker.Topic) (map[string]string, error), done func(R, int16, string)) {
	key := func(r R) string {
		typ, n := name(r)
		return fmt.Sprint(typ, "/", n)
	}
	seen := map[string]int{}
	for _, r := range rs {
		seen[key(r)]++
	}
	for _, r := range rs {
		t, code, msg := c.alterTarget(name(r))
		if seen[key(r)] > 1 {
			code, msg = kerr.InvalidRequest.Code, "resource named more than once in the request"
		}
		if code == 0 {
			if cfg, err := newConfig(r, t); err != nil {
				code, msg = kerr.InvalidConfig.Code, err.Error()
			} else {
				code, msg = applyConfig(c, t, cfg, validateOnly)
			}
		}
		done(r, code, msg)
	}
}

func handleAlterConfigs(c *conn, req kmsg.Request) (kmsg.Response, error) {
	r := req.(*kmsg.AlterConfigsRequest)
	resp := kmsg.NewPtrAlterConfigsResponse()
	alterConfigs(c, r.Resources, r.ValidateOnly,
		func(rr kmsg.AlterConfigsRequestResource) (kmsg.ConfigResourceType, string) {
			return rr.ResourceType, rr.ResourceName
		},
		func(rr kmsg.AlterConfigsRequestResource, _ broker.Topic) (map[string]string, error) {
			// AlterConfigs replaces the whole set.
			cfg := map[string]string{}
			for _, rc := range rr.Configs {
				if rc.Value != nil {
					cfg[rc.Name] = *rc.Value
				}
			}
			return cfg, nil
		},
		func(rr kmsg.AlterConfigsRequestResource, code int16, msg string) {
			res := kmsg.NewAlterConfigsResponseResource()
			res.ResourceType, res.ResourceName, res.ErrorCode = rr.ResourceType, rr.ResourceName, code
			if msg != "" {
				res.ErrorMessage = kmsg.StringPtr(msg)
			}
			resp.Resources = append(resp.Resources, res)
		})
	return resp, nil
}

func handleIncrementalAlterConfigs(c *conn, req kmsg.Request) (kmsg.Response, error) {
	r := req.(*kmsg.IncrementalAlterConfigsRequest)
	resp := kmsg.NewPtrIncrementalAlterConfigsResponse()
	alterConfigs(c, r.Resources, r.ValidateOnly,
		func(rr kmsg.IncrementalAlterConfigsRequestResource) (kmsg.ConfigResourceType, string) {
			return rr.ResourceType, rr.ResourceName
		},
		func(rr kmsg.IncrementalAlterConfigsRequestResource, t broker.Topic) (map[string]string, error) {
			return incrementalConfig(currentConfig(t), rr.Configs)
		},
		func(rr kmsg.IncrementalAlterConfigsRequestResource, code int16, msg string) {
			res := kmsg.NewIncrementalAlterConfigsResponseResource()
			res.ResourceType, res.ResourceName, res.ErrorCode = rr.ResourceType, rr.ResourceName, code
			if msg != "" {
				res.ErrorMessage = kmsg.StringPtr(msg)
			}
			resp.Resources = append(resp.Resources, res)
		})
	return resp, nil
}

// incrementalConfig applies IncrementalAlterConfigs' operations to cfg.
func incrementalConfig(cfg map[string]string, ops []kmsg.IncrementalAlterConfigsRequestResourceConfig) (map[string]string, error) {
	for _, op := range ops {
		val := ""
		if op.Value != nil {
			val = *op.Value
		}
		switch op.Op {
		case kmsg.IncrementalAlterConfigOpSet:
			cfg[op.Name] = val
		case kmsg.IncrementalAlterConfigOpDelete:
			delete(cfg, op.Name)
		case kmsg.IncrementalAlterConfigOpAppend, kmsg.IncrementalAlterConfigOpSubtract:
			if configType(op.Name) != kmsg.ConfigTypeList {
				return nil, fmt.Errorf("config value append/subtract is not allowed for config key %s, which is not a list", op.Name)
			}
			list := []string{"delete"}
			if cur, ok := cfg[op.Name]; ok {
				list = strings.Split(cur, ",")
			}
			for _, v := range strings.Split(val, ",") {
				if op.Op == kmsg.IncrementalAlterConfigOpAppend && !slices.Contains(list, v) {
					list = append(list, v)
				} else if op.Op == kmsg.IncrementalAlterConfigOpSubtract {
					list = slices.DeleteFunc(list, func(x string) bool { return x == v })
				}
			}
			if len(list) == 0 {
				return nil, errors.New("cleanup.policy cannot be empty")
			}
			cfg[op.Name] = strings.Join(list, ",")
		default:
			return nil, fmt.Errorf("unknown operation %d on config %s", op.Op, op.Name)
		}
	}
	return cfg, nil
}
