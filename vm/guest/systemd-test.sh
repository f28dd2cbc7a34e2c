#!/bin/bash
# Runs inside the systemd guest (hs-vmtest.service, after boot): installs
# hyper-sched with systemd/install.sh and exercises it the production way,
# with systemctl, curl and hyper-schedctl, printing VMTEST lines for the
# host. The steps, in order (docs/ops.md, "VM tests"):
#
#   1. install.sh refuses a binary without hyper-schedctl beside it, then
#      installs both;
#   2. start without the partition drop-in: ready, partitions reported
#      invalid, SCHED_OTHER lanes;
#   3. the drop-in of docs/ops.md, then `systemctl restart`: ready,
#      modules kept, valid isolated partitions, SCHED_FIFO lanes;
#   4. crash paths: a lane killed with SIGKILL, `hyper-schedctl restart
#      worker-2`, the watchdog fed, the supervisor killed with SIGKILL
#      (systemd restarts it);
#   5. stop, start, stop: partitions valid again after a stop, nothing left
#      after each stop.
#
# "ready" is checked the moment systemctl returns: every worker lane
# RUNNING, StatusText N/N, /healthz 200. "placement" is vm/guestcheck's
# kernel-side view of every process. A failure says what was found and
# what was wanted.
set -u
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# Straight to the serial console: through the journal (the unit's
# StandardOutput=journal+console) the last lines, RESULT among them, were
# still queued in journald when the forced poweroff came.
exec >/dev/console 2>&1
FAILED=0
pass() { echo "VMTEST PASS $*"; }
fail() { echo "VMTEST FAIL $*"; FAILED=1; }
info() { echo "VMTEST INFO $*"; }
check() { # check NAME COMMAND...: PASS when COMMAND succeeds
	local name=$1
	shift
	if "$@"; then pass "$name"; else fail "$name: $*"; fi
}
expect() { # expect NAME GOT WANT: PASS when GOT = WANT
	if [ "$2" = "$3" ]; then pass "$1: $2"; else fail "$1: got '$2', want '$3'"; fi
}
oneline() { tr '\n' '|' | sed 's/|$//'; }
now() { date +%s.%N; }
since() { awk -v a="$(now)" -v b="$1" 'BEGIN{printf "%.2f", a-b}'; }
show() { systemctl show -p "$1" --value hyper-sched; }
wait_for() { # wait_for SECONDS COMMAND...: until COMMAND succeeds; false after SECONDS
	local end=$(($(date +%s) + $1))
	shift
	until "$@"; do
		[ "$(date +%s)" -lt "$end" ] || return 1
		sleep 0.2
	done
}
url=http://127.0.0.1:3001
unit=/system.slice/hyper-sched.service
base=/sys/fs/cgroup$unit
workers=1-2
lanes=3                     # the default --lanes
nlanes=$((2 * lanes))       # worker lanes in all
journal() { # this run of the unit's log
	journalctl -u hyper-sched _SYSTEMD_INVOCATION_ID="$(show InvocationID)" --no-pager -o cat
}
guestcheck() { # guestcheck ARGS...: its checks, without its RESULT line
	local out rc=0
	out=$(/opt/hs/guestcheck "$@") || rc=$?
	grep -E '^VMTEST (PASS|FAIL|INFO)' <<<"$out"
	[ "$rc" = 0 ] || FAILED=1
}
placement() { # placement LABEL PARTITION POLICY
	guestcheck placement -label "$1" -base "$unit" -pid "$(show MainPID)" \
		-workers "$workers" -housekeeping 0 -lanes "$lanes" -partition "$2" -policy "$3"
}
healthz() { [ "$(curl -s -o /dev/null -w '%{http_code}' "$url/healthz")" = 200 ]; }
ready() { # ready LABEL: right after systemctl returned, every lane RUNNING
	local out rc=0 running total st
	out=$(hyper-schedctl status 2>&1) || rc=$?
	total=$(grep -c '^worker-' <<<"$out")
	running=$(grep -cE '^worker-[0-9]+:[0-9]+ +RUNNING ' <<<"$out")
	if [ "$total" = "$nlanes" ] && [ "$running" = "$nlanes" ]; then
		pass "$1: hyper-schedctl status: $running/$nlanes worker lanes RUNNING"
	else
		fail "$1: hyper-schedctl status: $running of $total worker lanes RUNNING, want $nlanes of $nlanes; it said (exit $rc): $(oneline <<<"$out")"
	fi
	st=$(show StatusText)
	if [[ $st == "$nlanes/$nlanes workers running,"* ]]; then pass "$1: StatusText $st"; else fail "$1: StatusText '$st', want '$nlanes/$nlanes workers running, …'"; fi
	expect "$1: /healthz" "$(curl -s -o /dev/null -w '%{http_code}' "$url/healthz")" 200
	expect "$1: hyper-schedctl pid is systemd's MainPID" "$(hyper-schedctl pid)" "$(show MainPID)"
}
started() { # started LABEL COMMAND...: COMMAND (systemctl start|restart) returns, then ready
	local label=$1 t
	shift
	t=$(now)
	if "$@"; then pass "$label: $* returned after $(since "$t") s"; else fail "$label: $* failed after $(since "$t") s"; fi
	ready "$label"
}
call() { # call NAME
	local out
	out=$(curl -sS -H 'Content-Type: application/json' -X POST "$url/call" \
		-d '{"wasm_name":"fib.wasm","export_func":"fib_r","params":["20"],"expected_deadline":"60000"}')
	if [[ $out == *'"result":"[I32(6765)]"'* ]]; then pass "$1"; else fail "$1: got $out, want result [I32(6765)]"; fi
}
modules_kept() { # modules_kept LABEL
	local out
	out=$(curl -sS "$url/modules/fib.wasm")
	if [[ $out == *'"status":"Success"'* ]]; then pass "$1: GET /modules/fib.wasm"; else fail "$1: GET /modules/fib.wasm: $out"; fi
	out=$(hyper-schedctl modules 2>&1)
	if [[ $out == *fib.wasm* ]]; then pass "$1: hyper-schedctl modules lists fib.wasm"; else fail "$1: hyper-schedctl modules: $(oneline <<<"$out"), want fib.wasm"; fi
}
no_warning() { # no_warning LABEL TEXT: this run's log has no line with TEXT
	local line
	line=$(journal | grep -m1 -F "$2")
	if [ -z "$line" ]; then pass "$1: no '$2' in the log"; else fail "$1: the log says: $line"; fi
}
stopped() { # stopped LABEL: systemctl stop leaves nothing
	check "$1: systemctl stop" systemctl stop hyper-sched
	guestcheck gone -label "$1" -base "$unit"
	check "$1: unit cgroup removed" test ! -e "$base"
	expect "$1: ActiveState" "$(show ActiveState)" inactive
	expect "$1: partitions released (root cpuset.cpus.isolated)" "$(cat /sys/fs/cgroup/cpuset.cpus.isolated)" ""
	local excl=/sys/fs/cgroup/system.slice/cpuset.cpus.exclusive
	if [ -e $excl ]; then
		info "$1: system.slice cpuset.cpus.exclusive is now '$(cat $excl)'"
	else
		info "$1: system.slice has no cpuset files now (systemd turned the controller off there): the grant is gone until ExecStartPre= writes it again"
	fi
}
finish() {
	journalctl -u hyper-sched --no-pager -o cat | tail -n 60 | sed 's/^/VMTEST LOG /'
	if [ "$FAILED" = 0 ]; then echo "VMTEST RESULT PASS"; else echo "VMTEST RESULT FAIL"; fi
	# The last close of a tty waits until its output is sent.
	exec >&- 2>&-
	sync
	systemctl --force --force poweroff
}
trap finish EXIT

info "systemd $(systemctl --version | head -1); kernel $(uname -r); $(nproc) cpus"

# --- 1. install -----------------------------------------------------------------
mkdir -p /tmp/lonely
cp /opt/hs/hyper-sched /tmp/lonely/
out=$(DESTDIR=/tmp/stage /opt/hs/install.sh /tmp/lonely/hyper-sched 2>&1)
rc=$?
if [ "$rc" != 0 ] && [[ $out == *hyper-schedctl* ]] && [ ! -e /tmp/stage ]; then
	pass "install.sh without hyper-schedctl fails, installing nothing: $out"
else
	fail "install.sh without hyper-schedctl: exit $rc, said '$(oneline <<<"$out")', staged: $(find /tmp/stage 2>/dev/null | oneline); want a failure naming hyper-schedctl and nothing staged"
fi
check "install.sh" /opt/hs/install.sh /opt/hs/hyper-sched
expect "hyper-schedctl installed" "$(command -v hyper-schedctl)" /usr/local/bin/hyper-schedctl
# A short watchdog for the test: without pings systemd would kill the
# service within the test's time. A start that hangs fails within 90 s,
# well inside the guest's timeout, so its checks and log are printed.
mkdir -p /etc/systemd/system/hyper-sched.service.d
printf '[Service]\nWatchdogSec=6s\nTimeoutStartSec=90s\n' >/etc/systemd/system/hyper-sched.service.d/vmtest.conf
systemctl daemon-reload

# --- 2. no partition drop-in ------------------------------------------------------
started "start" systemctl start hyper-sched
expect "start: delegated" "$(show Delegate)" yes
reg=$(curl -sS -F "fib.wasm=@/opt/hs/fib.wasm" "$url/register")
if [[ $reg == *'"status":"Success"'* ]]; then pass "register over curl"; else fail "register over curl: $reg"; fi
call "call over curl"
# system.slice is systemd's and lists no exclusive CPUs: the kernel
# refuses the remote partitions, the lanes stay SCHED_OTHER.
placement "start" invalid other

# --- 3. the partition drop-in of docs/ops.md ----------------------------------------
info "drop-in partitions.conf (from docs/ops.md): $(oneline </opt/hs/partitions.conf)"
install -m 0644 /opt/hs/partitions.conf /etc/systemd/system/hyper-sched.service.d/partitions.conf
systemctl daemon-reload
pid=$(show MainPID)
started "restart with the drop-in" systemctl restart hyper-sched
check "restart with the drop-in: new MainPID" test "$(show MainPID)" != "$pid"
modules_kept "restart with the drop-in"
placement "restart with the drop-in" isolated fifo
no_warning "restart with the drop-in" "isolation step not taken"
call "call on isolated partitions"
t_up=$(now)
pid=$(show MainPID)

# --- 4. crash paths -------------------------------------------------------------------
# A lane killed from outside: the supervisor respawns it (off its CPU,
# then placed) while the CPU serves with its other lanes.
old=$(hyper-schedctl pid worker-1:1)
kill -9 "$old"
check "lane killed: /healthz stays 200 while it is respawned" healthz
lane_back() { local p; p=$(hyper-schedctl pid worker-1:1) && [ "$p" != 0 ] && [ "$p" != "$old" ] && hyper-schedctl status worker-1:1 >/dev/null; }
t=$(now)
if wait_for 60 lane_back; then
	pass "lane killed: worker-1:1 (pid $old, SIGKILL) RUNNING again as pid $(hyper-schedctl pid worker-1:1) after $(since "$t") s"
else
	fail "lane killed: worker-1:1 (pid $old, SIGKILL) not RUNNING with a new pid after 60 s: $(hyper-schedctl status worker-1:1 | oneline)"
fi
check "lane killed: /healthz" healthz
placement "lane killed" isolated fifo
call "lane killed: call"

# hyper-schedctl restart: every lane of the CPU stopped and started again,
# RUNNING when it returns.
old=$(hyper-schedctl pid worker-2 | sort | oneline)
t=$(now)
out=$(hyper-schedctl restart worker-2 2>&1)
rc=$?
if [ "$rc" = 0 ]; then pass "hyper-schedctl restart worker-2 returned after $(since "$t") s: $(oneline <<<"$out")"; else fail "hyper-schedctl restart worker-2: exit $rc: $(oneline <<<"$out")"; fi
out=$(hyper-schedctl status worker-2 2>&1)
rc=$?
new=$(hyper-schedctl pid worker-2 | sort | oneline)
if [ "$rc" = 0 ] && [ "$(grep -cE '^worker-2:[0-9]+ +RUNNING ' <<<"$out")" = "$lanes" ] &&
	[ -z "$(comm -12 <(tr '|' '\n' <<<"$old") <(tr '|' '\n' <<<"$new"))" ]; then
	pass "restart worker-2: $lanes lanes RUNNING at once, pids $old → $new"
else
	fail "restart worker-2: status (exit $rc) $(oneline <<<"$out"); pids $old → $new; want $lanes lanes RUNNING with new pids"
fi
placement "restart worker-2" isolated fifo
call "restart worker-2: call"

# The watchdog is fed: longer than WatchdogSec after the start, the same
# process runs and systemd restarted nothing.
rest=$(awk -v s="$(since "$t_up")" 'BEGIN{r = 8 - s; print (r > 0 ? r : 0)}')
sleep "$rest"
check "watchdog fed: same MainPID and NRestarts 0 after $(since "$t_up") s (WatchdogSec=6s)" \
	test "$(show MainPID)" = "$pid" -a "$(show NRestarts)" = 0 -a "$(show ActiveState)" = active

# The supervisor killed outright: Restart=on-failure brings it back, with
# its ExecStartPre (valid partitions again), its modules, and no group or
# process of the dead run left.
expect "hyper-schedctl pid is MainPID" "$(hyper-schedctl pid)" "$pid"
olds=$(hyper-schedctl pid all | oneline)
t=$(now)
kill -9 "$pid"
back() { [ "$(show NRestarts)" = 1 ] && [ "$(show ActiveState)" = active ] && [ "$(show MainPID)" != "$pid" ]; }
if wait_for 90 back; then
	pass "supervisor SIGKILLed: systemd restarted it (NRestarts 1, active, MainPID $pid → $(show MainPID)) after $(since "$t") s"
else
	fail "supervisor SIGKILLed: after 90 s: NRestarts $(show NRestarts), ActiveState $(show ActiveState), MainPID $(show MainPID); want 1, active, not $pid"
fi
ready "supervisor SIGKILLed"
left=""
news=" $(show MainPID) $(hyper-schedctl pid all | tr '\n' ' ')"
for p in $pid ${olds//|/ }; do
	# Alive, and not a new process that got the pid again.
	[ ! -d /proc/"$p" ] || [[ $news == *" $p "* ]] || left="$left $p"
done
expect "supervisor SIGKILLed: processes of the dead run left" "$left" ""
placement "supervisor SIGKILLed" isolated fifo
modules_kept "supervisor SIGKILLed"
no_warning "supervisor SIGKILLed" "isolation step not taken"
info "supervisor SIGKILLed: the new run's log on stale groups: '$(journal | grep -m1 'previous run')' (empty: systemd had removed them)"
call "supervisor SIGKILLed: call"

# --- 5. stop and start --------------------------------------------------------------------
stopped "stop"
started "start after stop" systemctl start hyper-sched
placement "start after stop" isolated fifo
no_warning "start after stop" "isolation step not taken"
call "start after stop: call"
stopped "final stop"
# Over every run: children were born in their groups, never moved in
# after a refused clone3 (docs/isolation.md).
line=$(journalctl -u hyper-sched --no-pager -o cat | grep -m1 -F 'CLONE_INTO_CGROUP) failed')
if [ -z "$line" ]; then pass "children started inside their cgroups (no clone3 fallback in any run)"; else fail "children started outside their cgroups: $line"; fi
