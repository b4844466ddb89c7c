#!/usr/bin/env bash
# bench/run.sh runs the same warren-perf scenarios against Warren and RabbitMQ,
# one broker at a time on this machine, and writes docs/benchmarks.md.
#
#   bench/run.sh                          # everything, 10 s per timed scenario
#   BENCH_SECONDS=5 BENCH_SCENARIOS="a e" bench/run.sh
#
# Environment:
#   BENCH_SECONDS          run time of the timed scenarios (a-e), default 10
#   BENCH_SCENARIOS        which scenarios to run, default "a b c d e f g h"; i and j are the
#                          long-backlog scenarios of bench/backlog.sh (100 M × 16 B, 10 M × 1 KB
#                          on Warren, RabbitMQ lazy queues and NATS JetStream; see that script)
#   BENCH_BACKLOG          messages for the backlog and restart scenarios, default 1000000
#   BENCH_IDLE_CONNECTIONS connections of the idle scenario, default 1000
#   BENCH_RABBIT_URI       the RabbitMQ to compare with, default amqp://guest:guest@127.0.0.1:5672/
#   BENCH_REF              build the broker from this git revision (e.g. HEAD) instead of the
#                          working tree, e.g. while others are mid-edit; warren-perf always
#                          comes from the working tree
#   BENCH_OUT              report path, default docs/benchmarks.md
#   BENCH_KEEP=1           keep the work directory (raw JSON, logs)
#
# Needs: go, python3 (JSON parsing), root or the rabbitmq user for the
# restart scenario's private RabbitMQ node. Installs rabbitmq-server with apt
# if it is missing and starts it if it is not running.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SECONDS_PER_RUN=${BENCH_SECONDS:-10}
SCENARIOS=${BENCH_SCENARIOS:-a b c d e f g h}
BACKLOG=${BENCH_BACKLOG:-1000000}
IDLE_CONNECTIONS=${BENCH_IDLE_CONNECTIONS:-1000}
RABBIT_URI=${BENCH_RABBIT_URI:-amqp://guest:guest@127.0.0.1:5672/}
OUT=${BENCH_OUT:-$ROOT/docs/benchmarks.md}
PHASE_LIMIT=300 # seconds; bounds each phase of the backlog and restart scenarios

WORK=$(mktemp -d /tmp/warren-bench.XXXXXX)
BIN=$WORK/bin
REPORT=$WORK/report.md
OVERVIEW=$WORK/overview.md
COMMANDS=$WORK/commands.md
WARREN_PID=
PRIVATE_RABBIT_DIR=
PRIVATE_RABBIT_NODE=warrenbench$$@localhost

# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

log() { echo "[bench $(date +%T)] $*" >&2; }
die() {
	log "error: $*"
	exit 1
}

cleanup() {
	set +e
	[ -n "$RSS_SAMPLER" ] && kill "$RSS_SAMPLER" 2>/dev/null
	[ -n "$WARREN_PID" ] && kill "$WARREN_PID" 2>/dev/null && wait "$WARREN_PID" 2>/dev/null
	if [ -n "$PRIVATE_RABBIT_DIR" ]; then
		rabbitmqctl -n "$PRIVATE_RABBIT_NODE" stop >/dev/null 2>&1
		rm -rf "$PRIVATE_RABBIT_DIR"
	fi
	if [ "${BENCH_KEEP:-}" = 1 ]; then
		log "work directory kept: $WORK"
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT

# --- setup -------------------------------------------------------------------

ensure_rabbitmq() {
	if ! command -v rabbitmq-server >/dev/null; then
		log "installing rabbitmq-server"
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q rabbitmq-server
	fi
	if ! rabbitmqctl status >/dev/null 2>&1; then
		log "starting rabbitmq-server"
		rabbitmq-server >"$WORK/rabbitmq-start.log" 2>&1 &
		# await_startup fails at once while the node is not yet known to epmd.
		for _ in $(seq 120); do
			rabbitmqctl await_startup --timeout 120 >/dev/null 2>&1 && break
			sleep 1
		done
		rabbitmqctl status >/dev/null 2>&1 || die "RabbitMQ did not start; see $WORK/rabbitmq-start.log"
	fi
	RABBIT_PID=$(rabbitmqctl status 2>/dev/null | awk '/OS PID/ {print $3}')
	[ -d "/proc/$RABBIT_PID" ] || die "cannot find RabbitMQ's beam.smp process"
	RABBIT_VERSION=$(rabbitmqctl version 2>/dev/null || echo "?")
}

build() {
	local src=$ROOT
	if [ -n "${BENCH_REF:-}" ]; then
		src=$WORK/src
		mkdir -p "$src"
		git -C "$ROOT" archive "$BENCH_REF" | tar -x -C "$src"
	fi
	log "building warren from $src${BENCH_REF:+ at $BENCH_REF}, warren-perf from $ROOT"
	(cd "$src" && go build -o "$BIN/warren" ./cmd/warren)
	(cd "$ROOT" && go build -o "$BIN/warren-perf" ./cmd/warren-perf)
	WARREN_REV=$(git -C "$ROOT" rev-parse --short "${BENCH_REF:-HEAD}")
	if [ -z "${BENCH_REF:-}" ] && [ -n "$(git -C "$ROOT" status --porcelain -- cmd internal go.mod)" ]; then
		WARREN_REV="$WARREN_REV + uncommitted changes"
	fi
}

wait_port() { # PORT SECONDS [PID]: true once something accepts on 127.0.0.1:PORT
	for _ in $(seq $(($2 * 10))); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
			return 0
		fi
		if [ -n "${3:-}" ] && ! kill -0 "$3" 2>/dev/null; then
			return 1
		fi
		sleep 0.1
	done
	return 1
}

# start_warren [data-dir [port]]: a fresh Warren, so every scenario starts from
# the same memory baseline.
start_warren() {
	WARREN_DATA=${1:-$(mktemp -d "$WORK/warren-data.XXXX")}
	WARREN_PORT=${2:-$(free_port)}
	"$BIN/warren" --amqp-addr "127.0.0.1:$WARREN_PORT" --data-dir "$WARREN_DATA" --log-level warn >>"$WORK/warren.log" 2>&1 &
	WARREN_PID=$!
	wait_port "$WARREN_PORT" $PHASE_LIMIT "$WARREN_PID" || die "Warren did not start; see $WORK/warren.log"
	WARREN_URI=amqp://guest:guest@127.0.0.1:$WARREN_PORT/
}

stop_warren() {
	kill -TERM "$WARREN_PID" 2>/dev/null || true
	wait "$WARREN_PID" 2>/dev/null || true
	WARREN_PID=
}

# use BROKER: sets URI and PID for warren (started fresh) or rabbitmq.
use() {
	case $1 in
	warren)
		start_warren
		URI=$WARREN_URI PID=$WARREN_PID
		;;
	rabbitmq) URI=$RABBIT_URI PID=$RABBIT_PID ;;
	esac
}

done_with() { # BROKER: stop Warren; let RabbitMQ settle after a run
	if [ "$1" = warren ]; then
		stop_warren
	else
		sleep 3
	fi
}

# --- running warren-perf ------------------------------------------------------

# perf NAME BROKER URI ARGS...: warren-perf --json, output in $WORK/NAME.BROKER.json.
perf() {
	local name=$1 broker=$2 uri=$3
	shift 3
	if ! grep -q "^- $name:" "$COMMANDS"; then
		echo "- $name: \`warren-perf -h \$URI $*\`" >>"$COMMANDS"
	fi
	log "$name on $broker: warren-perf $*"
	if ! "$BIN/warren-perf" -h "$uri" --json "$@" >"$WORK/$name.$broker.json" 2>"$WORK/$name.$broker.err"; then
		log "warren-perf failed ($name on $broker): $(tail -3 "$WORK/$name.$broker.err")"
		return 1
	fi
}

# stall FILE: a note if consumers received nothing for a whole second while
# producers were still sending, which points at a stuck delivery path.
stall() {
	python3 - "$1" <<'PY'
import json, sys
try:
    rows = [d for d in map(json.loads, open(sys.argv[1])) if "time" in d]
except Exception:
    rows = []
idle = [d["time"] for d in rows[1:] if d["received"] == 0 and d["sent"] > 0]
if idle and any(d["received"] > 0 for d in rows):
    resumed = any(d["received"] > 0 for d in rows if d["time"] > idle[0])
    print("deliveries stopped: 0 msg/s received in the second ending at %.0f s while sending went on%s"
          % (idle[0], "" if resumed else ", and never resumed"))
PY
}

ratio() { # A B: A/B with two decimals
	awk -v a="$1" -v b="$2" 'BEGIN {
		if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && b > 0) printf "%.2f", a/b; else printf "–" }'
}
row() { # LABEL WARREN RABBITMQ [RAW_W RAW_R]: a table row with the ratio of the raw values
	echo "| $1 | $2 | $3 | $(ratio "${4:-$2}" "${5:-$3}") |" >>"$REPORT"
}
table_head() { # TITLE
	{
		echo
		echo "### $1"
		echo
		echo "| | Warren | RabbitMQ $RABBIT_VERSION | Warren / RabbitMQ |"
		echo "|---|---:|---:|---:|"
	} >>"$REPORT"
}

# --- scenarios ------------------------------------------------------------------

# timed ID TITLE ARGS...: a time-bounded run on each broker; table of rates, latency, memory.
timed() {
	local id=$1 title=$2
	shift 2
	local broker
	for broker in warren rabbitmq; do
		use $broker
		rss_begin "$PID"
		perf "$id" $broker "$URI" "$@" || true
		rss_end >"$WORK/$id.$broker.rss"
		done_with $broker
	done
	local w=$WORK/$id.warren.json r=$WORK/$id.rabbitmq.json
	table_head "$title"
	local k v1 v2
	for k in send_rate:"sent msg/s" receive_rate:"received msg/s" \
		consumer_latency_us.p50:"consumer latency p50 (µs)" consumer_latency_us.p99:"consumer latency p99 (µs)"; do
		v1=$(js "$w" "summary.${k%%:*}") v2=$(js "$r" "summary.${k%%:*}")
		row "${k#*:}" "$(num "$v1")" "$(num "$v2")" "$v1" "$v2"
	done
	if grep -q confirm_latency "$w" "$r" 2>/dev/null; then
		for k in confirm_latency_us.p50:"confirm latency p50 (µs)" confirm_latency_us.p99:"confirm latency p99 (µs)"; do
			v1=$(js "$w" "summary.${k%%:*}") v2=$(js "$r" "summary.${k%%:*}")
			row "${k#*:}" "$(num "$v1")" "$(num "$v2")" "$v1" "$v2"
		done
	fi
	local m1 m2
	m1=$(cat "$WORK/$id.warren.rss") m2=$(cat "$WORK/$id.rabbitmq.rss")
	row "peak RSS (MiB)" "$(mib "$m1")" "$(mib "$m2")" "$m1" "$m2"
	v1=$(stall "$w") v2=$(stall "$r")
	if [ -n "$v1$v2" ]; then
		echo "| notes | $v1 | $v2 | |" >>"$REPORT"
	fi
	v1=$(js "$w" summary.receive_rate) v2=$(js "$r" summary.receive_rate)
	echo "| $title | $(num "$v1") | $(num "$v2") | $(ratio "$v1" "$v2") | $(num "$(js "$w" summary.consumer_latency_us.p99)") | $(num "$(js "$r" summary.consumer_latency_us.p99)") | $(mib "$m1") | $(mib "$m2") |" >>"$OVERVIEW"
}

scenario_a() {
	timed a16 "(a) transient, 1 producer / 1 consumer, 16 B" -x 1 -y 1 -s 16 -u warren-bench-a16 --auto-delete -z "$SECONDS_PER_RUN"
	timed a1k "(a) transient, 1 producer / 1 consumer, 1 KB" -x 1 -y 1 -s 1024 -u warren-bench-a1k --auto-delete -z "$SECONDS_PER_RUN"
}
scenario_b() {
	timed b "(b) persistent + confirms (window 500), 1P / 1C, 1 KB" -x 1 -y 1 -s 1024 -f persistent -c 500 -u warren-bench-b --auto-delete -z "$SECONDS_PER_RUN"
}
scenario_c() {
	timed c "(c) 4P / 4C over 4 queues, persistent + confirms (window 500), 1 KB" -x 4 -y 4 --queues 4 -s 1024 -f persistent -c 500 -u warren-bench-c --auto-delete -z "$SECONDS_PER_RUN"
}
scenario_d() {
	timed d "(d) fanout to 10 queues, 1 producer / 10 consumers, 1 KB" -t fanout -e warren-bench-fanout -x 1 -y 10 -s 1024 --cleanup -z "$SECONDS_PER_RUN"
}
scenario_e() {
	timed e "(e) latency at a fixed 1,000 msg/s, 1P / 1C, 16 B" -x 1 -y 1 -s 16 -r 1000 -u warren-bench-e --auto-delete -z "$SECONDS_PER_RUN"
}

# (f) backlog: publish BACKLOG x 1 KB with no consumer (confirmed, so the broker
# really holds them), then drain with one consumer; memory sampled throughout.
scenario_f() {
	local q=warren-bench-backlog broker published
	local -A pub drain peak after_pub after_drain blocked note
	for broker in warren rabbitmq; do
		use $broker
		rss_begin "$PID"
		perf f-publish $broker "$URI" -x 1 -y 0 -s 1024 -C "$BACKLOG" -c 1000 -u $q -z $PHASE_LIMIT || true
		after_pub[$broker]=$(rss_now "$PID")
		published=$(js "$WORK/f-publish.$broker.json" summary.confirmed_total)
		case $published in '' | n/a | 0) published=1 ;; esac
		perf f-drain $broker "$URI" -x 0 -y 1 -p -u $q -D "$published" -z $PHASE_LIMIT --cleanup || true
		after_drain[$broker]=$(rss_now "$PID")
		peak[$broker]=$(rss_end)
		pub[$broker]=$(js "$WORK/f-publish.$broker.json" summary.send_rate)
		drain[$broker]=$(js "$WORK/f-drain.$broker.json" summary.receive_rate)
		blocked[$broker]=$(js "$WORK/f-publish.$broker.json" summary.blocked_events)
		note[$broker]="confirmed $(num "$published") of $(num "$BACKLOG")"
		if [ "${blocked[$broker]}" != 0 ] && [ "${blocked[$broker]}" != n/a ]; then
			note[$broker]="${note[$broker]}; publishing blocked by a memory/disk alarm ${blocked[$broker]} times"
		fi
		done_with $broker
	done
	table_head "(f) backlog: publish $(num "$BACKLOG") × 1 KB with no consumer, then drain"
	row "publish msg/s (confirmed)" "$(num "${pub[warren]}")" "$(num "${pub[rabbitmq]}")" "${pub[warren]}" "${pub[rabbitmq]}"
	row "drain msg/s" "$(num "${drain[warren]}")" "$(num "${drain[rabbitmq]}")" "${drain[warren]}" "${drain[rabbitmq]}"
	row "RSS with the backlog queued (MiB)" "$(mib "${after_pub[warren]}")" "$(mib "${after_pub[rabbitmq]}")" "${after_pub[warren]}" "${after_pub[rabbitmq]}"
	row "peak RSS (MiB)" "$(mib "${peak[warren]}")" "$(mib "${peak[rabbitmq]}")" "${peak[warren]}" "${peak[rabbitmq]}"
	row "RSS after draining (MiB)" "$(mib "${after_drain[warren]}")" "$(mib "${after_drain[rabbitmq]}")" "${after_drain[warren]}" "${after_drain[rabbitmq]}"
	echo "| notes | ${note[warren]} | ${note[rabbitmq]} | |" >>"$REPORT"
	echo "| (f) backlog drain, 1 KB | $(num "${drain[warren]}") | $(num "${drain[rabbitmq]}") | $(ratio "${drain[warren]}" "${drain[rabbitmq]}") | | | $(mib "${peak[warren]}") | $(mib "${peak[rabbitmq]}") |" >>"$OVERVIEW"
}

# settle_memory BROKER: let RSS settle before it is read; RabbitMQ's processes
# are asked for a full garbage collection first, since garbage from earlier
# runs would otherwise swamp the difference being measured.
settle_memory() {
	if [ "$1" = rabbitmq ]; then
		rabbitmqctl force_gc >/dev/null 2>&1 || true
	fi
	sleep 3
}

# (g) idle connections: broker RSS before and while warren-perf holds the
# connections open. RabbitMQ's socket limit (from its file descriptor limit)
# may be below the target; then it gets as many as leave room for others.
scenario_g() {
	local broker n before after opened out
	local -A conns chans rss_before rss_after per note
	for broker in warren rabbitmq; do
		use $broker
		n=$IDLE_CONNECTIONS
		note[$broker]=""
		if [ $broker = rabbitmq ]; then
			local limit used
			limit=$(rabbitmqctl status 2>/dev/null | awk -F'[:,] *' '/^Sockets:/ {print $4}')
			used=$(rabbitmqctl status 2>/dev/null | awk -F'[:,] *' '/^Sockets:/ {print $2}')
			if [ -n "$limit" ] && [ $((limit - used - 50)) -lt "$n" ]; then
				n=$((limit - used - 50))
				note[$broker]="capped at $n: this RabbitMQ's socket limit is $limit (file descriptor limit $(awk '/Max open files/ {print $4}' "/proc/$PID/limits"))"
			fi
		fi
		settle_memory $broker
		before=$(rss_now "$PID")
		out=$WORK/g.$broker.json
		[ $broker = warren ] && echo "- g: \`warren-perf -h \$URI --idle-connections $n --channels-per-connection 2 -z 600\` (held until RSS is read, then SIGTERM)" >>"$COMMANDS"
		log "g on $broker: $n idle connections × 2 channels"
		"$BIN/warren-perf" -h "$URI" --json --idle-connections "$n" --channels-per-connection 2 -z 600 >"$out" 2>"$WORK/g.$broker.err" &
		local perf_pid=$!
		for _ in $(seq 600); do
			grep -q '"idle"' "$out" 2>/dev/null && break
			kill -0 $perf_pid 2>/dev/null || break
			sleep 0.2
		done
		settle_memory $broker
		after=$(rss_now "$PID")
		kill -TERM $perf_pid 2>/dev/null || true
		wait $perf_pid 2>/dev/null || true
		opened=$(js "$out" idle.connections)
		conns[$broker]=$opened
		chans[$broker]=$(js "$out" idle.channels)
		rss_before[$broker]=$before
		rss_after[$broker]=$after
		per[$broker]=n/a
		if [ "$opened" != n/a ] && [ "$opened" -gt 0 ]; then
			per[$broker]=$(awk -v a="$after" -v b="$before" -v n="$opened" 'BEGIN {printf "%.1f", (a-b)/n}')
		fi
		local err
		err=$(js "$out" idle.error)
		[ "$err" != n/a ] && note[$broker]="${note[$broker]:+${note[$broker]}; }$err"
		done_with $broker
	done
	table_head "(g) idle connections, 2 channels each"
	row "connections / channels open" "${conns[warren]} / ${chans[warren]}" "${conns[rabbitmq]} / ${chans[rabbitmq]}" - -
	row "RSS before (MiB)" "$(mib "${rss_before[warren]}")" "$(mib "${rss_before[rabbitmq]}")" "${rss_before[warren]}" "${rss_before[rabbitmq]}"
	row "RSS with the connections open (MiB)" "$(mib "${rss_after[warren]}")" "$(mib "${rss_after[rabbitmq]}")" "${rss_after[warren]}" "${rss_after[rabbitmq]}"
	row "per connection (KiB)" "${per[warren]}" "${per[rabbitmq]}"
	echo "| notes | ${note[warren]:-} | ${note[rabbitmq]:-} | |" >>"$REPORT"
	echo "| (g) idle connection, 2 channels: KiB each | ${per[warren]} | ${per[rabbitmq]} | $(ratio "${per[warren]}" "${per[rabbitmq]}") | | | $(mib "${rss_after[warren]}") | $(mib "${rss_after[rabbitmq]}") |" >>"$OVERVIEW"
}

# start_private_rabbit: a RabbitMQ node of our own (own port, data and log
# directories, no plugins) for the restart scenario, so the shared broker on
# 5672 is never stopped. Sets PRIVATE_RABBIT_PORT; reuses directory and ports
# on a second call, which is the restart.
start_private_rabbit() {
	if [ -z "$PRIVATE_RABBIT_DIR" ]; then
		PRIVATE_RABBIT_DIR=$(mktemp -d /tmp/warren-bench-rabbit.XXXXXX)
		chmod 755 "$PRIVATE_RABBIT_DIR"
		mkdir -p "$PRIVATE_RABBIT_DIR/mnesia" "$PRIVATE_RABBIT_DIR/log"
		echo "[]." >"$PRIVATE_RABBIT_DIR/enabled_plugins"
		[ "$(id -u)" = 0 ] && chown -R rabbitmq:rabbitmq "$PRIVATE_RABBIT_DIR"
		PRIVATE_RABBIT_PORT=$(free_port)
		PRIVATE_RABBIT_DIST=$(free_port)
	fi
	(cd / && env RABBITMQ_NODENAME="$PRIVATE_RABBIT_NODE" RABBITMQ_NODE_PORT="$PRIVATE_RABBIT_PORT" \
		RABBITMQ_DIST_PORT="$PRIVATE_RABBIT_DIST" RABBITMQ_MNESIA_BASE="$PRIVATE_RABBIT_DIR/mnesia" \
		RABBITMQ_LOG_BASE="$PRIVATE_RABBIT_DIR/log" RABBITMQ_ENABLED_PLUGINS_FILE="$PRIVATE_RABBIT_DIR/enabled_plugins" \
		RABBITMQ_CONFIG_FILE="$PRIVATE_RABBIT_DIR/rabbitmq" RABBITMQ_PID_FILE="$PRIVATE_RABBIT_DIR/pid" \
		rabbitmq-server >>"$WORK/private-rabbit.log" 2>&1 &)
}

# restart_run BROKER: publish BACKLOG persistent 1 KB messages to a durable
# queue, stop the broker, start it and time until the queue holds them again.
# Sets RESTART_TIME, STOP_TIME, RESTART_RSS, RESTART_PUBLISH.
restart_run() {
	local broker=$1 q=warren-bench-restart uri pid t0 t1
	RESTART_TIME=n/a STOP_TIME=n/a RESTART_RSS='' RESTART_PUBLISH=n/a
	if [ "$broker" = warren ]; then
		start_warren
		uri=$WARREN_URI
	else
		start_private_rabbit
		# await_startup fails at once while the node is not yet known to epmd.
		wait_port "$PRIVATE_RABBIT_PORT" 120 || die "private RabbitMQ did not start; see $WORK/private-rabbit.log"
		rabbitmqctl -n "$PRIVATE_RABBIT_NODE" await_startup --timeout 120 >/dev/null 2>&1 || die "private RabbitMQ did not start; see $WORK/private-rabbit.log"
		uri=amqp://guest:guest@127.0.0.1:$PRIVATE_RABBIT_PORT/
	fi
	perf h-publish "$broker" "$uri" -x 1 -y 0 -s 1024 -f persistent -C "$BACKLOG" -c 1000 -u $q -z $PHASE_LIMIT || true
	local published
	published=$(js "$WORK/h-publish.$broker.json" summary.confirmed_total)
	RESTART_PUBLISH=$(js "$WORK/h-publish.$broker.json" summary.send_rate)
	t0=$(date +%s.%N)
	if [ "$broker" = warren ]; then
		stop_warren
	else
		pid=$(cat "$PRIVATE_RABBIT_DIR/pid" 2>/dev/null || echo)
		rabbitmqctl -n "$PRIVATE_RABBIT_NODE" stop >/dev/null 2>&1
		# stop may return before the VM has exited; the restart must not overlap it.
		for _ in $(seq 600); do
			if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
				break
			fi
			sleep 0.1
		done
	fi
	t1=$(date +%s.%N)
	STOP_TIME=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b-a}')
	if [ "$broker" = warren ]; then
		start_warren "$WARREN_DATA" "$WARREN_PORT"
	else
		start_private_rabbit
	fi
	log "h on $broker: waiting for $published messages after the restart"
	if "$BIN/warren-perf" -h "$uri" --json -u $q --await-messages "$published" -z $PHASE_LIMIT >"$WORK/h-await.$broker.json" 2>"$WORK/h-await.$broker.err"; then
		RESTART_TIME=$(awk -v a="$t1" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b-a}')
	fi
	if [ "$broker" = warren ]; then
		pid=$WARREN_PID
	else
		pid=$(cat "$PRIVATE_RABBIT_DIR/pid" 2>/dev/null || echo)
	fi
	[ -n "$pid" ] && RESTART_RSS=$(rss_now "$pid")
	"$BIN/warren-perf" -h "$uri" -x 0 -y 0 -p -u $q --cleanup >/dev/null 2>&1 || true
	if [ "$broker" = warren ]; then
		stop_warren
	else
		rabbitmqctl -n "$PRIVATE_RABBIT_NODE" stop >/dev/null 2>&1 || true
	fi
}

# warren_durable: does a persistent message in a durable queue survive a
# Warren restart with the same --data-dir? (Not until the disk store lands.)
warren_durable() {
	local q=warren-bench-durability-probe ok=1
	start_warren
	"$BIN/warren-perf" -h "$WARREN_URI" -x 1 -y 0 -C 100 -c 100 -f persistent -u $q >/dev/null 2>&1 || ok=0
	local dir=$WARREN_DATA port=$WARREN_PORT
	stop_warren
	start_warren "$dir" "$port"
	"$BIN/warren-perf" -h "$WARREN_URI" -u $q --await-messages 100 -z 10 >/dev/null 2>&1 || ok=0
	stop_warren
	[ $ok = 1 ]
}

scenario_h() {
	local w_time=n/a w_stop=n/a w_rss='' w_pub=n/a w_note
	if warren_durable; then
		restart_run warren
		w_time=$RESTART_TIME w_stop=$STOP_TIME w_rss=$RESTART_RSS w_pub=$RESTART_PUBLISH
		w_note="restarted with the same --data-dir"
	else
		w_time="n/a until durability lands" w_stop="n/a until durability lands"
		w_note="persistent messages do not survive a restart yet: no disk store"
		log "h on warren: n/a until durability lands"
	fi
	restart_run rabbitmq
	table_head "(h) restart with $(num "$BACKLOG") persistent 1 KB messages queued"
	row "publish msg/s (persistent, confirmed)" "$(num "$w_pub")" "$(num "$RESTART_PUBLISH")" "$w_pub" "$RESTART_PUBLISH"
	row "stop time (s)" "$w_stop" "$STOP_TIME"
	row "start until the queue holds every message (s)" "$w_time" "$RESTART_TIME"
	row "RSS after recovery (MiB)" "$(mib "$w_rss")" "$(mib "$RESTART_RSS")" "$w_rss" "$RESTART_RSS"
	echo "| notes | $w_note | private node on its own port, started with \`rabbitmq-server\` | |" >>"$REPORT"
	echo "| (h) restart with the backlog: seconds | $w_time | $RESTART_TIME | $(ratio "$w_time" "$RESTART_TIME") | | | $(mib "$w_rss") | $(mib "$RESTART_RSS") |" >>"$OVERVIEW"
}

# --- report -------------------------------------------------------------------

machine() {
	local mem cpu disk
	mem=$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)
	cpu=$(awk -F': *' '/model name/ {print $2; exit}' /proc/cpuinfo)
	disk=$(df -h "$WORK" | awk 'NR==2 {print $1 ", " $2 " total, " $4 " free"}')
	cat <<EOF
- CPUs: $(nproc) ($cpu), shared by the broker under test and warren-perf
- RAM: $mem
- Disk ($WORK): $disk
- Kernel: $(uname -r); $(go version | cut -d' ' -f3-4)
- Warren: $WARREN_REV; RabbitMQ $RABBIT_VERSION (Debian package, Erlang/OTP $(erl -noshell -eval 'io:format("~s", [erlang:system_info(otp_release)]), halt().' 2>/dev/null || echo "?"))
EOF
}

write_report() {
	local load_end streams="" backlog=""
	load_end=$(cut -d' ' -f1-3 /proc/loadavg)
	mkdir -p "$(dirname "$OUT")"
	# The sections of bench/streams.sh and bench/backlog.sh are their own: keep them.
	if [ -f "$OUT" ]; then
		streams=$(sed -n '/<!-- streams-bench:begin/,/<!-- streams-bench:end -->/p' "$OUT")
		backlog=$(sed -n '/<!-- backlog-bench:begin/,/<!-- backlog-bench:end -->/p' "$OUT")
	fi
	{
		cat <<EOF
# Benchmarks: Warren vs RabbitMQ

Generated by \`bench/run.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC') ($((SECONDS / 60)) min $((SECONDS % 60)) s).
Both brokers ran on the same machine as the load generator, one broker at a time, driven by the
same \`warren-perf\` commands (listed at the end). Warren was started fresh for every scenario;
RabbitMQ is the long-running Debian service on port 5672 (for (h) a private RabbitMQ node is
started and restarted on its own port, so the shared one is never stopped).

What the numbers mean: rates are the run's average (messages / duration), latency is from the
send timestamp in the body to the consumer's read (same clock), percentiles over the whole run.
Peak RSS is the broker process's VmHWM, reset before each run (\`/proc/PID/clear_refs\`), or the
largest VmRSS sampled every 0.2 s; for RabbitMQ it is the beam.smp process. Ratios are
Warren / RabbitMQ: above 1 is better for rates, below 1 is better for latency, memory and time.
Producers publish as fast as they can unless a rate is given, as PerfTest does, so when
consumers are slower than producers the queue grows and latency is dominated by queueing.

## Machine

$(machine)
- Load average (1, 5, 15 min) before the run: $LOAD_START; after: $load_end
EOF
		if awk -v l="${LOAD_START%% *}" 'BEGIN {exit !(l >= 0.5)}'; then
			echo "- Other work was running on the machine (the load average before the run was above 0.5):"
			echo "  expect noise, especially in the 2-core CPU-bound scenarios."
		fi
		cat <<EOF

## Overview

| Scenario | Warren msg/s | RabbitMQ msg/s | ratio | Warren p99 (µs) | RabbitMQ p99 (µs) | Warren peak RSS (MiB) | RabbitMQ peak RSS (MiB) |
|---|---:|---:|---:|---:|---:|---:|---:|
EOF
		cat "$OVERVIEW"
		echo
		echo "msg/s is the receiving rate (for (f) the drain rate); for (g) and (h) see the tables."
		echo
		echo "## Scenarios"
		cat "$REPORT"
		cat <<EOF

## Notes

- Both brokers write persistent messages to disk. Warren runs with its default \`--sync always\`:
  a publisher confirm is sent only after the fdatasync covering the message (group commit).
- RabbitMQ's per-connection limit of sockets comes from the file descriptor limit of the running
  service; where it is below the scenario's target the table says so.
- For the latency of (a)–(d), producers are unthrottled: latency then mostly measures how far the
  queue grew; (e) is the latency figure to compare.

## Commands

URI is amqp://guest:guest@127.0.0.1:PORT/ of the broker under test. Each timed run used \`-z $SECONDS_PER_RUN\`
(\`BENCH_SECONDS\`); the script adds \`--json\` to parse the summaries.

\`\`\`
$INVOCATION
\`\`\`

EOF
		cat "$COMMANDS"
		for section in "$streams" "$backlog"; do
			if [ -n "$section" ]; then
				echo
				echo "$section"
			fi
		done
	} >"$OUT"
	log "wrote $OUT"
}

# --- main -------------------------------------------------------------------------

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
INVOCATION=bench/run.sh
for v in BENCH_SCENARIOS BENCH_REF BENCH_IDLE_CONNECTIONS BENCH_BACKLOG BENCH_SECONDS; do
	if [ -n "${!v:-}" ]; then
		INVOCATION="$v=\"${!v}\" $INVOCATION"
	fi
done
: >"$REPORT"
: >"$OVERVIEW"
: >"$COMMANDS"
ensure_rabbitmq
build
for s in $SCENARIOS; do
	case $s in
	a | b | c | d | e | f | g | h) "scenario_$s" ;;
	i | j) BENCH_OUT=$OUT "$ROOT/bench/backlog.sh" "$s" ;; # long backlogs, minutes each: not in the default set
	*) die "unknown scenario $s (want a-j)" ;;
	esac
done
write_report
