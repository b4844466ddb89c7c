package prom_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warren-mq/warren/internal/broker"
	"github.com/warren-mq/warren/internal/mgmt/prom"
	"github.com/warren-mq/warren/internal/testbroker"
)

// dashboardOmissions are the series of the RabbitMQ-Overview dashboard that
// Warren does not expose, each with why.
var dashboardOmissions = map[string]string{
	// A histogram observed per published message (RabbitMQ 4.x; 3.10 has
	// none either): it would put a shared observation on the publish path.
	"rabbitmq_message_size_bytes": "per-message histogram on the hot path",
}

// scrapeLabelsOnly are labels the dashboard selects on that Prometheus's
// scrape configuration adds (Kubernetes), not the broker.
var scrapeLabelsOnly = []string{"namespace"}

type fixture struct {
	t    *testing.T
	inst *testbroker.Instance
	srv  *httptest.Server
}

func start(t *testing.T) *fixture {
	t.Helper()
	inst := testbroker.Start(t, testbroker.Options{})
	h := prom.New(prom.Config{Broker: inst.Broker, Node: "warren@test", ClusterName: "test-cluster", Version: "0.0.0-test"})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &fixture{t: t, inst: inst, srv: srv}
}

// scrape fetches path and parses it with Prometheus's text parser.
func (f *fixture) scrape(path string) map[string]*dto.MetricFamily {
	f.t.Helper()
	resp, err := http.Get(f.srv.URL + path)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		f.t.Fatalf("GET %s: %s", path, resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		f.t.Fatalf("GET %s: Content-Type %q", path, ct)
	}
	return parse(f.t, resp.Body)
}

func parse(t *testing.T, r io.Reader) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mf, err := p.TextToMetricFamilies(r)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return mf
}

func parseFile(t *testing.T, name string) map[string]*dto.MetricFamily {
	t.Helper()
	fh, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	return parse(t, fh)
}

// value returns the series of name whose labels include want (pairs).
func value(mf map[string]*dto.MetricFamily, name string, want ...string) (float64, bool) {
	fam, ok := mf[name]
	if !ok {
		return 0, false
	}
	for _, m := range fam.Metric {
		if hasLabels(m, want...) {
			switch {
			case m.Gauge != nil:
				return m.Gauge.GetValue(), true
			case m.Counter != nil:
				return m.Counter.GetValue(), true
			case m.Untyped != nil:
				return m.Untyped.GetValue(), true
			}
		}
	}
	return 0, false
}

func hasLabels(m *dto.Metric, want ...string) bool {
	for i := 0; i < len(want); i += 2 {
		found := false
		for _, l := range m.Label {
			if l.GetName() == want[i] && l.GetValue() == want[i+1] {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func labelNames(fam *dto.MetricFamily) map[string]bool {
	out := map[string]bool{}
	for _, m := range fam.Metric {
		for _, l := range m.Label {
			out[l.GetName()] = true
		}
	}
	return out
}

var (
	metricName = regexp.MustCompile(`\brabbitmq_[a-z_]+`)
	groupLeft  = regexp.MustCompile(`group_left\(([^)]*)\)\s*(rabbitmq_[a-z_]+)`)
	matchers   = regexp.MustCompile(`(rabbitmq_[a-z_]+)\{([^}]*)\}`)
	matcherKey = regexp.MustCompile(`([a-z_]+)\s*(=|!=|=~|!~)`)
	labelArg   = regexp.MustCompile(`label_values\((rabbitmq_[a-z_]+)(?:\{[^}]*\})?,\s*([a-z_]+)\)`)
)

// dashboard reads the PromQL expressions of RabbitMQ's RabbitMQ-Overview
// Grafana dashboard, extracted from its JSON into testdata.
func dashboard(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("testdata/rabbitmq-overview-exprs.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct{ Exprs []string }
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	if len(d.Exprs) < 40 {
		t.Fatalf("only %d expressions in the dashboard file", len(d.Exprs))
	}
	return d.Exprs
}

var (
	selectors  = regexp.MustCompile(`\{[^}]*\}`)
	labelLists = regexp.MustCompile(`\b(group_left|group_right|on|by|without|ignoring)\s*\([^)]*\)`)
	labelParam = regexp.MustCompile(`,\s*[a-z_]+\)`)
)

// withoutLabels drops what names labels from a PromQL expression (selectors,
// label lists, label_values' second argument), leaving metric names.
func withoutLabels(e string) string {
	e = selectors.ReplaceAllString(e, "")
	e = labelLists.ReplaceAllString(e, "")
	return labelParam.ReplaceAllString(e, ")")
}

// baseName maps a histogram's series name to its family.
func baseName(n string) string {
	for _, suf := range []string{"_bucket", "_sum", "_count"} {
		if strings.HasSuffix(n, suf) && strings.HasPrefix(n, "rabbitmq_message_size_bytes") {
			return strings.TrimSuffix(n, suf)
		}
	}
	return n
}

// TestPromDashboardSeries checks that every metric and label the
// RabbitMQ-Overview dashboard queries is in Warren's /metrics.
func TestPromDashboardSeries(t *testing.T) {
	f := start(t)
	mf := f.scrape("/metrics")
	exprs := dashboard(t)

	used := map[string]bool{}
	for _, e := range exprs {
		for _, n := range metricName.FindAllString(withoutLabels(e), -1) {
			used[baseName(n)] = true
		}
	}
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range used {
			if !yield(n) {
				return
			}
		}
	})
	var present, omitted []string
	for _, n := range names {
		if _, ok := mf[n]; ok {
			present = append(present, n)
			continue
		}
		if why, ok := dashboardOmissions[n]; ok {
			omitted = append(omitted, n+" ("+why+")")
			continue
		}
		t.Errorf("dashboard series %s missing from /metrics", n)
	}
	t.Logf("dashboard uses %d metrics: %d present, omitted: %v", len(names), len(present), omitted)

	// Labels: those joined in with group_left, selected on, or listed by
	// label_values must be on the metric they are taken from.
	need := map[string]map[string]bool{}
	add := func(metric, label string) {
		label = strings.TrimSpace(label)
		if label == "" || slices.Contains(scrapeLabelsOnly, label) || label == "le" {
			return
		}
		if need[metric] == nil {
			need[metric] = map[string]bool{}
		}
		need[metric][label] = true
	}
	for _, e := range exprs {
		for _, m := range groupLeft.FindAllStringSubmatch(e, -1) {
			for _, l := range strings.Split(m[1], ",") {
				add(m[2], l)
			}
		}
		for _, m := range matchers.FindAllStringSubmatch(e, -1) {
			for _, k := range matcherKey.FindAllStringSubmatch(m[2], -1) {
				add(baseName(m[1]), k[1])
			}
		}
		for _, m := range labelArg.FindAllStringSubmatch(e, -1) {
			add(m[1], m[2])
		}
	}
	for _, l := range []string{"rabbitmq_cluster", "rabbitmq_node", "rabbitmq_endpoint"} {
		if !need["rabbitmq_identity_info"][l] {
			t.Errorf("label %s of rabbitmq_identity_info not found in the dashboard: the label extraction is broken", l)
		}
	}
	for metric, labels := range need {
		if _, ok := dashboardOmissions[metric]; ok {
			continue
		}
		fam, ok := mf[metric]
		if !ok {
			continue // reported above
		}
		have := labelNames(fam)
		for l := range labels {
			if !have[l] {
				t.Errorf("dashboard uses label %s of %s; Warren's has %v", l, metric, have)
			}
		}
	}
	if v, ok := value(mf, "rabbitmq_identity_info", "rabbitmq_node", "warren@test", "rabbitmq_cluster", "test-cluster", "rabbitmq_endpoint", "aggregated"); !ok || v != 1 {
		t.Errorf("rabbitmq_identity_info = %v %v", v, ok)
	}
}

// TestPromFamiliesMatchRabbitMQ compares every rabbitmq_* family Warren
// exposes with the one the real plugin (RabbitMQ 3.10.8, recorded in
// testdata) exposes under the same name: same type, same help text.
func TestPromFamiliesMatchRabbitMQ(t *testing.T) {
	f := start(t)
	for _, c := range []struct{ path, file string }{
		{"/metrics", "testdata/rabbitmq-3.10.8/metrics.txt"},
		{"/metrics/per-object", "testdata/rabbitmq-3.10.8/per-object.txt"},
		{"/metrics/detailed?family=queue_coarse_metrics&family=queue_consumer_count", "testdata/rabbitmq-3.10.8/detailed-queue.txt"},
		{"/metrics/detailed?family=connection_churn_metrics&family=channel_metrics&family=connection_coarse_metrics", "testdata/rabbitmq-3.10.8/detailed-connection-channel.txt"},
	} {
		ours, theirs := f.scrape(c.path), parseFile(t, c.file)
		var missing []string
		for name, fam := range ours {
			if !strings.HasPrefix(name, "rabbitmq_") {
				continue
			}
			rf, ok := theirs[name]
			if !ok {
				// RabbitMQ 3.10 leaves out empty families; these are in
				// its sources or in later versions.
				if !slices.Contains([]string{"rabbitmq_global_publishers"}, name) {
					missing = append(missing, name)
				}
				continue
			}
			if fam.GetType() != rf.GetType() {
				t.Errorf("%s %s: type %v, RabbitMQ's %v", c.path, name, fam.GetType(), rf.GetType())
			}
			if fam.GetHelp() != rf.GetHelp() {
				t.Errorf("%s %s: help %q, RabbitMQ's %q", c.path, name, fam.GetHelp(), rf.GetHelp())
			}
		}
		sort.Strings(missing)
		if len(missing) > 0 {
			t.Logf("%s: families RabbitMQ 3.10.8 did not show in the recording: %v", c.path, missing)
		}
		for _, n := range missing {
			if !strings.HasPrefix(n, "rabbitmq_channel") && !strings.HasPrefix(n, "rabbitmq_connection_") && n != "rabbitmq_consumer_prefetch" {
				t.Errorf("%s: %s is not a RabbitMQ family", c.path, n)
			}
		}
	}
}

// publish3consume1 declares a queue, publishes 3 messages with confirms and
// takes 1 with a manual-ack consumer, leaving it unacked.
func publish3consume1(t *testing.T, url, queue string) (*amqp.Connection, *amqp.Channel, amqp.Delivery) {
	t.Helper()
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(queue, false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		dc, err := ch.PublishWithDeferredConfirm("", queue, false, false, amqp.Publishing{Body: []byte("hello")})
		if err != nil {
			t.Fatal(err)
		}
		if !dc.Wait() {
			t.Fatal("publish nacked")
		}
	}
	if err := ch.Qos(1, 0, false); err != nil {
		t.Fatal(err)
	}
	dels, err := ch.Consume(queue, "c1", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-dels:
		return conn, ch, d
	case <-time.After(10 * time.Second):
		t.Fatal("no delivery")
	}
	panic("unreachable")
}

// expect polls path until every series has its value.
func (f *fixture) expect(path string, want map[string]float64, labels ...string) {
	f.t.Helper()
	var last map[string]*dto.MetricFamily
	ok := func() bool {
		last = f.scrape(path)
		for name, v := range want {
			if got, ok := value(last, name, labels...); !ok || got != v {
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			for name, v := range want {
				got, ok := value(last, name, labels...)
				if !ok || got != v {
					f.t.Errorf("%s %s%v = %v (present %v), want %v", path, name, labels, got, ok, v)
				}
			}
			f.t.FailNow()
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestPromScenarioValues: declare a queue, publish 3, consume 1; then ack
// it; then delete the queue: gauges follow, counters never go back.
func TestPromScenarioValues(t *testing.T) {
	f := start(t)
	conn, ch, d := publish3consume1(t, f.inst.URL, "prom-q")

	f.expect("/metrics", map[string]float64{
		"rabbitmq_queues":                                             1,
		"rabbitmq_queue_messages_ready":                               2,
		"rabbitmq_queue_messages_unacked":                             1,
		"rabbitmq_queue_messages":                                     3,
		"rabbitmq_queue_consumers":                                    1,
		"rabbitmq_consumers":                                          1,
		"rabbitmq_queue_messages_published_total":                     3,
		"rabbitmq_global_messages_delivered_total":                    1,
		"rabbitmq_global_messages_delivered_consume_manual_ack_total": 1,
		"rabbitmq_global_messages_delivered_consume_auto_ack_total":   0,
		"rabbitmq_global_messages_acknowledged_total":                 0,
		"rabbitmq_global_consumers":                                   1,
		"rabbitmq_queues_declared_total":                              1,
		"rabbitmq_queues_created_total":                               1,
		"rabbitmq_queues_deleted_total":                               0,
		"rabbitmq_queue_messages_ready_bytes":                         10,
	})
	f.expect("/metrics/per-object", map[string]float64{
		"rabbitmq_queue_messages_ready":   2,
		"rabbitmq_queue_messages_unacked": 1,
		"rabbitmq_queue_consumers":        1,
	}, "vhost", "/", "queue", "prom-q")
	f.expect("/metrics/detailed?family=queue_coarse_metrics&vhost=%2F", map[string]float64{
		"rabbitmq_detailed_queue_messages_ready": 2,
		"rabbitmq_detailed_queue_messages":       3,
	}, "vhost", "/", "queue", "prom-q")

	// What the AMQP front end's session counts.
	f.expect("/metrics", map[string]float64{
		"rabbitmq_connections":                            1,
		"rabbitmq_channels":                               1,
		"rabbitmq_connections_opened_total":               1,
		"rabbitmq_channels_opened_total":                  1,
		"rabbitmq_global_messages_received_total":         3,
		"rabbitmq_global_messages_received_confirm_total": 3,
		"rabbitmq_global_messages_confirmed_total":        3,
		"rabbitmq_global_messages_routed_total":           3,
		"rabbitmq_global_publishers":                      1,
		"rabbitmq_channel_messages_published_total":       3,
		"rabbitmq_channel_messages_delivered_ack_total":   1,
		"rabbitmq_channel_messages_unacked":               1,
	})

	if err := ch.Cancel("c1", false); err != nil {
		t.Fatal(err)
	}
	if err := d.Ack(false); err != nil {
		t.Fatal(err)
	}
	f.expect("/metrics", map[string]float64{
		"rabbitmq_queue_messages_ready":               2,
		"rabbitmq_queue_messages_unacked":             0,
		"rabbitmq_consumers":                          0,
		"rabbitmq_global_messages_acknowledged_total": 1,
	})

	if _, err := ch.QueueDelete("prom-q", false, false, false); err != nil {
		t.Fatal(err)
	}
	f.expect("/metrics", map[string]float64{
		"rabbitmq_queues":                             0,
		"rabbitmq_queue_messages_ready":               0,
		"rabbitmq_queues_deleted_total":               1,
		"rabbitmq_queue_messages_published_total":     3,
		"rabbitmq_global_messages_delivered_total":    1,
		"rabbitmq_global_messages_acknowledged_total": 1,
	})
	mf := f.scrape("/metrics/per-object")
	if _, ok := value(mf, "rabbitmq_queue_messages_ready", "queue", "prom-q"); ok {
		t.Error("a deleted queue still has per-object series")
	}

	conn.Close()
	f.expect("/metrics", map[string]float64{
		"rabbitmq_connections":                      0,
		"rabbitmq_channels":                         0,
		"rabbitmq_connections_closed_total":         1,
		"rabbitmq_channels_closed_total":            1,
		"rabbitmq_global_messages_received_total":   3,
		"rabbitmq_global_messages_confirmed_total":  3,
		"rabbitmq_channel_messages_published_total": 3,
		"rabbitmq_global_publishers":                0,
	})
}

// fakeSession is a session as a front end would register it.
type fakeSession struct {
	info  broker.SessionInfo
	chans []broker.ChannelInfo
}

func (s *fakeSession) Info() broker.SessionInfo       { return s.info }
func (s *fakeSession) Channels() []broker.ChannelInfo { return s.chans }
func (s *fakeSession) Close(string)                   {}

// TestPromSessionTotals: a registered session's counters are in the sums
// and per-object series, and stay in the sums once it has closed.
func TestPromSessionTotals(t *testing.T) {
	f := start(t)
	b := f.inst.Broker
	s := &fakeSession{
		info: broker.SessionInfo{Name: "127.0.0.1:5000 -> 127.0.0.1:5672", VHost: "/", User: "guest", Channels: 1,
			RecvOct: 100, SendOct: 200, MessagesPublished: 7, MessagesConfirmed: 5, MessagesUnroutable: 2, MessagesDelivered: 4},
		chans: []broker.ChannelInfo{{Number: 1, Name: "127.0.0.1:5000 -> 127.0.0.1:5672 (1)", VHost: "/", Unconfirmed: 1, Consumers: 0,
			PrefetchCount: 10, Stats: broker.MessageStats{Publish: 7, Confirm: 5, ReturnUnroutable: 1, DropUnroutable: 1, Deliver: 4}}},
	}
	before := len(b.Sessions()) // 0 unless something else registered
	unregister := b.RegisterSession(s)
	open := map[string]float64{
		"rabbitmq_connections":                               float64(before + 1),
		"rabbitmq_connections_opened_total":                  float64(before + 1),
		"rabbitmq_global_messages_received_total":            7,
		"rabbitmq_global_messages_confirmed_total":           5,
		"rabbitmq_global_messages_received_confirm_total":    6,
		"rabbitmq_global_messages_routed_total":              5,
		"rabbitmq_global_messages_unroutable_returned_total": 1,
		"rabbitmq_global_messages_unroutable_dropped_total":  1,
		"rabbitmq_global_publishers":                         1,
		"rabbitmq_channel_messages_published_total":          7,
		"rabbitmq_channel_messages_delivered_ack_total":      4,
		"rabbitmq_connection_incoming_bytes_total":           100,
		"rabbitmq_connection_outgoing_bytes_total":           200,
		"rabbitmq_consumer_prefetch":                         10,
	}
	f.expect("/metrics", open)
	f.expect("/metrics/per-object", map[string]float64{"rabbitmq_connection_incoming_bytes_total": 100}, "channel", s.info.Name)
	f.expect("/metrics/per-object", map[string]float64{"rabbitmq_channel_messages_published_total": 7, "rabbitmq_channel_messages_unconfirmed": 1},
		"channel", s.chans[0].Name)

	unregister()
	f.expect("/metrics", map[string]float64{
		"rabbitmq_connections":                      float64(before),
		"rabbitmq_connections_closed_total":         1,
		"rabbitmq_global_messages_received_total":   7,
		"rabbitmq_global_messages_confirmed_total":  5,
		"rabbitmq_global_messages_routed_total":     5,
		"rabbitmq_channel_messages_published_total": 7,
		"rabbitmq_connection_incoming_bytes_total":  100,
		// Split by the channels the session had open when it closed.
		"rabbitmq_global_messages_unroutable_returned_total": 1,
		"rabbitmq_global_messages_unroutable_dropped_total":  1,
		"rabbitmq_global_publishers":                         0,
	})
}

// TestPromDetailedFilters: /metrics/detailed has only the families and
// vhosts asked for, with the rabbitmq_detailed_ prefix.
func TestPromDetailedFilters(t *testing.T) {
	f := start(t)
	b := f.inst.Broker
	if _, err := b.PutVHost("other", broker.VHostInfo{}); err != nil {
		t.Fatal(err)
	}
	for _, vh := range []string{"/", "other"} {
		v, _ := b.VHost(vh)
		if _, _, _, err := v.DeclareQueue(broker.QueueDecl{Name: "dq"}); err != nil {
			t.Fatal(err)
		}
	}
	mf := f.scrape("/metrics/detailed?family=queue_coarse_metrics&vhost=other")
	var names []string
	for n := range mf {
		names = append(names, n)
	}
	sort.Strings(names)
	want := []string{"rabbitmq_build_info", "rabbitmq_detailed_queue_messages", "rabbitmq_detailed_queue_messages_ready",
		"rabbitmq_detailed_queue_messages_unacked", "rabbitmq_identity_info"}
	if !slices.Equal(names, want) {
		t.Errorf("families %v, want %v", names, want)
	}
	if n := len(mf["rabbitmq_detailed_queue_messages"].Metric); n != 1 {
		t.Errorf("%d queue series, want only other's", n)
	}
	if _, ok := value(mf, "rabbitmq_detailed_queue_messages", "vhost", "other", "queue", "dq"); !ok {
		t.Error("no series for queue dq in vhost other")
	}
	mf = f.scrape("/metrics/detailed?family=vhost_status&family=exchange_names")
	if _, ok := value(mf, "rabbitmq_detailed_vhost_status", "vhost", "other"); !ok {
		t.Error("no vhost_status for other")
	}
	if _, ok := value(mf, "rabbitmq_detailed_exchange_name", "vhost", "/", "exchange", "amq.direct"); !ok {
		t.Error("no exchange_name for amq.direct")
	}
	mf = f.scrape("/metrics/detailed?family=queue_metrics")
	if _, ok := value(mf, "rabbitmq_detailed_queue_consumers", "vhost", "other", "queue", "dq"); !ok {
		t.Error("no queue_consumers in family queue_metrics")
	}
	if mf := f.scrape("/metrics/detailed"); len(mf) != 2 {
		t.Errorf("no family asked for: %d families, want identity and build info only", len(mf))
	}
}

// TestPromNodeAndAlarms: node figures are there and plausible; an alarm shows.
func TestPromNodeAndAlarms(t *testing.T) {
	inst := testbroker.Start(t, testbroker.Options{Broker: broker.Config{MemoryLimit: 1 << 30, DiskFreeLimit: 1 << 40,
		FreeDisk: func() (uint64, error) { return 1 << 20, nil }}})
	srv := httptest.NewServer(prom.New(prom.Config{Broker: inst.Broker, MaxConnections: 1000}))
	t.Cleanup(srv.Close)
	f := &fixture{t: t, inst: inst, srv: srv}
	f.expect("/metrics", map[string]float64{
		"rabbitmq_alarms_free_disk_space_watermark": 1,
		"rabbitmq_alarms_memory_used_watermark":     0,
		"rabbitmq_disk_space_available_bytes":       1 << 20,
		"rabbitmq_disk_space_available_limit_bytes": 1 << 40,
		"rabbitmq_resident_memory_limit_bytes":      1 << 30,
		"rabbitmq_process_max_tcp_sockets":          1000,
	})
	mf := f.scrape("/metrics")
	for _, n := range []string{"rabbitmq_process_resident_memory_bytes", "rabbitmq_process_open_fds", "rabbitmq_process_max_fds", "rabbitmq_erlang_uptime_seconds"} {
		if v, ok := value(mf, n); !ok || v <= 0 {
			t.Errorf("%s = %v (present %v)", n, v, ok)
		}
	}
	if v, ok := value(mf, "rabbitmq_build_info", "erlang_version", runtime.Version()); !ok || v != 1 {
		t.Errorf("rabbitmq_build_info with the Go version: %v %v", v, ok)
	}
	if _, ok := mf["go_goroutines"]; !ok {
		t.Error("no go_* runtime series in /metrics")
	}
}

// Messages that leave a queue other than by an ack are counted by reason and
// by whether the queue dead-letters them (at_most_once) or discards them
// (disabled), as rabbitmq_global_messages_dead_lettered_*_total.
func TestPromDeadLettered(t *testing.T) {
	f := start(t)
	conn, err := amqp.Dial(f.inst.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	// max-length 1 without a dead-letter exchange: 2 of 3 discarded.
	if _, err := ch.QueueDeclare("prom-maxlen", false, false, false, false, amqp.Table{"x-max-length": int32(1)}); err != nil {
		t.Fatal(err)
	}
	// Rejected without requeue into a dead-letter exchange.
	if _, err := ch.QueueDeclare("prom-dlx", false, false, false, false, amqp.Table{"x-dead-letter-exchange": "amq.fanout"}); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"prom-maxlen", "prom-maxlen", "prom-maxlen", "prom-dlx"} {
		if err := ch.Publish("", q, false, false, amqp.Publishing{Body: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	var d amqp.Delivery
	testbroker.CheckFor(t, 10*time.Second, func() bool {
		var ok bool
		d, ok, err = ch.Get("prom-dlx", false)
		return err == nil && ok
	})
	if err := d.Reject(false); err != nil {
		t.Fatal(err)
	}
	f.expect("/metrics", map[string]float64{"rabbitmq_global_messages_dead_lettered_maxlen_total": 2},
		"queue_type", "rabbit_classic_queue", "dead_letter_strategy", "disabled")
	f.expect("/metrics", map[string]float64{"rabbitmq_global_messages_dead_lettered_rejected_total": 1, "rabbitmq_global_messages_dead_lettered_maxlen_total": 0},
		"queue_type", "rabbit_classic_queue", "dead_letter_strategy", "at_most_once")
}
