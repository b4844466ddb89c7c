# Sourced by the interop scripts: run_scenarios runs each named shell function
# in a subshell with set -e (so it stops at its first failing command, which
# the ERR trap names when no clearer reason was printed), logs it to
# $work/NAME.log, prints "ok NAME" or "FAIL NAME: reason", stops starting new
# ones once $SECONDS passes $budget, and fails unless every one passed.
run_scenarios() {
	local s rc why passed=0 failed=0
	for s in "$@"; do
		if ((SECONDS > budget)); then
			failed=$((failed + 1))
			echo "FAIL $s: not run: total time budget of ${budget}s spent"
			continue
		fi
		# A subshell, not an `if` condition, so that set -e stops at the first
		# failing command.
		(
			set -eE
			shopt -s inherit_errexit
			trap 'echo "command failed (status $?): $BASH_COMMAND" >&2' ERR
			"$s"
		) >"$work/$s.log" 2>&1
		rc=$?
		if ((rc == 0)); then
			passed=$((passed + 1))
			echo "ok $s"
		else
			failed=$((failed + 1))
			why=$(grep -v '^command failed' "$work/$s.log" | tail -n 1)
			[[ -n $why ]] || why=$(tail -n 1 "$work/$s.log")
			echo "FAIL $s: ${why:-exit status $rc}"
		fi
	done
	echo "$passed passed, $failed failed"
	((failed == 0))
}
