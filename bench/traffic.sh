#!/bin/sh
# traffic.sh measures the smart-traffic example against the number of
# cameras: for each N, a fresh hyper-sched (so that no step inherits the
# estimates the previous one taught), hyper-bench prepare, then N cameras at
# 30 fps for DURATION, each frame one call with the workload's deadline. It
# ends with the HTML report. Needs root (cgroups) and `make build`.
#
#   bench/traffic.sh [WORKLOAD] [CAMERAS...]    (default bench/workloads/traffic.json, 1 2 4 6 8)
#
# Environment: PORT (24917; checked free), OUT (bench/results/traffic),
# LABEL (hyper-sched), DURATION (10s), WARMUP (3s), DRAIN (10s), FPS (30),
# CLIENT_CPUS (0: where hyper-bench runs, off the worker CPU), BIN (bin).
set -eu
cd "$(dirname "$0")/.."
WL=${1:-bench/workloads/traffic.json}
[ $# -gt 0 ] && shift
CAMERAS=${*:-1 2 4 6 8}
PORT=${PORT:-24917} OUT=${OUT:-bench/results/traffic} LABEL=${LABEL:-hyper-sched} BIN=${BIN:-bin}
mkdir -p "$OUT"
for n in $CAMERAS; do
	if ss -ltn | grep -q ":$PORT "; then echo "traffic.sh: port $PORT is taken; set PORT" >&2; exit 1; fi
	T=$(mktemp -d)
	"$BIN/hyper-sched" --listen "127.0.0.1:$PORT" --state-dir "$T/state" --cache-dir "$T/cache" --runtime-dir "$T/run" \
		--cgroup-name "hs-traffic-$PORT" >"$OUT/server-$LABEL-$n.log" 2>&1 &
	pid=$!
	for _ in $(seq 150); do curl -sf "127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.2; done
	if ! grep -q "msg=starting listen=127.0.0.1:$PORT" "$OUT/server-$LABEL-$n.log"; then
		echo "traffic.sh: the daemon did not start on $PORT" >&2; kill -TERM $pid 2>/dev/null; exit 1
	fi
	"$BIN/hyper-bench" prepare -url "http://127.0.0.1:$PORT" -workload "$WL" -o "$OUT/prepared-$LABEL-$n.json" >"$OUT/prepare-$LABEL-$n.txt" 2>&1 ||
		cat "$OUT/prepare-$LABEL-$n.txt"
	echo "== $n cameras; $(uptime)"
	taskset -c "${CLIENT_CPUS:-0}" "$BIN/hyper-bench" run -url "http://127.0.0.1:$PORT" -workload "$WL" -mode cameras -cameras "$n" \
		-fps "${FPS:-30}" -duration "${DURATION:-10s}" -warmup "${WARMUP:-3s}" -drain "${DRAIN:-10s}" \
		-label "$LABEL" -scenario traffic -out "$OUT/run-$LABEL-$n.json"
	kill -TERM $pid; wait $pid || true
	rm -rf "$T"
done
"$BIN/hyper-bench" report -o "$OUT/report.html" "$OUT"/run-*.json
