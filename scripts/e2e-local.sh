#!/usr/bin/env bash
# Drives a running edged through its local interfaces with real clients
# (curl, mosquitto_pub, mosquitto_sub) and checks the answers.
#
# Usage: scripts/e2e-local.sh [BINARY]   (default bin/edged; make e2e builds it)
#
# Needs curl and mosquitto-clients; without them it skips with a message,
# except under CI=true, where a missing tool is a failure.
set -euo pipefail

for tool in curl mosquitto_pub mosquitto_sub; do
	if ! command -v "$tool" >/dev/null; then
		if [ "${CI:-}" = true ]; then
			echo "e2e-local: $tool is missing (apt-get install curl mosquitto-clients)" >&2
			exit 1
		fi
		echo "e2e-local: SKIP: $tool is missing (apt-get install curl mosquitto-clients)"
		exit 0
	fi
done

bin=${1:-bin/edged}
dir=$(mktemp -d)
pid=
cleanup() {
	if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
	rm -rf "$dir"
}
trap cleanup EXIT

fail() {
	echo "e2e-local: FAIL: $*" >&2
	echo "--- edged log:" >&2
	tail -n 30 "$dir/log" >&2 || true
	exit 1
}

# poll CMD...: retries CMD every 0.1 s until it succeeds, for at most 10 s.
poll() {
	for _ in $(seq 100); do
		if "$@" >/dev/null 2>&1; then return 0; fi
		sleep 0.1
	done
	return 1
}

EDGED_NODE_NAME=e2e EDGED_LOG_FORMAT=json EDGED_MQTT_ADDR=127.0.0.1:0 EDGED_READINGS_TRUST_CLOCK=true \
	"$bin" run --data-dir "$dir/data" --http-addr 127.0.0.1:0 2>"$dir/log" &
pid=$!
poll grep -q '"msg":"node started"' "$dir/log" || fail "node did not start"
http=$(grep '"msg":"node started"' "$dir/log" | sed -E 's/.*"addr":"([^"]+)".*/\1/')
mqtt=$(grep '"msg":"mqtt broker started"' "$dir/log" | sed -E 's/.*"addr":"([^"]+)".*/\1/')
mhost=${mqtt%:*}
mport=${mqtt##*:}
api="http://$http"
topic=edged/e2e

# expect WANT TEXT: TEXT must contain WANT.
expect() { case "$2" in *"$1"*) ;; *) fail "expected $1 in: $2" ;; esac; }

# HTTP: keys.
out=$(curl -sS -X POST -H 'Content-Type: application/json' -d '{"type":"counter","op":"inc","by":2}' "$api/v1/kv/app/visits")
expect '"value":2' "$out"
out=$(curl -sS "$api/v1/kv/app/visits")
expect '"type":"counter"' "$out"
code=$(curl -s -o /dev/null -w '%{http_code}' "$api/v1/kv/app/nothing")
[ "$code" = 404 ] || fail "GET of a missing key answered $code, want 404"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -d 'x' "$api/v1/kv/app/visits")
[ "$code" = 415 ] || fail "a form-encoded op answered $code, want 415"

# MQTT: an op in, the retained document out, a read by request/response.
mosquitto_pub -h "$mhost" -p "$mport" -t "$topic/kv/app/door/set" -m '{"type":"flag","op":"enable"}'
poll sh -c "curl -sf '$api/v1/kv/app/door' >'$dir/door' && grep -q '\"value\":true' '$dir/door'" || fail "MQTT op not applied"
out=$(mosquitto_sub -h "$mhost" -p "$mport" -t "$topic/kv/app/door" -C 1 -W 10)
expect '"value":true' "$out"
mosquitto_sub -h "$mhost" -p "$mport" -t "$topic/kv/app/door/get/reply" -C 1 -W 10 >"$dir/reply" &
sub=$!
# The subscriber may not be subscribed yet: ask until it has the reply.
poll sh -c "mosquitto_pub -h '$mhost' -p '$mport' -t '$topic/kv/app/door/get' -m get && sleep 0.1 && test -s '$dir/reply'" ||
	fail "no reply to a get request"
wait "$sub" || fail "the reply subscriber failed"
expect '"key":"door"' "$(cat "$dir/reply")"

# MQTT: readings in, and a malformed one reported on the error topic.
mosquitto_pub -h "$mhost" -p "$mport" -t "$topic/readings/boiler" -m 61.5
poll sh -c "curl -sf '$api/v1/sensors' >'$dir/sensors' && grep -q '\"sensor\":\"boiler\"' '$dir/sensors'" || fail "MQTT reading not stored"
mosquitto_sub -h "$mhost" -p "$mport" -t "$topic/errors" -C 1 -W 10 >"$dir/errors" &
sub=$!
poll sh -c "mosquitto_pub -h '$mhost' -p '$mport' -t '$topic/readings/boiler' -m NaN && sleep 0.1 && test -s '$dir/errors'" ||
	fail "no report on the error topic"
wait "$sub" || fail "the error subscriber failed"
expect "$topic/readings/boiler" "$(cat "$dir/errors")"

# HTTP: line protocol as Telegraf sends it, then a downsampled series.
now=$(date +%s)
lines=$(printf 'env,room=lab temp=20 %d\nenv,room=lab temp=22 %d\n' $((now - 10)) "$now")
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: text/plain' --data-binary "$lines" "$api/write?precision=s")
[ "$code" = 204 ] || fail "POST /write answered $code, want 204"
out=$(curl -sS "$api/v1/series/env.temp,room=lab?from=-1h&step=1h&agg=count")
expect '"value":2' "$out"
out=$(curl -sS "$api/v1/status")
expect '"replica"' "$out"
metrics=$(curl -sf "$api/metrics") || fail "GET /metrics failed"
expect 'edged_http_requests_total{' "$metrics"

echo "e2e-local: PASS"
