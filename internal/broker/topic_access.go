package broker

// AuthenticateAnonymous returns the user a client that did not authenticate
// acts as (a Kafka PLAINTEXT connection mapped to a configured user): the
// user must exist, and the loopback rule applies as for a password login, so
// guest is anonymous from localhost only. A refusal is an *AuthError.
func (b *Broker) AuthenticateAnonymous(name string, fromLoopback bool) (*User, error) {
	u, ok := b.User(name)
	if !ok {
		return nil, &AuthError{Reason: "unknown user"}
	}
	if !fromLoopback && b.loopbackOnly(name) {
		return nil, &AuthError{Reason: "user may only connect via localhost (loopback_users)"}
	}
	return u, nil
}
