#!/usr/bin/env bash
# bench/percall.sh: what one no-op call costs a server process on its own
# CPUs: CPU time and context switches per call, read from /proc before and
# after N calls of bench/overhead.py's client (issue 15, docs/benchmarks.md).
#
#   bench/percall.sh PID URL [N] [--raw]
#
# PID is the server (hyper-sched's supervisor, or bench/gobaseline); every
# thread of it is counted, its sysmon included. The client runs on
# CLIENT_CPUS (default 0), as in bench/overhead.sh. Needs Linux /proc; the
# CPU times have the kernel's tick resolution (10 ms), so N should be in the
# thousands.
set -euo pipefail

[[ $# -ge 2 ]] || { sed -n '2,12p' "$0" >&2; exit 2; }
pid=$1 url=$2 n=${3:-5000} raw=${4:-}
root=$(cd "$(dirname "$0")/.." && pwd)
[[ -d /proc/$pid ]] || { echo "bench/percall.sh: no process $pid" >&2; exit 1; }

snap() { # per thread: tid voluntary nonvoluntary ticks
	for t in /proc/"$pid"/task/*; do
		awk -v tid="${t##*/}" '/^voluntary_ctxt_switches/ {v=$2} /^nonvoluntary_ctxt_switches/ {w=$2}
			END {printf "%s %s %s ", tid, v, w}' "$t/status"
		awk '{print $14 + $15}' "$t/stat"
	done | sort
}
before=$(snap)
# shellcheck disable=SC2086
taskset -c "${CLIENT_CPUS:-0}" python3 "$root/bench/overhead.py" -n "$n" -w 0 -b "$n" $raw "server=$url" | cut -d'|' -f1
after=$(snap)
hz=$(getconf CLK_TCK)
join <(echo "$before") <(echo "$after") | awk -v n="$n" -v hz="$hz" '
	{ v += $5 - $2; w += $6 - $3; cpu += ($7 - $4) * 1e6 / hz }
	END { printf "per call: CPU %.1f µs, context switches %.2f voluntary + %.2f involuntary\n", cpu / n, v / n, w / n }'
