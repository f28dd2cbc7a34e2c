#!/bin/bash
# Runs inside the systemd guest (hs-vmtest.service, after boot): installs
# hyper-sched with systemd/install.sh and exercises it the production way,
# `systemctl start hyper-sched`, printing VMTEST lines for the host.
set -u
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
FAILED=0
pass() { echo "VMTEST PASS $*"; }
fail() { echo "VMTEST FAIL $*"; FAILED=1; }
info() { echo "VMTEST INFO $*"; }
check() { # check NAME COMMAND...: PASS when COMMAND succeeds
	local name=$1
	shift
	if "$@"; then pass "$name"; else fail "$name: $*"; fi
}
now() { date +%s.%N; }
since() { awk -v a="$(now)" -v b="$1" 'BEGIN{printf "%.2f", a-b}'; }
show() { systemctl show -p "$1" --value hyper-sched; }
url=http://127.0.0.1:3001
base=/sys/fs/cgroup/system.slice/hyper-sched.service
guestcheck() { # guestcheck ARGS...: its checks, without its RESULT line
	local out rc=0
	out=$(/opt/hs/guestcheck "$@") || rc=$?
	grep -E '^VMTEST (PASS|FAIL|INFO)' <<<"$out"
	[ "$rc" = 0 ] || FAILED=1
}
placement() { # placement PARTITION POLICY
	guestcheck placement -base /system.slice/hyper-sched.service -pid "$(show MainPID)" \
		-workers 1-2 -housekeeping 0 -partition "$1" -policy "$2"
}
call() { # call NAME
	local out
	out=$(curl -sS -H 'Content-Type: application/json' -X POST "$url/call" \
		-d '{"wasm_name":"fib.wasm","export_func":"fib_r","params":["20"],"expected_deadline":"60000"}')
	if [[ $out == *'"result":"[I32(6765)]"'* ]]; then pass "$1"; else fail "$1: $out"; fi
}
finish() {
	journalctl -u hyper-sched --no-pager -o cat | tail -n 40 | sed 's/^/VMTEST LOG /'
	if [ "$FAILED" = 0 ]; then echo "VMTEST RESULT PASS"; else echo "VMTEST RESULT FAIL"; fi
	sync
	systemctl --force --force poweroff
}
trap finish EXIT

info "systemd $(systemctl --version | head -1); kernel $(uname -r); $(nproc) cpus"
check "install.sh" /opt/hs/install.sh /opt/hs/hyper-sched
# A short watchdog for the test: without pings systemd would kill the
# service within the test's time.
mkdir -p /etc/systemd/system/hyper-sched.service.d
printf '[Service]\nWatchdogSec=6s\n' >/etc/systemd/system/hyper-sched.service.d/vmtest.conf
systemctl daemon-reload

t=$(now)
check "systemctl start" systemctl start hyper-sched
info "systemctl start returned (READY=1) after $(since "$t") s"
info "$(systemctl show -p StatusText,MainPID,ActiveState,ControlGroup,WatchdogUSec hyper-sched | tr '\n' ' ')"
status=$(show StatusText)
check "StatusText says workers" test -n "$status" -a -z "${status##*workers running*}"
check "MainPID set" test "$(show MainPID)" -gt 0
check "delegated" test "$(show Delegate)" = yes

reg=$(curl -sS -F "fib.wasm=@/opt/hs/fib.wasm" "$url/register")
if [[ $reg == *'"status":"Success"'* ]]; then pass "register over curl"; else fail "register over curl: $reg"; fi
call "call over curl"
placement invalid other

# The watchdog is fed: after more than WatchdogSec the same process runs.
pid=$(show MainPID)
sleep 8
check "watchdog fed" test "$(show MainPID)" = "$pid" -a "$(show NRestarts)" = 0 -a "$(show ActiveState)" = active

t=$(now)
check "systemctl restart" systemctl restart hyper-sched
info "systemctl restart returned after $(since "$t") s"
check "new MainPID" test "$(show MainPID)" != "$pid"
mods=$(curl -sS "$url/modules/fib.wasm")
if [[ $mods == *'"status":"Success"'* ]]; then pass "restart keeps modules"; else fail "restart keeps modules: $mods"; fi
call "call after restart"

# Where the parent permits it: an admin grants system.slice exclusive
# CPUs, and the workers' partitions become valid (kernel 6.7+).
if [ -e /sys/fs/cgroup/system.slice/cpuset.cpus.exclusive ]; then
	check "grant system.slice exclusive cpus" sh -c 'echo 1-2 >/sys/fs/cgroup/system.slice/cpuset.cpus.exclusive'
	check "systemctl restart (granted)" systemctl restart hyper-sched
	placement isolated fifo
	info "$(systemctl show -p StatusText hyper-sched)"
	call "call on isolated partitions"
fi

check "systemctl stop" systemctl stop hyper-sched
guestcheck gone -base /system.slice/hyper-sched.service
check "unit cgroup removed" test ! -e "$base"
check "inactive" test "$(show ActiveState)" = inactive
if [ -e /sys/fs/cgroup/cpuset.cpus.isolated ]; then
	check "partitions released" test -z "$(cat /sys/fs/cgroup/cpuset.cpus.isolated)"
fi
