#!/usr/bin/env bash
# Smoke run of the built warrenctl binary against a broker's management API,
# as an operator would use it: health checks, a vhost, a user with tags and
# permissions, a policy, a queue made from imported definitions, listings,
# purge, delete, export, clean-up, and rabbitmqctl's exit codes for the
# usual mistakes.
#
# Usage: test/interop/warrenctl.sh WARRENCTL_BINARY MGMT_URL
#   MGMT_URL like http://guest:guest@127.0.0.1:15672 (Warren or RabbitMQ)
set -euo pipefail

ctl_bin=$1
export WARRENCTL_URL=$2
tmp=$(mktemp -d)
suffix=$$-$RANDOM
vhost=ctl-smoke-$suffix
user=ctl-smoke-$suffix
trap 'rm -rf "$tmp"; "$ctl_bin" -q delete_vhost "$vhost" >/dev/null 2>&1 || true; "$ctl_bin" -q delete_user "$user" >/dev/null 2>&1 || true' EXIT

ctl() {
	echo "+ warrenctl $*" >&2
	"$ctl_bin" "$@"
}

# expect_line LINE CMD...: CMD succeeds and prints LINE as one of its lines.
expect_line() {
	local line=$1 out
	shift
	out=$(ctl "$@")
	if ! grep -qxF -- "$line" <<<"$out"; then
		printf 'FAIL: warrenctl %s did not print the line %q; it printed:\n%s\n' "$*" "$line" "$out"
		exit 1
	fi
}

# expect_exit CODE CMD...: CMD exits with CODE.
expect_exit() {
	local want=$1 rc=0
	shift
	ctl "$@" >/dev/null 2>"$tmp/err" || rc=$?
	if ((rc != want)); then
		echo "FAIL: warrenctl $* exited $rc, want $want; stderr:"
		cat "$tmp/err"
		exit 1
	fi
}

# eventually LINE CMD...: like expect_line, polled for up to 30 s, for
# statistics the broker samples (message counts).
eventually() {
	local i
	for ((i = 0; i < 300; i++)); do
		if "$ctl_bin" "${@:2}" 2>/dev/null | grep -qxF -- "$1"; then
			return
		fi
		sleep 0.1
	done
	expect_line "$@"
}

ctl -q await_startup -t 30 # the API listener opens just after the AMQP one
ctl ping
ctl check_running
ctl check_local_alarms
ctl check_virtual_hosts
ctl check_port_connectivity
ctl status >"$tmp/status"
grep -q '^Node name: ' "$tmp/status" || { echo "FAIL: status has no node name"; cat "$tmp/status"; exit 1; }

ctl add_vhost "$vhost" --description "warrenctl smoke"
expect_line "$vhost" -q list_vhosts
ctl add_user "$user" secret
ctl set_user_tags "$user" monitoring
expect_line "$user	[monitoring]" -s list_users
ctl set_permissions -p "$vhost" "$user" '.*' '.*' '.*'
expect_line "$user	.*	.*	.*" -s list_permissions -p "$vhost"
ctl set_policy -p "$vhost" --priority 1 --apply-to queues smoke '^smoke-' '{"max-length":5}'
expect_line "$vhost	smoke	^smoke-	queues	{\"max-length\":5}	1" -s list_policies -p "$vhost"

cat >"$tmp/defs.json" <<EOF
{"queues":[{"name":"smoke-q","vhost":"$vhost","durable":true,"auto_delete":false,"arguments":{}}],
 "bindings":[{"source":"amq.topic","vhost":"$vhost","destination":"smoke-q","destination_type":"queue","routing_key":"smoke.#","arguments":{}}]}
EOF
ctl import_definitions "$tmp/defs.json"
eventually "smoke-q	0	0" -s list_queues -p "$vhost" name messages_ready messages_unacknowledged
expect_line "smoke-q	smoke	true" -s list_queues -p "$vhost" name policy durable
expect_line "amq.topic	exchange	smoke-q	queue	smoke.#	[]" -s list_bindings -p "$vhost"
expect_line "amq.topic	topic" -s list_exchanges -p "$vhost"
ctl list_connections >/dev/null
ctl list_channels >/dev/null
ctl list_consumers -p "$vhost" >/dev/null
ctl list_queues -p "$vhost" --formatter json | grep -q '"name":"smoke-q"'
ctl purge_queue -p "$vhost" smoke-q
ctl export_definitions "$tmp/export.json"
grep -q "\"$vhost\"" "$tmp/export.json" || { echo "FAIL: export lacks $vhost"; exit 1; }
ctl delete_queue -p "$vhost" smoke-q
expect_exit 69 delete_queue -p "$vhost" smoke-q
ctl clear_policy -p "$vhost" smoke
ctl clear_permissions -p "$vhost" "$user"
ctl delete_user "$user"
expect_exit 67 delete_user "$user"
ctl delete_vhost "$vhost"
expect_exit 65 delete_vhost "$vhost"
expect_exit 64 list_queues no_such_column
expect_exit 70 --password wrong list_users
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
expect_exit 69 --url "http://guest:guest@127.0.0.1:$port" ping
echo "warrenctl smoke: all checks passed"
