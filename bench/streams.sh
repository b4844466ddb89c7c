#!/usr/bin/env bash
# bench/streams.sh measures Warren's streams over both protocols and writes
# the "Kafka and streams" section of docs/benchmarks.md (between its
# markers; bench/run.sh keeps the section when it rewrites the rest):
#
#   - the disk's own sequential write speed (dd with O_DIRECT), the limit
#     for anything fsynced;
#   - Kafka produce throughput with franz-go, acks=1 and acks=all, 100 B and
#     1 KB records, the latency of one record at a time (acks=1 is answered
#     before the fdatasync, acks=all after it), and Kafka consume throughput
#     of a backlog;
#   - AMQP stream publish (persistent, confirms) and consume throughput;
#   - the broker's memory per Kafka consumer while many read one topic.
#
# Every run starts a fresh Warren; the runs of all scenarios are interleaved
# (each round runs every scenario once) so slow phases of a shared machine
# spread over all of them, and the table shows every round.
#
#   bench/streams.sh
#   BENCH_SECONDS=5 BENCH_ROUNDS=3 bench/streams.sh
#
# Environment:
#   BENCH_SECONDS    run time of each produce/publish scenario, default 10
#   BENCH_ROUNDS     rounds of all scenarios, default 2
#   BENCH_CONSUMERS  consumers of the fetch memory scenario, default 20
#   BENCH_SCENARIOS  a subset of the scenarios (names in SCENARIOS below), for trying one out
#   BENCH_REF        build the broker from this git revision instead of the working tree
#   BENCH_OUT        report path, default docs/benchmarks.md
#   BENCH_KEEP=1     keep the work directory (JSON, logs)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SECS=${BENCH_SECONDS:-10}
ROUNDS=${BENCH_ROUNDS:-2}
CONSUMERS=${BENCH_CONSUMERS:-20}
OUT=${BENCH_OUT:-$ROOT/docs/benchmarks.md}
WORK=$(mktemp -d /tmp/warren-streams-bench.XXXXXX)
BIN=$WORK/bin
WARREN_PID=

# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

log() { echo "[streams-bench $(date +%T)] $*" >&2; }
die() {
	log "error: $*"
	exit 1
}
cleanup() {
	set +e
	[ -n "$WARREN_PID" ] && kill "$WARREN_PID" 2>/dev/null && wait "$WARREN_PID" 2>/dev/null
	if [ "${BENCH_KEEP:-}" = 1 ]; then log "work directory kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

build() {
	local src=$ROOT
	if [ -n "${BENCH_REF:-}" ]; then
		src=$WORK/src
		mkdir -p "$src"
		git -C "$ROOT" archive "$BENCH_REF" | tar -x -C "$src"
	fi
	(cd "$src" && go build -o "$BIN/warren" ./cmd/warren)
	(cd "$ROOT" && go build -o "$BIN/streamperf" ./bench/streamperf)
	"$BIN/warren" --help 2>&1 | grep -q -- '--kafka-addr' || die "this warren has no Kafka listener"
	REV=$(git -C "$ROOT" rev-parse --short "${BENCH_REF:-HEAD}")
}

start_warren() {
	local amqp kafka
	amqp=$(free_port)
	kafka=$(free_port)
	"$BIN/warren" --amqp-addr "127.0.0.1:$amqp" --kafka-addr "127.0.0.1:$kafka" --mgmt-addr "" --prometheus-addr "" \
		--data-dir "$(mktemp -d "$WORK/data.XXXX")" --log-level warn >>"$WORK/warren.log" 2>&1 &
	WARREN_PID=$!
	for _ in $(seq 300); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$kafka") 2>/dev/null; then
			KAFKA=127.0.0.1:$kafka AMQP=amqp://guest:guest@127.0.0.1:$amqp/
			return
		fi
		kill -0 "$WARREN_PID" 2>/dev/null || die "Warren exited; see $WORK/warren.log"
		sleep 0.1
	done
	die "Warren did not start"
}
stop_warren() {
	kill -TERM "$WARREN_PID" 2>/dev/null || true
	wait "$WARREN_PID" 2>/dev/null || true
	WARREN_PID=
}

rss() { awk "/^$2/ {print \$2}" "/proc/$1/status"; } # PID VmRSS|VmHWM, kB

# sp NAME ARGS...: streamperf's JSON summary into $WORK/NAME.json (one line per run).
sp() {
	local name=$1
	shift
	local shown="$*"
	shown=${shown//$KAFKA/\$KAFKA}
	shown=${shown//$AMQP/\$AMQP}
	grep -q "^- $name:" "$WORK/commands" 2>/dev/null || echo "- $name: \`streamperf $shown\`" >>"$WORK/commands"
	log "$name: streamperf $*"
	"$BIN/streamperf" "$@" >>"$WORK/$name.json" 2>>"$WORK/$name.err" || {
		log "$name failed: $(tail -2 "$WORK/$name.err")"
		echo '{}' >>"$WORK/$name.json"
	}
}

scenario() {
	case $1 in
	produce-*)
		local acks=${1#produce-acks}
		acks=${acks%%-*}
		local size=${1##*-}
		sp "$1" -mode kafka-produce -kafka "$KAFKA" -topic p -acks "$acks" -size "$size" -duration "${SECS}s"
		;;
	serial-*)
		local acks=${1#serial-acks}
		acks=${acks%%-*}
		sp "$1" -mode kafka-produce -kafka "$KAFKA" -topic p -acks "$acks" -size 100 -serial -duration "${SECS}s"
		;;
	consume-1024)
		"$BIN/streamperf" -mode kafka-produce -kafka "$KAFKA" -topic c -acks 1 -size 1024 -duration "${SECS}s" >/dev/null
		sp "$1" -mode kafka-consume -kafka "$KAFKA" -topic c
		;;
	amqp-publish-1024) sp "$1" -mode amqp-publish -amqp "$AMQP" -queue s -size 1024 -duration "${SECS}s" ;;
	amqp-consume-1024)
		local n
		n=$("$BIN/streamperf" -mode amqp-publish -amqp "$AMQP" -queue s -size 1024 -duration "${SECS}s" |
			python3 -c 'import json,sys; print(json.load(sys.stdin)["records"])')
		sp "$1" -mode amqp-consume -amqp "$AMQP" -queue s -count "$n"
		;;
	fetch-memory)
		"$BIN/streamperf" -mode kafka-produce -kafka "$KAFKA" -topic f -acks 1 -size 1024 -duration 5s >/dev/null
		sleep 2 # let the heap settle before the baseline
		local before peak
		before=$(rss "$WARREN_PID" VmRSS)
		echo 5 >"/proc/$WARREN_PID/clear_refs" 2>/dev/null || true
		sp "$1" -mode kafka-fetchers -kafka "$KAFKA" -topic f -consumers "$CONSUMERS"
		peak=$(rss "$WARREN_PID" VmHWM)
		echo "$before $peak" >>"$WORK/$1.rss"
		;;
	esac
}

SCENARIOS=${BENCH_SCENARIOS:-"produce-acks1-100 produce-acksall-100 produce-acks1-1024 produce-acksall-1024 serial-acks1-100 serial-acksall-100 consume-1024 amqp-publish-1024 amqp-consume-1024 fetch-memory"}

# field NAME KEY: the values of KEY over the rounds, space-separated.
field() {
	python3 - "$WORK/$1.json" "$2" <<'PY'
import json, sys
out = []
try:
    lines = open(sys.argv[1]).readlines()
except FileNotFoundError:
    lines = ["{}"]
for l in lines:
    v = json.loads(l).get(sys.argv[2])
    out.append("n/a" if v is None else "{:,.0f}".format(v) if v >= 100 else "{:.1f}".format(v) if v >= 1 else "{:.2f}".format(v))
print(" / ".join(out))
PY
}

report() {
	local s dd_out load_end
	load_end=$(cut -d' ' -f1-3 /proc/loadavg)
	{
		echo "<!-- streams-bench:begin (bench/streams.sh writes this section; bench/run.sh keeps it) -->"
		echo "## Kafka and streams"
		echo
		echo "Generated by \`bench/streams.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC') against Warren $REV, rounds: $ROUNDS"
		echo "(every scenario once per round, a fresh broker each run; each cell lists the rounds in order)."
		echo "One topic / stream of one partition, records of random letters, no compression, franz-go $(cd "$ROOT" && go list -m -f '{{.Version}}' github.com/twmb/franz-go)"
		echo "as the Kafka client. Load average before: $LOAD_START; after: $load_end (2 cores shared with the load generator)."
		echo
		echo "The limit: this disk's sequential write speed, \`dd if=/dev/zero of=FILE bs=1M count=1024 oflag=direct\`: **$DD**."
		echo
		echo "| Scenario | records/s | MiB/s | latency p50 (ms) | latency p99 (ms) |"
		echo "|---|---:|---:|---:|---:|"
		local acks size
		for s in produce-acks1-100 produce-acksall-100 produce-acks1-1024 produce-acksall-1024; do
			acks=${s#produce-acks} acks=${acks%-*} size=${s##*-}
			echo "| Kafka produce, acks=$acks, $size B records | $(field "$s" records_per_s) | $(field "$s" mib_per_s) | $(field "$s" latency_p50_ms) | $(field "$s" latency_p99_ms) |"
		done
		for s in serial-acks1-100 serial-acksall-100; do
			acks=${s#serial-acks} acks=${acks%-*}
			echo "| Kafka produce one record at a time, acks=$acks, 100 B | $(field "$s" records_per_s) | $(field "$s" mib_per_s) | $(field "$s" latency_p50_ms) | $(field "$s" latency_p99_ms) |"
		done
		echo "| Kafka consume of a 1 KB backlog (from offset 0) | $(field consume-1024 records_per_s) | $(field consume-1024 mib_per_s) | | |"
		echo "| AMQP stream publish 1 KB, persistent, confirms (window 1000) | $(field amqp-publish-1024 records_per_s) | $(field amqp-publish-1024 mib_per_s) | $(field amqp-publish-1024 latency_p50_ms) | $(field amqp-publish-1024 latency_p99_ms) |"
		echo "| AMQP stream consume 1 KB from \`x-stream-offset: first\` (prefetch 2000) | $(field amqp-consume-1024 records_per_s) | $(field amqp-consume-1024 mib_per_s) | | |"
		echo
		echo "Latency is produce/publish to acknowledgement (acks / confirm), sampled every 64th record; producers are"
		echo "unthrottled (franz-go buffers up to 10,000 records, AMQP keeps 1,000 unconfirmed), so it includes queueing,"
		echo "except in the one-record-at-a-time rows (\`-serial\`: each record is sent once the last is acknowledged, every one timed)."
		echo "acks=all and AMQP confirms come after the fdatasync of Warren's group commit (one replica: the in-sync replicas are"
		echo "the leader); acks=1 as soon as the batch is written to the segment file, before that sync, as Kafka's leader answers"
		echo "from its page cache: it survives kill -9 of the broker but not a machine crash, and consumers still see records only"
		echo "after the sync. The unthrottled producers are bound by the client's CPU on this machine more than by the acks."
		echo
		echo "Fetch memory: $CONSUMERS Kafka consumers reading a ~5 s backlog of 1 KB records at once from offset 0:"
		echo
		echo "| round | broker RSS before (MiB) | peak RSS while they read (MiB) | per consumer (KiB) | records/s, all consumers |"
		echo "|---:|---:|---:|---:|---:|"
		local i=0 before peak
		while read -r before peak; do
			i=$((i + 1))
			echo "| $i | $((before / 1024)) | $((peak / 1024)) | $(((peak - before) / CONSUMERS)) | $(sed -n "${i}p" "$WORK/fetch-memory.json" | python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); print("{:,.0f}".format(d.get("records_per_s", 0)))') |"
		done < <(cat "$WORK/fetch-memory.rss" 2>/dev/null)
		echo
		echo "Commands (KAFKA and AMQP are the fresh broker's addresses; the consume scenarios first fill the topic or stream"
		echo "with the produce/publish command of the same size, acks=1, for ${SECS} s):"
		echo
		cat "$WORK/commands"
		echo "<!-- streams-bench:end -->"
	} >"$WORK/section.md"
	write_section streams-bench "$WORK/section.md" "$OUT"
	log "wrote the Kafka and streams section of $OUT"
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
build
log "disk: dd 1 GiB with oflag=direct in $WORK"
DD=$(dd if=/dev/zero of="$WORK/dd.bin" bs=1M count=1024 oflag=direct 2>&1 | awk -F', ' '/copied/ {print $NF}')
rm -f "$WORK/dd.bin"
: >"$WORK/commands"
for round in $(seq "$ROUNDS"); do
	for s in $SCENARIOS; do
		log "round $round: $s"
		start_warren
		scenario "$s"
		stop_warren
	done
done
report
