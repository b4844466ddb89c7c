// Command gencerts writes a throwaway CA, a server certificate for localhost
// and 127.0.0.1 and a client certificate into a directory, for the TLS
// interop checks of .ci/run:
//
//	go run ./test/interop/gencerts DIR [CLIENT_CN]
//
// It writes ca.pem, server.pem, server-key.pem, client.pem and client-key.pem;
// the client certificate's common name is CLIENT_CN (default "warren-client").
package main

import (
	"fmt"
	"os"

	"github.com/warren-mq/warren/internal/testcerts"
)

func main() {
	if len(os.Args) < 2 || len(os.Args) > 3 {
		fmt.Fprintln(os.Stderr, "usage: gencerts DIR [CLIENT_CN]")
		os.Exit(2)
	}
	dir, cn := os.Args[1], "warren-client"
	if len(os.Args) == 3 {
		cn = os.Args[2]
	}
	if err := gen(dir, cn); err != nil {
		fmt.Fprintln(os.Stderr, "gencerts:", err)
		os.Exit(1)
	}
}

func gen(dir, cn string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	ca, err := testcerts.NewCA(dir, "Warren test CA")
	if err != nil {
		return err
	}
	if _, err := ca.Server("server", "localhost"); err != nil {
		return err
	}
	_, err = ca.Client("client", cn)
	return err
}
