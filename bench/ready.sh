#!/usr/bin/env bash
# ready.sh: time from exec of hyper-sched to /healthz 200 (when READY=1 goes
# to systemd) with 0, 10 and 100 registered modules (issue #5). Needs root.
#
#   bench/ready.sh
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/" ./cmd/hyper-sched
port=3977
# Distinct modules: fib.wasm plus a custom section holding the index.
bench/modules.py "$work" 100
daemon() { "$work/hyper-sched" --listen 127.0.0.1:$port --state-dir "$work/d$1/state" --cache-dir "$work/d$1/cache" \
	--runtime-dir "$work/d$1/run" --cgroup-name hyper-sched-ready 2>/dev/null & pid=$!; }
healthy() { until curl -sf 127.0.0.1:$port/healthz >/dev/null; do sleep 0.005; done; }
for n in 0 10 100; do
	daemon $n; healthy
	for ((i = 0; i < n; i++)); do
		m=$(printf 'm%02d.wasm' $i)
		curl -sf -F "$m=@$work/$m" -F export_func=noop 127.0.0.1:$port/register >/dev/null
	done
	kill $pid; wait $pid || true
	for run in 1 2 3; do
		t0=$(date +%s%N); daemon $n; healthy; t1=$(date +%s%N)
		echo "modules=$n run=$run ready_ms=$(( (t1 - t0) / 1000000 ))"
		kill $pid; wait $pid || true
	done
done
