package kafka

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// saslLogin is the user the SASL tests authenticate as: guest/guest on the
// Warren the package starts (from loopback), WARREN_KAFKA_SASL=user:password
// for another broker; kfake has no users, so they are skipped there.
func saslLogin(t *testing.T, tg target) (user, pass string) {
	t.Helper()
	if v := os.Getenv("WARREN_KAFKA_SASL"); v != "" {
		user, pass, ok := strings.Cut(v, ":")
		if !ok {
			t.Fatalf("WARREN_KAFKA_SASL=%q: want user:password", v)
		}
		return user, pass
	}
	if tg.kind != "warren" {
		t.Skipf("the %s target's SASL users are unknown (set WARREN_KAFKA_SASL=user:password)", tg.kind)
	}
	return "guest", "guest"
}

// TestKafkaSaslFranzGo: franz-go authenticates with PLAIN, SCRAM-SHA-256 and
// SCRAM-SHA-512 and produces and consumes; a wrong password is refused with
// SASL_AUTHENTICATION_FAILED.
func TestKafkaSaslFranzGo(t *testing.T) {
	tg := broker(t)
	user, pass := saslLogin(t, tg)
	topic := uniqueName(t, "t")
	createTopic(t, tg, topic, 1)
	mechs := []struct {
		name string
		m    sasl.Mechanism
	}{
		{"PLAIN", plain.Auth{User: user, Pass: pass}.AsMechanism()},
		{"SCRAM-SHA-256", scram.Auth{User: user, Pass: pass}.AsSha256Mechanism()},
		{"SCRAM-SHA-512", scram.Auth{User: user, Pass: pass}.AsSha512Mechanism()},
	}
	for _, mc := range mechs {
		p := client(t, tg, kgo.SASL(mc.m), kgo.DefaultProduceTopic(topic))
		produceSync(t, p, &kgo.Record{Value: []byte(mc.name)})
	}
	c := client(t, tg, kgo.SASL(mechs[2].m), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if got := values(consumeN(t, c, len(mechs), 60*time.Second)); strings.Join(got, " ") != "PLAIN SCRAM-SHA-256 SCRAM-SHA-512" {
		t.Fatalf("consumed %v", got)
	}
	for _, m := range []sasl.Mechanism{
		plain.Auth{User: user, Pass: pass + "-wrong"}.AsMechanism(),
		scram.Auth{User: user, Pass: pass + "-wrong"}.AsSha512Mechanism(),
	} {
		cl := client(t, tg, kgo.SASL(m), kgo.RequestRetries(0))
		if _, err := cl.Request(testCtx(t, 30*time.Second), kmsg.NewPtrMetadataRequest()); !errors.Is(err, kerr.SaslAuthenticationFailed) {
			t.Errorf("%s with a wrong password: %v, want SASL_AUTHENTICATION_FAILED", m.Name(), err)
		}
	}
}

// TestKafkaSaslKcat: librdkafka (kcat) over SASL_PLAINTEXT with
// SCRAM-SHA-256, SCRAM-SHA-512 and PLAIN produces and reads back; with a
// wrong password it fails.
func TestKafkaSaslKcat(t *testing.T) {
	kcat := kcatPath(t)
	tg := broker(t)
	user, pass := saslLogin(t, tg)
	topic := uniqueName(t, "t")
	createTopic(t, tg, topic, 1)
	run := func(mech, password string, args ...string) ([]byte, error) {
		cmd := exec.Command(kcat, append([]string{"-b", tg.kafka, "-X", "security.protocol=SASL_PLAINTEXT",
			"-X", "sasl.mechanisms=" + mech, "-X", "sasl.username=" + user, "-X", "sasl.password=" + password,
			"-X", "socket.timeout.ms=10000"}, args...)...)
		if args[0] == "-P" {
			cmd.Stdin = strings.NewReader(mech + "\n")
		}
		return runBounded(cmd, 30*time.Second)
	}
	mechs := []string{"SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"}
	for _, m := range mechs {
		if out, err := run(m, pass, "-P", "-t", topic); err != nil {
			t.Fatalf("kcat -P with %s: %v\n%s", m, err, out)
		}
	}
	out, err := run("SCRAM-SHA-512", pass, "-C", "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%s\n")
	if err != nil {
		t.Fatalf("kcat -C: %v\n%s", err, out)
	}
	if got, want := string(out), strings.Join(mechs, "\n")+"\n"; got != want {
		t.Fatalf("kcat -C read %q, want %q", got, want)
	}
	// librdkafka reports the failed authentication and exits non-zero.
	if out, err := run("SCRAM-SHA-256", pass+"-wrong", "-L", "-t", topic); err == nil {
		t.Fatalf("kcat -L with a wrong password succeeded:\n%s", out)
	}
}
