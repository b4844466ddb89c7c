#!/usr/bin/env bash
# bench/backlog.sh measures what a long backlog costs: one durable queue is
# filled with persistent messages while nothing consumes, the broker is
# restarted with the backlog queued, then one consumer drains it. It runs
# Warren, RabbitMQ 3.10 (a lazy classic queue: policy queue-mode=lazy on a
# private node) and, if it installs from the Go module proxy, NATS JetStream
# (a file stream with work-queue retention), one broker at a time, and writes
# the "Long backlogs" section of docs/benchmarks.md (between its markers;
# bench/run.sh keeps it, and runs this script for its scenarios i and j).
#
#   bench/backlog.sh                 # i and j on every broker
#   BENCH_BROKERS=warren BENCH_I_MESSAGES=2000000 bench/backlog.sh i
#
# Scenarios:
#   i  BENCH_I_MESSAGES (default 100,000,000) × 16 B
#   j  BENCH_J_MESSAGES (default 10,000,000) × 1 KB
#
# Environment:
#   BENCH_BROKERS      default "warren rabbitmq nats"
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
# draining and 60 s later (memory given back to the OS).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BROKERS=${BENCH_BROKERS:-warren rabbitmq nats}
LIMIT=${BENCH_PHASE_LIMIT:-1800}
OUT=${BENCH_OUT:-$ROOT/docs/benchmarks.md}
I_MESSAGES=${BENCH_I_MESSAGES:-100000000}
J_MESSAGES=${BENCH_J_MESSAGES:-10000000}
SCENARIOS=${*:-i j}
WORK=$(mktemp -d /tmp/warren-backlog-bench.XXXXXX)
BIN=$WORK/bin
BPID= RABBIT_DIR= RABBIT_NODE=warrenbacklog$$@localhost
Q=warren-bench-backlog

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
	REV=$(git -C "$ROOT" rev-parse --short "${BENCH_REF:-HEAD}")
	case " $BROKERS " in *" nats "*)
		if GOBIN=$BIN go install github.com/nats-io/nats-server/v2@v2.15.3 >"$WORK/nats-install.log" 2>&1 &&
			GOBIN=$BIN go install github.com/nats-io/natscli/nats@v0.5.0 >>"$WORK/nats-install.log" 2>&1; then
			NATS_VERSION=$("$BIN/nats-server" --version | awk '{print $NF}')
		else
			log "NATS does not install from the module proxy here; skipping it ($(tail -1 "$WORK/nats-install.log"))"
			BROKERS=${BROKERS//nats/}
		fi
		;;
	esac
	case " $BROKERS " in *" rabbitmq "*)
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
			--data-dir "$DATA" --log-level warn >>"$WORK/warren.log" 2>&1 &
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
			rabbitmqctl -n "$RABBIT_NODE" set_policy lazy "^$Q\$" '{"queue-mode":"lazy"}' --apply-to queues >/dev/null
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

run_one() { # BROKER MESSAGES SIZE: one row of results in $WORK/result.BROKER.SIZE
	local b=$1 n=$2 size=$3 idle disk
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
	cat >"$WORK/result.$b.$size" <<EOF
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

LABELS=("messages confirmed" "fill msg/s (confirmed)" "RSS idle before (MiB)" "peak RSS while filling (MiB)"
	"RSS with the backlog queued (MiB)" "RSS per queued message (B, above idle)" "disk used (GiB)" "disk per message (B)"
	"clean stop (s)" "start until the queue reports the backlog (s)" "start until a consumer has its first message (s)"
	"RSS after the restart (MiB)" "drain msg/s (1 consumer, prefetch 2000)" "peak RSS while draining (MiB)"
	"RSS right after draining (MiB)" "RSS 60 s after draining (MiB)")

table() { # TITLE SIZE
	local b i
	echo
	echo "### $1"
	echo
	local head="| |" rule="|---|"
	for b in $BROKERS; do
		case $b in
		warren) head="$head Warren $REV |" ;;
		rabbitmq) head="$head RabbitMQ $RABBIT_VERSION, lazy queue |" ;;
		nats) head="$head NATS $NATS_VERSION JetStream, file stream |" ;;
		esac
		rule="$rule---:|"
	done
	echo "$head"
	echo "$rule"
	for i in "${!LABELS[@]}"; do
		local line="| ${LABELS[$i]} |"
		for b in $BROKERS; do
			line="$line $(sed -n "$((i + 1))p" "$WORK/result.$b.$2" 2>/dev/null || echo n/a) |"
		done
		echo "$line"
	done
}

report() {
	{
		echo "<!-- backlog-bench:begin (bench/backlog.sh writes this section; bench/run.sh keeps it) -->"
		echo "## Long backlogs"
		echo
		echo "Generated by \`BENCH_I_MESSAGES=$I_MESSAGES BENCH_J_MESSAGES=$J_MESSAGES BENCH_PHASE_LIMIT=$LIMIT bench/backlog.sh $SCENARIOS\`"
		echo "on $(date -u '+%Y-%m-%d %H:%M UTC') (BENCH_BROKERS=\"$BROKERS\")."
		echo "One durable queue, persistent messages published by one producer with confirms (window 1000) and no"
		echo "consumer, a clean restart with the backlog queued, then one consumer drains it. NATS: a file stream with"
		echo "work-queue retention, \`nats bench js pub async\` (batch 1000) and \`nats bench js consume\`. Load average"
		echo "before: $LOAD_START; after: $(cut -d' ' -f1-3 /proc/loadavg) (2 cores shared with the load generator)."
		for s in $SCENARIOS; do
			case $s in
			i) table "(i) $(num "$I_MESSAGES") × 16 B" 16 ;;
			j) table "(j) $(num "$J_MESSAGES") × 1 KB" 1024 ;;
			esac
		done
		echo
		echo "Commands: fill \`warren-perf -x 1 -y 0 -s SIZE -f persistent -C N -c 1000 -u $Q\`; ready"
		echo "\`warren-perf -u $Q --await-messages N\` and \`-x 0 -y 1 -p -D 1\`; drain \`warren-perf -x 0 -y 1 -q 2000 -A 100 -p -u $Q -D N\`."
		echo "<!-- backlog-bench:end -->"
	} >"$WORK/section.md"
	write_section backlog-bench "$WORK/section.md" "$OUT"
	log "wrote the long-backlog section of $OUT"
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
build
for s in $SCENARIOS; do
	for b in $BROKERS; do
		case $s in
		i) run_one "$b" "$I_MESSAGES" 16 ;;
		j) run_one "$b" "$J_MESSAGES" 1024 ;;
		*) die "unknown scenario $s (want i or j)" ;;
		esac
	done
done
report
