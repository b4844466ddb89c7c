package mgmt

import (
	"encoding/json"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/warren-mq/warren/internal/amqp091"
	"github.com/warren-mq/warren/internal/broker"
)

// The node: overview, nodes, health checks, extensions, cluster name and
// feature flags.

// compatVersion is the RabbitMQ version whose API Warren's follows; tools
// that branch on rabbitmq_version see it.
const compatVersion = "3.13.7"

var exchangeTypes = []obj{
	{"name": "direct", "description": "AMQP direct exchange, as per the AMQP specification", "enabled": true},
	{"name": "fanout", "description": "AMQP fanout exchange, as per the AMQP specification", "enabled": true},
	{"name": "headers", "description": "AMQP headers exchange, as per the AMQP specification", "enabled": true},
	{"name": "topic", "description": "AMQP topic exchange, as per the AMQP specification", "enabled": true},
}

func (s *Server) listeners() []obj {
	out := []obj{}
	for _, l := range s.cfg.Listeners {
		host, port, err := net.SplitHostPort(l.Addr)
		if err != nil {
			continue
		}
		if host == "" {
			host = "::"
		}
		p, _ := strconv.Atoi(port)
		out = append(out, obj{"node": s.node, "protocol": l.Protocol, "ip_address": host, "port": p, "socket_opts": obj{}})
	}
	return out
}

func (s *Server) contexts() []obj {
	out := []obj{}
	for _, l := range s.cfg.Listeners {
		if l.Protocol == "http" || l.Protocol == "https" {
			_, port, _ := net.SplitHostPort(l.Addr)
			out = append(out, obj{"node": s.node, "description": "RabbitMQ Management", "path": "/", "port": port, "ssl_opts": []any{}})
		}
	}
	return out
}

func (s *Server) overview(r *req) error {
	var totals counters
	queues, exchanges, consumers := 0, 0, 0
	for _, v := range r.visibleVHosts() {
		exchanges += len(v.Exchanges())
		for _, q := range v.Queues() {
			qi := q.Info()
			queues++
			consumers += qi.Consumers
			c := queueCounters(&qi)
			for i := cMessages; i <= cMessagesUnacked; i++ {
				totals[i] += c[i]
			}
		}
		n, sc, c := streamTotals(v)
		queues, consumers = queues+n, consumers+sc
		totals.add(&c)
	}
	conns, chans := 0, 0
	for _, ss := range s.b.Sessions() {
		if r.seesAll() || ss.Info.User == r.user.Name {
			conns++
			chans += ss.Info.Channels
		}
	}
	st := s.rates.get("n")
	node := s.rates.node()
	for i := range cDeliverGet + 1 {
		totals[i] = node[i]
	}
	ms := messageStats(&totals, st, channelStatNames)
	ms["disk_reads"], ms["disk_reads_details"] = 0, obj{"rate": 0.0}
	ms["disk_writes"], ms["disk_writes_details"] = 0, obj{"rate": 0.0}
	churn := obj{}
	for _, k := range []string{"channel_closed", "channel_created", "connection_closed", "connection_created", "queue_created", "queue_declared", "queue_deleted"} {
		churn[k], churn[k+"_details"] = 0, obj{"rate": 0.0}
	}
	o := obj{
		"management_version": compatVersion, "rates_mode": "basic",
		"sample_retention_policies": obj{"global": []int{600, 3600, 28800, 86400}, "basic": []int{600, 3600}, "detailed": []int{600}},
		"exchange_types":            exchangeTypes, "product_version": s.cfg.Version, "product_name": "Warren",
		"rabbitmq_version": compatVersion, "cluster_name": s.ClusterName(), "erlang_version": runtime.Version(),
		"erlang_full_version": runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH, "release_series_support_status": "supported",
		"disable_stats": false, "enable_queue_totals": false, "message_stats": ms, "churn_rates": churn,
		"queue_totals": obj{"messages": totals[cMessages], "messages_details": details(st, cMessages),
			"messages_ready": totals[cMessagesReady], "messages_ready_details": details(st, cMessagesReady),
			"messages_unacknowledged": totals[cMessagesUnacked], "messages_unacknowledged_details": details(st, cMessagesUnacked)},
		"object_totals":             obj{"channels": chans, "connections": conns, "consumers": consumers, "exchanges": exchanges, "queues": queues},
		"statistics_db_event_queue": 0, "node": s.node, "listeners": s.listeners(), "contexts": s.contexts(),
	}
	s.withHistory(r, o)
	return r.writeOne(o)
}

// ClusterName returns the cluster name: the cluster_name global parameter
// an operator set, else the configured or default one.
func (s *Server) ClusterName() string {
	for _, p := range s.b.GlobalParameters() {
		if p.Name == "cluster_name" {
			return strings.Trim(string(p.Value), `"`)
		}
	}
	return s.clusterName
}

func (s *Server) getClusterName(r *req) error { return writeJSON(r.w, obj{"name": s.ClusterName()}) }

func (s *Server) putClusterName(r *req) error {
	var body struct{ Name string }
	if err := r.decode(&body); err != nil {
		return err
	}
	if body.Name == "" {
		return badRequest("name is required")
	}
	v, _ := json.Marshal(body.Name)
	if err := s.b.SetGlobalParameter(broker.GlobalParameter{Name: "cluster_name", Value: v}); err != nil {
		return err
	}
	return noContent(r, false)
}

func countFDs() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0
	}
	return len(ents)
}

func (s *Server) nodeObj() obj {
	var rl syscall.Rlimit
	_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl)
	var diskFree uint64
	if s.cfg.DataDir != "" {
		var fs syscall.Statfs_t
		if syscall.Statfs(s.cfg.DataDir, &fs) == nil {
			diskFree = fs.Bavail * uint64(fs.Bsize)
		}
	}
	alarm, _ := s.b.Alarm()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	memUsed := int64(ms.Sys - ms.HeapReleased)
	zero := obj{"rate": 0.0}
	o := obj{
		"name": s.node, "type": "disc", "running": true, "os_pid": strconv.Itoa(os.Getpid()),
		"partitions": []any{}, "processors": runtime.NumCPU(), "uptime": time.Since(s.started).Milliseconds(),
		"run_queue": 0, "rates_mode": "basic", "net_ticktime": 60, "mem_calculation_strategy": "rss",
		"mem_used": memUsed, "mem_used_details": zero, "mem_limit": s.cfg.MemoryLimit, "mem_alarm": strings.Contains(alarm, "memory"),
		"disk_free": diskFree, "disk_free_details": zero, "disk_free_limit": s.cfg.DiskFreeLimit, "disk_free_alarm": strings.Contains(alarm, "disk"),
		"fd_used": countFDs(), "fd_used_details": zero, "fd_total": rl.Cur,
		"sockets_used": len(s.b.Sessions()), "sockets_used_details": zero, "sockets_total": rl.Cur,
		"proc_used": runtime.NumGoroutine(), "proc_used_details": zero, "proc_total": 1048576,
		"gc_num": ms.NumGC, "gc_num_details": zero, "gc_bytes_reclaimed": ms.TotalAlloc - ms.HeapAlloc, "gc_bytes_reclaimed_details": zero,
		"context_switches": 0, "context_switches_details": zero,
		"exchange_types": exchangeTypes, "db_dir": s.cfg.DataDir, "enabled_plugins": []string{"rabbitmq_management"},
		"auth_mechanisms": []obj{{"name": "PLAIN", "description": "SASL PLAIN authentication mechanism", "enabled": true},
			{"name": "AMQPLAIN", "description": "QPid AMQPLAIN mechanism", "enabled": true}},
		"applications": []obj{{"name": "warren", "description": "Warren", "version": s.cfg.Version}},
		"contexts":     s.contexts(), "log_files": []string{"<stdout>"}, "config_files": []string{}, "cluster_links": []any{},
		"metrics_gc_queue_length": obj{}, "ra_open_file_metrics": obj{},
	}
	for _, k := range []string{"io_read_count", "io_read_bytes", "io_read_avg_time", "io_write_count", "io_write_bytes", "io_write_avg_time",
		"io_sync_count", "io_sync_avg_time", "io_seek_count", "io_seek_avg_time", "io_reopen_count", "mnesia_ram_tx_count", "mnesia_disk_tx_count",
		"msg_store_read_count", "msg_store_write_count", "queue_index_write_count", "queue_index_read_count",
		"connection_created", "connection_closed", "channel_created", "channel_closed", "queue_declared", "queue_created", "queue_deleted"} {
		o[k], o[k+"_details"] = 0, zero
	}
	return o
}

func (s *Server) listNodes(r *req) error {
	o, err := r.listOpts()
	if err != nil {
		return err
	}
	return r.writeList([]obj{s.nodeObj()}, o, 1)
}

func (s *Server) getNode(r *req) error {
	if r.v("node") != s.node {
		return errNotFound
	}
	return r.writeOne(s.nodeObj())
}

func statusOK(r *req, extra obj) error {
	o := obj{"status": "ok"}
	for k, v := range extra {
		o[k] = v
	}
	return writeJSON(r.w, o)
}

func statusFailed(r *req, o obj) error {
	o["status"] = "failed"
	r.w.Header().Set("Content-Type", "application/json")
	r.w.WriteHeader(http.StatusServiceUnavailable)
	return writeJSON(r.w, o)
}

func (s *Server) checkAlarms(r *req) error {
	alarm, _ := s.b.Alarm()
	if alarm == "" {
		return statusOK(r, nil)
	}
	var alarms []obj
	if strings.Contains(alarm, "memory") {
		alarms = append(alarms, obj{"node": s.node, "resource": "memory"})
	}
	if strings.Contains(alarm, "disk") {
		alarms = append(alarms, obj{"node": s.node, "resource": "disk"})
	}
	return statusFailed(r, obj{"reason": "There are alarms in effect in the cluster", "alarms": alarms})
}

func (s *Server) checkPort(r *req) error {
	port, err := strconv.Atoi(r.v("port"))
	if err != nil {
		return badRequest("port must be an integer")
	}
	ports := []int{}
	for _, l := range s.listeners() {
		p := l["port"].(int)
		if p == port {
			return statusOK(r, obj{"port": port})
		}
		ports = append(ports, p)
	}
	return statusFailed(r, obj{"reason": "No active listener", "missing": port, "ports": ports})
}

func (s *Server) checkProtocol(r *req) error {
	proto := r.v("protocol")
	protos := []string{}
	for _, l := range s.cfg.Listeners {
		if l.Protocol == proto {
			return statusOK(r, obj{"protocol": proto})
		}
		protos = append(protos, l.Protocol)
	}
	return statusFailed(r, obj{"reason": "No active listener", "missing": proto, "protocols": protos})
}

func (s *Server) aliveness(r *req) error {
	v, a, err := r.vhostForWrite()
	if err != nil {
		return err
	}
	const name = "aliveness-test"
	if err := check(a, "queue", name, broker.Configure); err != nil {
		return err
	}
	q, _, _, err := v.DeclareQueue(broker.QueueDecl{Name: name})
	if err != nil {
		return statusFailed(r, obj{"reason": err.Error()})
	}
	e, _ := v.Exchange("")
	m, err := broker.NewMessage("", name, (&amqp091.Properties{}).Append(nil), []byte("test_message"))
	if err == nil {
		v.Publish(&broker.Router{}, e, m, nil)
		_, _, _, _, err = q.Get(true)
	}
	if err != nil {
		return statusFailed(r, obj{"reason": err.Error()})
	}
	return statusOK(r, nil)
}

var featureFlags = []obj{
	{"name": "implicit_default_bindings", "desc": "Default bindings are now implicit, instead of being stored in the database", "doc_url": "", "state": "enabled", "stability": "stable", "provided_by": "rabbit"},
	{"name": "maintenance_mode_status", "desc": "Maintenance mode status", "doc_url": "", "state": "enabled", "stability": "stable", "provided_by": "rabbit"},
	{"name": "user_limits", "desc": "Configure connection and channel limits for a user", "doc_url": "", "state": "enabled", "stability": "stable", "provided_by": "rabbit"},
	{"name": "virtual_host_metadata", "desc": "Virtual host metadata (description, tags, etc)", "doc_url": "", "state": "enabled", "stability": "stable", "provided_by": "rabbit"},
	{"name": "quorum_queue", "desc": "Support queues of type `quorum`", "doc_url": "https://www.rabbitmq.com/quorum-queues.html", "state": "disabled", "stability": "stable", "provided_by": "rabbit"},
	{"name": "stream_queue", "desc": "Support queues of type `stream`", "doc_url": "https://www.rabbitmq.com/stream.html", "state": "disabled", "stability": "stable", "provided_by": "rabbit"},
}
