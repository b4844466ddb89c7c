package kafkaserver

import (
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"
	"strconv"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	"github.com/warren-mq/warren/internal/broker"
)

func (k *kafkaBroker) addUser(t testing.TB, name, pass string, p broker.Permission) {
	t.Helper()
	if err := k.Broker.AddUser(name, pass); err != nil {
		t.Fatal(err)
	}
	if err := k.Broker.SetPermissions(name, "/", p); err != nil {
		t.Fatal(err)
	}
}

var allPerms = broker.Permission{Configure: ".*", Write: ".*", Read: ".*"}

// roundTrip produces one record to topic and reads it back with mechanism m.
func (k *kafkaBroker) roundTripAs(t *testing.T, m sasl.Mechanism, topic string) error {
	ctx := ctxT(t)
	cl := k.client(t, kgo.SASL(m), kgo.DefaultProduceTopic(topic), kgo.AllowAutoTopicCreation(), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.RequestRetries(0), kgo.RetryTimeout(0))
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("v")}).FirstErr(); err != nil {
		return err
	}
	consume(t, ctx, cl, 1)
	return nil
}

func TestKafkaSaslMechanisms(t *testing.T) {
	k := startKafka(t, Config{AnonymousUser: "none"})
	k.addUser(t, "alice", "s3cret", allPerms)
	// A user whose password was set as a hash only (definitions import) has
	// no SCRAM credentials: PLAIN works, SCRAM does not.
	if err := k.Broker.PutUser(broker.User{Name: "hashed", PasswordHash: broker.HashPassword("pw")}); err != nil {
		t.Fatal(err)
	}
	if err := k.Broker.SetPermissions("hashed", "/", allPerms); err != nil {
		t.Fatal(err)
	}
	good := map[string]sasl.Mechanism{
		"plain":        plain.Auth{User: "alice", Pass: "s3cret"}.AsMechanism(),
		"scram-256":    scram.Auth{User: "alice", Pass: "s3cret"}.AsSha256Mechanism(),
		"scram-512":    scram.Auth{User: "alice", Pass: "s3cret"}.AsSha512Mechanism(),
		"hashed plain": plain.Auth{User: "hashed", Pass: "pw"}.AsMechanism(),
	}
	for name, m := range good {
		if err := k.roundTripAs(t, m, "sasl-"+name[:5]); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	bad := map[string]sasl.Mechanism{
		"plain wrong":   plain.Auth{User: "alice", Pass: "nope"}.AsMechanism(),
		"scram wrong":   scram.Auth{User: "alice", Pass: "nope"}.AsSha256Mechanism(),
		"scram unknown": scram.Auth{User: "mallory", Pass: "nope"}.AsSha512Mechanism(),
		"scram hashed":  scram.Auth{User: "hashed", Pass: "pw"}.AsSha256Mechanism(),
	}
	for name, m := range bad {
		cl := k.client(t, kgo.SASL(m), kgo.RequestRetries(0))
		if _, err := cl.Request(ctxT(t), kmsg.NewPtrMetadataRequest()); !errors.Is(err, kerr.SaslAuthenticationFailed) {
			t.Errorf("%s: %v, want SASL_AUTHENTICATION_FAILED", name, err)
		}
	}
}

// Without SASL a client acts as the anonymous user (guest, from loopback);
// with AnonymousUser none it is refused.
func TestKafkaAnonymous(t *testing.T) {
	k := startKafka(t, Config{})
	ctx := ctxT(t)
	cl := k.client(t, kgo.DefaultProduceTopic("anon"), kgo.AllowAutoTopicCreation())
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	k2 := startKafka(t, Config{AnonymousUser: "none"})
	cl2 := k2.client(t, kgo.RequestRetries(0))
	if _, err := cl2.Request(ctx, kmsg.NewPtrMetadataRequest()); err == nil {
		t.Fatal("metadata without SASL")
	}
}

// The vhost's permissions apply: write to produce, read to fetch,
// configure to create, delete and alter.
func TestKafkaPermissions(t *testing.T) {
	k := startKafka(t, Config{})
	ctx := ctxT(t)
	adm := k.admin(t) // guest, anonymous
	for _, name := range []string{"w-only", "r-only"} {
		if _, err := adm.CreateTopic(ctx, 1, 1, nil, name); err != nil {
			t.Fatal(err)
		}
	}
	k.addUser(t, "bob", "pw", broker.Permission{Configure: "^$", Write: "^w-", Read: "^r-"})
	bob := kgo.SASL(plain.Auth{User: "bob", Pass: "pw"}.AsMechanism())
	pr := k.client(t, bob, kgo.RequestRetries(0), kgo.RetryTimeout(0), kgo.RecordRetries(0))
	if err := pr.ProduceSync(ctx, &kgo.Record{Topic: "w-only", Value: []byte("ok")}).FirstErr(); err != nil {
		t.Fatalf("produce with write: %v", err)
	}
	if err := pr.ProduceSync(ctx, &kgo.Record{Topic: "r-only", Value: []byte("no")}).FirstErr(); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("produce without write: %v", err)
	}
	badm := k.admin(t, bob)
	if resp, err := badm.CreateTopic(ctx, 1, 1, nil, "w-new"); err == nil && !errors.Is(resp.Err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("create without configure: %v", resp.Err)
	}
	if resp, err := badm.DeleteTopics(ctx, "w-only"); err != nil || !errors.Is(resp["w-only"].Err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("delete without configure: %v %v", err, resp)
	}
	// read: r-only is readable, w-only is not.
	co := k.client(t, bob, kgo.ConsumeTopics("r-only"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	gpr := k.client(t, kgo.DefaultProduceTopic("r-only"))
	if err := gpr.ProduceSync(ctx, &kgo.Record{Value: []byte("r")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	consume(t, ctx, co, 1)
	lo, err := badm.ListEndOffsets(ctx, "w-only")
	if o, _ := lo.Lookup("w-only", 0); !errors.Is(err, kerr.TopicAuthorizationFailed) && !errors.Is(o.Err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("list offsets without read: %v %+v", err, o)
	}
}

// bigProduce is a valid ~600 KiB produce request (acks=1) to a topic that
// does not exist: larger than the limit before authentication.
func bigProduce() *kmsg.ProduceRequest {
	req := kmsg.NewPtrProduceRequest()
	req.Version, req.Acks, req.TimeoutMillis = 7, 1, 1000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = "nowhere"
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = make([]byte, 600<<10)
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return req
}

func (r *rawConn) saslPlain(version int16, user, pass string) {
	r.t.Helper()
	hs := kmsg.NewPtrSASLHandshakeRequest()
	hs.Version, hs.Mechanism = version, "PLAIN"
	if resp := r.roundTrip(hs).(*kmsg.SASLHandshakeResponse); resp.ErrorCode != 0 {
		r.t.Fatalf("handshake: %d", resp.ErrorCode)
	}
	token := []byte("\x00" + user + "\x00" + pass)
	if version == 0 {
		r.writeBytes(append(binary.BigEndian.AppendUint32(nil, uint32(len(token))), token...))
		var size [4]byte
		if _, err := io.ReadFull(r.br, size[:]); err != nil {
			r.t.Fatalf("raw SASL answer: %v", err)
		}
		return
	}
	au := kmsg.NewPtrSASLAuthenticateRequest()
	au.Version, au.SASLAuthBytes = 1, token
	if resp := r.roundTrip(au).(*kmsg.SASLAuthenticateResponse); resp.ErrorCode != 0 {
		r.t.Fatalf("authenticate: %d", resp.ErrorCode)
	}
}

// Before authentication requests are limited to 512 KiB; after it to
// MaxRequestSize, whichever SASL version authenticated.
func TestKafkaRequestLimitBeforeAndAfterSasl(t *testing.T) {
	k := startKafka(t, Config{AnonymousUser: "none", MaxRequestSize: 1 << 20})
	r := k.raw(t)
	r.sendMayFail(bigProduce())
	r.expectClosed()
	for _, v := range []int16{0, 1} {
		r = k.raw(t)
		r.saslPlain(v, "guest", "guest")
		resp := r.roundTrip(bigProduce()).(*kmsg.ProduceResponse)
		if code := resp.Topics[0].Partitions[0].ErrorCode; code != kerr.UnknownTopicOrPartition.Code {
			t.Fatalf("v%d: produce error %d", v, code)
		}
		big := bigProduce()
		big.Topics[0].Partitions[0].Records = make([]byte, 2<<20)
		r.sendMayFail(big)
		r.expectClosed()
	}
	// A failed authentication is answered, then the connection closed.
	r = k.raw(t)
	hs := kmsg.NewPtrSASLHandshakeRequest()
	hs.Version, hs.Mechanism = 1, "PLAIN"
	r.roundTrip(hs)
	au := kmsg.NewPtrSASLAuthenticateRequest()
	au.Version, au.SASLAuthBytes = 1, []byte("\x00guest\x00wrong")
	if resp := r.roundTrip(au).(*kmsg.SASLAuthenticateResponse); resp.ErrorCode != kerr.SaslAuthenticationFailed.Code {
		t.Fatalf("authenticate: %d", resp.ErrorCode)
	}
	r.expectClosed()
	// An unknown mechanism is refused with the list.
	r = k.raw(t)
	hs.Mechanism = "GSSAPI"
	if resp := r.roundTrip(hs).(*kmsg.SASLHandshakeResponse); resp.ErrorCode != kerr.UnsupportedSaslMechanism.Code || len(resp.SupportedMechanisms) != 3 {
		t.Fatalf("%+v", resp)
	}
}

// sendMayFail writes req; the broker may close the connection (and reset
// it) before all of an oversized request is written.
func (r *rawConn) sendMayFail(req kmsg.Request) {
	r.corr++
	_, _ = r.nc.Write(r.f.AppendRequest(nil, req, r.corr))
}

// scramExchange runs SCRAM-SHA-256 as user/pass over r by hand; finalNonce
// makes the client-final nonce from the client's and the server's (the
// combined one from server-first). It returns the SaslAuthenticate error
// code of client-final.
func (r *rawConn) scramExchange(user, pass string, finalNonce func(cnonce, combined string) string) int16 {
	r.t.Helper()
	hs := kmsg.NewPtrSASLHandshakeRequest()
	hs.Version, hs.Mechanism = 1, "SCRAM-SHA-256"
	if resp := r.roundTrip(hs).(*kmsg.SASLHandshakeResponse); resp.ErrorCode != 0 {
		r.t.Fatalf("handshake: %d", resp.ErrorCode)
	}
	const cnonce = "fyko+d2lbbFgONRv9qkxdawL"
	first := "n=" + user + ",r=" + cnonce
	au := kmsg.NewPtrSASLAuthenticateRequest()
	au.Version, au.SASLAuthBytes = 1, []byte("n,,"+first)
	resp := r.roundTrip(au).(*kmsg.SASLAuthenticateResponse)
	if resp.ErrorCode != 0 {
		r.t.Fatalf("client-first: %d", resp.ErrorCode)
	}
	serverFirst := string(resp.SASLAuthBytes)
	attrs := scramAttrs(serverFirst)
	salt, err := base64.StdEncoding.DecodeString(attrs["s"])
	if err != nil || attrs["i"] != strconv.Itoa(broker.ScramIterations) {
		r.t.Fatalf("server-first %q: %v", serverFirst, err)
	}
	h := sha256.New
	salted, err := pbkdf2.Key(h, pass, salt, broker.ScramIterations, h().Size())
	if err != nil {
		r.t.Fatal(err)
	}
	clientKey := hmacOf(h, salted, "Client Key")
	stored := sha256.Sum256(clientKey)
	withoutProof := "c=biws,r=" + finalNonce(cnonce, attrs["r"])
	sig := hmacOf(h, stored[:], first+","+serverFirst+","+withoutProof)
	for i := range clientKey {
		clientKey[i] ^= sig[i]
	}
	au.SASLAuthBytes = []byte(withoutProof + ",p=" + base64.StdEncoding.EncodeToString(clientKey))
	return r.roundTrip(au).(*kmsg.SASLAuthenticateResponse).ErrorCode
}

// SCRAM's client-final nonce is checked as Kafka's ScramSaslServer checks it:
// it must end with the server's combined nonce. librdkafka sends its client
// nonce again in front of it (and signs that), which Kafka accepts; a nonce
// without the server's part is refused.
func TestKafkaSaslScramNonce(t *testing.T) {
	k := startKafka(t, Config{AnonymousUser: "none"})
	k.addUser(t, "carol", "pw", allPerms)
	cases := []struct {
		name  string
		nonce func(cnonce, combined string) string
		want  int16
	}{
		{"RFC 5802", func(_, combined string) string { return combined }, 0},
		{"librdkafka", func(cnonce, combined string) string { return cnonce + combined }, 0},
		{"client nonce only", func(cnonce, _ string) string { return cnonce }, kerr.SaslAuthenticationFailed.Code},
		{"server part changed", func(_, combined string) string { return combined + "x" }, kerr.SaslAuthenticationFailed.Code},
	}
	for _, tc := range cases {
		r := k.raw(t)
		if got := r.scramExchange("carol", "pw", tc.nonce); got != tc.want {
			t.Errorf("%s: error code %d, want %d", tc.name, got, tc.want)
			continue
		}
		if tc.want == 0 {
			if resp := r.roundTrip(kmsg.NewPtrMetadataRequest()).(*kmsg.MetadataResponse); len(resp.Brokers) == 0 {
				t.Errorf("%s: metadata after SCRAM lists no brokers", tc.name)
			}
		} else {
			r.expectClosed()
		}
	}
}
