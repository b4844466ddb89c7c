// Package abuse holds black-box tests that run the built warren binary
// against hostile, careless and unlucky clients: floods of connections that
// never finish their handshake under a low open-file limit, a process
// stopped for longer than its heartbeat timeout, and password guessing.
// Each checks that the broker stays up and keeps serving a normal client.
package abuse
