#!/bin/sh
# Before the package's files go: stop the service on removal (not on an
# upgrade, which restarts it after). The data in /var/lib/edged is kept.
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
	systemctl disable --now edged >/dev/null 2>&1 || true
fi
