#!/usr/bin/env bash
# Checks edged's footprint budget (issue 9, docs/BENCHMARKS.md):
#
#   scripts/footprint.sh              binary sizes, idle RSS and CPU
#   scripts/footprint.sh load         RSS with 1,000 readings/s ingested and 3 peers
#   scripts/footprint.sh coldstart    start to ready with 1,000,000 keys in the store
#   scripts/footprint.sh all          the three (make test runs it)
#
# Binaries come from make cross (bin/edged-linux-*) and make build (bin/edged).
# It exits 1 when a measure is over its budget.
set -euo pipefail

mode=${1:-idle}
if [ "$mode" = all ]; then
	for m in idle load coldstart; do "$0" "$m"; done
	exit 0
fi
max_size=$((40 << 20))  # stripped arm64 and armv6 binaries
max_idle_rss=$((48 << 20))
# Idle CPU on the CI VM varies 0.4-1.1% between runs of one build: the
# wakeups are as many, each costs more when the host is busy. So the CPU
# budget leaves room for that, and the wakeups (context switches of all
# threads, which this build controls) have a budget of their own.
max_idle_cpu_pct=2
max_idle_switches=300 # per second
max_load_rss=$((96 << 20))
max_coldstart_ms=3000
window=${FOOTPRINT_WINDOW:-60} # seconds of idle CPU measured: an idle node's work comes in bursts

dir=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
	rm -rf "$dir"
}
trap cleanup EXIT
fail() { echo "footprint: FAIL: $*" >&2; exit 1; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
rss() { awk '/^VmRSS:/ { print $2 * 1024 }' "/proc/$1/status"; }
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
switches() { cat "/proc/$1"/task/*/status | awk '/ctxt_switches/ { s += $2 } END { print s }'; }

# start NAME ARGS...: runs bin/edged run with its own data dir and free
# ports, and sets $pid and $addr (the HTTP host:port) once it has started.
start() {
	local name=$1; shift
	EDGED_MQTT_MODE=off bin/edged run --data-dir "$dir/$name" --http-addr 127.0.0.1:0 "$@" >"$dir/$name.log" 2>&1 &
	pid=$!
	pids+=("$pid")
	for _ in $(seq 600); do
		grep -q 'msg="node started"' "$dir/$name.log" && break
		kill -0 "$pid" 2>/dev/null || fail "$name exited: $(tail -3 "$dir/$name.log")"
		sleep 0.05
	done
	addr=$(grep 'msg="node started"' "$dir/$name.log" | grep -o ' addr=[0-9.:]*' | head -1 | cut -d= -f2)
	[ -n "$addr" ] || fail "$name did not start"
}

case $mode in
idle)
	for arch in arm64 armv6; do
		[ -f "bin/edged-linux-$arch" ] || fail "bin/edged-linux-$arch is missing (make cross)"
		size=$(stat -c %s "bin/edged-linux-$arch")
		echo "footprint: binary $arch: $(mib "$size") (budget $(mib $max_size))"
		[ "$size" -le "$max_size" ] || fail "the $arch binary is over budget"
	done
	start idle
	sleep 10 # settling: start-up work (Badger's first compactions, the first GC, the first mDNS browse) is not idle
	a=$(ticks "$pid") sa=$(switches "$pid")
	t0=$(date +%s.%N)
	sleep "$window" # the measurement window, not a synchronisation
	b=$(ticks "$pid") sb=$(switches "$pid")
	t1=$(date +%s.%N)
	r=$(rss "$pid")
	cpu=$(awk -v t="$((b - a))" -v hz="$(getconf CLK_TCK)" -v s0="$t0" -v s1="$t1" 'BEGIN { printf "%.2f", 100 * t / hz / (s1 - s0) }')
	sw=$(awk -v n="$((sb - sa))" -v s0="$t0" -v s1="$t1" 'BEGIN { printf "%.0f", n / (s1 - s0) }')
	echo "footprint: idle node: RSS $(mib "$r") (budget $(mib $max_idle_rss)), CPU $cpu% of a core (budget $max_idle_cpu_pct%), $sw context switches/s (budget $max_idle_switches) over ${window}s"
	[ "$r" -le "$max_idle_rss" ] || fail "idle RSS over budget"
	awk -v c="$cpu" -v m="$max_idle_cpu_pct" 'BEGIN { exit !(c <= m) }' || fail "idle CPU over budget"
	[ "$sw" -le "$max_idle_switches" ] || fail "idle wakeups over budget"
	;;
load)
	start n1 --p2p-addr /ip4/127.0.0.1/tcp/0 --mdns=false
	n1=$pid n1addr=$addr
	peer=$(grep 'msg="node started"' "$dir/n1.log" | grep -o '/ip4/127.0.0.1/tcp/[0-9]*/p2p/[A-Za-z0-9]*' | head -1)
	[ -n "$peer" ] || fail "n1 logged no p2p address"
	for n in n2 n3 n4; do start "$n" --p2p-addr /ip4/127.0.0.1/tcp/0 --mdns=false --peer "$peer"; done
	# 1,000 readings/s: a request of 100 every 100 ms, for 60 s.
	body=$(awk 'BEGIN { printf "{\"readings\":["; for (i = 0; i < 100; i++) printf "%s{\"sensor\":\"s%d\",\"value\":%d.5}", (i ? "," : ""), i % 10, i; printf "]}" }')
	peak=0
	end=$((SECONDS + 60))
	while [ $SECONDS -lt $end ]; do
		posts=()
		for _ in $(seq 10); do
			curl -fsS -o /dev/null -H 'Content-Type: application/json' -d "$body" "http://$n1addr/v1/readings" &
			posts+=($!)
			sleep 0.1 # the load's schedule
		done
		wait "${posts[@]}" || fail "a readings post failed"
		r=$(rss "$n1"); [ "$r" -gt "$peak" ] && peak=$r
	done
	echo "footprint: node with 1,000 readings/s and 3 peers: peak RSS $(mib "$peak") (budget $(mib $max_load_rss))"
	[ "$peak" -le "$max_load_rss" ] || fail "RSS under load over budget"
	;;
coldstart)
	go run ./scripts/storefill -keys 1000000 -dir "$dir/big" -max-rss-mib 1000000 -max-reopen 1h >"$dir/fill.log" 2>&1 || fail "storefill: $(tail -3 "$dir/fill.log")"
	t0=$(date +%s%N)
	EDGED_MQTT_MODE=off bin/edged run --data-dir "$dir/big" --http-addr 127.0.0.1:0 >"$dir/big.log" 2>&1 &
	pid=$!
	pids+=("$pid")
	for _ in $(seq 2000); do grep -q 'msg="node started"' "$dir/big.log" && break; sleep 0.005; done
	addr=$(grep 'msg="node started"' "$dir/big.log" | grep -o ' addr=[0-9.:]*' | head -1 | cut -d= -f2)
	until curl -fsS -o /dev/null "http://$addr/readyz"; do sleep 0.005; done
	ms=$((($(date +%s%N) - t0) / 1000000))
	echo "footprint: cold start with 1,000,000 keys: ${ms} ms to ready (budget ${max_coldstart_ms} ms)"
	[ "$ms" -le "$max_coldstart_ms" ] || fail "cold start over budget"
	;;
*)
	echo "usage: scripts/footprint.sh [idle|load|coldstart|all]" >&2
	exit 2
	;;
esac
