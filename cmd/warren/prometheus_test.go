package main

import (
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

func TestRunServesPrometheusMetrics(t *testing.T) {
	s := startRun(t, []string{"--data-dir", t.TempDir(), "--amqp-addr", "127.0.0.1:0", "--prometheus-addr", "127.0.0.1:0"}, nil)
	m := regexp.MustCompile(`msg="Warren started" .*prometheus=(\S+)`).FindStringSubmatch(s.stderr.String())
	if m == nil {
		t.Fatalf("no prometheus listener logged:\n%s", s.stderr.String())
	}
	resp, err := http.Get("http://" + m[1] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"rabbitmq_identity_info{", "rabbitmq_queues 0", "rabbitmq_disk_space_available_limit_bytes 5e+07", "\nrabbitmq_process_max_tcp_sockets "} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if code := s.stop(t); code != 0 {
		t.Errorf("exit %d after SIGTERM", code)
	}
}
