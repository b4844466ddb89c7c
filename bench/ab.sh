#!/usr/bin/env bash
# bench/ab.sh compares two Warren revisions on bench/run.sh's fast-path
# scenarios (a)-(f), interleaved — A, B, A, B, ... — so that a machine whose
# load drifts during the run affects both alike. It prints, per scenario, the
# median and range of each revision's rate and B's median as a share of A's.
# It answers "did B make the fast path slower?" (issue #11: bench/run.sh
# (a)-(h) within noise); bench/run.sh is the comparison with RabbitMQ.
#
#   bench/ab.sh 66356a8 HEAD                 # 3 rounds of 5 s runs
#   BENCH_ROUNDS=5 BENCH_SECONDS=10 bench/ab.sh 66356a8 main
#
# Environment:
#   BENCH_ROUNDS   rounds (each runs every scenario on A, then on B), default 3
#   BENCH_SECONDS  run time of the timed scenarios (a-e), default 5
#   BENCH_BACKLOG  messages of scenario f (1 KB, published then drained), default 1000000
#   BENCH_KEEP=1   keep the work directory (JSON, logs)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
[ $# -eq 2 ] || {
	echo "usage: bench/ab.sh REV_A REV_B" >&2
	exit 2
}
ROUNDS=${BENCH_ROUNDS:-3}
SECS=${BENCH_SECONDS:-5}
BACKLOG=${BENCH_BACKLOG:-1000000}
WORK=$(mktemp -d /tmp/warren-ab.XXXXXX)
PID=

# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

log() { echo "[ab $(date +%T)] $*" >&2; }
cleanup() {
	set +e
	[ -n "$PID" ] && kill -9 "$PID" 2>/dev/null
	if [ "${BENCH_KEEP:-}" = 1 ]; then log "work directory kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

build_rev() { # NAME REV
	mkdir -p "$WORK/src-$1"
	git -C "$ROOT" archive "$2" | tar -x -C "$WORK/src-$1"
	(cd "$WORK/src-$1" && go build -o "$WORK/warren-$1" ./cmd/warren)
	log "$1 = $(git -C "$ROOT" rev-parse --short "$2") ($2)"
}
build_rev A "$1"
build_rev B "$2"
(cd "$ROOT" && go build -o "$WORK/warren-perf" ./cmd/warren-perf)

# Scenario name, the summary field that is its rate, and warren-perf's arguments.
SCENARIOS=(
	"a16|receive_rate|-x 1 -y 1 -s 16 -u ab-a16 --auto-delete -z $SECS"
	"a1k|receive_rate|-x 1 -y 1 -s 1024 -u ab-a1k --auto-delete -z $SECS"
	"b|receive_rate|-x 1 -y 1 -s 1024 -f persistent -c 500 -u ab-b --auto-delete -z $SECS"
	"c|receive_rate|-x 4 -y 4 --queues 4 -s 1024 -f persistent -c 500 -u ab-c --auto-delete -z $SECS"
	"d|receive_rate|-t fanout -e ab-fanout -x 1 -y 10 -s 1024 --cleanup -z $SECS"
	"e-p99us|consumer_latency_us.p99|-x 1 -y 1 -s 16 -r 1000 -u ab-e --auto-delete -z $SECS"
	"f-publish|send_rate|-x 1 -y 0 -s 1024 -C $BACKLOG -c 1000 -u ab-f -z 300"
	"f-drain|receive_rate|-x 0 -y 1 -p -u ab-f -D $BACKLOG -z 300 --cleanup"
)

# Every scenario on a fresh broker; f-publish and f-drain share one.
run_round() { # NAME ROUND
	local name=$1 r=$2 entry s key args port data out
	for entry in "${SCENARIOS[@]}"; do
		IFS='|' read -r s key args <<<"$entry"
		if [ "$s" != f-drain ]; then
			[ -n "$PID" ] && kill "$PID" && wait "$PID" 2>/dev/null || true
			port=$(free_port)
			data=$(mktemp -d "$WORK/data.XXXX")
			"$WORK/warren-$name" --amqp-addr "127.0.0.1:$port" --mgmt-addr "" --prometheus-addr "" --kafka-addr "" \
				--data-dir "$data" --log-level warn >>"$WORK/warren-$name.log" 2>&1 &
			PID=$!
			for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break || sleep 0.1; done
		fi
		out=$WORK/$s.$name.$r.json
		# shellcheck disable=SC2086
		"$WORK/warren-perf" -h "amqp://guest:guest@127.0.0.1:$port/" --json $args >"$out" 2>"$out.err" || log "warren-perf failed: $s on $name"
		echo "$s $name $(js "$out" "summary.$key")" >>"$WORK/results"
		if [ "$s" = f-drain ]; then
			kill "$PID" && wait "$PID" 2>/dev/null || true
			PID=
			rm -rf "$data"
		fi
	done
	[ -n "$PID" ] && kill "$PID" && wait "$PID" 2>/dev/null || true
	PID=
	rm -rf "$WORK"/data.*
}

log "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq "$ROUNDS"); do
	for name in A B; do
		log "round $r/$ROUNDS on $name"
		run_round $name "$r"
	done
done
log "load after: $(cut -d' ' -f1-3 /proc/loadavg)"

python3 - "$WORK/results" <<'EOF'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    s, name, v = line.split()
    try:
        rows.setdefault(s, {}).setdefault(name, []).append(float(v))
    except ValueError:
        pass
print("| scenario | A median (min-max) | B median (min-max) | B/A |")
print("|---|---:|---:|---:|")
for s, d in rows.items():
    a, b = d.get("A", []), d.get("B", [])
    fmt = lambda xs: "%s (%s-%s)" % tuple(f"{x:,.0f}" for x in (statistics.median(xs), min(xs), max(xs))) if xs else "n/a"
    ratio = f"{statistics.median(b) / statistics.median(a):.2f}" if a and b and statistics.median(a) else "n/a"
    print(f"| {s} | {fmt(a)} | {fmt(b)} | {ratio} |")
EOF
