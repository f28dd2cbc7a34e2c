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
python3 - "$work" <<'PY'
import sys
wasm = open('testdata/fib.wasm', 'rb').read()
def leb(n):
    out = b''
    while True:
        b, n = n & 0x7f, n >> 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])
for i in range(100):
    payload = leb(1) + b'x' + str(i).encode()
    open(f'{sys.argv[1]}/m{i}.wasm', 'wb').write(wasm + b'\x00' + leb(len(payload)) + payload)
PY
daemon() { "$work/hyper-sched" --listen 127.0.0.1:$port --state-dir "$work/d$1/state" --cache-dir "$work/d$1/cache" \
	--runtime-dir "$work/d$1/run" --cgroup-name hyper-sched-ready 2>/dev/null & pid=$!; }
healthy() { until curl -sf 127.0.0.1:$port/healthz >/dev/null; do sleep 0.005; done; }
for n in 0 10 100; do
	daemon $n; healthy
	for ((i = 0; i < n; i++)); do
		curl -sf -F "m$i.wasm=@$work/m$i.wasm" -F export_func=noop 127.0.0.1:$port/register >/dev/null
	done
	kill $pid; wait $pid || true
	for run in 1 2 3; do
		t0=$(date +%s%N); daemon $n; healthy; t1=$(date +%s%N)
		echo "modules=$n run=$run ready_ms=$(( (t1 - t0) / 1000000 ))"
		kill $pid; wait $pid || true
	done
done
