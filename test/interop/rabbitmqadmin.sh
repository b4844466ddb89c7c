#!/usr/bin/env bash
# Interop checks with the real rabbitmqadmin (RabbitMQ's management CLI,
# python3, from Debian's rabbitmq-server package) against a management API.
#
# Usage: rabbitmqadmin.sh MGMT_HOST:PORT AMQP_HOST:PORT   (user guest/guest, vhost /)
#
# The expected outcomes are what RabbitMQ 3.10 gives, so the script runs
# against RabbitMQ too (rabbitmqadmin.sh 127.0.0.1:15672 127.0.0.1:5672).
# When rabbitmqadmin is not installed it is taken out of the rabbitmq-server
# package without installing that (apt-get download; no server is started);
# if that fails too the checks are skipped with a message. Objects get names
# unique to this run and are deleted on exit. Output: "ok NAME" / "FAIL NAME:
# why" per check, then "N passed, N failed"; exit status 1 if anything failed.
set -uo pipefail

mgmt=${1:?usage: rabbitmqadmin.sh MGMT_HOST:PORT AMQP_HOST:PORT}
amqp=${2:?usage: rabbitmqadmin.sh MGMT_HOST:PORT AMQP_HOST:PORT}
prefix="interop-admin-$$-$(date +%s)"
work=$(mktemp -d)
holder_pid=""
cleanup() {
	[[ -n $holder_pid ]] && kill "$holder_pid" 2>/dev/null
	admin delete queue name="$prefix q" >/dev/null 2>&1
	admin delete exchange name="$prefix-x" >/dev/null 2>&1
	rm -rf "$work"
}
trap cleanup EXIT

bin=$(command -v rabbitmqadmin || true)
if [[ -z $bin ]]; then
	if (cd "$work" && timeout 120 apt-get download rabbitmq-server >/dev/null 2>&1) &&
		dpkg-deb -x "$work"/rabbitmq-server_*.deb "$work/pkg" && [[ -f $work/pkg/usr/bin/rabbitmqadmin ]]; then
		bin="$work/pkg/usr/bin/rabbitmqadmin"
	else
		echo "skipped: rabbitmqadmin is not installed and the rabbitmq-server package could not be downloaded"
		exit 0
	fi
fi

admin() { timeout 20 /usr/bin/python3 "$bin" -H "${mgmt%:*}" -P "${mgmt##*:}" -u guest -p guest "$@"; }

passed=0 failed=0
ok() { echo "ok $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1: $2"; failed=$((failed + 1)); }

# check NAME EXPECTED-SUBSTRING CMD...: the command succeeds and prints the substring.
check() {
	local name=$1 expect=$2 out rc=0
	shift 2
	out=$("$@" 2>&1) || rc=$?
	if ((rc != 0)); then
		fail "$name" "exit status $rc: $out"
	elif [[ $out != *"$expect"* ]]; then
		fail "$name" "output lacks '$expect': $out"
	else
		ok "$name"
	fi
}

# eventually NAME EXPECTED-SUBSTRING CMD...: as check, retried for up to
# ~12 s, since RabbitMQ's management statistics lag by up to 5 s.
eventually() {
	local name=$1 expect=$2 out i
	shift 2
	for ((i = 0; i < 60; i++)); do
		out=$("$@" 2>&1) && [[ $out == *"$expect"* ]] && break
		sleep 0.2
	done
	check "$name" "$expect" printf '%s' "$out"
}

check "declare queue" "queue declared" admin declare queue name="$prefix q" durable=false
check "declare exchange" "exchange declared" admin declare exchange name="$prefix-x" type=topic durable=false
check "declare binding" "binding declared" admin declare binding source="$prefix-x" destination="$prefix q" routing_key="a.*"
check "publish" "Message published" admin publish exchange="$prefix-x" routing_key=a.b payload="hello admin"
check "publish unroutable" "NOT routed" admin publish exchange="$prefix-x" routing_key=zz payload=x
eventually "list queues" "$prefix q	1" admin -f tsv -q list queues name messages
check "list exchanges" "$prefix-x	topic" admin -f tsv -q list exchanges name type
check "list bindings" "$prefix-x	$prefix q	a.*" admin -f tsv -q list bindings source destination routing_key
check "list users" "guest" admin -f tsv -q list users name
check "list vhosts" "/" admin -f tsv -q list vhosts name
check "list nodes" "disc" admin -f tsv -q list nodes name type
check "show overview" "queue_totals" admin -f raw_json show overview
check "get (requeue)" "hello admin" admin get queue="$prefix q" ackmode=ack_requeue_true
check "get again" "True" admin -f tsv -q get queue="$prefix q" ackmode=ack_requeue_true
check "purge" "queue purged" admin purge queue name="$prefix q"
eventually "list queues after purge" "$prefix q	0" admin -f tsv -q list queues name messages

# A connection to close: a pika client that prints how it was closed.
/usr/bin/python3 - "$amqp" "$prefix" >"$work/holder.out" 2>&1 <<'PY' &
import sys, pika
host, port = sys.argv[1].rsplit(":", 1)
params = pika.ConnectionParameters(host=host, port=int(port), client_properties={"connection_name": sys.argv[2] + "-conn"})
c = pika.BlockingConnection(params)
c.channel()
try:
    c.process_data_events(time_limit=30)
    print("not closed")
except pika.exceptions.ConnectionClosedByBroker as e:
    print("closed", e.reply_code, e.reply_text)
PY
holder_pid=$!
conn_name=""
for ((i = 0; i < 100; i++)); do # up to ~10 s for it to show
	conn_name=$(admin -f tsv -q list connections name user_provided_name 2>/dev/null | awk -F'\t' -v n="$prefix-conn" '$2 == n {print $1}')
	[[ -n $conn_name ]] && break
	sleep 0.1
done
if [[ -z $conn_name ]]; then
	fail "list connections" "connection $prefix-conn not listed"
else
	ok "list connections"
	eventually "list channels" "$conn_name (1)" admin -f tsv -q list channels name
	check "close connection" "connection closed" admin close connection name="$conn_name"
	wait "$holder_pid"
	holder_pid=""
	if grep -q "closed 320" "$work/holder.out"; then ok "client sees 320"; else fail "client sees 320" "$(cat "$work/holder.out")"; fi
fi

check "export" "Exported definitions" admin export "$work/defs.json"
check "delete queue" "queue deleted" admin delete queue name="$prefix q"
check "import" "Uploaded definitions" admin import "$work/defs.json"
check "queue back after import" "$prefix q" admin -f tsv -q list queues name
check "binding back after import" "$prefix-x	$prefix q	a.*" admin -f tsv -q list bindings source destination routing_key
check "delete exchange" "exchange deleted" admin delete exchange name="$prefix-x"
check "delete queue again" "queue deleted" admin delete queue name="$prefix q"

echo "$passed passed, $failed failed"
((failed == 0))
