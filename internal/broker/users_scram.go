package broker

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"fmt"
	"hash"
	"strconv"
	"strings"
)

// SCRAM credentials (RFC 5802, RFC 7677), for Kafka's SASL SCRAM-SHA-256
// and SCRAM-SHA-512. RabbitMQ's password hash (one salted SHA-256) cannot
// answer a SCRAM exchange, which needs PBKDF2 of the password, so Warren
// derives SCRAM credentials when it is given a password (AddUser, the
// management API's password field) and stores them with the user, in the
// same put-user command. A user imported with only a password hash
// (definitions, password_hash) has none: it can use PLAIN, and SCRAM once its
// password is set again. The credentials are not exported in definitions.

// ScramIterations is the PBKDF2 iteration count of new credentials (Kafka's
// minimum and default for SCRAM users).
const ScramIterations = 4096

// ScramCredential is one mechanism's stored credential.
type ScramCredential struct {
	Salt                 []byte
	Iterations           int
	StoredKey, ServerKey []byte
}

// ScramHash returns the hash of a SCRAM mechanism name, or nil.
func ScramHash(mechanism string) func() hash.Hash {
	switch mechanism {
	case "SCRAM-SHA-256":
		return sha256.New
	case "SCRAM-SHA-512":
		return sha512.New
	}
	return nil
}

var scramMechanisms = []string{"SCRAM-SHA-256", "SCRAM-SHA-512"}

// ScramCredentials derives the stored form of password's SCRAM credentials
// for both mechanisms: "MECH:iterations:salt:storedKey:serverKey" joined
// by ";", base64 fields.
func ScramCredentials(password string) string {
	var parts []string
	for _, m := range scramMechanisms {
		salt := make([]byte, 16)
		_, _ = rand.Read(salt)
		c := NewScramCredential(ScramHash(m), password, salt, ScramIterations)
		enc := base64.StdEncoding.EncodeToString
		parts = append(parts, fmt.Sprintf("%s:%d:%s:%s:%s", m, c.Iterations, enc(c.Salt), enc(c.StoredKey), enc(c.ServerKey)))
	}
	return strings.Join(parts, ";")
}

// NewScramCredential derives a credential from a password.
func NewScramCredential(h func() hash.Hash, password string, salt []byte, iterations int) ScramCredential {
	salted, _ := pbkdf2.Key(h, password, salt, iterations, h().Size())
	clientKey := scramHMAC(h, salted, "Client Key")
	d := h()
	d.Write(clientKey)
	return ScramCredential{Salt: salt, Iterations: iterations, StoredKey: d.Sum(nil), ServerKey: scramHMAC(h, salted, "Server Key")}
}

func scramHMAC(h func() hash.Hash, key []byte, msg string) []byte {
	m := hmac.New(h, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// Scram returns the user's credential for a mechanism.
func (u *User) Scram(mechanism string) (ScramCredential, bool) {
	for _, p := range strings.Split(u.SCRAM, ";") {
		f := strings.Split(p, ":")
		if len(f) != 5 || f[0] != mechanism {
			continue
		}
		it, err1 := strconv.Atoi(f[1])
		salt, err2 := base64.StdEncoding.DecodeString(f[2])
		stored, err3 := base64.StdEncoding.DecodeString(f[3])
		server, err4 := base64.StdEncoding.DecodeString(f[4])
		if err1 != nil || err2 != nil || err3 != nil || err4 != nil || it <= 0 {
			return ScramCredential{}, false
		}
		return ScramCredential{Salt: salt, Iterations: it, StoredKey: stored, ServerKey: server}, true
	}
	return ScramCredential{}, false
}
