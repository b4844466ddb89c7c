package main

import (
	"crypto/tls"
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/warren-mq/warren/internal/testcerts"
)

// TestRunMgmtListeners serves the management API over HTTP and HTTPS.
func TestRunMgmtListeners(t *testing.T) {
	certs := t.TempDir()
	ca, err := testcerts.NewCA(certs, "Warren test CA")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ca.Server("server", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	s := startRun(t, []string{"--data-dir", t.TempDir(), "--amqp-addr", "127.0.0.1:0", "--mgmt-addr", "127.0.0.1:0",
		"--mgmt-tls-addr", "127.0.0.1:0", "--tls-cert", srv.CertFile, "--tls-key", srv.KeyFile}, nil)
	plain := regexp.MustCompile(`msg="Warren started" .*mgmt=(\S+)`).FindStringSubmatch(s.stderr.String())
	secure := regexp.MustCompile(`management HTTP API over TLS" addr=(\S+)`).FindStringSubmatch(s.stderr.String())
	if plain == nil || secure == nil {
		t.Fatalf("management listeners not logged:\n%s", s.stderr.String())
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool, ServerName: "localhost"}}}
	for _, u := range []string{"http://" + plain[1] + "/api/overview", "https://" + secure[1] + "/api/overview"} {
		req, _ := http.NewRequest("GET", u, nil)
		req.SetBasicAuth("guest", "guest")
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Errorf("%s: %d", u, res.StatusCode)
		}
	}
	if code := s.stop(t); code != 0 {
		t.Errorf("exit %d after SIGTERM", code)
	}
}

// TestRunMgmtTLSNeedsCert refuses --mgmt-tls-addr without a certificate.
func TestRunMgmtTLSNeedsCert(t *testing.T) {
	if _, _, _, err := loadConfig([]string{"--mgmt-tls-addr", ":15671"}, envOf(nil)); err == nil {
		t.Error("--mgmt-tls-addr without --tls-cert accepted")
	}
}
