#!/usr/bin/env bash
# bench/overhead.sh: the per-job overhead of hyper-sched against the plain
# net/http + wazero server (bench/gobaseline), both running at once and
# measured interleaved (issue 15). Needs root (cgroups).
#
#   1. Python http.client, one keep-alive connection each, calls alternating
#      in batches (bench/overhead.py): client p50/p99, the ratio, and the
#      daemon's own timings_us.total, in PY_ROUNDS rounds on fresh
#      connections and the median of the rounds' ratios; then the same
#      from a raw socket.
#   2. hyper-bench closed loop, 1 client, ROUNDS short runs per server
#      alternating.
#   3. Throughput with 128 keep-alive connections (hyper-bench closed loop,
#      and wrk when installed), the baseline pinned to the same CPUs as
#      hyper-sched's housekeeping (HTTP_CPUS, default 0).
#
# The load generator runs on CLIENT_CPUS (default 0: off the worker CPU).
# Knobs: HS_PORT/GO_PORT (3941/3942), CALLS (20000), PY_ROUNDS (8), ROUNDS (4),
# ROUND_SECS (5), HS_ARGS (extra hyper-sched flags), OUT (results dir).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin=${BENCH_BIN:-$root/bench/bin}
hs_port=${HS_PORT:-3941}
go_port=${GO_PORT:-3942}
calls=${CALLS:-20000}
py_rounds=${PY_ROUNDS:-8}
rounds=${ROUNDS:-4}
round_secs=${ROUND_SECS:-5}
client_cpus=${CLIENT_CPUS:-0}
http_cpus=${HTTP_CPUS:-0}
out=${OUT:-$root/bench/results/overhead-ipc}
[[ $(id -u) == 0 ]] || { echo "bench/overhead.sh: needs root (cgroups)" >&2; exit 1; }
mkdir -p "$out"
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"
bench_tmp hs-overhead

wait_ok() { # URL CURL_ARGS...
	local url=$1
	shift
	for _ in $(seq 300); do
		[[ $(curl -s -o /dev/null -w '%{http_code}' "$@" "$url" || true) == 200 ]] && return 0
		sleep 0.1
	done
	echo "bench/overhead.sh: $url not ready; logs in $tmp" >&2
	cat "$tmp"/*.log >&2
	return 1
}

hs=http://127.0.0.1:$hs_port
gb=http://127.0.0.1:$go_port
# shellcheck disable=SC2086
"$bin/hyper-sched" --listen "127.0.0.1:$hs_port" --state-dir "$tmp/state" --cache-dir "$tmp/cache" \
	--runtime-dir "$tmp/run" --cgroup-name "hs-overhead-$$" ${HS_ARGS:-} >"$tmp/hs.log" 2>&1 &
pids+=($!)
taskset -c "$http_cpus" "$bin/gobaseline" -listen "127.0.0.1:$go_port" -modules "$tmp/modules" >"$tmp/gb.log" 2>&1 &
pids+=($!)
wait_ok "$hs/healthz"
curl -s -F "fib.wasm=@$root/testdata/fib.wasm" "$hs/register" >/dev/null
wait_ok "$gb/call" -d '{"wasm_name":"fib.wasm","export_func":"noop","params":[]}'
{ echo "date: $(date -u +%FT%TZ)"; uptime; git -C "$root" describe --always --dirty; echo "HS_ARGS=${HS_ARGS:-}"; } | tee "$out/env.txt"
if [[ -x $bin/hiccup ]]; then # the CPUs' noise floor at the time (docs/benchmarks.md)
	for c in 0 1; do echo "CPU $c: $(taskset -c "$c" "$bin/hiccup" -d 1s | head -1)"; done | tee -a "$out/env.txt"
fi

# Each Python comparison runs in PY_ROUNDS short rounds, on fresh
# connections, and the figure is the median of the rounds' p50 ratios: a
# burst of the host's noise spoils a round, not the figure.
python_rounds() { # NAME [overhead.py args]
	local name=$1 r
	shift
	for r in $(seq "$py_rounds"); do
		# The first round warms up longer: the servers are fresh, and
		# hyper-sched calibrates the new call in the background.
		taskset -c "$client_cpus" python3 "$root/bench/overhead.py" "$@" -n "$((calls / py_rounds))" -w "$((r == 1 ? 2000 : 300))" \
			hyper-sched="$hs" go-baseline="$gb" | tee "$out/$name-$r.txt"
	done
	python3 - "$out" "$name" <<'EOF'
import glob, re, statistics, sys
r = [float(re.search(r"ratio p50 ([0-9.]+)", open(f).readline()).group(1))
     for f in sorted(glob.glob(f"{sys.argv[1]}/{sys.argv[2]}-*.txt"))]
print(f"p50 ratio by round: {' '.join(f'{x:.3f}' for x in r)}; median {statistics.median(r):.3f}")
EOF
}
echo "== 1. Python http.client, interleaved, $calls calls each in $py_rounds rounds"
python_rounds python | tee "$out/python.txt"
echo "== 1b. the same with a raw socket, each request in one send"
python_rounds python-raw --raw | tee "$out/python-raw.txt"

echo "== 2. hyper-bench closed loop, 1 client, $rounds x ${round_secs}s each, alternating"
wl=$root/bench/workloads/overhead.json
for r in $(seq "$rounds"); do
	for t in hyper-sched:$hs go-baseline:$gb; do
		taskset -c "$client_cpus" "$bin/hyper-bench" run -url "${t#*:}" -workload "$wl" -mode closed -clients 1 \
			-duration "${round_secs}s" -warmup 1s -label "${t%%:*}" -scenario overhead-ipc -out "$out/run-${t%%:*}-1c-$r.json" >/dev/null
	done
done

echo "== 3. 128 keep-alive connections, ${round_secs}s each, alternating; baseline on CPUs $http_cpus"
for r in $(seq 2); do
	for t in hyper-sched:$hs go-baseline:$gb; do
		taskset -c "$client_cpus" "$bin/hyper-bench" run -url "${t#*:}" -workload "$wl" -mode closed -clients 128 \
			-duration "${round_secs}s" -warmup 1s -label "${t%%:*}" -scenario overhead-ipc-128 -out "$out/run-${t%%:*}-128c-$r.json" >/dev/null
	done
done
python3 - "$out" <<'EOF' | tee "$out/hyper-bench.txt"
import glob, json, statistics, sys
def runs(label, c):
    return [json.load(open(f))["total"] for f in sorted(glob.glob(f"{sys.argv[1]}/run-{label}-{c}-*.json"))]
for c in ("1c", "128c"):
    med = {}
    for label in ("hyper-sched", "go-baseline"):
        rs = runs(label, c)
        if not rs:
            continue
        p50 = statistics.median(r["latency_ms"]["p50"] * 1000 for r in rs)
        p99 = statistics.median(r["latency_ms"]["p99"] * 1000 for r in rs)
        tput = statistics.median(r["throughput_per_s"] for r in rs)
        srv = statistics.median(r["server_total_ms"]["p50"] * 1000 for r in rs) if rs[0]["server_total_ms"]["count"] else float("nan")
        med[label] = (p50, tput)
        print(f"{c:5s} {label:12s} client p50 {p50:7.1f} µs p99 {p99:7.1f} µs  {tput:8.0f} calls/s  server total p50 {srv:6.1f} µs  ({len(rs)} runs, medians)")
    if len(med) == 2:
        print(f"{c:5s} ratio hyper-sched/go-baseline: p50 {med['hyper-sched'][0] / med['go-baseline'][0]:.3f}, throughput {med['hyper-sched'][1] / med['go-baseline'][1]:.3f}")
EOF
if command -v wrk >/dev/null; then
	bench_noop_lua "$tmp/noop.lua"
	for r in $(seq 2); do
		for t in hyper-sched:$hs go-baseline:$gb; do
			echo "-- wrk ${t%%:*} round $r"
			taskset -c "$client_cpus" wrk -t 1 -c 128 -d "${round_secs}s" -s "$tmp/noop.lua" "${t#*:}/call" | grep -E 'Requests/sec|Non-2xx|Latency'
		done
	done | tee "$out/wrk.txt"
fi
