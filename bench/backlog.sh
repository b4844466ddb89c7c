#!/usr/bin/env bash
# bench/backlog.sh measures what a long backlog costs: one durable queue is
# filled with persistent messages while nothing consumes, the broker is
# restarted with the backlog queued, then one consumer drains it. It runs
# Warren, RabbitMQ 3.10 (a lazy classic queue: policy queue-mode=lazy on a
# private node) and, if it installs from the Go module proxy, NATS JetStream
# (a file stream with work-queue retention), one broker at a time, and writes
# the "Long backlogs" section of docs/benchmarks.md (between its markers;
# bench/run.sh keeps it, and runs this script for its scenarios i and j).
# Each scenario's table is a subsection of its own, with its own markers:
# running some scenarios replaces their tables and keeps the others.
#
#   bench/backlog.sh                 # i and j on every broker
#   BENCH_BROKERS=warren BENCH_I_MESSAGES=2000000 bench/backlog.sh i
#   BENCH_K_QUEUES=2000 BENCH_K_MESSAGES=2000 bench/backlog.sh k
#
# Scenarios:
#   i  BENCH_I_MESSAGES (default 100,000,000) × 16 B
#   j  BENCH_J_MESSAGES (default 10,000,000) × 1 KB
#   k  many queues: BENCH_K_QUEUES (default 10,000) durable queues bound to one
#      fanout exchange, each holding BENCH_K_MESSAGES (default 10,000) ×
#      BENCH_K_SIZE (default 16) B, Warren run with --memory-limit
#      BENCH_K_LIMIT (default 512MiB: the store holds a run, ~150 B, per queue
#      per segment, and a fanout to 10,000 queues leaves ~60 records of each
#      in a 64 MiB segment, so 100 M queue records cost ~250 MB, past what a
#      256 MiB limit lets in before the alarm blocks the publisher); driven
#      by bench/manyq. Not in the default set.
#
# Environment:
#   BENCH_BROKERS      brokers for i and j, default "warren rabbitmq nats"
#   BENCH_K_BROKERS    brokers for k, default "warren" (rabbitmq works, with a
#                      lazy policy on the queues and its default memory watermark;
#                      nats has no counterpart and is skipped)
#   BENCH_K_PREFETCH   k: prefetch of each queue's consumer, default 10 (deliveries in
#                      flight are queues × prefetch, which no memory limit bounds:
#                      10,000 × 100 would be a million, ~300 MB)
#   BENCH_K_WINDOW     k: unconfirmed fanout publishes in flight, default 100
#   BENCH_PHASE_LIMIT  seconds each phase (fill, restart, drain) may take, default 1800;
#                      a broker that is not done by then is reported with what it managed
#   BENCH_REF          build Warren from this git revision instead of the working tree
#   BENCH_OUT          report path, default docs/benchmarks.md
#   BENCH_KEEP=1       keep the work directory (JSON, logs)
#
# Measured per broker: fill rate (confirmed), peak RSS while filling and RSS
# at the end of it, bytes on disk, the time from starting the broker again
# until the queue reports the whole backlog and until a consumer has its
# first message, RSS after the restart, drain rate, and RSS right after
# draining and 60 s later (memory given back to the OS). Scenario k adds the
# memory per queue and per queued message, delivery order and fairness across
# the queues while draining, and whether peak RSS stayed within 1.5 × the
# memory limit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BROKERS=${BENCH_BROKERS:-warren rabbitmq nats}
LIMIT=${BENCH_PHASE_LIMIT:-1800}
OUT=${BENCH_OUT:-$ROOT/docs/benchmarks.md}
I_MESSAGES=${BENCH_I_MESSAGES:-100000000}
J_MESSAGES=${BENCH_J_MESSAGES:-10000000}
K_QUEUES=${BENCH_K_QUEUES:-10000}
K_MESSAGES=${BENCH_K_MESSAGES:-10000}
K_SIZE=${BENCH_K_SIZE:-16}
K_LIMIT=${BENCH_K_LIMIT:-512MiB}
K_BROKERS=${BENCH_K_BROKERS:-warren}
K_PREFETCH=${BENCH_K_PREFETCH:-10}
K_WINDOW=${BENCH_K_WINDOW:-100}
SCENARIOS=${*:-i j}
WORK=$(mktemp -d /tmp/warren-backlog-bench.XXXXXX)
BIN=$WORK/bin
BPID= RABBIT_DIR= RABBIT_NODE=warrenbacklog$$@localhost
Q=warren-bench-backlog
KQ=warren-bench-manyq- KX=warren-bench-manyq # scenario k's queue name prefix and exchange
WARREN_ARGS=()                               # more flags for warren (scenario k: --memory-limit)
LAZY_PATTERN="^$Q\$"                         # the queues RabbitMQ's lazy policy applies to

# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

log() { echo "[backlog-bench $(date +%T)] $*" >&2; }
die() {
	log "error: $*"
	exit 1
}
cleanup() {
	set +e
	[ -n "$RSS_SAMPLER" ] && kill "$RSS_SAMPLER" 2>/dev/null
	[ -n "$BPID" ] && kill -9 "$BPID" 2>/dev/null
	[ -n "$RABBIT_DIR" ] && rabbitmqctl -n "$RABBIT_NODE" stop >/dev/null 2>&1
	if [ "${BENCH_KEEP:-}" = 1 ]; then log "work directory kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

wait_port() { # PORT: true once something accepts on 127.0.0.1:PORT (or the broker died)
	for _ in $(seq $((LIMIT * 10))); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		[ -n "$BPID" ] && ! kill -0 "$BPID" 2>/dev/null && return 1
		sleep 0.1
	done
	return 1
}
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN {printf "%.1f", b-a}'; }
js() { # FILE KEY.PATH: a value from the last JSON line of FILE
	python3 - "$1" "$2" <<'PY'
import json, sys
try:
    v = json.loads([l for l in open(sys.argv[1]) if l.strip().startswith("{")][-1])
    for k in sys.argv[2].split("."):
        v = v[k]
    print(v)
except Exception:
    print("n/a")
PY
}
per_msg() { # KB_AFTER KB_BEFORE MESSAGES: bytes per message
	awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { if (n > 0 && a ~ /^[0-9]+$/) printf "%.1f", (a-b)*1024/n; else printf "n/a" }'
}

build() {
	local src=$ROOT
	if [ -n "${BENCH_REF:-}" ]; then
		src=$WORK/src
		mkdir -p "$src"
		git -C "$ROOT" archive "$BENCH_REF" | tar -x -C "$src"
	fi
	(cd "$src" && go build -o "$BIN/warren" ./cmd/warren)
	(cd "$ROOT" && go build -o "$BIN/warren-perf" ./cmd/warren-perf)
	(cd "$ROOT" && go build -o "$BIN/manyq" ./bench/manyq)
	REV=$(git -C "$ROOT" rev-parse --short "${BENCH_REF:-HEAD}")
	case " $K_BROKERS " in *" nats "*)
		log "scenario k has no NATS counterpart; skipping NATS for it"
		K_BROKERS=${K_BROKERS//nats/}
		;;
	esac
	local need="" s
	for s in $SCENARIOS; do
		case $s in k) need="$need $K_BROKERS" ;; *) need="$need $BROKERS" ;; esac
	done
	case " $need " in *" nats "*)
		if GOBIN=$BIN go install github.com/nats-io/nats-server/v2@v2.15.3 >"$WORK/nats-install.log" 2>&1 &&
			GOBIN=$BIN go install github.com/nats-io/natscli/nats@v0.5.0 >>"$WORK/nats-install.log" 2>&1; then
			NATS_VERSION=$("$BIN/nats-server" --version | awk '{print $NF}')
		else
			log "NATS does not install from the module proxy here; skipping it ($(tail -1 "$WORK/nats-install.log"))"
			BROKERS=${BROKERS//nats/}
		fi
		;;
	esac
	case " $need " in *" rabbitmq "*)
		command -v rabbitmq-server >/dev/null || { apt-get update -qq && apt-get install -y -qq rabbitmq-server >/dev/null; } ||
			die "cannot install rabbitmq-server"
		RABBIT_VERSION=$(dpkg-query -W -f '${Version}' rabbitmq-server 2>/dev/null | cut -d- -f1)
		;;
	esac
}

# --- per broker: start (fresh or again on the same data), stop, depth --------------

start_broker() { # BROKER [again]
	case $1 in
	warren)
		[ "${2:-}" = again ] || { DATA=$(mktemp -d "$WORK/warren.XXXX") PORT=$(free_port); }
		T_START=$(now)
		"$BIN/warren" --amqp-addr "127.0.0.1:$PORT" --mgmt-addr "" --prometheus-addr "" --kafka-addr "" \
			--data-dir "$DATA" --log-level warn "${WARREN_ARGS[@]}" >>"$WORK/warren.log" 2>&1 &
		BPID=$!
		URI=amqp://guest:guest@127.0.0.1:$PORT/
		;;
	rabbitmq)
		if [ "${2:-}" != again ]; then
			RABBIT_DIR=$(mktemp -d /tmp/warren-backlog-rabbit.XXXXXX)
			chmod 755 "$RABBIT_DIR"
			mkdir -p "$RABBIT_DIR/mnesia" "$RABBIT_DIR/log"
			echo "[]." >"$RABBIT_DIR/enabled_plugins"
			[ "$(id -u)" = 0 ] && chown -R rabbitmq:rabbitmq "$RABBIT_DIR"
			PORT=$(free_port) DIST=$(free_port) DATA=$RABBIT_DIR/mnesia
		fi
		T_START=$(now)
		(cd / && env RABBITMQ_NODENAME="$RABBIT_NODE" RABBITMQ_NODE_PORT="$PORT" RABBITMQ_DIST_PORT="$DIST" \
			RABBITMQ_MNESIA_BASE="$RABBIT_DIR/mnesia" RABBITMQ_LOG_BASE="$RABBIT_DIR/log" \
			RABBITMQ_ENABLED_PLUGINS_FILE="$RABBIT_DIR/enabled_plugins" RABBITMQ_CONFIG_FILE="$RABBIT_DIR/rabbitmq" \
			RABBITMQ_PID_FILE="$RABBIT_DIR/pid" rabbitmq-server >>"$WORK/rabbit.log" 2>&1 &)
		URI=amqp://guest:guest@127.0.0.1:$PORT/
		wait_port "$PORT" || die "RabbitMQ did not start; see $WORK/rabbit.log"
		BPID=$(cat "$RABBIT_DIR/pid")
		if [ "${2:-}" != again ]; then
			rabbitmqctl -n "$RABBIT_NODE" await_startup --timeout 120 >/dev/null
			rabbitmqctl -n "$RABBIT_NODE" set_policy lazy "$LAZY_PATTERN" '{"queue-mode":"lazy"}' --apply-to queues >/dev/null
		fi
		;;
	nats)
		[ "${2:-}" = again ] || { DATA=$(mktemp -d "$WORK/nats.XXXX") PORT=$(free_port); }
		T_START=$(now)
		"$BIN/nats-server" -js -sd "$DATA" -a 127.0.0.1 -p "$PORT" >>"$WORK/nats.log" 2>&1 &
		BPID=$!
		URI=nats://127.0.0.1:$PORT
		;;
	esac
	wait_port "$PORT" || die "$1 did not start; see $WORK"
}

stop_broker() { # BROKER: a clean stop (SIGTERM / rabbitmqctl stop), waited for
	case $1 in
	rabbitmq) rabbitmqctl -n "$RABBIT_NODE" stop >/dev/null 2>&1 || true ;;
	*) kill -TERM "$BPID" 2>/dev/null || true ;;
	esac
	for _ in $(seq $((LIMIT * 10))); do
		kill -0 "$BPID" 2>/dev/null || break
		sleep 0.1
	done
	BPID=
}

nats() { "$BIN/nats" -s "$URI" "$@"; }
nats_rate() { # FILE: the msgs/sec of a nats bench summary line
	grep -oE 'stats: [0-9,]+ msgs/sec' "$1" | head -1 | tr -dc '0-9' || true
}

fill() { # BROKER MESSAGES SIZE: sets FILLED and FILL_RATE
	local out=$WORK/fill.$1.$3
	case $1 in
	nats)
		nats stream add benchstream --subjects bench --storage file --retention work --discard old \
			--max-msgs=-1 --max-bytes=-1 --max-age=0 --dupe-window=2m --replicas 1 --defaults >/dev/null
		local t0
		t0=$(now)
		timeout "$LIMIT" "$BIN/nats" -s "$URI" bench js pub async bench --stream benchstream --msgs "$2" --size "$3" \
			--batch 1000 --no-progress >"$out.txt" 2>&1 || true
		FILLED=$(nats stream info benchstream --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"]["messages"])')
		FILL_RATE=$(awk -v n="$FILLED" -v s="$(since "$t0")" 'BEGIN {printf "%.0f", n/s}')
		;;
	*)
		timeout $((LIMIT + 60)) "$BIN/warren-perf" -h "$URI" --json -x 1 -y 0 -s "$3" -f persistent -C "$2" -c 1000 -u $Q \
			-z "$LIMIT" >"$out.json" 2>"$out.err" || true
		FILLED=$(js "$out.json" summary.confirmed_total)
		FILL_RATE=$(js "$out.json" summary.send_rate)
		;;
	esac
}

await_backlog() { # BROKER MESSAGES: sets READY (s since the start) and FIRST (s until a consumer had a message)
	READY=n/a FIRST=n/a
	case $1 in
	nats)
		for _ in $(seq $((LIMIT * 5))); do
			[ "$(nats stream info benchstream --json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"]["messages"])' 2>/dev/null)" = "$2" ] && break
			sleep 0.2
		done
		READY=$(since "$T_START")
		nats consumer add benchstream first --pull --deliver all --ack explicit --defaults >/dev/null 2>&1 || true
		nats consumer next benchstream first --count 1 --ack >/dev/null 2>&1 && FIRST=$(since "$T_START")
		nats consumer rm benchstream first -f >/dev/null 2>&1 || true
		;;
	*)
		"$BIN/warren-perf" -h "$URI" --json -u $Q --await-messages "$2" -z "$LIMIT" >"$WORK/await.$1.json" 2>&1 &&
			READY=$(since "$T_START")
		"$BIN/warren-perf" -h "$URI" --json -x 0 -y 1 -q 10 -p -u $Q -D 1 -z "$LIMIT" >/dev/null 2>&1 &&
			FIRST=$(since "$T_START")
		;;
	esac
}

drain() { # BROKER MESSAGES: sets DRAIN_RATE
	local out=$WORK/drain.$1
	case $1 in
	nats)
		nats consumer add benchstream drain --pull --deliver all --ack explicit --defaults >/dev/null
		timeout $((LIMIT + 60)) "$BIN/nats" -s "$URI" bench js consume --stream benchstream --consumer drain --msgs "$2" \
			--batch 1000 --no-progress >"$out.txt" 2>&1 || true
		DRAIN_RATE=$(nats_rate "$out.txt")
		;;
	*)
		timeout $((LIMIT + 60)) "$BIN/warren-perf" -h "$URI" --json -x 0 -y 1 -q 2000 -A 100 -p -u $Q -D "$2" -z "$LIMIT" \
			>"$out.json" 2>"$out.err" || true
		DRAIN_RATE=$(js "$out.json" summary.receive_rate)
		;;
	esac
}

run_one() { # BROKER MESSAGES SIZE SCENARIO: one column of results in $WORK/result.BROKER.SCENARIO
	local b=$1 n=$2 size=$3 key=$4 idle disk
	log "$b: fill $(num "$n") × $size B"
	start_broker "$b"
	sleep 2
	idle=$(rss_now "$BPID")
	rss_begin "$BPID"
	fill "$b" "$n" "$size"
	local fill_peak fill_end
	fill_end=$(rss_now "$BPID")
	fill_peak=$(rss_end)
	disk=$(du -sk "$DATA" | cut -f1)
	log "$b: filled $(num "$FILLED") at $(num "$FILL_RATE") msg/s; restarting"
	local t0 stop
	t0=$(now)
	stop_broker "$b"
	stop=$(since "$t0")
	start_broker "$b" again
	await_backlog "$b" "$FILLED"
	local restart_rss
	restart_rss=$(rss_now "$BPID")
	log "$b: ready after ${READY} s, first message after ${FIRST} s; draining"
	rss_begin "$BPID"
	drain "$b" "$((FILLED - 1))"
	local drain_peak drained later
	drained=$(rss_now "$BPID")
	drain_peak=$(rss_end)
	sleep 60
	later=$(rss_now "$BPID")
	stop_broker "$b"
	[ "$b" = rabbitmq ] && { rm -rf "$RABBIT_DIR"; RABBIT_DIR=; }
	cat >"$WORK/result.$b.$key" <<EOF
$(num "$FILLED") of $(num "$n")
$(num "$FILL_RATE")
$(mib "$idle")
$(mib "$fill_peak")
$(mib "$fill_end")
$(per_msg "$fill_end" "$idle" "${FILLED//[^0-9]/}")
$(awk -v k="$disk" 'BEGIN {printf "%.2f", k/1048576}')
$(awk -v k="$disk" -v n="${FILLED//[^0-9]/}" -v s="$size" 'BEGIN { if (n > 0) printf "%.0f (body %d)", k*1024/n, s; else printf "n/a" }')
$stop
$READY
$FIRST
$(mib "$restart_rss")
$(num "$DRAIN_RATE")
$(mib "$drain_peak")
$(mib "$drained")
$(mib "$later")
EOF
}

# --- scenario k: many queues --------------------------------------------------------

to_bytes() { # SIZE: "256MiB", "1GB", "40%" (of RAM), "1048576" in bytes
	case $1 in
	*%) awk -v p="${1%\%}" '/^MemTotal/ {printf "%.0f", $2*1024*p/100}' /proc/meminfo ;;
	*GiB) echo $((${1%GiB} << 30)) ;;
	*MiB) echo $((${1%MiB} << 20)) ;;
	*KiB) echo $((${1%KiB} << 10)) ;;
	*GB) echo $((${1%GB} * 1000000000)) ;;
	*MB) echo $((${1%MB} * 1000000)) ;;
	*KB) echo $((${1%KB} * 1000)) ;;
	*B) echo "${1%B}" ;;
	*) echo "$1" ;;
	esac
}
manyq() { # STEP [FLAGS]: bench/manyq against the broker, bounded by the phase limit
	local step=$1
	shift
	timeout $((LIMIT + 60)) "$BIN/manyq" "$step" -uri "$URI" -queues "$K_QUEUES" -messages "$K_MESSAGES" -size "$K_SIZE" \
		-prefix "$KQ" -exchange "$KX" -timeout "${LIMIT}s" "$@"
}
hwm() { awk '/^VmHWM/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; } # PID: peak RSS (kB) since start or clear_refs
ratio_b() { # KB_AFTER KB_BEFORE COUNT: bytes per item, or n/a
	awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { if (n > 0 && a ~ /^[0-9]+$/ && b ~ /^[0-9]+$/) printf "%.0f", (a-b)*1024/n; else printf "n/a" }'
}
fairness() { # DRAIN-JSON: "10 %: MIN–MAX, J JAIN (broker: MIN–MAX, U untouched); 50 %: ...; 90 %: ..."
	python3 - "$1" <<'PY'
import json, sys
def cell(p, f):
    if not f:
        return f"{p} %: n/a"
    s = f"{p} %: {f['min']:.3f}–{f['max']:.3f}, J {f['jain']:.3f}"
    b = f.get("broker")
    if b:
        s += f" (broker: {b['min']:.3f}–{b['max']:.3f}, {b['untouched']} untouched)"
    return s
try:
    v = json.loads([l for l in open(sys.argv[1]) if l.strip().startswith("{")][-1]).get("fair") or {}
    print("; ".join(cell(p, v.get(p)) for p in ("10", "50", "90")))
except Exception:
    print("n/a")
PY
}

run_k() { # BROKER: one column of results in $WORK/result.BROKER.k
	local b=$1 n=$K_QUEUES m=$K_MESSAGES out=$WORK/k.$1
	local idle declared queued fill_peak disk t0 stop ready restart_rss restart_peak drain_peak drained later
	log "$b: declare $(num "$n") queues, fill each with $(num "$m") × $K_SIZE B"
	WARREN_ARGS=() LAZY_PATTERN="^$KQ"
	[ "$b" = warren ] && WARREN_ARGS=(--memory-limit "$K_LIMIT")
	start_broker "$b"
	sleep 2
	idle=$(rss_now "$BPID")
	manyq declare >"$out.declare.json" 2>"$out.declare.err" || log "$b: declare failed: $(tail -1 "$out.declare.err")"
	sleep 2
	declared=$(rss_now "$BPID")
	log "$b: declared $(js "$out.declare.json" queues) queues in $(js "$out.declare.json" seconds) s; filling"
	rss_begin "$BPID"
	manyq fill -window "$K_WINDOW" >"$out.fill.json" 2>"$out.fill.err" || log "$b: fill failed: $(tail -1 "$out.fill.err")"
	queued=$(rss_now "$BPID")
	fill_peak=$(rss_end)
	disk=$(du -sk "$DATA" | cut -f1)
	log "$b: confirmed $(num "$(js "$out.fill.json" confirmed)") publishes at $(num "$(js "$out.fill.json" msgs_per_s)") msg/s; restarting"
	t0=$(now)
	stop_broker "$b"
	stop=$(since "$t0")
	start_broker "$b" again
	ready=n/a
	manyq await >"$out.await.json" 2>"$out.await.err" && ready=$(since "$T_START")
	restart_rss=$(rss_now "$BPID")
	restart_peak=$(hwm "$BPID") # a new process: its peak since it started
	log "$b: every queue reports its backlog after $ready s ($(num "$(js "$out.await.json" total)") messages); draining"
	rss_begin "$BPID"
	manyq drain -prefetch "$K_PREFETCH" >"$out.drain.json" 2>"$out.drain.err" || log "$b: drain failed: $(tail -1 "$out.drain.err")"
	drained=$(rss_now "$BPID")
	drain_peak=$(rss_end)
	log "$b: drained $(num "$(js "$out.drain.json" received)") at $(num "$(js "$out.drain.json" msgs_per_s)") msg/s," \
		"$(js "$out.drain.json" order_violations) order violations; waiting 60 s"
	sleep 60
	later=$(rss_now "$BPID")
	stop_broker "$b"
	[ "$b" = rabbitmq ] && { rm -rf "$RABBIT_DIR"; RABBIT_DIR=; }
	WARREN_ARGS=() LAZY_PATTERN="^$Q\$"

	local nq conf nacked records blocked rate received expected peak limit_cell k
	nq=$(js "$out.declare.json" queues) conf=$(js "$out.fill.json" confirmed) nacked=$(js "$out.fill.json" nacked)
	records=$(awk -v a="$nq" -v b="$conf" 'BEGIN { if (a ~ /^[0-9]+$/ && b ~ /^[0-9]+$/) print a*b; else print 0 }')
	blocked=$(js "$out.fill.json" blocked_seconds)
	rate=$(num "$(js "$out.drain.json" msgs_per_s)")
	received=$(js "$out.drain.json" received) expected=$(js "$out.drain.json" expected)
	[ "$received" = "$expected" ] || rate="$rate (received $(num "$received") of $(num "$expected"))"
	peak=$fill_peak
	for k in "$restart_peak" "$drain_peak"; do [ "${k:-0}" -gt "$peak" ] && peak=$k; done
	if [ "$b" = warren ]; then
		limit_cell=$(awk -v p="$peak" -v l="$(to_bytes "$K_LIMIT")" -v s="$K_LIMIT" 'BEGIN {
			r = p*1024/l; printf "%s; peak %.0f MiB = %.2f × limit: %s", s, p/1024, r, (r <= 1.5 ? "yes" : "**no**") }')
	else
		limit_cell="n/a (peak $(mib "$peak") MiB)"
	fi
	cat >"$WORK/result.$b.k" <<EOT
$(num "$nq") × $(num "$conf") of $(num "$n") × $(num "$m")$([ "$nacked" = 0 ] || echo ", $(num "$nacked") nacked")
$(num "$(js "$out.fill.json" msgs_per_s)")$(case $blocked in 0 | 0.0 | n/a) ;; *) echo " (blocked $blocked s)" ;; esac)
$(num "$(js "$out.fill.json" queue_records_per_s)")
$(mib "$idle")
$(mib "$declared")
$(num "$(ratio_b "$declared" "$idle" "$nq")")
$(mib "$fill_peak")
$(mib "$queued")
$(num "$(ratio_b "$queued" "$declared" "$records")")
$(awk -v k="$disk" 'BEGIN {printf "%.2f", k/1048576}')
$(awk -v k="$disk" -v n="$records" -v s="$K_SIZE" 'BEGIN { if (n > 0) printf "%.0f (body %d)", k*1024/n, s; else printf "n/a" }')
$stop
$ready
$(mib "$restart_rss")
$(mib "$restart_peak")
$rate
$(fairness "$out.drain.json")
$(js "$out.drain.json" order_violations) / $(js "$out.drain.json" redelivered)
$(mib "$drain_peak")
$(mib "$drained") / $(mib "$later")
$limit_cell
EOT
}

# --- report -------------------------------------------------------------------------

LABELS_IJ=("messages confirmed" "fill msg/s (confirmed)" "RSS idle before (MiB)" "peak RSS while filling (MiB)"
	"RSS with the backlog queued (MiB)" "RSS per queued message (B, above idle)" "disk used (GiB)" "disk per message (B)"
	"clean stop (s)" "start until the queue reports the backlog (s)" "start until a consumer has its first message (s)"
	"RSS after the restart (MiB)" "drain msg/s (1 consumer, prefetch 2000)" "peak RSS while draining (MiB)"
	"RSS right after draining (MiB)" "RSS 60 s after draining (MiB)")
LABELS_K=("queues × messages confirmed" "fill msg/s (fanout publishes confirmed)" "queue records/s" "RSS idle (MiB)"
	"RSS after declaring $(num "$K_QUEUES") queues (MiB)" "RSS per queue (B)" "peak RSS while filling (MiB)"
	"RSS with the backlog queued (MiB)" "RSS per queued message (B)" "disk used (GiB)" "disk per message (B)"
	"clean stop (s)" "start until every queue reports its backlog (s)" "RSS after restart (MiB)"
	"peak RSS from start until every queue reports its backlog (MiB)"
	"drain msg/s ($(num "$K_QUEUES") queues, prefetch $K_PREFETCH)"
	"fairness at 10/50/90 % drained (min–max of per-queue share; Jain)" "order violations / redelivered"
	"peak RSS while draining (MiB)" "RSS right after / 60 s after draining (MiB)" "memory limit; peak RSS ≤ 1.5 × limit")

table() { # SCENARIO "BROKERS" LABELS-ARRAY-NAME: the markdown table of $WORK/result.BROKER.SCENARIO
	local -n labels=$3
	local b i head="| |" rule="|---|"
	for b in $2; do
		case $b in
		warren) head="$head Warren $REV |" ;;
		rabbitmq) head="$head RabbitMQ $RABBIT_VERSION, lazy queue$([ "$1" = k ] && echo s) |" ;;
		nats) head="$head NATS $NATS_VERSION JetStream, file stream |" ;;
		esac
		rule="$rule---:|"
	done
	echo "$head"
	echo "$rule"
	for i in "${!labels[@]}"; do
		local line="| ${labels[$i]} |"
		for b in $2; do
			line="$line $(sed -n "$((i + 1))p" "$WORK/result.$b.$1" 2>/dev/null || echo n/a) |"
		done
		echo "$line"
	done
}

declare -A LOAD_BEFORE
load() { cut -d' ' -f1-3 /proc/loadavg; }

report() { # SCENARIO: replace its table in the "Long backlogs" section of $OUT
	local s=$1 brokers=$BROKERS generated
	[ "$s" = k ] && brokers=$K_BROKERS
	generated="on $(date -u '+%Y-%m-%d %H:%M UTC') (load average before: ${LOAD_BEFORE[$s]}; after: $(load); 2 cores shared with the load generator)."
	cat >"$WORK/head.md" <<'EOT'
## Long backlogs

What long backlogs cost, and many queues holding one each. Each table is written by `bench/backlog.sh`
for its scenario alone, with the command and date that made it; running some scenarios replaces
their tables and keeps the others.
EOT
	{
		echo "<!-- backlog-bench-$s:begin (bench/backlog.sh $s writes this table) -->"
		case $s in
		i | j)
			local msgs=$I_MESSAGES size=16 title="16 B"
			[ "$s" = j ] && msgs=$J_MESSAGES size=1024 title="1 KB"
			echo "### ($s) $(num "$msgs") × $title"
			echo
			echo "Generated by \`BENCH_BROKERS=\"$brokers\" BENCH_${s^^}_MESSAGES=$msgs BENCH_PHASE_LIMIT=$LIMIT bench/backlog.sh $s\`"
			echo "$generated"
			echo "One durable queue, persistent messages published by one producer with confirms (window 1000) and no"
			echo "consumer, a clean restart with the backlog queued, then one consumer drains it. NATS: a file stream with"
			echo "work-queue retention, \`nats bench js pub async\` (batch 1000) and \`nats bench js consume\`."
			echo
			table "$s" "$brokers" LABELS_IJ
			echo
			echo "Commands: fill \`warren-perf -x 1 -y 0 -s $size -f persistent -C N -c 1000 -u $Q\`; ready"
			echo "\`warren-perf -u $Q --await-messages N\` and \`-x 0 -y 1 -p -D 1\`; drain \`warren-perf -x 0 -y 1 -q 2000 -A 100 -p -u $Q -D N\`."
			;;
		k)
			echo "### (k) $(num "$K_QUEUES") queues × $(num "$K_MESSAGES") × $K_SIZE B"
			echo
			echo "Generated by \`BENCH_K_BROKERS=\"$brokers\" BENCH_K_QUEUES=$K_QUEUES BENCH_K_MESSAGES=$K_MESSAGES BENCH_K_SIZE=$K_SIZE"
			echo "BENCH_K_LIMIT=$K_LIMIT BENCH_K_PREFETCH=$K_PREFETCH BENCH_K_WINDOW=$K_WINDOW BENCH_PHASE_LIMIT=$LIMIT bench/backlog.sh k\`"
			echo "$generated"
			echo "$(num "$K_QUEUES") durable queues bound to one durable fanout exchange; one producer publishes $(num "$K_MESSAGES")"
			echo "persistent messages to the exchange with confirms ($K_WINDOW publishes in flight), so that every queue holds"
			echo "all of them, with nothing consuming. Warren runs with \`--memory-limit $K_LIMIT\`; RabbitMQ, if run, with a"
			echo "lazy policy on the queues and its default memory watermark. Then a clean restart with the backlog queued,"
			echo "and one consumer per queue (a channel each, prefetch $K_PREFETCH, acknowledging 50 at a time, over"
			echo "$(((K_QUEUES + 1999) / 2000 > 4 ? (K_QUEUES + 1999) / 2000 : 4)) connections) drains every queue at once, checking that each delivers its messages in order."
			echo "RSS per queue is (RSS after declaring − RSS idle) / queues; per queued message, (RSS with the backlog"
			echo "queued − RSS after declaring) / (queues × messages). Fairness: when 10, 50 and 90 % of all the"
			echo "messages have been delivered, each queue's share of its own backlog, lowest–highest (0.100–0.100 at"
			echo "10 % is perfectly even), and Jain's index over the queues' counts, (Σx)² / (n·Σx²), 1 when even;"
			echo "then, in brackets, the same shares of what the broker reports delivered (passive declares on another"
			echo "connection, taken right after, so a little later) and how many queues it had delivered nothing of: those"
			echo "queues' consumers had their whole prefetch free, so their wait is the broker's, not the driver's."
			echo "Peak RSS counts filling, the restart and draining. Deliveries in flight, $(num $((K_QUEUES * K_PREFETCH))) (queues × prefetch), are"
			echo "the consumers' choice and in memory whatever the limit, as in RabbitMQ: ~300 B each."
			echo
			table k "$brokers" LABELS_K
			echo
			echo "Commands: \`bench/manyq declare|fill|await|drain -queues $K_QUEUES -messages $K_MESSAGES -size $K_SIZE\`"
			echo "(fill \`-window $K_WINDOW\`, drain \`-prefetch $K_PREFETCH\`); every body starts with its 8-byte sequence number."
			;;
		esac
		echo "<!-- backlog-bench-$s:end -->"
	} >"$WORK/section.$s.md"
	write_subsection backlog-bench "backlog-bench-$s" "### ($s)" "$WORK/section.$s.md" "$WORK/head.md" "$OUT"
	log "wrote the ($s) table of $OUT"
}

build
for s in $SCENARIOS; do
	LOAD_BEFORE[$s]=$(load)
	case $s in
	i) for b in $BROKERS; do run_one "$b" "$I_MESSAGES" 16 i; done ;;
	j) for b in $BROKERS; do run_one "$b" "$J_MESSAGES" 1024 j; done ;;
	k) for b in $K_BROKERS; do run_k "$b"; done ;;
	*) die "unknown scenario $s (want i, j or k)" ;;
	esac
	report "$s"
done
