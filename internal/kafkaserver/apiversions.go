package kafkaserver

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	registerVersions(kmsg.ApiVersions, 0, 4, handleApiVersions)
}

// handleApiVersions lists the registered APIs. Every API is advertised from
// version 0 where kmsg decodes it (librdkafka checks that the broker's
// range reaches down to the versions it knows).
func handleApiVersions(c *conn, req kmsg.Request) (kmsg.Response, error) {
	r := req.(*kmsg.ApiVersionsRequest)
	if r.Version >= 3 && r.ClientSoftwareName != "" {
		c.infoMu.Lock()
		c.clientSoftware = r.ClientSoftwareName + " " + r.ClientSoftwareVersion
		c.infoMu.Unlock()
	}
	return c.apiVersionsResponse(r.Version, 0), nil
}

// apiVersionsResponse is the list of APIs at version v with errCode.
func (c *conn) apiVersionsResponse(v int16, errCode int16) *kmsg.ApiVersionsResponse {
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.SetVersion(v)
	resp.ErrorCode = errCode
	for key, a := range apis {
		if a == nil {
			continue
		}
		k := kmsg.NewApiVersionsResponseApiKey()
		k.ApiKey, k.MinVersion, k.MaxVersion = int16(key), a.min, a.max
		resp.ApiKeys = append(resp.ApiKeys, k)
	}
	return resp
}
