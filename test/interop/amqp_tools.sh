#!/usr/bin/env bash
# Interop checks with Debian's amqp-tools (rabbitmq-c 0.11 command line tools).
#
# Usage: amqp_tools.sh [HOST:PORT]   (default 127.0.0.1:5672; user guest/guest, vhost /)
#
# The expected outcomes are what RabbitMQ 3.x produces, so .ci/run can run the
# same script against Warren. amqp-tools cannot declare exchanges, so fanout and
# direct routing go through the predeclared amq.fanout and amq.direct. Every
# tool call is bounded by `timeout`; queues get names unique to this run and are
# deleted on exit. Output: "ok NAME" / "FAIL NAME: why" per scenario, then
# "N passed, N failed"; exit status 1 if anything failed.
set -uo pipefail

hostport=${1:-127.0.0.1:5672}
host=${hostport%:*}
port=${hostport##*:}
conn=(--server "$host" --port "$port")
limit=10   # seconds any single tool call may take
budget=30  # seconds after which remaining scenarios are failed unrun
prefix="interop-tools-$$-$(date +%s)"

work=$(mktemp -d)
# shellcheck source=scenarios.sh
. "$(dirname "${BASH_SOURCE[0]}")/scenarios.sh"
: >"$work/queues"
cleanup() {
	local q
	while read -r q; do
		timeout 3 amqp-delete-queue "${conn[@]}" -q "$q" >/dev/null 2>&1 || true
	done <"$work/queues"
	rm -rf "$work"
}
trap cleanup EXIT

# Helpers used inside scenarios (which run with set -e in a subshell).
tool() { timeout "$limit" "$1" "${conn[@]}" "${@:2}"; } # tool NAME ARGS...
fail() {
	echo "$*" >&2
	return 1
}
expect_eq() { # got want what
	[[ "$1" == "$2" ]] || fail "$3: got '$1', want '$2'"
}
queue() { # declare a queue named $prefix.$1, remember it for cleanup, print its name
	local name="$prefix.$1" got
	echo "$name" >>"$work/queues"
	got=$(tool amqp-declare-queue -q "$name")
	expect_eq "$got" "$name" "amqp-declare-queue output"
	echo "$name"
}
# consume_to FILE QUEUE COUNT [amqp-consume options...]: append each body plus
# a newline to FILE; amqp-consume pipes each message body into the command.
# An empty QUEUE omits -q, which makes amqp-consume declare a server-named one.
consume_to() {
	local file=$1 n=$3 qopt=()
	if [[ -n $2 ]]; then
		qopt=(-q "$2")
	fi
	shift 3
	# shellcheck disable=SC2016 # $1 is expanded by the inner sh, not here
	tool amqp-consume "${qopt[@]}" -c "$n" "$@" -- sh -c 'cat >>"$1"; echo >>"$1"' sh "$file"
}
# subscribe NAME COUNT amqp-consume-options...: start a background consumer on
# an exclusive server-named queue (amqp-consume -x; it declares and binds the
# queue, then consumes) and return once it is consuming, so that nothing
# published afterwards can miss the binding. It learns the queue name from
# amqp-consume's stderr, sends one "sync" message straight to that queue and
# waits for it to come out; the consumer counts sync within COUNT. Sets
# sub_pid; bodies go to $work/NAME.out, one per line.
subscribe() {
	local name=$1 n=$2 q="" deadline=$((SECONDS + limit))
	shift 2
	consume_to "$work/$name.out" "" "$n" -x "$@" 2>"$work/$name.err" &
	sub_pid=$!
	while [[ -z $q ]]; do
		((SECONDS < deadline)) || fail "$name: no server-named queue reported: $(cat "$work/$name.err")"
		sleep 0.05
		q=$(grep -o 'amq\.gen-[A-Za-z0-9_-]*' "$work/$name.err" || true)
	done
	tool amqp-publish -r "$q" -b sync
	until [[ -s "$work/$name.out" ]]; do
		((SECONDS < deadline)) || fail "$name: sync message not consumed"
		sleep 0.05
	done
}

# ---------------------------------------------------------------- scenarios

declare_and_delete() {
	local q named got
	q=$(queue declare)
	named=$(tool amqp-declare-queue -q "")
	echo "$named" >>"$work/queues"
	[[ $named == amq.gen-* ]] || fail "server-named queue '$named' lacks amq.gen- prefix"
	expect_eq "$(tool amqp-delete-queue -q "$named")" 0 "message count reported deleting empty queue"
	tool amqp-publish -r "$q" -b one
	tool amqp-publish -r "$q" -b two
	if got=$(tool amqp-delete-queue -q "$q" --if-empty 2>&1); then
		fail "--if-empty deleted a queue holding messages"
	fi
	[[ $got == *"406"*"PRECONDITION_FAILED - queue '$q' in vhost '/' not empty"* ]] ||
		fail "--if-empty error: got '$got'"
	expect_eq "$(tool amqp-get -q "$q")" one "amqp-get after refused delete"
	expect_eq "$(tool amqp-delete-queue -q "$q")" 1 "message count reported by amqp-delete-queue"
}

publish_consume_properties() {
	local q n=5 i want=""
	q=$(queue props)
	for ((i = 1; i <= n; i++)); do
		tool amqp-publish -r "$q" -p -C application/json -E utf-8 \
			-H "x-seq: $i" -H "x-origin: amqp-tools" -t "$prefix.reply" -b "{\"n\":$i}"
		want+="{\"n\":$i}"$'\n'
	done
	consume_to "$work/props.out" "$q" "$n" -p 1
	expect_eq "$(cat "$work/props.out")"$'\n' "$want" "consumed bodies in order"
	if tool amqp-get -q "$q" >/dev/null; then
		fail "queue not empty after consuming $n messages"
	else
		expect_eq "$?" 2 "amqp-get exit status on an empty queue"
	fi
}

# amqp-tools cannot show properties, so when pika is installed it reads back
# what amqp-publish sent, checking the header frame survives client to client.
properties_seen_by_pika() {
	local q
	q=$(queue pika)
	tool amqp-publish -r "$q" -p -C text/plain -E utf-8 -H "x-seq: 7" -H "x-origin: amqp-tools" \
		-t "$prefix.reply" -b "seven"
	timeout "$limit" /usr/bin/python3 - "$host" "$port" "$q" <<'EOF'
import sys, pika
host, port, q = sys.argv[1], int(sys.argv[2]), sys.argv[3]
c = pika.BlockingConnection(pika.ConnectionParameters(host, port, socket_timeout=5, stack_timeout=5))
m, p, body = c.channel().basic_get(q, auto_ack=True)
c.close()
got = (body, p.content_type, p.content_encoding, p.delivery_mode, p.reply_to, p.headers)
want = (b"seven", "text/plain", "utf-8", 2, q.rsplit(".", 1)[0] + ".reply",
        {"x-seq": "7", "x-origin": "amqp-tools"})
if got != want:
    sys.exit("properties: got %r, want %r" % (got, want))
EOF
}

line_buffered_get() {
	local q
	q=$(queue lines)
	printf 'alpha\nbeta\ngamma\n' | tool amqp-publish -l -r "$q"
	# -l keeps each line's newline in the body; $(...) strips it again.
	expect_eq "$(tool amqp-get -q "$q")" alpha "1st amqp-get"
	expect_eq "$(tool amqp-get -q "$q")" beta "2nd amqp-get"
	expect_eq "$(tool amqp-get -q "$q")" gamma "3rd amqp-get"
	if tool amqp-get -q "$q" >/dev/null; then
		fail "4th amqp-get found a message"
	else
		expect_eq "$?" 2 "amqp-get exit status on an empty queue"
	fi
}

# Publish/subscribe: two subscribers, each with its own exclusive queue bound
# to amq.fanout, both receive every message in order.
fanout() {
	local want=$'sync\nlog-1\nlog-2\nlog-3\n' i pid1 pid2
	subscribe fan1 4 -e amq.fanout -r unused
	pid1=$sub_pid
	subscribe fan2 4 -e amq.fanout -r unused
	pid2=$sub_pid
	for i in 1 2 3; do
		tool amqp-publish -e amq.fanout -r "any-key-$i" -b "log-$i"
	done
	wait "$pid1" || fail "first subscriber exited with status $?"
	wait "$pid2" || fail "second subscriber exited with status $?"
	expect_eq "$(cat "$work/fan1.out")"$'\n' "$want" "first subscriber"
	expect_eq "$(cat "$work/fan2.out")"$'\n' "$want" "second subscriber"
}

# Routing through amq.direct to a no-ack consumer bound with two keys (-r
# takes a comma-separated list); other keys do not reach it.
direct_routing() {
	local k="$prefix.key" want=$'sync\none\nthree\n'
	subscribe direct 3 -A -e amq.direct -r "$k.one,$k.three"
	tool amqp-publish -e amq.direct -r "$k.one" -b one
	tool amqp-publish -e amq.direct -r "$k.two" -b two
	tool amqp-publish -e amq.direct -r "$k.three" -b three
	wait "$sub_pid" || fail "subscriber exited with status $?"
	expect_eq "$(cat "$work/direct.out")"$'\n' "$want" "bodies received"
}

get_missing_queue() {
	local q="$prefix.missing" got
	if got=$(tool amqp-get -q "$q" 2>&1); then
		fail "amqp-get on a missing queue succeeded"
	fi
	[[ $got == *"404"*"NOT_FOUND - no queue '$q' in vhost '/'"* ]] || fail "error: got '$got'"
}

# ---------------------------------------------------------------- runner

scenarios=(declare_and_delete publish_consume_properties line_buffered_get fanout
	direct_routing get_missing_queue)
if timeout 5 /usr/bin/python3 -c 'import pika' 2>/dev/null; then
	scenarios+=(properties_seen_by_pika)
else
	echo "skip properties_seen_by_pika: /usr/bin/python3 cannot import pika"
fi

run_scenarios "${scenarios[@]}"
