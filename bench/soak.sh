#!/usr/bin/env bash
# soak.sh: a million calls through hyper-bench (no-ops, deadline calls,
# traps, invalid requests), with every hyper-sched process's RSS and open fds
# recorded before and after (issue #8).
#
#   bench/soak.sh [DURATION]   (default 180s, about a million calls here; needs root)
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-180s}
work=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/" ./cmd/hyper-sched ./cmd/hyper-bench ./cmd/hyper-schedctl
url=http://127.0.0.1:3941
"$work/hyper-sched" --listen 127.0.0.1:3941 --state-dir "$work/state" --cache-dir "$work/cache" \
	--runtime-dir "$work/run" --cgroup-name hyper-sched-soak 2>"$work/daemon.log" &
pid=$!
until curl -sf "$url/healthz" >/dev/null; do sleep 0.1; done

snapshot() { # name: pid rss_kib fds, for the supervisor and each child
	for p in $pid $(pgrep -P $pid); do
		printf '%-10s pid %-7s rss %6s KiB  fds %s\n' "$(tr '\0' ' ' </proc/$p/cmdline | awk '{print $2 ~ /^__/ ? $2 : "supervisor"}')" \
			"$p" "$(awk '/VmRSS/ {print $2}' /proc/$p/status)" "$(ls /proc/$p/fd | wc -l)"
	done
}
# Registered by hand: prepare would /test the trap class, and fail on it.
for m in fib trap; do
	curl -sf -F "$m.wasm=@testdata/$m.wasm" "$url/register" >/dev/null
done
# Warm up so the first snapshot sees a steady state, not an empty process.
"$work/hyper-bench" run -url "$url" -workload bench/workloads/soak.json -mode closed -clients 8 \
	-duration 5s -out "$work/warm.json" >/dev/null
echo "== before"; snapshot
start=$(date +%s)
"$work/hyper-bench" run -url "$url" -workload bench/workloads/soak.json -mode closed -clients 8 \
	-duration "$duration" -out bench/results/soak.json | tail -20
echo "== after ($(( $(date +%s) - start )) s)"; snapshot
curl -s "$url/status" | python3 -c 'import json,sys; s=json.load(sys.stdin); print("counters", s["counters"], "in_flight", s["in_flight"])'
