#!/usr/bin/env bash
# Interop checks of a Kafka listener with Debian's kcat (1.7.1, librdkafka 2.0.2).
#
# Usage: kcat.sh [HOST:PORT]   (default 127.0.0.1:9092)
#
# The expected outcomes are what Apache Kafka does, checked first against
# franz-go's kfake (WARREN_KAFKA_ADDR=kfake go test -run KcatScript ./test/kafka),
# so .ci/run can run the same script against Warren. Topics are created by
# producing to them (automatic topic creation, on by default in Kafka and in
# Warren) with names unique to this run. Every kcat call is bounded by
# `timeout`. Output: "ok NAME" / "FAIL NAME: why" per scenario, then
# "N passed, N failed"; exit status 1 if anything failed.
set -uo pipefail

broker=${1:-127.0.0.1:9092}
limit=20  # seconds any single kcat call may take
budget=150 # seconds after which remaining scenarios are failed unrun
prefix="interop-kcat-$$-$(date +%s)"
kcat_bin=$(command -v kcat || command -v kafkacat || true)

work=$(mktemp -d)
# shellcheck source=scenarios.sh
. "$(dirname "${BASH_SOURCE[0]}")/scenarios.sh"
trap 'rm -rf "$work"' EXIT

# Helpers used inside scenarios (which run with set -e in a subshell).
kc() { timeout "$limit" "$kcat_bin" -b "$broker" -X socket.timeout.ms=10000 "$@"; }
fail() {
	echo "$*" >&2
	return 1
}
expect_eq() { # got want what
	[[ "$1" == "$2" ]] || fail "$3: got '$1', want '$2'"
}
# consume TOPIC ARGS...: every message from the beginning to the end, one
# line each, formatted as key=value;headers.
consume() {
	local topic=$1
	shift
	kc -C -t "$topic" -o beginning -e -q -f '%k=%s;%h\n' "$@"
}
# produce TOPIC LINES ARGS...: LINES (newline-separated) as messages.
produce() {
	local topic=$1 lines=$2
	shift 2
	printf '%s\n' "$lines" | kc -P -t "$topic" "$@"
}

metadata() {
	local topic="$prefix.meta" out
	produce "$topic" one
	out=$(kc -L -J -t "$topic")
	python3 - "$topic" "$out" <<'EOF' || fail "metadata: $out"
import json, sys
topic, md = sys.argv[1], json.loads(sys.argv[2])
assert md["brokers"], "no brokers listed"
ts = [t for t in md["topics"] if t["topic"] == topic]
assert ts and not ts[0].get("error"), "topic missing or in error: %r" % ts
assert len(ts[0]["partitions"]) >= 1, "no partitions"
ids = {b["id"] for b in md["brokers"]}
assert all(p["leader"] in ids for p in ts[0]["partitions"]), "leader not among the brokers"
EOF
}

keys_and_headers() {
	local topic="$prefix.keys"
	produce "$topic" $'customer-1:new-order\ncustomer-2:order-validated\n:no-key' -K: -H event=orders -H source=kcat
	expect_eq "$(consume "$topic")" $'customer-1=new-order;event=orders,source=kcat\ncustomer-2=order-validated;event=orders,source=kcat\n=no-key;event=orders,source=kcat' \
		"keys, values and headers read back"
}

codecs() {
	local z topic want got
	for z in lz4 snappy gzip zstd; do
		topic="$prefix.codec-$z"
		want=$'k1=first '"$z"$' record, first record, first record;\nk2=second '"$z"$' record, second record;\nk3=third;'
		produce "$topic" "k1:first $z record, first record, first record"$'\n'"k2:second $z record, second record"$'\nk3:third' -K: -z "$z" -X linger.ms=20
		got=$(consume "$topic")
		expect_eq "$got" "$want" "-z $z round trip"
	done
}

offsets() {
	local topic="$prefix.offsets" i lines="" pid out
	for ((i = 0; i < 10; i++)); do
		lines+="m$i"$'\n'
	done
	produce "$topic" "${lines%$'\n'}"
	expect_eq "$(kc -C -t "$topic" -o beginning -c 1 -q -f '%o:%s\n')" "0:m0" "-o beginning -c 1"
	expect_eq "$(kc -C -t "$topic" -o -3 -e -q -f '%o:%s\n' | tr '\n' ' ')" "7:m7 8:m8 9:m9 " "-o -3 (last three)"
	expect_eq "$(kc -C -t "$topic" -o 4 -c 2 -q -f '%o:%s\n' | tr '\n' ' ')" "4:m4 5:m5 " "-o 4 -c 2"
	# -o end: only what is produced after the consumer started. It cannot
	# say when it has started, so keep producing until it has read one.
	kc -C -t "$topic" -o end -c 1 -q -f '%o:%s\n' >"$work/end.out" 2>"$work/end.err" &
	pid=$!
	for ((i = 0; i < 40; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		produce "$topic" "late$i"
		sleep 0.25
	done
	wait "$pid" || fail "-o end consumer: $(cat "$work/end.err")"
	out=$(cat "$work/end.out")
	[[ $out =~ ^[0-9]+:late[0-9]+$ ]] || fail "-o end read '$out', want a record produced after it started"
	((${out%%:*} >= 10)) || fail "-o end read offset ${out%%:*}, below the end offset 10 it started at"
}

group() {
	local topic="$prefix.group" group="$prefix.grp" got
	produce "$topic" $'g0\ng1\ng2\ng3\ng4'
	# A balanced consumer (-G) commits what it consumed when it closes.
	got=$(kc -G "$group" -X auto.offset.reset=earliest -c 5 -q -f '%s\n' "$topic" | tr '\n' ' ')
	expect_eq "$got" "g0 g1 g2 g3 g4 " "first group run"
	produce "$topic" $'g5\ng6\ng7'
	got=$(kc -G "$group" -X auto.offset.reset=earliest -c 3 -q -f '%s\n' "$topic" | tr '\n' ' ')
	expect_eq "$got" "g5 g6 g7 " "second run of the group resumes after the committed offset"
	got=$(kc -G "$prefix.grp2" -X auto.offset.reset=earliest -c 8 -q -f '%s\n' "$topic" | tr '\n' ' ')
	expect_eq "$got" "g0 g1 g2 g3 g4 g5 g6 g7 " "another group starts from the beginning"
}

# ---------------------------------------------------------------- runner

if [[ -z $kcat_bin ]]; then
	echo "FAIL kcat: not installed (apt-get install kcat)"
	echo "0 passed, 1 failed"
	exit 1
fi
echo "kcat $("$kcat_bin" -V 2>&1 | grep -m1 -o 'Version [0-9.]*.*librdkafka [0-9.]*' | sed 's/ (.*librdkafka/, librdkafka/' || true), broker $broker"
scenarios=(metadata keys_and_headers codecs offsets group)
run_scenarios "${scenarios[@]}"
