package kafkaserver

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/warren-mq/warren/internal/broker"
)

// SaslHandshake and SaslAuthenticate: PLAIN against the users' password
// hashes, SCRAM-SHA-256/512 against their SCRAM credentials
// (broker/users_scram.go). Handshake v1 is followed by SaslAuthenticate
// requests; v0 by raw size-prefixed tokens, as Kafka's first SASL clients
// sent them. A failed authentication is answered with
// SASL_AUTHENTICATION_FAILED and the connection closed, as Kafka does; the
// reason goes to the log only, so a guesser learns nothing.

func init() {
	registerVersions(kmsg.SASLHandshake, 0, 1, handleSaslHandshake)
	registerVersions(kmsg.SASLAuthenticate, 0, 2, handleSaslAuthenticate)
}

// fakeSaltKey makes the salts of unknown users, stable for the process.
var fakeSaltKey = func() (k [32]byte) {
	_, _ = rand.Read(k[:])
	return k
}()

var saslMechanisms = []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"}

func handleSaslHandshake(c *conn, req kmsg.Request) (kmsg.Response, error) {
	r := req.(*kmsg.SASLHandshakeRequest)
	resp := kmsg.NewPtrSASLHandshakeResponse()
	resp.SupportedMechanisms = saslMechanisms
	switch {
	case c.served || c.sasl.mechanism != "" || c.sasl.done:
		resp.ErrorCode = kerr.IllegalSaslState.Code
		return resp, errCloseAfter
	case !containsString(saslMechanisms, r.Mechanism):
		resp.ErrorCode = kerr.UnsupportedSaslMechanism.Code
		return resp, nil
	}
	c.sasl.mechanism = r.Mechanism
	c.sasl.raw = r.Version == 0
	return resp, nil
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func handleSaslAuthenticate(c *conn, req kmsg.Request) (kmsg.Response, error) {
	r := req.(*kmsg.SASLAuthenticateRequest)
	resp := kmsg.NewPtrSASLAuthenticateResponse()
	if c.sasl.mechanism == "" || c.sasl.raw || c.sasl.done {
		resp.ErrorCode = kerr.IllegalSaslState.Code
		resp.ErrorMessage = kmsg.StringPtr("SaslAuthenticate without a SaslHandshake v1 first")
		return resp, errCloseAfter
	}
	out, err := c.saslStep(r.SASLAuthBytes)
	if err != nil {
		resp.ErrorCode = kerr.SaslAuthenticationFailed.Code
		resp.ErrorMessage = kmsg.StringPtr(fmt.Sprintf("Authentication failed during authentication due to invalid credentials with SASL mechanism %s", c.sasl.mechanism))
		return resp, errCloseAfter
	}
	resp.SASLAuthBytes = out
	return resp, nil
}

// rawSaslToken answers a token sent after a v0 handshake: the reply is a
// bare size-prefixed token; a failure closes the connection.
func (c *conn) rawSaslToken(token []byte) error {
	out, err := c.saslStep(token)
	if err != nil {
		return err
	}
	return c.queue(&slot{frame: func(w *bufio.Writer, _ int32) error {
		var size [4]byte
		binary.BigEndian.PutUint32(size[:], uint32(len(out)))
		if _, err := w.Write(size[:]); err != nil {
			return err
		}
		_, err := w.Write(out)
		return err
	}})
}

// saslStep runs one step of the chosen mechanism and returns the server's
// token. An error is a refused authentication (already logged).
func (c *conn) saslStep(in []byte) ([]byte, error) {
	switch c.sasl.mechanism {
	case "PLAIN":
		return nil, c.saslPlain(in)
	default:
		return c.saslScram(in)
	}
}

// refused logs a refused authentication.
func (c *conn) refused(user, reason string) error {
	c.log.Warn("Kafka login refused", "login", user, "mechanism", c.sasl.mechanism, "reason", reason)
	return errors.New("authentication failed")
}

// saslPlain: authzid NUL authcid NUL password; an authorization identity
// other than the user itself is refused.
func (c *conn) saslPlain(in []byte) error {
	parts := bytes.SplitN(in, []byte{0}, 3)
	if len(parts) != 3 {
		return c.refused("", "malformed PLAIN response")
	}
	user, pass := string(parts[1]), string(parts[2])
	if len(parts[0]) != 0 && string(parts[0]) != user {
		return c.refused(user, "PLAIN authorization identity of another user")
	}
	u, err := c.srv.broker.Authenticate(user, pass, c.loopback)
	if err != nil {
		return c.refused(user, authReason(err))
	}
	return c.finishSasl(u)
}

// finishSasl logs the user in on the Kafka vhost.
func (c *conn) finishSasl(u *broker.User) error {
	if err := c.login(u, c.sasl.mechanism); err != nil {
		return c.refused(u.Name, err.Error())
	}
	c.sasl.done = true
	return nil
}

// scramState is a SCRAM exchange between its two client messages.
type scramState struct {
	user            string
	nonce           string // client nonce + server nonce
	clientFirstBare string
	serverFirst     string
	gs2Header       string
	cred            broker.ScramCredential
	known           bool // the user exists and has a credential
}

// saslScram runs RFC 5802's server side: the first call answers the
// client-first message with a salt, nonce and iteration count; the second
// checks the proof and answers the server signature.
func (c *conn) saslScram(in []byte) ([]byte, error) {
	h := broker.ScramHash(c.sasl.mechanism)
	if c.sasl.scram == nil {
		st, out, err := c.scramFirst(h, string(in))
		if err != nil {
			return nil, err
		}
		c.sasl.scram = st
		return out, nil
	}
	st := c.sasl.scram
	c.sasl.scram = nil
	// client-final: c=<gs2 header b64>,r=<nonce>[,...],p=<proof>
	msg := string(in)
	i := strings.LastIndex(msg, ",p=")
	if i < 0 {
		return nil, c.refused(st.user, "malformed SCRAM client-final message")
	}
	withoutProof, proofB64 := msg[:i], msg[i+3:]
	attrs := scramAttrs(withoutProof)
	// The nonce must end with the one server-first sent, as Kafka's
	// ScramSaslServer checks, not equal it: librdkafka (kcat, up to at least
	// 2.x) sends its client nonce again in front of the combined nonce, and
	// signs the message as sent, so Kafka accepts that.
	if attrs["c"] != base64.StdEncoding.EncodeToString([]byte(st.gs2Header)) || !strings.HasSuffix(attrs["r"], st.nonce) {
		return nil, c.refused(st.user, "SCRAM channel binding or nonce mismatch")
	}
	proof, err := base64.StdEncoding.DecodeString(proofB64)
	if err != nil || len(proof) != h().Size() {
		return nil, c.refused(st.user, "malformed SCRAM proof")
	}
	authMsg := st.clientFirstBare + "," + st.serverFirst + "," + withoutProof
	sig := hmacOf(h, st.cred.StoredKey, authMsg)
	clientKey := make([]byte, len(proof))
	for j := range proof {
		clientKey[j] = proof[j] ^ sig[j]
	}
	d := h()
	d.Write(clientKey)
	if !st.known || subtle.ConstantTimeCompare(d.Sum(nil), st.cred.StoredKey) != 1 {
		return nil, c.refused(st.user, "bad password or no SCRAM credentials (password set only as a hash)")
	}
	u, err := c.srv.broker.AuthenticateAnonymous(st.user, c.loopback)
	if err != nil {
		return nil, c.refused(st.user, authReason(err))
	}
	if err := c.finishSasl(u); err != nil {
		return nil, err
	}
	return []byte("v=" + base64.StdEncoding.EncodeToString(hmacOf(h, st.cred.ServerKey, authMsg))), nil
}

// scramFirst reads client-first ("n,,n=user,r=nonce") and makes server-first.
func (c *conn) scramFirst(h func() hash.Hash, msg string) (*scramState, []byte, error) {
	// gs2 header: "n," or "y," (no channel binding), then an optional
	// a=authzid, then ",".
	if !strings.HasPrefix(msg, "n,") && !strings.HasPrefix(msg, "y,") {
		return nil, nil, c.refused("", "SCRAM channel binding not supported")
	}
	j := strings.Index(msg[2:], ",")
	if j < 0 {
		return nil, nil, c.refused("", "malformed SCRAM client-first message")
	}
	st := &scramState{gs2Header: msg[:2+j+1], clientFirstBare: msg[2+j+1:]}
	authzid := strings.TrimPrefix(msg[2:2+j], "a=")
	attrs := scramAttrs(st.clientFirstBare)
	st.user = scramName(attrs["n"])
	cnonce := attrs["r"]
	if st.user == "" || cnonce == "" {
		return nil, nil, c.refused(st.user, "malformed SCRAM client-first message")
	}
	if authzid != "" && scramName(authzid) != st.user {
		return nil, nil, c.refused(st.user, "SCRAM authorization identity of another user")
	}
	var snonce [18]byte
	_, _ = rand.Read(snonce[:])
	st.nonce = cnonce + base64.RawURLEncoding.EncodeToString(snonce[:])
	if u, ok := c.srv.broker.User(st.user); ok {
		st.cred, st.known = u.Scram(c.sasl.mechanism)
	}
	if !st.known {
		// An unknown user gets a salt all the same (derived from its name
		// so it does not change between attempts) and fails at the proof.
		st.cred = broker.ScramCredential{Salt: hmacOf(h, fakeSaltKey[:], st.user)[:16], Iterations: broker.ScramIterations, StoredKey: make([]byte, h().Size())}
	}
	st.serverFirst = fmt.Sprintf("r=%s,s=%s,i=%d", st.nonce, base64.StdEncoding.EncodeToString(st.cred.Salt), st.cred.Iterations)
	return st, []byte(st.serverFirst), nil
}

// scramAttrs splits "k=v,k=v" (the first occurrence of each key wins).
func scramAttrs(s string) map[string]string {
	out := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		if len(kv) >= 2 && kv[1] == '=' {
			if _, ok := out[kv[:1]]; !ok {
				out[kv[:1]] = kv[2:]
			}
		}
	}
	return out
}

// scramName decodes a saslname (=2C is ",", =3D is "=").
func scramName(s string) string {
	return strings.NewReplacer("=2C", ",", "=3D", "=").Replace(s)
}

func hmacOf(h func() hash.Hash, key []byte, msg string) []byte {
	m := hmac.New(h, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}
