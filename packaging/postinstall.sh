#!/bin/sh
# After the package's files are in place: a system user for the service,
# its state directory, and the unit known to systemd (if it runs).
set -e
if ! getent passwd edged >/dev/null; then
	useradd --system --home-dir /var/lib/edged --no-create-home --shell /usr/sbin/nologin --user-group edged
fi
install -d -o edged -g edged -m 0750 /var/lib/edged
chgrp edged /etc/edged/edged.yaml && chmod 0640 /etc/edged/edged.yaml
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload
	# An upgrade restarts a running node; a first install leaves enabling
	# and starting to the operator (docs/OPERATIONS.md).
	if systemctl is-active --quiet edged; then systemctl restart edged; fi
fi
