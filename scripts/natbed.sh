#!/usr/bin/env bash
# NAT test bed: four sites behind NAT routers and one relay on the
# "internet", each host in a network namespace of its own. The relay runs
# edged with --relay-service; each site's node knows only the relay
# (--relay) and must reach the other sites' nodes through it:
#   site a, site b   port-preserving NATs that drop unsolicited inbound
#                    packets, as home and cellular routers do
#   site c           a symmetric NAT (a random port per connection), where
#                    hole punching cannot work
#   site d           like a and b, but its router drops what goes between
#                    it and a's router until the retry scenario lifts that
# Scenarios, each reported PASS or FAIL with its time:
#   reserve     every site's node holds a relayed address on the relay
#   relay       a and c, which cannot dial each other, are peers through
#               the relay, and a write on each reaches the other
#   holepunch   a and b start relayed and end with a direct connection
#               through both NATs (DCUtR) at the first try, and sync over
#               it
#   retry       a and d stay relayed while the path between their NATs is
#               blocked (refused), and the hole punch is retried
#               (hole_punch_retry, 20 s here); the first retry's punch is
#               refused too, so once the path is open one of the next
#               three retries (40, 80 and 160 s apart) must connect them
#               directly: on 2026-11-25, in two CI runs out of six, the
#               punches of the first two retries after the block was
#               lifted missed (see the closing notes of that day)
# The relay, holepunch and retry times count from the end of reserve.
#
# Usage: scripts/natbed.sh [BINARY]   (default bin/edged)
#
# Needs root, iproute2, nftables and curl; without them it skips with a
# message, except under CI=true, where that is a failure.
set -euo pipefail

bin=$(realpath "${1:-bin/edged}")
tag=ednat$$ # names of this run's namespaces and links

bed=natbed
# shellcheck source=scripts/bedlib.sh
. "$(dirname "$0")/bedlib.sh"
[ "$(id -u)" = 0 ] || skip "needs root (network namespaces)"
command -v ip >/dev/null || skip "needs iproute2 (apt-get install iproute2)"
command -v nft >/dev/null || skip "needs nftables (apt-get install nftables)"
command -v curl >/dev/null || skip "needs curl (apt-get install curl)"

dir=$(mktemp -d)
declare -A pids
cleanup() {
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do while kill -0 "$p" 2>/dev/null; do sleep 0.05; done; done
	for ns in r a b c d ra rb rc rd; do ip netns del "$tag-$ns" 2>/dev/null || true; done
	ip link del "$tag-inet" 2>/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT


# The internet: a bridge with the relay and the routers' outer sides.
# 11.0.0.0/24 stands for public addresses: libp2p only hole-punches
# through public ones, which excludes the private and documentation
# ranges; inside these namespaces it reaches nothing real.
ip link add "$tag-inet" type bridge
ip link set "$tag-inet" up
attach() { # ns addr: a namespace with a veth "pub" into the internet
	local ns=$tag-$1
	ip link add "$tag-p$1" type veth peer name pub netns "$ns"
	ip link set "$tag-p$1" master "$tag-inet" up
	ip -n "$ns" link set lo up
	ip -n "$ns" link set pub up
	ip -n "$ns" addr add "$2/24" dev pub
}
ip netns add "$tag-r"
attach r 11.0.0.10

# A site: router $tag-rS (outer 11.0.0.N, inner 192.168.N.1) and node
# $tag-S (192.168.N.10) behind it. The router masquerades, and drops what
# comes in from outside unless it answers a connection from inside.
site() { # s n masquerade-options
	local s=$1 i=$2 r=$tag-r$1 h=$tag-$1
	ip netns add "$r"
	ip netns add "$h"
	attach "r$s" "11.0.0.$i"
	ip link add "$tag-l$s" netns "$r" type veth peer name eth0 netns "$h"
	ip -n "$r" link set "$tag-l$s" up
	ip -n "$r" addr add "192.168.$i.1/24" dev "$tag-l$s"
	ip -n "$h" link set lo up
	ip -n "$h" link set eth0 up
	ip -n "$h" addr add "192.168.$i.10/24" dev eth0
	ip -n "$h" route add default via "192.168.$i.1"
	ip netns exec "$r" sysctl -qw net.ipv4.ip_forward=1
	ip netns exec "$r" nft -f - <<-EOF
		table ip nat {
			chain out { type nat hook postrouting priority srcnat; oifname "pub" masquerade $3; }
		}
		table ip filter {
			chain through { type filter hook forward priority filter; iifname "pub" ct state new drop; }
			chain local { type filter hook input priority filter; iifname "pub" ct state new drop; }
		}
	EOF
}
site a 1 ""
site b 2 ""
site c 3 "fully-random"
site d 4 ""
# The block that the retry scenario lifts. It refuses with a reset rather
# than dropping: dropped SYNs leave a's router a mapping in SYN_SENT that
# each retransmission renews, and while it lasts (2 minutes after the last)
# a later punch through it fails, so a punch that gave up on the block
# would make the next retry fail too. A reset closes the mapping.
ip netns exec "$tag-rd" nft -f - <<-EOF
	table ip block {
		chain forward_block { type filter hook forward priority filter; oifname "pub" ip daddr 11.0.0.1 reject with tcp reset; }
		chain input_block { type filter hook input priority filter; iifname "pub" ip saddr 11.0.0.1 reject with tcp reset; }
	}
EOF

head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/fleet.key"

start() { # ns [edged run flags...]
	local ns=$1
	shift
	ip netns exec "$tag-$ns" env EDGED_P2P_TICK=250ms EDGED_P2P_HOLE_PUNCH_RETRY=20s "$bin" run --data-dir "$dir/$ns" \
		--http-addr 127.0.0.1:8080 --p2p-addr /ip4/0.0.0.0/tcp/4001 --fleet-key "$dir/fleet.key" \
		--mdns=false "$@" >"$dir/log-$ns" 2>&1 &
	pids[$ns]=$!
	disown
}
api() { # ns path [curl args...]
	local ns=$1 path=$2
	shift 2
	ip netns exec "$tag-$ns" curl -sf "http://127.0.0.1:8080$path" "$@"
}
ready() {
	wait_for 20 api "$1" /readyz || {
		cat "$dir/log-$1" >&2
		echo "natbed: node $1 did not start" >&2
		exit 1
	}
}
peer_id() { api "$1" /v1/status | grep -o '"peer_id":"[^"]*"' | cut -d'"' -f4; }
# link ns other: the address of ns's connection with other, if alive.
link() {
	api "$1" /v1/peers | grep -o "\"$(peer_id "$2")\":{[^}]*}" | grep '"state":"alive"' | grep -o '"addr":"[^"]*"' | cut -d'"' -f4
}
relayed() { link "$1" "$2" | grep -q /p2p-circuit; }
direct() { link "$1" "$2" | grep -q "^/ip4/11\.0\.0\.$3/tcp/"; }
reserved() { api "$1" /v1/status | grep -q "/p2p/$relay_id/p2p-circuit"; }
counter_is() { # ns key want
	[ "$(api "$1" "/v1/kv/app/$2" | grep -o '"value":[-0-9]*' | cut -d: -f2)" = "$3" ]
}
inc() { # ns key
	api "$1" "/v1/kv/app/$2" -X POST -H 'Content-Type: application/json' -d '{"type":"counter","op":"inc"}' >/dev/null
}
both() { "$@" && "$1" "$3" "$2" "${@:4}"; }
# retries ns other: how often ns retried hole punching with other.
retries() { api "$1" /v1/peers | grep -o "\"$(peer_id "$2")\":{[^}]*}" | grep -o '"hole_punch_retries":[0-9]*' | cut -d: -f2; }
# retried ns other: one of the two retried hole punching with the other.
retried() { [ "$(retries "$1" "$2")" -ge 1 ] 2>/dev/null || [ "$(retries "$2" "$1")" -ge 1 ] 2>/dev/null; }

start r --relay-service
ready r
relay_id=$(peer_id r)
relay=/ip4/11.0.0.10/tcp/4001/p2p/$relay_id
# Nodes a and b find out they are unreachable from the relay's dial-back
# (AutoNAT); c is told so.
start a --relay "$relay"
start b --relay "$relay"
EDGED_P2P_REACHABILITY=private start c --relay "$relay"
start d --relay "$relay"
for s in a b c d; do ready "$s"; done

t=$(now)
if wait_for 120 reserved a && wait_for 30 reserved b && wait_for 30 reserved c && wait_for 30 reserved d; then
	report reserve PASS "$(since "$t")" "a, b, c and d each advertise an address on the relay"
else
	report reserve FAIL "$(since "$t")" "addresses: $(for s in a b c d; do api "$s" /v1/status | grep -o '"addrs":\[[^]]*\]'; done)"
fi

reserved_at=$(now) # the relay and holepunch times count from here
t=$reserved_at
inc a from_a
inc c from_c
if wait_for 60 both relayed a c && wait_for 10 counter_is a from_c 1 && wait_for 10 counter_is c from_a 1; then
	report relay PASS "$(since "$t")" "a and c peers through the relay ($(link a c)), writes synced"
else
	report relay FAIL "$(since "$t")" "a's link to c: '$(link a c)', c's to a: '$(link c a)'"
fi

# Within 15 s, before the first retry (20 s): the first punch must work.
t=$reserved_at
inc b from_b
if wait_for 15 direct a b 2 && wait_for 5 direct b a 1 && wait_for 10 counter_is a from_b 1 && wait_for 10 counter_is b from_a 1; then
	report holepunch PASS "$(since "$t")" "a and b connected directly through both NATs ($(link a b))"
else
	report holepunch FAIL "$(since "$t")" "a's link to b: '$(link a b)', b's to a: '$(link b a)'"
fi

t=$reserved_at
inc d from_d
if wait_for 60 both relayed a d && wait_for 60 retried a d && relayed a d && wait_for 10 counter_is a from_d 1; then
	ip netns exec "$tag-rd" nft delete table ip block
	if wait_for 300 direct a d 4 && wait_for 5 direct d a 1; then
		report retry PASS "$(since "$t")" "a and d relayed while blocked, then connected directly by a retry ($(link a d))"
	else
		report retry FAIL "$(since "$t")" "after the block was lifted: a's link to d: '$(link a d)', d's to a: '$(link d a)'"
	fi
else
	report retry FAIL "$(since "$t")" "while blocked: a's link to d: '$(link a d)', d's to a: '$(link d a)', retries: $(retries a d)/$(retries d a)"
fi

if [ "$failed" != 0 ]; then
	for s in r a b c d; do
		echo "--- node $s log:" >&2
		tail -n 20 "$dir/log-$s" >&2
	done
	exit 1
fi
echo "natbed: PASS"
