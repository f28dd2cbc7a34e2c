#!/usr/bin/env bash
# upload-memory.sh: the supervisor's resident memory across 50 registers of
# 30 MiB modules and their 50 deletes (issue 14). Needs root (cgroups).
#
#   bench/upload-memory.sh [BINARY [PARALLEL]]
#
# BINARY defaults to a fresh build; PARALLEL registers run at once (default
# 1). Prints VmRSS (now) and VmHWM (peak) of the supervisor after start,
# after the registers, right after the deletes and WAIT (30) s later, and the HTTP
# status of every register.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"' EXIT
bin=${1:-}
if [ -z "$bin" ]; then
	go build -o "$work/" ./cmd/hyper-sched
	bin=$work/hyper-sched
fi
par=${2:-1}
port=3978
# Distinct 30 MiB modules: fib.wasm plus a custom section of 30 MiB.
bench/modules.py "$work/m" "${N:-50}" $(( (30 << 20) - 4 ))
"$bin" --listen 127.0.0.1:$port --cpus 1 --state-dir "$work/state" --cache-dir "$work/cache" \
	--runtime-dir "$work/run" --cgroup-name hyper-sched-upmem 2>"$work/log" &
pid=$!
until curl -sf 127.0.0.1:$port/healthz >/dev/null; do sleep 0.05; done
rss() { printf '%-22s %s\n' "$1" "$(grep -E 'VmHWM|VmRSS' /proc/$pid/status | tr -s ' \t\n' ' ')"; }
rss started
export port
ls "$work"/m/*.wasm | xargs -P "$par" -I{} sh -c \
	'curl -s -o /dev/null -w "%{http_code}\n" -F "$(basename {})=@{}" -F export_func=noop 127.0.0.1:$port/register' |
	sort | uniq -c | sed 's/^/registers: /'
rss registered
for i in $(seq -w 0 $((${N:-50} - 1))); do curl -s -o /dev/null -X DELETE 127.0.0.1:$port/modules/m$i.wasm; done
rss deleted
sleep "${WAIT:-30}"
rss "${WAIT:-30} s later"
curl -s 127.0.0.1:$port/metrics | grep -E '^go_memstats_(heap_(alloc|idle|inuse|released|sys)|sys|next_gc)_bytes|^go_gc_duration_seconds_count' | sed 's/^/metrics: /'
