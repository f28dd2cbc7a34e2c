#!/bin/sh
# Install hyper-sched as a systemd service (docs/ops.md):
#
#   systemd/install.sh [BINARY]
#
# BINARY defaults to bin/hyper-sched, built with `go build` when missing.
# Copies it (and hyper-schedctl, when built beside it) to $PREFIX/bin,
# the unit to $UNITDIR, then runs `systemctl daemon-reload`. With DESTDIR
# set it only stages files under it (packaging) and reloads nothing.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
PREFIX=${PREFIX:-/usr/local}
UNITDIR=${UNITDIR:-/etc/systemd/system}
DESTDIR=${DESTDIR:-}
bin=${1:-$repo/bin/hyper-sched}

if [ ! -x "$bin" ]; then
	[ $# -eq 0 ] || { echo "install: $bin is not an executable" >&2; exit 1; }
	echo "install: building $bin"
	(cd "$repo" && go build -o "$bin" ./cmd/hyper-sched)
fi

install -D -m 0755 "$bin" "$DESTDIR$PREFIX/bin/hyper-sched"
ctl=$(dirname "$bin")/hyper-schedctl
if [ -x "$ctl" ]; then
	install -D -m 0755 "$ctl" "$DESTDIR$PREFIX/bin/hyper-schedctl"
fi
# The unit names /usr/local/bin; follow another PREFIX.
unit=$(mktemp)
trap 'rm -f "$unit"' EXIT
sed "s|^ExecStart=/usr/local/bin/|ExecStart=$PREFIX/bin/|" "$here/hyper-sched.service" >"$unit"
install -D -m 0644 "$unit" "$DESTDIR$UNITDIR/hyper-sched.service"

if [ -z "$DESTDIR" ] && [ -d /run/systemd/system ]; then
	systemctl daemon-reload
	echo "installed; start it with: systemctl enable --now hyper-sched"
else
	echo "installed under ${DESTDIR:-/} (systemd not running here: no daemon-reload)"
fi
