package messaging

import (
	"errors"
	"net/url"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

// brokerURL parses the broker URL so tests can vary user, password and vhost.
func brokerURL(t *testing.T) *url.URL {
	t.Helper()
	u, err := url.Parse(urlOf(t))
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// credentials returns the user and password of the broker URL.
func credentials(t *testing.T) (user, pass string) {
	t.Helper()
	u := brokerURL(t)
	pass, _ = u.User.Password()
	return u.User.Username(), pass
}

func dialSASL(t *testing.T, auth amqp.Authentication) (*amqp.Connection, error) {
	t.Helper()
	conn, err := amqp.DialConfig(urlOf(t), amqp.Config{SASL: []amqp.Authentication{auth}})
	if err == nil {
		t.Cleanup(func() { _ = conn.Close() })
	}
	return conn, err
}

func TestAuthPlain(t *testing.T) {
	t.Parallel()
	user, pass := credentials(t)
	conn, err := dialSASL(t, &amqp.PlainAuth{Username: user, Password: pass})
	if err != nil {
		t.Fatalf("PLAIN: %v", err)
	}
	if m := conn.Config.SASL[0].Mechanism(); m != "PLAIN" {
		t.Fatalf("mechanism %q", m)
	}
	openChannel(t, conn)
}

func TestAuthAMQPlain(t *testing.T) {
	t.Parallel()
	user, pass := credentials(t)
	conn, err := dialSASL(t, &amqp.AMQPlainAuth{Username: user, Password: pass})
	if err != nil {
		t.Fatalf("AMQPLAIN: %v", err)
	}
	if m := conn.Config.SASL[0].Mechanism(); m != "AMQPLAIN" {
		t.Fatalf("mechanism %q", m)
	}
	openChannel(t, conn)
}

// TestAuthExternalNotOffered: without TLS client certificates RabbitMQ does
// not offer EXTERNAL, so the client finds no common mechanism.
func TestAuthExternalNotOffered(t *testing.T) {
	t.Parallel()
	_, err := dialSASL(t, &amqp.ExternalAuth{})
	if !errors.Is(err, amqp.ErrSASL) {
		t.Fatalf("got %v, want amqp.ErrSASL", err)
	}
}

// expectSilentRefusal checks how RabbitMQ refuses a login from a client that
// did not advertise the authentication_failure_close capability (amqp091-go
// never does): no connection.close at all, just the socket closed (after a
// short delay), which amqp091-go reports as its own 403 with Server=false.
// A broker that sent connection.close instead would surface here with
// Server=true and its own text.
func expectSilentRefusal(t *testing.T, err error) {
	t.Helper()
	var amqpErr *amqp.Error
	if !errors.As(err, &amqpErr) {
		t.Fatalf("got %v (%T), want an AMQP error", err, err)
	}
	if amqpErr.Code != 403 || amqpErr.Server || amqpErr.Reason != amqp.ErrCredentials.Reason {
		t.Fatalf("got %#v, want the client's ErrCredentials (socket closed without connection.close)", amqpErr)
	}
}

func TestAuthWrongPasswordPlain(t *testing.T) {
	t.Parallel()
	user, _ := credentials(t)
	_, err := dialSASL(t, &amqp.PlainAuth{Username: user, Password: "wrong-password"})
	expectSilentRefusal(t, err)
}

func TestAuthWrongPasswordAMQPlain(t *testing.T) {
	t.Parallel()
	user, _ := credentials(t)
	_, err := dialSASL(t, &amqp.AMQPlainAuth{Username: user, Password: "wrong-password"})
	expectSilentRefusal(t, err)
}

func TestAuthUnknownUser(t *testing.T) {
	t.Parallel()
	_, err := dialSASL(t, &amqp.PlainAuth{Username: "no-such-user", Password: "x"})
	expectSilentRefusal(t, err)
}

// TestAuthUnknownVhost: after a successful login, connection.open for a
// vhost that does not exist gets connection.close 530.
func TestAuthUnknownVhost(t *testing.T) {
	t.Parallel()
	u := brokerURL(t)
	u.Path = "/no-such-vhost"
	_, err := amqp.Dial(u.String())
	expectError(t, err, 530, "NOT_ALLOWED - vhost no-such-vhost not found")
}

// TestAuthVhostEscaped: the vhost in the URL is percent-decoded by the client;
// "%2f" is the default vhost "/".
func TestAuthVhostEscaped(t *testing.T) {
	t.Parallel()
	u := brokerURL(t)
	u.Path, u.RawPath = "//", "/%2f"
	conn, err := amqp.Dial(u.String())
	if err != nil {
		t.Fatalf("dial vhost %%2f: %v", err)
	}
	defer conn.Close()
	if conn.Config.Vhost != "/" {
		t.Fatalf("vhost %q", conn.Config.Vhost)
	}
}
