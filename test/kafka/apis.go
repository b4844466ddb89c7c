package kafka

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ServedAPIs are the Kafka APIs Warren serves (issue #10's list), by kmsg's
// names. The clients of test/kafka, test/interop/kcat.sh and kafkajs use
// them; .ci/run and TestKafkaAPIsAdvertised fail when the broker does not
// advertise one, naming it, rather than letting a client fail later with a
// less clear error.
var ServedAPIs = []string{
	"ApiVersions", "Metadata", "Produce", "Fetch", "ListOffsets",
	"CreateTopics", "DeleteTopics", "CreatePartitions",
	"DescribeConfigs", "AlterConfigs", "IncrementalAlterConfigs",
	"FindCoordinator", "JoinGroup", "SyncGroup", "Heartbeat", "LeaveGroup",
	"OffsetCommit", "OffsetFetch", "DescribeGroups", "ListGroups", "DeleteGroups", "OffsetDelete",
	"InitProducerID", "AddPartitionsToTxn", "AddOffsetsToTxn", "EndTxn", "TxnOffsetCommit",
	"SASLHandshake", "SASLAuthenticate",
}

// MissingAPIs asks the broker at addr for its ApiVersions and returns those
// of the named APIs (kmsg's names: "Metadata", "JoinGroup", ...) that it
// does not advertise.
func MissingAPIs(ctx context.Context, addr string, names ...string) ([]string, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	resp, err := kmsg.NewPtrApiVersionsRequest().RequestWith(ctx, cl)
	if err != nil {
		return nil, fmt.Errorf("ApiVersions: %w", err)
	}
	if resp.ErrorCode != 0 {
		return nil, fmt.Errorf("ApiVersions: error code %d", resp.ErrorCode)
	}
	have := map[string]bool{}
	for _, k := range resp.ApiKeys {
		have[kmsg.NameForKey(k.ApiKey)] = true
	}
	var missing []string
	for _, n := range names {
		if !have[n] {
			missing = append(missing, n)
		}
	}
	return missing, nil
}
