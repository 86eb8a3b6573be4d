#!/usr/bin/env bash
# Runs a command in a memory cgroup of its own, held to a hard limit the
# way systemd's MemoryMax holds the edged service on a device, and reports
# the cgroup's peak usage (page cache included) and its OOM kills.
#
#   scripts/memcg.sh MIB COMMAND [ARG...]
#
# For example, the store's one-million-key fill in 128 MiB:
#
#   go build -o /tmp/storefill ./scripts/storefill
#   sudo scripts/memcg.sh 128 /tmp/storefill -keys 1000000 -memlimit-mib 80
#
# Needs root and a memory controller: cgroup v2 mounted on /sys/fs/cgroup,
# or cgroup v1's memory hierarchy on /sys/fs/cgroup/memory. Swap is
# forbidden in the cgroup where the kernel accounts it (a device's SD card
# is no place for it). The page cache is dropped first, so that the pages
# the command maps (its binary among them) are charged to its own cgroup,
# not to whoever read them before. It exits with the command's status, or
# 125 if the command could not be moved into the cgroup.
set -euo pipefail

if [ $# -lt 2 ] || ! [[ $1 =~ ^[0-9]+$ ]] || [ "$1" -eq 0 ]; then
	echo "usage: $0 MIB COMMAND [ARG...]" >&2
	exit 2
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "memcg: needs root to make a cgroup" >&2
	exit 2
fi
limit=$((10#$1 << 20))
shift

if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
	version=2
	root=/sys/fs/cgroup
	if ! grep -qw memory "$root/cgroup.controllers"; then
		echo "memcg: cgroup v2 without the memory controller" >&2
		exit 2
	fi
	if ! grep -qw memory "$root/cgroup.subtree_control" && ! echo +memory >"$root/cgroup.subtree_control"; then
		echo "memcg: cannot enable the memory controller for children of $root (a container's cgroup namespace?); use systemd-run --scope -p MemoryMax=..." >&2
		exit 2
	fi
elif [ -d /sys/fs/cgroup/memory ]; then
	version=1
	root=/sys/fs/cgroup/memory
else
	echo "memcg: no memory cgroup controller found under /sys/fs/cgroup" >&2
	exit 2
fi

dir=$root/edged-memcg-$$
mkdir "$dir"
trap 'rmdir "$dir" 2>/dev/null || echo "memcg: $dir left behind (processes still in it?)" >&2' EXIT
swap="swap not limited (no swap accounting)"
if [ $version = 2 ]; then
	echo "$limit" >"$dir/memory.max"
	if [ -f "$dir/memory.swap.max" ]; then
		echo 0 >"$dir/memory.swap.max"
		swap="swap none"
	fi
else
	echo "$limit" >"$dir/memory.limit_in_bytes"
	if [ -f "$dir/memory.memsw.limit_in_bytes" ]; then
		echo "$limit" >"$dir/memory.memsw.limit_in_bytes"
		swap="swap none"
	fi
fi
sync
if ! echo 3 >/proc/sys/vm/drop_caches 2>/dev/null; then
	echo "memcg: cannot drop the page cache (read-only /proc/sys in a container?): pages read before stay charged elsewhere" >&2
fi

echo "memcg: cgroup v$version, limit $((limit >> 20)) MiB, $swap: $*"
status=0
sh -c 'echo $$ >"$1/cgroup.procs" || exit 125; shift; exec "$@"' memcg "$dir" "$@" || status=$?

mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
if [ $version = 2 ]; then
	peak=unknown
	[ ! -f "$dir/memory.peak" ] || peak=$(mib "$(cat "$dir/memory.peak")")
	kills=$(awk '$1 == "oom_kill" { print $2 }' "$dir/memory.events")
else
	peak=$(mib "$(cat "$dir/memory.max_usage_in_bytes")")
	kills=$(awk '$1 == "oom_kill" { print $2 }' "$dir/memory.oom_control")
fi
echo "memcg: peak usage $peak (page cache included), OOM kills ${kills:-unknown}; exit status $status"
exit "$status"
