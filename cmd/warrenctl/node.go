package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

func init() {
	add := func(name, group, usage, summary string, maxArgs int, timeout time.Duration, run func(*cmdCtx) error) {
		commands[name] = &command{group: group, usage: usage, summary: summary, maxArgs: maxArgs, defaultTimeout: timeout, run: run}
	}
	add("status", "Nodes", "", "Displays status of the node (runtime, alarms, memory, file descriptors, disk, totals, listeners)", 0, 0, status)
	add("await_startup", "Nodes", "[--timeout <seconds>]", "Waits until the node's management API answers and the node reports itself running (default timeout 300 s)", 0, 300*time.Second, awaitStartup)
	add("ping", "Health checks", "", "Checks that the management API answers and accepts the credentials", 0, 0, ping)
	add("check_running", "Health checks", "", "Health check that exits with a non-zero code if the node is not running", 0, 0, checkRunning)
	add("check_local_alarms", "Health checks", "", "Health check that exits with a non-zero code if the node has resource alarms in effect", 0, 0, checkLocalAlarms)
	add("check_port_connectivity", "Health checks", "", "Health check that connects to every listener the node reports and fails if one refuses", 0, 0, checkPortConnectivity)
	add("check_virtual_hosts", "Health checks", "", "Health check that fails if a virtual host is not running", 0, 0, checkVirtualHosts)
}

// overview is the part of /api/overview warrenctl reads.
type overview struct {
	Node            string `json:"node"`
	ProductName     string `json:"product_name"`
	ProductVersion  string `json:"product_version"`
	RabbitMQVersion string `json:"rabbitmq_version"`
	ErlangFull      string `json:"erlang_full_version"`
	ClusterName     string `json:"cluster_name"`
	ObjectTotals    struct {
		Connections, Channels, Exchanges, Queues, Consumers json.Number
	} `json:"object_totals"`
	Listeners []struct {
		Protocol  string      `json:"protocol"`
		IPAddress string      `json:"ip_address"`
		Port      json.Number `json:"port"`
	} `json:"listeners"`
}

// nodeInfo is the part of /api/nodes/{name} warrenctl reads.
type nodeInfo struct {
	Name          string      `json:"name"`
	Running       bool        `json:"running"`
	OSPid         any         `json:"os_pid"`
	Uptime        json.Number `json:"uptime"`
	MemUsed       json.Number `json:"mem_used"`
	MemLimit      json.Number `json:"mem_limit"`
	MemAlarm      bool        `json:"mem_alarm"`
	MemStrategy   string      `json:"mem_calculation_strategy"`
	DiskFree      json.Number `json:"disk_free"`
	DiskFreeLimit json.Number `json:"disk_free_limit"`
	DiskFreeAlarm bool        `json:"disk_free_alarm"`
	FDUsed        json.Number `json:"fd_used"`
	FDTotal       json.Number `json:"fd_total"`
	SocketsUsed   json.Number `json:"sockets_used"`
	SocketsTotal  json.Number `json:"sockets_total"`
	Processors    json.Number `json:"processors"`
}

func getOverview(x *cmdCtx) (*overview, error) {
	var ov overview
	if err := x.c.getJSON(x.ctx, apiPath("overview"), &ov); err != nil {
		return nil, err
	}
	return &ov, nil
}

// localNode is the node the API runs on, from /api/nodes (not from
// /api/overview, which costs more and fails alone on a RabbitMQ whose web
// dispatcher lost its contexts).
func localNode(x *cmdCtx) (*nodeInfo, error) {
	var nodes []nodeInfo
	if err := x.c.getJSON(x.ctx, apiPath("nodes"), &nodes); err != nil {
		return nil, err
	}
	if len(nodes) == 0 {
		return nil, &cliError{code: exitSoftware, msg: "GET /api/nodes: the API lists no node"}
	}
	return &nodes[0], nil
}

func getNode(x *cmdCtx, name string) (*nodeInfo, error) {
	var n nodeInfo
	if err := x.c.getJSON(x.ctx, apiPath("nodes", name), &n); err != nil {
		return nil, err
	}
	return &n, nil
}

func gb(n json.Number) string {
	f, err := n.Float64()
	if err != nil {
		return "?"
	}
	return strconv.FormatFloat(f/1e9, 'f', 4, 64) + " gb"
}

// listenerPurpose is the text rabbitmqctl status prints for a protocol.
func listenerPurpose(proto string) string {
	switch proto {
	case "amqp":
		return "AMQP 0-9-1 and AMQP 1.0"
	case "amqp/ssl":
		return "AMQP 0-9-1 and AMQP 1.0 over TLS"
	case "http":
		return "HTTP API"
	case "https":
		return "HTTP API over TLS (HTTPS)"
	case "http/prometheus":
		return "Prometheus exporter API over HTTP"
	case "https/prometheus":
		return "Prometheus exporter API over TLS (HTTPS)"
	case "clustering":
		return "inter-node and CLI tool communication"
	case "kafka":
		return "Kafka protocol"
	}
	return proto
}

func status(x *cmdCtx) error {
	ov, err := getOverview(x)
	if err != nil {
		return err
	}
	n, err := getNode(x, ov.Node)
	if err != nil {
		return err
	}
	var vhosts []json.RawMessage
	if err := x.c.getJSON(x.ctx, apiPath("vhosts"), &vhosts); err != nil {
		return err
	}
	version := ov.ProductVersion
	if version == "" {
		version = ov.RabbitMQVersion
	}
	product := ov.ProductName
	if product == "" {
		product = "RabbitMQ"
	}
	uptime, _ := n.Uptime.Int64()
	if x.o.formatter == "json" {
		return json.NewEncoder(x.e.stdout).Encode(map[string]any{
			"node_name": ov.Node, "pid": n.OSPid, "uptime": uptime / 1000, "product_name": product, "product_version": version,
			"runtime": ov.ErlangFull, "cluster_name": ov.ClusterName, "mem_used": n.MemUsed, "mem_limit": n.MemLimit,
			"mem_alarm": n.MemAlarm, "disk_free": n.DiskFree, "disk_free_limit": n.DiskFreeLimit, "disk_free_alarm": n.DiskFreeAlarm,
			"file_descriptors": map[string]any{"total_used": n.FDUsed, "total_limit": n.FDTotal, "sockets_used": n.SocketsUsed, "sockets_limit": n.SocketsTotal},
			"totals":           map[string]any{"connection_count": ov.ObjectTotals.Connections, "queue_count": ov.ObjectTotals.Queues, "virtual_host_count": len(vhosts)},
			"listeners":        ov.Listeners,
		})
	}
	w := x.e.stdout
	x.info("Status of node %s ...", ov.Node)
	fmt.Fprintf(w, "Runtime\n\nOS PID: %v\nUptime (seconds): %d\n%s version: %s\nNode name: %s\n", n.OSPid, uptime/1000, product, version, ov.Node)
	if ov.ErlangFull != "" {
		fmt.Fprintf(w, "Runtime configuration: %s\n", ov.ErlangFull)
	}
	if ov.ClusterName != "" {
		fmt.Fprintf(w, "Cluster name: %s\n", ov.ClusterName)
	}
	fmt.Fprintf(w, "\nAlarms\n\n")
	switch {
	case n.MemAlarm && n.DiskFreeAlarm:
		fmt.Fprintf(w, "Memory alarm on node %s\nFree disk space alarm on node %s\n", ov.Node, ov.Node)
	case n.MemAlarm:
		fmt.Fprintf(w, "Memory alarm on node %s\n", ov.Node)
	case n.DiskFreeAlarm:
		fmt.Fprintf(w, "Free disk space alarm on node %s\n", ov.Node)
	default:
		fmt.Fprintf(w, "(none)\n")
	}
	fmt.Fprintf(w, "\nMemory\n\nTotal memory used: %s\n", gb(n.MemUsed))
	if n.MemStrategy != "" {
		fmt.Fprintf(w, "Calculation strategy: %s\n", n.MemStrategy)
	}
	fmt.Fprintf(w, "Memory high watermark: %s\n", gb(n.MemLimit))
	fmt.Fprintf(w, "\nFile Descriptors\n\nTotal: %s, limit: %s\nSockets: %s, limit: %s\n", n.FDUsed, n.FDTotal, n.SocketsUsed, n.SocketsTotal)
	fmt.Fprintf(w, "\nFree Disk Space\n\nLow free disk space watermark: %s\nFree disk space: %s\n", gb(n.DiskFreeLimit), gb(n.DiskFree))
	fmt.Fprintf(w, "\nTotals\n\nConnection count: %s\nQueue count: %s\nVirtual host count: %d\n",
		ov.ObjectTotals.Connections, ov.ObjectTotals.Queues, len(vhosts))
	fmt.Fprintf(w, "\nListeners\n\n")
	for _, l := range ov.Listeners {
		fmt.Fprintf(w, "Interface: [%s], port: %s, protocol: %s, purpose: %s\n", l.IPAddress, l.Port, l.Protocol, listenerPurpose(l.Protocol))
	}
	return nil
}

// sleepCtx waits d or until ctx ends, whose error it then returns as a
// timeout.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return &cliError{code: exitTempFail, msg: "timed out"}
	}
}

func awaitStartup(x *cmdCtx) error {
	var last error
	for {
		last = nodeRunning(x)
		if last == nil {
			return nil
		}
		if st := statusOf(last); st == http.StatusUnauthorized || st == http.StatusForbidden {
			return last // a listener that answers but refuses us will not change its mind
		}
		if sleepCtx(x.ctx, 200*time.Millisecond) != nil {
			return &cliError{code: exitTempFail, msg: fmt.Sprintf("timed out after %s waiting for the node to start; last error: %v", x.o.timeout, last)}
		}
	}
}

// nodeRunning asks the node whether it is running.
func nodeRunning(x *cmdCtx) error {
	n, err := localNode(x)
	if err != nil {
		return err
	}
	if !n.Running {
		return &cliError{code: exitUnavailable, msg: fmt.Sprintf("node %s is not running", n.Name)}
	}
	return nil
}

func ping(x *cmdCtx) error {
	x.info("Will ping %s. This only checks that the management API answers and accepts the credentials. Timeout: %d ms.", x.c.base, x.o.timeout.Milliseconds())
	if _, err := x.c.do(x.ctx, http.MethodGet, apiPath("whoami"), nil, nil); err != nil {
		return err
	}
	fmt.Fprintln(x.e.stdout, "Ping succeeded")
	return nil
}

func checkRunning(x *cmdCtx) error {
	n, err := localNode(x)
	if err != nil {
		return err
	}
	x.info("Checking if RabbitMQ is running on node %s ...", n.Name)
	if !n.Running {
		return &cliError{code: exitUnavailable, msg: fmt.Sprintf("RabbitMQ on node %s is not running or has not fully booted yet", n.Name)}
	}
	fmt.Fprintf(x.e.stdout, "RabbitMQ on node %s is fully booted and running\n", n.Name)
	return nil
}

// healthCheck GETs /api/health/checks/<name>: 200 passes, 503 fails with the
// API's reason (exit 69, as rabbitmq-diagnostics), anything else is an error.
func healthCheck(x *cmdCtx, name string) (map[string]any, error) {
	path := apiPath("health", "checks") + "/" + name
	st, data, err := x.c.raw(x.ctx, http.MethodGet, path, nil, nil)
	if err != nil {
		return nil, err
	}
	var body map[string]any
	_ = decodeJSONArg(string(data), &body)
	switch st {
	case http.StatusOK:
		return body, nil
	case http.StatusServiceUnavailable:
		return body, &cliError{code: exitUnavailable, msg: fmt.Sprint(body["reason"])}
	}
	_, err = x.c.do(x.ctx, http.MethodGet, path, nil, nil) // same request, for the error text
	if err == nil {
		err = &cliError{code: exitSoftware, msg: fmt.Sprintf("GET %s: unexpected HTTP %d", path, st)}
	}
	return nil, err
}

func checkLocalAlarms(x *cmdCtx) error {
	n, err := localNode(x)
	if err != nil {
		return err
	}
	x.info("Asking node %s to report any local resource alarms ...", n.Name)
	body, err := healthCheck(x, "local-alarms")
	if err != nil {
		if alarms, ok := body["alarms"].([]any); ok {
			var lines []string
			for _, a := range alarms {
				m, _ := a.(map[string]any)
				lines = append(lines, fmt.Sprintf("Node %v reported an alarm: %v", m["node"], m["resource"]))
			}
			return &cliError{code: exitUnavailable, msg: strings.Join(lines, "\n")}
		}
		return err
	}
	fmt.Fprintf(x.e.stdout, "Node %s reported no local alarms\n", n.Name)
	return nil
}

func checkVirtualHosts(x *cmdCtx) error {
	n, err := localNode(x)
	if err != nil {
		return err
	}
	x.info("Checking if all vhosts are running on node %s ...", n.Name)
	if _, err := healthCheck(x, "virtual-hosts"); err != nil {
		return err
	}
	fmt.Fprintf(x.e.stdout, "Node %s reported all vhosts as running\n", n.Name)
	return nil
}

// checkPortConnectivity connects, from here, to each listener's port on the
// host warrenctl talks to, as rabbitmq-diagnostics connects from the CLI.
func checkPortConnectivity(x *cmdCtx) error {
	ov, err := getOverview(x)
	if err != nil {
		return err
	}
	x.info("Testing TCP connections to all active listeners on node %s ...", ov.Node)
	var ok, bad []string
	seen := map[string]bool{}
	for _, l := range ov.Listeners {
		p := l.Port.String()
		if seen[p] {
			continue
		}
		seen[p] = true
		d := net.Dialer{Timeout: 5 * time.Second}
		conn, err := d.DialContext(x.ctx, "tcp", net.JoinHostPort(x.o.host, p))
		if err != nil {
			bad = append(bad, p)
			continue
		}
		_ = conn.Close()
		ok = append(ok, p)
	}
	if len(bad) > 0 {
		return &cliError{code: exitUnavailable, msg: fmt.Sprintf("Connection to ports %s on node %s failed", strings.Join(bad, ", "), ov.Node)}
	}
	fmt.Fprintf(x.e.stdout, "Successfully connected to ports %s on node %s.\n", strings.Join(ok, ", "), ov.Node)
	return nil
}

func exportDefinitions(x *cmdCtx) error {
	dst := x.args[0]
	if dst != "-" {
		x.info("Exporting definitions in JSON to a file at %q ...", dst)
	}
	data, err := x.c.do(x.ctx, http.MethodGet, apiPath("definitions"), nil, nil)
	if err != nil {
		return err
	}
	if dst == "-" {
		_, err = x.e.stdout.Write(data)
		return err
	}
	if err := os.WriteFile(dst, data, 0o600); err != nil {
		return &cliError{code: exitSoftware, msg: fmt.Sprintf("cannot write definitions: %v", err)}
	}
	return nil
}

func importDefinitions(x *cmdCtx) error {
	var data []byte
	var err error
	if len(x.args) == 0 || x.args[0] == "-" {
		x.info("Importing definitions in JSON from standard input ...")
		data, err = io.ReadAll(x.e.stdin)
	} else {
		x.info("Importing definitions in JSON from a file at %q ...", x.args[0])
		data, err = os.ReadFile(x.args[0])
	}
	if err != nil {
		return &cliError{code: exitDataErr, msg: fmt.Sprintf("cannot read definitions: %v", err)}
	}
	if !json.Valid(data) {
		return &cliError{code: exitDataErr, msg: "the definitions are not valid JSON"}
	}
	_, err = x.c.do(x.ctx, http.MethodPost, apiPath("definitions"), data, nil)
	return err
}
