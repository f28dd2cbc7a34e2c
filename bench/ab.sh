#!/usr/bin/env bash
# bench/ab.sh: two builds of hyper-sched side by side, against the plain
# server (bench/gobaseline), in the same time slots (issue 15).
#
#   sudo bench/ab.sh OLD_BIN NEW_BIN
#
# OLD_BIN and NEW_BIN are hyper-sched binaries (e.g. from `git worktree add
# /tmp/old <rev> && cd /tmp/old && go build -o bin/ ./cmd/hyper-sched`).
# All three servers run at once; then
#   1. ROUNDS rounds of bench/overhead.py (CALLS calls each, PY_ARGS extra,
#      e.g. --raw), the three interleaved in batches, the two builds'
#      order swapped every round: on this machine whichever runs first in a
#      pair fares measurably worse;
#   2. WRK_ROUNDS rounds of wrk at 128 connections, WRK_SECS each, the order
#      of the three rotating (when wrk is installed).
# Prints each round and, per build, the median of its rounds and NEW/OLD
# round by round. The load generator runs on CLIENT_CPUS (0).
set -euo pipefail

[[ $# == 2 ]] || { sed -n '2,17p' "$0" >&2; exit 2; }
[[ $(id -u) == 0 ]] || { echo "bench/ab.sh: needs root (cgroups)" >&2; exit 1; }
old=$(realpath "$1")
new=$(realpath "$2")
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${BENCH_BIN:-$root/bench/bin}
rounds=${ROUNDS:-8}
calls=${CALLS:-3000}
wrk_rounds=${WRK_ROUNDS:-6}
wrk_secs=${WRK_SECS:-4}
client_cpus=${CLIENT_CPUS:-0}
ports=(${OLD_PORT:-3961} ${NEW_PORT:-3962} ${GO_PORT:-3963})
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"
bench_tmp hs-ab

for i in 0 1; do
	name=$([[ $i == 0 ]] && echo old || echo new)
	b=$([[ $i == 0 ]] && echo "$old" || echo "$new")
	"$b" --listen "127.0.0.1:${ports[$i]}" --state-dir "$tmp/$name/state" --cache-dir "$tmp/$name/cache" \
		--runtime-dir "$tmp/$name/run" --cgroup-name "hs-ab-$name-$$" >"$tmp/$name.log" 2>&1 &
	pids+=($!)
done
taskset -c 0 "$bin/gobaseline" -listen "127.0.0.1:${ports[2]}" -modules "$tmp/modules" >"$tmp/gb.log" 2>&1 &
pids+=($!)
for p in "${ports[@]:0:2}"; do
	for _ in $(seq 300); do
		curl -sf "http://127.0.0.1:$p/healthz" >/dev/null && break
		sleep 0.1
	done
	curl -sf -F "fib.wasm=@$root/testdata/fib.wasm" "http://127.0.0.1:$p/register" >/dev/null ||
		{ echo "bench/ab.sh: the build on port $p did not come up; logs in $tmp" >&2; cat "$tmp"/*.log >&2; exit 1; }
done
echo "date: $(date -u +%FT%TZ); $(uptime)"
echo "old: $old"
echo "new: $new"

url() { echo "$1=http://127.0.0.1:$2"; }
echo "== overhead.py, $rounds rounds of $calls calls each ${PY_ARGS:-}"
for r in $(seq "$rounds"); do
	pair=("$(url old "${ports[0]}")" "$(url new "${ports[1]}")")
	((r % 2)) || pair=("${pair[1]}" "${pair[0]}")
	# shellcheck disable=SC2086
	taskset -c "$client_cpus" python3 "$root/bench/overhead.py" -n "$calls" -w "$((r == 1 ? 2000 : 300))" ${PY_ARGS:-} \
		"${pair[@]}" "$(url go-baseline "${ports[2]}")" | sed "s/^/round $r  /"
done | tee "$tmp/py.txt"
python3 - "$tmp/py.txt" <<'EOF'
import re, statistics, sys
p50, ratio = {}, {}
for line in open(sys.argv[1]):
    m = re.match(r"round \d+\s+(\S+)\s+client p50\s+([\d.]+).*ratio p50 ([\d.]+)", line)
    if m:
        p50.setdefault(m[1], []).append(float(m[2]))
        ratio.setdefault(m[1], []).append(float(m[3]))
for k in ("old", "new"):
    print(f"{k}: client p50 median {statistics.median(p50[k]):.1f} µs, ratio to the plain server median {statistics.median(ratio[k]):.3f}")
r = [n / o for n, o in zip(p50["new"], p50["old"])]
print(f"new/old client p50 by round: {' '.join(f'{x:.3f}' for x in r)}; median {statistics.median(r):.3f}")
EOF

if command -v wrk >/dev/null && ((wrk_rounds > 0)); then
	bench_noop_lua "$tmp/noop.lua"
	echo "== wrk, 128 connections, $wrk_rounds rounds of ${wrk_secs}s each, order rotating"
	names=(old new go-baseline)
	for r in $(seq "$wrk_rounds"); do
		for k in 0 1 2; do
			i=$(((k + r) % 3))
			rps=$(taskset -c "$client_cpus" wrk -t 1 -c 128 -d "${wrk_secs}s" -s "$tmp/noop.lua" \
				"http://127.0.0.1:${ports[$i]}/call" | awk '/Requests\/sec/ {print $2}')
			echo "round $r ${names[$i]} $rps calls/s"
		done
	done | tee "$tmp/wrk.txt"
	python3 - "$tmp/wrk.txt" <<'EOF'
import statistics, sys
rps = {}
for line in open(sys.argv[1]):
    f = line.split()
    rps.setdefault(f[2], []).append(float(f[3]))
base = statistics.median(rps["go-baseline"])
for k in ("old", "new"):
    print(f"{k}: median {statistics.median(rps[k]):.0f} calls/s, {statistics.median(rps[k]) / base:.3f} of the plain server's {base:.0f}")
EOF
fi
