#!/usr/bin/env bash
# Multi-host test bed: N edged nodes, each in a network namespace of its own
# on one bridge (a LAN), started with no peer configured: they must find
# each other over mDNS. Scenarios, each reported PASS or FAIL with its time:
#   discovery   nodes 1 to N-1 see each other alive
#   join        node N, new, is seen by all and holds their data
#   converge    a write on every node reaches every node
#   partition   nodes 1-2 and 3-N cut apart for TESTBED_PARTITION seconds
#               (default 60), writes on both sides, heal: every node
#               converges
#   idle        with TESTBED_IDLE=SECONDS, that long idle: no node suspects
#               another (off by default)
#   kill        one node is killed with SIGKILL: the others mark it dead;
#               restarted, it catches up
#   stranger    a node of another fleet on the same LAN is not a peer, and
#               its writes reach no one
#   links       every pair of nodes is in touch again (after the partition,
#               not only through relaying peers)
#
# Usage: scripts/testbed.sh [BINARY] [N]   (default bin/edged, 5 nodes)
#
# Needs root and iproute2 (ip netns, veth, bridge) and curl; without them it
# skips with a message, except under CI=true, where that is a failure.
set -euo pipefail

bin=$(realpath "${1:-bin/edged}")
n=${2:-5}
tag=edtb$$ # names of this run's namespaces and links

bed=testbed
# shellcheck source=scripts/bedlib.sh
. "$(dirname "$0")/bedlib.sh"
[ "$(id -u)" = 0 ] || skip "needs root (network namespaces)"
command -v ip >/dev/null || skip "needs iproute2 (apt-get install iproute2)"
command -v curl >/dev/null || skip "needs curl (apt-get install curl)"

dir=$(mktemp -d)
declare -a pids
gone() { # pid: waits until the process is gone
	while [ -n "$1" ] && kill -0 "$1" 2>/dev/null; do sleep 0.05; done
}
cleanup() {
	for p in "${pids[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done
	for p in "${pids[@]:-}"; do gone "$p"; done
	for i in $(seq 0 "$n"); do ip netns del "$tag-$i" 2>/dev/null || true; done
	ip link del "$tag-br" 2>/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT


# The LAN: a bridge, and per node a namespace with a veth into it. Node 0
# is the stranger (another fleet).
ip link add "$tag-br" type bridge
ip link set "$tag-br" up
for i in $(seq 0 "$n"); do
	ns=$tag-$i
	ip netns add "$ns"
	ip link add "$tag-v$i" type veth peer name eth0 netns "$ns"
	ip link set "$tag-v$i" master "$tag-br" up
	ip -n "$ns" link set lo up
	ip -n "$ns" link set eth0 up
	ip -n "$ns" addr add "10.77.0.$((i + 10))/24" dev eth0
	# A LAN without a gateway: mDNS needs a route for multicast.
	ip -n "$ns" route add 224.0.0.0/4 dev eth0
done

head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/fleet.key"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/other.key"

start() { # i
	local i=$1 key=$dir/fleet.key
	[ "$i" = 0 ] && key=$dir/other.key
	ip netns exec "$tag-$i" "$bin" run --data-dir "$dir/n$i" \
		--http-addr 127.0.0.1:8080 --p2p-addr /ip4/0.0.0.0/tcp/4001 --fleet-key "$key" \
		>"$dir/log$i" 2>&1 &
	pids[$i]=$!
	disown # killed on purpose below: no job report
}
api() { # i path [curl args...]
	local i=$1 path=$2
	shift 2
	ip netns exec "$tag-$i" curl -sf "http://127.0.0.1:8080$path" "$@"
}
peers_in_state() { # i state: how many peers of node i are in state
	api "$1" /v1/peers | grep -o "\"state\":\"$2\"" | wc -l
}
all_alive() { # nodes: 1 to nodes see each other alive
	for i in $(seq 1 "$1"); do
		[ "$(peers_in_state "$i" alive)" -ge $(($1 - 1)) ] || return 1
	done
}
counter_is() { # i key want
	[ "$(api "$1" "/v1/kv/app/$2" | grep -o '"value":[-0-9]*' | cut -d: -f2)" = "$3" ]
}
all_counters() { # key want
	for i in $(seq 1 "$n"); do counter_is "$i" "$1" "$2" || return 1; done
}
inc() { # i key
	api "$1" "/v1/kv/app/$2" -X POST -H 'Content-Type: application/json' -d '{"type":"counter","op":"inc"}' >/dev/null
}

for i in $(seq 0 $((n - 1))); do start "$i"; done
for i in $(seq 0 $((n - 1))); do
	wait_for 20 api "$i" /readyz || {
		cat "$dir/log$i" >&2
		echo "testbed: node $i did not start" >&2
		exit 1
	}
done

t=$(now)
if wait_for 30 all_alive $((n - 1)); then
	report discovery PASS "$(since "$t")" "$((n - 1)) nodes started together see each other, with no peer configured"
else
	report discovery FAIL "$(since "$t")" "$(for i in $(seq 1 $((n - 1))); do echo -n "n$i:$(peers_in_state "$i" alive) "; done)"
fi

inc 1 before
t=$(now)
start "$n"
wait_for 20 api "$n" /readyz
if wait_for 30 all_alive "$n" && wait_for 30 counter_is "$n" before 1; then
	report join PASS "$(since "$t")" "a new node seen by all and synced, from its start"
else
	report join FAIL "$(since "$t")" "$(for i in $(seq 1 "$n"); do echo -n "n$i:$(peers_in_state "$i" alive) "; done)"
fi

t=$(now)
for i in $(seq 1 "$n"); do inc "$i" hits; done
if wait_for 30 all_counters hits "$n"; then
	report converge PASS "$(since "$t")" "a write on each of $n nodes everywhere"
else
	report converge FAIL "$(since "$t")" "hits not $n everywhere"
fi

# Partition 1-2 | 3-N: each side drops the other's addresses.
split_lan() { # op: add or del
	for i in 1 2; do
		for j in $(seq 3 "$n"); do
			ip -n "$tag-$i" route "$1" blackhole "10.77.0.$((j + 10))/32"
			ip -n "$tag-$j" route "$1" blackhole "10.77.0.$((i + 10))/32"
		done
	done
}
split_lan add
for i in $(seq 1 "$n"); do inc "$i" split; done
sleep "${TESTBED_PARTITION:-60}"
split_lan del
t=$(now)
if wait_for 30 all_counters split "$n"; then
	report partition PASS "$(since "$t")" "converged after the heal (writes on both sides)"
else
	report partition FAIL "$(since "$t")" "split: $(for i in $(seq 1 "$n"); do echo -n "n$i=$(api "$i" /v1/kv/app/split | grep -o '"value":[-0-9]*') "; done)"
fi

victim=$n
victim_id=$(api "$victim" /v1/status | grep -o '"peer_id":"[^"]*"' | cut -d'"' -f4)
kill -9 "${pids[$victim]}"
gone "${pids[$victim]}"
t=$(now)
dead_everywhere() {
	for i in $(seq 1 $((n - 1))); do
		api "$i" /v1/peers | grep -q "\"$victim_id\":{[^}]*\"state\":\"dead\"" || return 1
	done
}
if wait_for 30 dead_everywhere; then
	report kill PASS "$(since "$t")" "node $victim marked dead by all after SIGKILL"
else
	report kill FAIL "$(since "$t")" "node $victim ($victim_id) not dead everywhere: $(api 1 /v1/peers)"
fi
inc 1 after
start "$victim"
wait_for 20 api "$victim" /readyz
t=$(now)
if wait_for 30 all_counters after 1; then
	report restart PASS "$(since "$t")" "node $victim caught up after its restart"
else
	report restart FAIL "$(since "$t")" "after: $(for i in $(seq 1 "$n"); do echo -n "n$i=$(api "$i" /v1/kv/app/after | grep -o '"value":[-0-9]*') "; done)"
fi

if [ "${TESTBED_IDLE:-0}" -gt 0 ]; then
	before=$(cat "$dir"/log[1-9]* | grep -c 'peer suspect' || true)
	sleep "$TESTBED_IDLE"
	after=$(cat "$dir"/log[1-9]* | grep -c 'peer suspect' || true)
	if [ "$before" = "$after" ]; then
		report idle PASS "$TESTBED_IDLE" "no suspicion among $n idle nodes"
	else
		report idle FAIL "$TESTBED_IDLE" "$((after - before)) suspicions"
	fi
fi

stranger_id=$(api 0 /v1/status | grep -o '"peer_id":"[^"]*"' | cut -d'"' -f4)
inc 0 hits
sleep 2
stranger_known=0
for i in $(seq 1 "$n"); do
	if api "$i" /v1/peers | grep -q "\"$stranger_id\":{[^}]*\"state\""; then stranger_known=1; fi
done
if [ "$stranger_known" = 0 ] && [ "$(peers_in_state 0 alive)" = 0 ] && all_counters hits "$n"; then
	report stranger PASS 0 "a node of another fleet joined no one"
else
	report stranger FAIL 0 "stranger $stranger_id; peers of node 1: $(api 1 /v1/peers)"
fi

# After the partition every pair talks directly again, not only through
# relaying peers.
t=$(now)
if wait_for 60 all_alive "$n"; then
	report links PASS "$(since "$t")" "every pair of nodes in touch again"
else
	report links FAIL "$(since "$t")" "$(for i in $(seq 1 "$n"); do echo -n "n$i:$(peers_in_state "$i" alive) "; done)"
fi

if [ "$failed" != 0 ]; then
	for i in $(seq 0 "$n"); do
		echo "--- node $i log:" >&2
		tail -n 15 "$dir/log$i" >&2
	done
	exit 1
fi
echo "testbed: PASS"
