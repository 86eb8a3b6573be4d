# Shared by the network-namespace test beds (testbed.sh, natbed.sh):
# source it after setting bed to the bed's name, the prefix of its lines.
# It defines skip, report (which sets failed), now, since and wait_for.

# skip MESSAGE: what the bed needs is missing; a failure under CI=true.
skip() {
	if [ "${CI:-}" = true ]; then
		echo "$bed: FAIL: $*" >&2
		exit 1
	fi
	echo "$bed: SKIP: $*"
	exit 0
}

failed=0
report() { # name status seconds detail
	printf '%s: %-10s %s %6.1fs  %s\n' "$bed" "$1" "$2" "$3" "$4"
	[ "$2" = PASS ] || failed=1
}
now() { date +%s.%N; }
since() { awk "BEGIN{printf \"%.1f\", $(now) - $1}"; }

# wait_for SECONDS CMD...: polls CMD every 0.2 s; fails after SECONDS.
wait_for() {
	local deadline=$(($(date +%s) + $1))
	shift
	until "$@" >/dev/null 2>&1; do
		[ "$(date +%s)" -lt "$deadline" ] || return 1
		sleep 0.2
	done
}
