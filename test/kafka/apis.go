package kafka

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// MissingAPIs asks the broker at addr for its ApiVersions and returns those
// of the named APIs (kmsg's names: "Metadata", "JoinGroup", ...) that it
// does not advertise. A check of an API the broker does not claim to serve
// is skipped rather than failed, as a Kafka client would not use it either;
// once advertised, the API must work.
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
