package kafkaserver

import (
	"context"
	"encoding/binary"
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/warren-mq/warren/internal/testbroker"
)

func TestKafkaApiVersions(t *testing.T) {
	k := startKafka(t, Config{})
	cl := k.client(t)
	resp, err := cl.Request(context.Background(), kmsg.NewPtrApiVersionsRequest())
	if err != nil {
		t.Fatal(err)
	}
	vs := resp.(*kmsg.ApiVersionsResponse)
	if vs.ErrorCode != 0 || !slices.ContainsFunc(vs.ApiKeys, func(k kmsg.ApiVersionsResponseApiKey) bool { return k.ApiKey == int16(kmsg.ApiVersions) }) {
		t.Fatalf("error %d, keys %v", vs.ErrorCode, vs.ApiKeys)
	}
	// Every version we advertise answers.
	r := k.raw(t)
	for v := int16(0); v <= 4; v++ {
		req := kmsg.NewPtrApiVersionsRequest()
		req.Version = v
		req.ClientSoftwareName, req.ClientSoftwareVersion = "raw", "1"
		resp := r.roundTrip(req).(*kmsg.ApiVersionsResponse)
		if resp.ErrorCode != 0 || len(resp.ApiKeys) == 0 {
			t.Fatalf("v%d: error %d, %d keys", v, resp.ErrorCode, len(resp.ApiKeys))
		}
	}
}

// An ApiVersions version the broker does not know gets UNSUPPORTED_VERSION
// in v0 with the versions the broker has, so the client can retry.
func TestKafkaApiVersionsUnsupported(t *testing.T) {
	k := startKafka(t, Config{})
	r := k.raw(t)
	req := kmsg.NewPtrApiVersionsRequest()
	req.Version = 4
	b := r.f.AppendRequest(nil, req, 7)
	binary.BigEndian.PutUint16(b[6:], 99) // the header's version
	r.writeBytes(b)
	corr, body, err := r.readFrame()
	if err != nil {
		t.Fatal(err)
	}
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.Version = 0
	if err := resp.ReadFrom(body); err != nil {
		t.Fatal(err)
	}
	if corr != 7 || resp.ErrorCode != kerr.UnsupportedVersion.Code || len(resp.ApiKeys) == 0 {
		t.Fatalf("corr %d, error %d, %d keys", corr, resp.ErrorCode, len(resp.ApiKeys))
	}
	// The connection stays usable.
	if resp := r.roundTrip(kmsg.NewPtrApiVersionsRequest()).(*kmsg.ApiVersionsResponse); resp.ErrorCode != 0 {
		t.Fatal(resp.ErrorCode)
	}
}

// Unknown API keys, unsupported versions of other APIs, truncated and
// oversized requests close the connection, as Kafka does; the broker keeps
// serving others.
func TestKafkaBadFramesClose(t *testing.T) {
	k := startKafka(t, Config{AnonymousUser: "none"})
	cases := map[string]func(r *rawConn){
		"unknown key": func(r *rawConn) {
			b := r.f.AppendRequest(nil, kmsg.NewPtrApiVersionsRequest(), 1)
			binary.BigEndian.PutUint16(b[4:], 1234)
			r.writeBytes(b)
		},
		"unsupported version": func(r *rawConn) {
			b := r.f.AppendRequest(nil, kmsg.NewPtrSASLHandshakeRequest(), 1)
			binary.BigEndian.PutUint16(b[6:], 77)
			r.writeBytes(b)
		},
		"truncated header": func(r *rawConn) { r.writeBytes([]byte{0, 0, 0, 3, 0, 18, 0}) },
		"truncated body": func(r *rawConn) {
			req := kmsg.NewPtrSASLHandshakeRequest()
			req.Mechanism = "PLAIN"
			b := r.f.AppendRequest(nil, req, 1)
			b = b[:len(b)-3]
			binary.BigEndian.PutUint32(b, uint32(len(b)-4))
			r.writeBytes(b)
		},
		"negative size":        func(r *rawConn) { r.writeBytes([]byte{0xff, 0xff, 0xff, 0xf0}) },
		"oversize before SASL": func(r *rawConn) { r.writeBytes(binary.BigEndian.AppendUint32(nil, 512<<10+1)) },
		"request before SASL":  func(r *rawConn) { r.send(kmsg.NewPtrMetadataRequest()) },
	}
	for name, send := range cases {
		t.Run(name, func(t *testing.T) {
			r := k.raw(t)
			send(r)
			r.expectClosed()
		})
	}
	r := k.raw(t)
	if resp := r.roundTrip(kmsg.NewPtrApiVersionsRequest()).(*kmsg.ApiVersionsResponse); resp.ErrorCode != 0 {
		t.Fatal(resp.ErrorCode)
	}
	if n := k.Kafka.panics.Load(); n != 0 {
		t.Fatalf("%d handler panics on bad input", n)
	}
}

// Kafka connections are sessions in the broker's registry once they have a
// user, and leave it when they close.
func TestKafkaSessionRegistered(t *testing.T) {
	k := startKafka(t, Config{})
	r := k.raw(t)
	r.roundTrip(kmsg.NewPtrApiVersionsRequest())
	find := func() bool {
		for _, s := range k.Broker.Sessions() {
			if s.Info.Protocol == "kafka" && s.Info.User == "guest" && s.Info.UserProvidedName == "raw" {
				return true
			}
		}
		return false
	}
	testbroker.CheckFor(t, 10e9, find)
	r.nc.Close()
	testbroker.CheckFor(t, 10e9, func() bool { return !find() })
}

func init() {
	// A handler that panics, on an API no client sends to a broker, to show
	// that a panic closes only its connection.
	registerVersions(kmsg.EndQuorumEpoch, 0, 0, func(*conn, kmsg.Request) (kmsg.Response, error) { panic("test panic") })
}

func TestKafkaPanicClosesConnection(t *testing.T) {
	k := startKafka(t, Config{})
	r := k.raw(t)
	r.send(&kmsg.EndQuorumEpochRequest{})
	r.expectClosed()
	r = k.raw(t)
	if resp := r.roundTrip(kmsg.NewPtrApiVersionsRequest()).(*kmsg.ApiVersionsResponse); resp.ErrorCode != 0 {
		t.Fatal(resp.ErrorCode)
	}
}
