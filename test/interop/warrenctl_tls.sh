#!/usr/bin/env bash
# warrenctl over HTTPS: with the CA that signed the server's certificate it
# works, from flags and from the environment; without it the certificate is
# refused (exit 69), and --insecure skips the check.
#
# Usage: test/interop/warrenctl_tls.sh WARRENCTL_BINARY HOST PORT CA_FILE
set -euo pipefail

ctl=$1 host=$2 port=$3 ca=$4
unset WARRENCTL_URL

run() {
	echo "+ warrenctl $*" >&2
	"$ctl" "$@"
}

run --host "$host" --port "$port" --ssl --cacert "$ca" ping
WARRENCTL_HOST=$host WARRENCTL_PORT=$port WARRENCTL_SSL=true WARRENCTL_CACERT=$ca run -q list_vhosts | grep -qx /
run --url "https://guest:guest@$host:$port" --cacert "$ca" check_running
run --host "$host" --port "$port" --ssl --insecure -q list_users | grep -q '^guest'

rc=0
run --host "$host" --port "$port" --ssl ping >/dev/null 2>"${TMPDIR:-/tmp}/warrenctl_tls.$$" || rc=$?
err=$(cat "${TMPDIR:-/tmp}/warrenctl_tls.$$")
rm -f "${TMPDIR:-/tmp}/warrenctl_tls.$$"
if ((rc != 69)) || ! grep -q certificate <<<"$err"; then
	echo "FAIL: an unknown CA must be refused with exit 69 and a certificate error; got $rc: $err"
	exit 1
fi
echo "warrenctl over HTTPS: all checks passed"
