#!/usr/bin/env bash
# Installs the .deb of this machine's architecture from bin/dist (make dist)
# on this machine, checks what it installed (user, directories, modes, the
# configuration as a conffile kept across an upgrade, the systemd unit with
# systemd-analyze verify), runs the installed node as its user, and purges
# the package again, user and data included. Then it runs the tarball's
# install-pi.sh twice with systemctl stubbed: a first install enables and
# starts the service, an upgrade of a running one restarts it.
#
# Usage: scripts/package-test.sh   (after make dist)
#
# Needs root, dpkg and systemd-analyze (Debian's systemd package), and a
# machine where edged is not installed: it skips otherwise, with a message,
# except under CI=true, where that is a failure.
set -euo pipefail

skip() {
	if [ "${CI:-}" = true ]; then echo "package-test: $*" >&2; exit 1; fi
	echo "package-test: SKIP: $*"
	exit 0
}
[ "$(id -u)" = 0 ] || skip "needs root (it installs the package)"
for tool in dpkg dpkg-deb systemd-analyze setpriv curl; do
	command -v "$tool" >/dev/null || skip "$tool is missing (apt-get install dpkg systemd util-linux curl)"
done
if dpkg -s edged >/dev/null 2>&1 || getent passwd edged >/dev/null; then
	skip "edged is installed here, or a user edged exists: this test installs and purges its own"
fi

arch=$(dpkg --print-architecture)
deb=$(ls bin/dist/edged_*_"$arch".deb 2>/dev/null | head -1)
[ -n "$deb" ] || { echo "package-test: FAIL: no bin/dist/edged_*_$arch.deb (make dist)" >&2; exit 1; }

pid=
log=$(mktemp)
tmp=$(mktemp -d)
cleanup() {
	if [ -n "$pid" ]; then kill -9 "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
	dpkg -P edged >/dev/null 2>&1 || true
	userdel edged 2>/dev/null || true
	getent group edged >/dev/null && groupdel edged 2>/dev/null || true
	rm -rf /var/lib/edged /etc/edged "$log" "$tmp"
	# What install-pi.sh installs outside the package's files.
	rm -rf /usr/bin/edged /lib/systemd/system/edged.service /usr/share/edged
}
trap cleanup EXIT
fail() { echo "package-test: FAIL: $*" >&2; cat "$log" >&2 || true; exit 1; }

# The package's contents and control data.
files=$(dpkg-deb -c "$deb")
for f in ./usr/bin/edged ./etc/edged/edged.yaml ./lib/systemd/system/edged.service ./usr/share/edged/prometheus/edged-alerts.yml; do
	grep -q " $f\$" <<<"$files" || fail "$deb lacks $f"
done
dpkg-deb -I "$deb" conffiles | grep -qx /etc/edged/edged.yaml || fail "/etc/edged/edged.yaml is not a conffile"

DEBIAN_FRONTEND=noninteractive dpkg -i "$deb" >"$log" 2>&1 || fail "dpkg -i"
getent passwd edged | grep -q ':/usr/sbin/nologin$' || fail "no system user edged with a nologin shell"
[ "$(stat -c '%U:%G %a' /var/lib/edged)" = "edged:edged 750" ] || fail "/var/lib/edged is $(stat -c '%U:%G %a' /var/lib/edged)"
[ "$(stat -c '%G %a' /etc/edged/edged.yaml)" = "edged 640" ] || fail "/etc/edged/edged.yaml is $(stat -c '%G %a' /etc/edged/edged.yaml)"
grep -q '^  data_dir: /var/lib/edged$' /etc/edged/edged.yaml || fail "the packaged configuration does not keep its data in /var/lib/edged"
/usr/bin/edged config check /etc/edged/edged.yaml >/dev/null || fail "edged config check"
systemd-analyze verify /lib/systemd/system/edged.service >"$log" 2>&1 || fail "systemd-analyze verify"

# The installed node runs as its user, from the packaged configuration.
cd /var/lib/edged
EDGED_HTTP_ADDR=127.0.0.1:0 EDGED_MQTT_ADDR=127.0.0.1:0 setpriv --reuid=edged --regid=edged --init-groups -- /usr/bin/edged run --config /etc/edged/edged.yaml >"$log" 2>&1 &
pid=$!
for _ in $(seq 100); do grep -q 'msg="node started"' "$log" && break; sleep 0.1; done
addr=$(grep 'msg="node started"' "$log" | grep -o 'addr=[0-9.:]*' | head -1 | cut -d= -f2)
[ -n "$addr" ] || fail "the installed node did not start"
curl -fsS "http://$addr/healthz" >/dev/null || fail "GET /healthz"
[ -f /var/lib/edged/identity.key ] && [ "$(stat -c '%U %a' /var/lib/edged/identity.key)" = "edged 600" ] || fail "the node key is not edged's, mode 600"
kill -TERM "$pid"; wait "$pid" || fail "unclean stop"; pid=
cd - >/dev/null

# An upgrade keeps the operator's configuration.
echo "# edited by the operator" >>/etc/edged/edged.yaml
DEBIAN_FRONTEND=noninteractive dpkg -i --force-confold "$deb" >"$log" 2>&1 || fail "dpkg -i (upgrade)"
tail -1 /etc/edged/edged.yaml | grep -q 'edited by the operator' || fail "the upgrade replaced the configuration"

dpkg -P edged >"$log" 2>&1 || fail "dpkg -P"
[ ! -e /usr/bin/edged ] || fail "/usr/bin/edged left after purge"

# The tarball's install-pi.sh, with a systemctl that records its arguments
# and answers is-active as told (this test does not start the service).
case $arch in armhf) build=armv7 ;; *) build=$arch ;; esac
tarball=$(ls bin/dist/edged-*-linux-"$build".tar.gz 2>/dev/null | head -1)
[ -n "$tarball" ] || fail "no bin/dist/edged-*-linux-$build.tar.gz (make dist)"
tar -C "$tmp" -xzf "$tarball"
mkdir "$tmp/stub"
cat >"$tmp/stub/systemctl" <<'EOF'
#!/bin/sh
echo "$*" >>"$STUB_LOG"
if [ "$1" = is-active ]; then [ "$STUB_ACTIVE" = yes ]; fi
EOF
chmod +x "$tmp/stub/systemctl"
installpi() { : >"$tmp/calls"; STUB_LOG=$tmp/calls STUB_ACTIVE=$1 PATH="$tmp/stub:$PATH" "$tmp"/edged-*/install-pi.sh >"$log" 2>&1; }
installpi no || fail "install-pi.sh (first install)"
grep -qx 'enable --now edged' "$tmp/calls" || fail "install-pi.sh did not enable and start edged; systemctl: $(tr '\n' ';' <"$tmp/calls")"
[ -x /usr/bin/edged ] && [ -f /etc/edged/edged.yaml ] && [ -f /lib/systemd/system/edged.service ] || fail "install-pi.sh did not install the binary, configuration and unit"
installpi yes || fail "install-pi.sh (upgrade)"
grep -qx 'restart edged' "$tmp/calls" || fail "install-pi.sh did not restart the running edged; systemctl: $(tr '\n' ';' <"$tmp/calls")"
! grep -q '^enable' "$tmp/calls" || fail "install-pi.sh enabled an edged that was running; systemctl: $(tr '\n' ';' <"$tmp/calls")"
grep -q 'keeping /etc/edged/edged.yaml' "$log" || fail "install-pi.sh (upgrade) did not keep the configuration"
echo "package-test: PASS ($(basename "$deb"), $(basename "$tarball"))"
