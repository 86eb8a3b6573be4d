#!/usr/bin/env bash
# Smoke-runs the cross-built binaries under qemu-user: for each of
# arm64, armv7 and armv6 it prints the version, starts a node, writes a
# counter and a reading over HTTP, reads them back, and stops the node
# with SIGTERM, checking that it exits cleanly.
#
# Usage: scripts/smoke-arm.sh   (after make cross; make test-arm runs both)
#
# Needs qemu-user-static and curl; without them it skips with a message,
# except under CI=true, where a missing tool is a failure.
set -euo pipefail

need() {
	if ! command -v "$1" >/dev/null; then
		if [ "${CI:-}" = true ]; then
			echo "smoke-arm: $1 is missing (apt-get install $2)" >&2
			exit 1
		fi
		echo "smoke-arm: SKIP: $1 is missing (apt-get install $2)"
		exit 0
	fi
}
need qemu-aarch64-static qemu-user-static
need qemu-arm-static qemu-user-static
need curl curl

dir=$(mktemp -d)
pid=
cleanup() {
	if [ -n "$pid" ]; then kill -9 "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
	rm -rf "$dir"
}
trap cleanup EXIT

# poll CMD...: retries CMD every 0.2 s until it succeeds, for at most 60 s
# (emulated start-up is slow).
poll() {
	for _ in $(seq 300); do
		if "$@" >/dev/null 2>&1; then return 0; fi
		sleep 0.2
	done
	return 1
}

for arch in arm64 armv7 armv6; do
	bin=bin/edged-linux-$arch
	qemu=qemu-arm-static
	[ "$arch" = arm64 ] && qemu=qemu-aarch64-static
	[ -x "$bin" ] || { echo "smoke-arm: FAIL: $bin is missing (make cross)" >&2; exit 1; }

	version=$("$qemu" "$bin" version)
	data="$dir/$arch"
	EDGED_MQTT_MODE=off "$qemu" "$bin" run --data-dir "$data" --http-addr 127.0.0.1:0 >"$dir/$arch.log" 2>&1 &
	pid=$!
	# The node logs the address it listens on (port 0 picks a free one).
	poll grep -q 'msg="node started"' "$dir/$arch.log" || { cat "$dir/$arch.log" >&2; echo "smoke-arm: FAIL: $arch: not started" >&2; exit 1; }
	base="http://$(grep 'msg="node started"' "$dir/$arch.log" | grep -o 'addr=[0-9.:]*' | head -1 | cut -d= -f2)"
	poll curl -fsS "$base/readyz" || { cat "$dir/$arch.log" >&2; echo "smoke-arm: FAIL: $arch: not ready at $base" >&2; exit 1; }
	curl -fsS -H 'Content-Type: application/json' -d '{"type":"counter","op":"inc","by":41}' "$base/v1/kv/app/hits" >/dev/null
	curl -fsS -H 'Content-Type: application/json' -d '{"type":"counter","op":"inc"}' "$base/v1/kv/app/hits" >/dev/null
	curl -fsS -H 'Content-Type: application/json' -d '{"readings":[{"sensor":"temp","value":21.5}]}' "$base/v1/readings" >/dev/null
	got=$(curl -fsS "$base/v1/kv/app/hits")
	case "$got" in *'"value":42'*) ;; *) echo "smoke-arm: FAIL: $arch: read back $got" >&2; exit 1 ;; esac
	sensors=$(curl -fsS "$base/v1/sensors")
	case "$sensors" in *'"temp"'*'21.5'*) ;; *) echo "smoke-arm: FAIL: $arch: sensors $sensors" >&2; exit 1 ;; esac
	kill -TERM "$pid"
	if ! wait "$pid"; then cat "$dir/$arch.log" >&2; echo "smoke-arm: FAIL: $arch: unclean exit" >&2; exit 1; fi
	pid=
	echo "smoke-arm: $arch PASS  ($version)"
done
