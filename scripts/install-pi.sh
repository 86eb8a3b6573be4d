#!/bin/sh
# Installs edged from an unpacked release tarball on a Raspberry Pi (or any
# systemd Linux): the binary in /usr/bin, the configuration in /etc/edged
# (kept if it exists), the systemd unit, a system user, then enables and
# starts the service, or restarts it if it is running (an upgrade). Run it
# as root from the unpacked directory:
#
#   tar xzf edged-VERSION-linux-armv6.tar.gz && cd edged-VERSION-linux-armv6
#   sudo ./install-pi.sh
#
# On Debian and Raspberry Pi OS the .deb does the same: sudo dpkg -i edged_*.deb
set -eu
[ "$(id -u)" = 0 ] || { echo "install-pi: run as root (sudo ./install-pi.sh)" >&2; exit 1; }
cd "$(dirname "$0")"
for f in edged edged.yaml edged.service; do
	[ -f "$f" ] || { echo "install-pi: $f is missing: run this from the unpacked tarball" >&2; exit 1; }
done
./edged version >/dev/null 2>&1 || { echo "install-pi: this build does not run on $(uname -m): pick the tarball for it (armv6 for a Pi Zero or Pi 1, arm64 for a 64-bit OS)" >&2; exit 1; }

install -m 0755 edged /usr/bin/edged
if ! getent passwd edged >/dev/null; then
	useradd --system --home-dir /var/lib/edged --no-create-home --shell /usr/sbin/nologin --user-group edged
fi
install -d -m 0750 -o root -g edged /etc/edged
if [ -e /etc/edged/edged.yaml ]; then
	echo "install-pi: keeping /etc/edged/edged.yaml (the new defaults are in $(pwd)/edged.yaml)"
else
	install -m 0640 -o root -g edged edged.yaml /etc/edged/edged.yaml
fi
/usr/bin/edged config check /etc/edged/edged.yaml
install -d -m 0750 -o edged -g edged /var/lib/edged
install -m 0644 edged.service /lib/systemd/system/edged.service
if [ -f edged-alerts.yml ]; then # Prometheus alerting rules, as the .deb installs them
	install -d -m 0755 /usr/share/edged/prometheus
	install -m 0644 edged-alerts.yml /usr/share/edged/prometheus/edged-alerts.yml
fi
systemctl daemon-reload
# An upgrade restarts a running node onto the new binary, as the .deb does
# (enable --now would leave the old one running); otherwise enable and start.
if systemctl is-active --quiet edged; then
	systemctl restart edged
	echo "install-pi: edged restarted: systemctl status edged; curl 127.0.0.1:8080/healthz"
else
	systemctl enable --now edged
	echo "install-pi: edged is running: systemctl status edged; curl 127.0.0.1:8080/healthz"
fi
