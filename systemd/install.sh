#!/bin/sh
# Install hyper-sched as a systemd service (docs/ops.md):
#
#   systemd/install.sh [BINARY]
#
# BINARY defaults to bin/hyper-sched; without an argument, bin/hyper-sched
# and bin/hyper-schedctl are built with `go build` when missing. Copies
# BINARY and the hyper-schedctl beside it to $PREFIX/bin (a missing
# hyper-schedctl is an error: the daemon is operated with it), the unit to
# $UNITDIR, then runs `systemctl daemon-reload`. With DESTDIR set it only
# stages files under it (packaging) and reloads nothing.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
PREFIX=${PREFIX:-/usr/local}
UNITDIR=${UNITDIR:-/etc/systemd/system}
DESTDIR=${DESTDIR:-}
bin=${1:-$repo/bin/hyper-sched}
ctl=$(dirname "$bin")/hyper-schedctl

for b in "$bin:hyper-sched" "$ctl:hyper-schedctl"; do
	path=${b%:*} cmd=${b##*:}
	[ ! -x "$path" ] || continue
	if [ $# -gt 0 ]; then
		echo "install: $path is not an executable (build it with: go build -o $path ./cmd/$cmd, or make build)" >&2
		exit 1
	fi
	echo "install: building $path"
	(cd "$repo" && go build -o "$path" "./cmd/$cmd")
done

install -D -m 0755 "$bin" "$DESTDIR$PREFIX/bin/hyper-sched"
install -D -m 0755 "$ctl" "$DESTDIR$PREFIX/bin/hyper-schedctl"
# The unit names /usr/local/bin; follow another PREFIX.
unit=$(mktemp)
trap 'rm -f "$unit"' EXIT
sed "s|^ExecStart=/usr/local/bin/|ExecStart=$PREFIX/bin/|" "$here/hyper-sched.service" >"$unit"
install -D -m 0644 "$unit" "$DESTDIR$UNITDIR/hyper-sched.service"

if [ -z "$DESTDIR" ] && [ -d /run/systemd/system ]; then
	systemctl daemon-reload
	echo "installed $PREFIX/bin/hyper-sched, $PREFIX/bin/hyper-schedctl, $UNITDIR/hyper-sched.service; start it with: systemctl enable --now hyper-sched"
else
	echo "installed under ${DESTDIR:-/} (systemd not running here: no daemon-reload)"
fi
