package broker

// AuthenticateExternal returns the user named by a client certificate that
// the TLS layer has already verified (SASL EXTERNAL): no password is checked,
// so a user without one can log in this way. fromLoopback says whether the
// client connected over a loopback address; loopback-only users are refused
// otherwise, whatever the mechanism, as RabbitMQ does. A refusal is an
// *AuthError.
func (b *Broker) AuthenticateExternal(name string, fromLoopback bool) (*User, error) {
	u, ok := b.User(name)
	if !ok {
		return nil, &AuthError{Reason: "unknown user"}
	}
	if !fromLoopback && b.loopbackOnly(name) {
		return nil, &AuthError{Reason: "user may only connect via localhost (loopback_users)"}
	}
	return u, nil
}
