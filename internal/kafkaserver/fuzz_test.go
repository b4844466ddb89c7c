package kafkaserver

import (
	"bytes"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// FuzzKafkaRequest feeds the request decoder (header, version check, kmsg
// body) arbitrary frames. Invariants: it never panics; a frame it accepts
// re-encodes to a frame that decodes to the same request.
func FuzzKafkaRequest(f *testing.F) {
	fm := kmsg.NewRequestFormatter(kmsg.FormatterClientID("fuzz"))
	seed := func(req kmsg.Request) { f.Add(fm.AppendRequest(nil, req, 1)[4:]) }
	for v := int16(0); v <= 4; v++ {
		r := kmsg.NewPtrApiVersionsRequest()
		r.Version, r.ClientSoftwareName, r.ClientSoftwareVersion = v, "fuzz", "1"
		seed(r)
	}
	for _, v := range []int16{1, 9, 12} {
		r := kmsg.NewPtrMetadataRequest()
		r.Version = v
		t := kmsg.NewMetadataRequestTopic()
		t.Topic = kmsg.StringPtr("orders")
		r.Topics = append(r.Topics, t)
		seed(r)
	}
	pr := bigProduce()
	pr.Topics[0].Partitions[0].Records = []byte("records")
	seed(pr)
	fr := kmsg.NewPtrFetchRequest()
	fr.Version = 12
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic, ft.Partitions = "t", []kmsg.FetchRequestTopicPartition{kmsg.NewFetchRequestTopicPartition()}
	fr.Topics = append(fr.Topics, ft)
	seed(fr)
	hs := kmsg.NewPtrSASLHandshakeRequest()
	hs.Mechanism = "PLAIN"
	seed(hs)
	ct := kmsg.NewPtrCreateTopicsRequest()
	ct.Version = 7
	ct.Topics = append(ct.Topics, kmsg.NewCreateTopicsRequestTopic())
	seed(ct)
	f.Fuzz(func(t *testing.T, b []byte) {
		h, req, err := decodeRequest(b)
		if err != nil {
			return
		}
		again := fm.AppendRequest(nil, req, h.corr)[4:]
		h2, req2, err := decodeRequest(again)
		if err != nil {
			t.Fatalf("re-encoded %s v%d does not decode: %v", kmsg.NameForKey(h.key), h.version, err)
		}
		if h2.key != h.key || h2.version != h.version || !bytes.Equal(req.AppendTo(nil), req2.AppendTo(nil)) {
			t.Fatalf("%s v%d changed in a round trip", kmsg.NameForKey(h.key), h.version)
		}
	})
}
