#!/usr/bin/env bash
# bench/scenario.sh SCENARIO: run one hyper-bench scenario end to end.
#
#   overhead    noop, one client, closed loop, keep-alive (default 20 s per target)
#   throughput  fib_r(20) D=50, closed loop, THROUGHPUT_CLIENTS clients (default 30 s per step)
#   overload    fib_r(30) D=100 + fib_r(27) D=20, equal shares, open loop at
#               OVERLOAD_FACTORS x the worker core's capacity (measured by /test)
#   bimodal     fib_r(32) D=1000 (0.5%) among fib_r(20) D=10 (99.5%), open loop at BIMODAL_RATE (400/s)
#   lanes       fib_r(35) D=2000 among fib_r(27) D=8 (1:60), open loop at LANES_FACTORS
#               (default "1 2 4") x the worker core's capacity, with --lanes 3
#               (target hyper-sched) against --lanes 1 (target hyper-sched-lanes1)
#
# It starts each system under test on a private port with private directories,
# runs hyper-bench against it, stops it, and writes
# $BENCH_RESULTS/SCENARIO/run-LABEL-STEP.json, prepared.json, commands.txt,
# uptime.txt and server-LABEL.log, then $BENCH_RESULTS/report.html from every result present.
# Every process it starts is stopped by its pid on exit. hyper-sched needs root
# (cgroups). Called by bench/bench.mk; the environment variables below are its
# knobs.
set -euo pipefail

scenario=${1:?usage: bench/scenario.sh overhead|throughput|overload|bimodal}
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${BENCH_BIN:-$root/bench/bin}
results=${BENCH_RESULTS:-$root/bench/results}
default_targets="hyper-sched go-baseline node-baseline"
[[ $scenario == lanes ]] && default_targets="hyper-sched hyper-sched-lanes1"
targets=${BENCH_TARGETS:-$default_targets}
warmup=${BENCH_WARMUP:-2s}
hs_port=${HS_PORT:-3931}
go_port=${GO_PORT:-3932}
node_port=${NODE_PORT:-3933}
# The load generator's CPUs ("" = unpinned, as a user would run it).
client_cpus=${BENCH_CLIENT_CPUS:-}

case $scenario in
overhead) duration=${BENCH_DURATION:-20s} ;;
throughput | overload | bimodal | lanes) duration=${BENCH_DURATION:-30s} ;;
*) echo "bench/scenario.sh: unknown scenario $scenario" >&2; exit 2 ;;
esac
workload=$root/bench/workloads/$scenario.json
out=$results/$scenario
mkdir -p "$out"
rm -f "$out"/run-*.json
tmp=$(mktemp -d /tmp/hyper-bench.XXXXXX)
mkdir -p "$tmp/modules"
cp "$root/testdata/fib.wasm" "$tmp/modules/"

pid=""
stop_server() {
	if [[ -n $pid ]]; then
		kill "$pid" 2>/dev/null || true
		for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
		pid=""
		cp "$tmp/server.log" "$out/server-$current.log" 2>/dev/null || true
	fi
}
cleanup() {
	stop_server
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "== $*" >&2; }
record() { echo "$*" >>"$out/commands.txt"; }
: >"$out/commands.txt"
{ echo "start: $(date -u +%FT%TZ) $(uptime)"; } >"$out/uptime.txt"

# wait_ready URL CURL_ARGS...: poll until the server answers 200.
wait_ready() {
	local url=$1
	shift
	for _ in $(seq 300); do
		if [[ $(curl -s -o /dev/null -w '%{http_code}' "$@" "$url" || true) == 200 ]]; then
			return 0
		fi
		kill -0 "$pid" 2>/dev/null || { echo "bench/scenario.sh: server exited; its log:" >&2; cat "$tmp/server.log" >&2; return 1; }
		sleep 0.1
	done
	echo "bench/scenario.sh: $url not ready after 30 s; server log:" >&2
	cat "$tmp/server.log" >&2
	return 1
}

# start LABEL: start that system under test; sets pid and url. Its log is
# kept as $out/server-LABEL.log when it stops.
current=""
start() {
	current=$1
	case $1 in
	hyper-sched | hyper-sched-lanes1)
		[[ $(id -u) == 0 ]] || { echo "bench/scenario.sh: hyper-sched needs root (cgroups)" >&2; exit 1; }
		rm -rf "$tmp/hs"
		mkdir -p "$tmp/hs"
		local extra=()
		[[ $1 == hyper-sched-lanes1 ]] && extra=(--lanes 1)
		record "$bin/hyper-sched --listen 127.0.0.1:$hs_port --state-dir $tmp/hs/state --cache-dir $tmp/hs/cache --runtime-dir $tmp/hs/run ${extra[*]} &"
		"$bin/hyper-sched" --listen "127.0.0.1:$hs_port" --state-dir "$tmp/hs/state" --cache-dir "$tmp/hs/cache" \
			--runtime-dir "$tmp/hs/run" "${extra[@]}" >"$tmp/server.log" 2>&1 &
		pid=$!
		url=http://127.0.0.1:$hs_port
		wait_ready "$url/healthz"
		;;
	go-baseline)
		record "$bin/gobaseline -listen 127.0.0.1:$go_port -modules $tmp/modules &"
		"$bin/gobaseline" -listen "127.0.0.1:$go_port" -modules "$tmp/modules" >"$tmp/server.log" 2>&1 &
		pid=$!
		url=http://127.0.0.1:$go_port
		wait_ready "$url/call" -d '{"wasm_name":"fib.wasm","export_func":"noop","params":[]}'
		;;
	node-baseline)
		record "node $root/bench/nodebaseline/server.js --listen 127.0.0.1:$node_port --modules $tmp/modules &"
		node "$root/bench/nodebaseline/server.js" --listen "127.0.0.1:$node_port" --modules "$tmp/modules" >"$tmp/server.log" 2>&1 &
		pid=$!
		url=http://127.0.0.1:$node_port
		wait_ready "$url/call" -d '{"wasm_name":"fib.wasm","export_func":"noop","params":[]}'
		;;
	*) echo "bench/scenario.sh: unknown target $1" >&2; exit 2 ;;
	esac
}

hb() {
	local cmd=("$bin/hyper-bench" "$@")
	if [[ -n $client_cpus ]]; then cmd=(taskset -c "$client_cpus" "${cmd[@]}"); fi
	record "${cmd[*]}"
	"${cmd[@]}"
}

# bench LABEL STEP ARGS...: one hyper-bench run.
bench() {
	local label=$1 step=$2
	shift 2
	log "$scenario: $label $step"
	if [[ $label == hyper-sched* ]]; then
		# Measure again, so that every step starts from /test estimates and
		# not from what the previous step's load taught the estimator.
		hb prepare -url "$url" -workload "$workload" >/dev/null
	fi
	hb run -url "$url" -workload "$workload" -duration "$duration" -warmup "$warmup" \
		-label "$label" -scenario "$scenario" -out "$out/run-$label-$step.json" "$@"
	sleep 2 # let queues and the machine settle before the next step
}

# Scenarios with rates relative to the capacity measure it on hyper-sched:
# prepare registers the module and /test runs each class in benchd, which
# stores the estimate and gives the capacity for "-rate Nx". The baselines get
# the same absolute rates. hyper-sched is prepared whenever it runs (its state
# dir is fresh), and first on its own if a baseline runs before it.
prepared=$out/prepared.json
needs_capacity=false
[[ $scenario == overload || $scenario == bimodal || $scenario == lanes ]] && needs_capacity=true
first=${targets%% *}
prepared_once=false
if $needs_capacity && [[ $first != hyper-sched* ]]; then
	start hyper-sched
	log "$scenario: prepare on hyper-sched"
	hb prepare -url "$url" -workload "$workload" -o "$prepared"
	stop_server
	prepared_once=true
fi

for target in $targets; do
	start "$target"
	if [[ $target == hyper-sched* ]]; then
		log "$scenario: prepare on $target"
		if $prepared_once; then
			# Keep the capacity the baselines already ran with.
			hb prepare -url "$url" -workload "$workload"
		else
			hb prepare -url "$url" -workload "$workload" -o "$prepared"
		fi
	fi
	case $scenario in
	overhead)
		bench "$target" c1 -mode closed -clients 1
		;;
	throughput)
		for c in ${THROUGHPUT_CLIENTS:-1 4 16 64}; do
			bench "$target" "c$c" -mode closed -clients "$c"
		done
		;;
	overload)
		for f in ${OVERLOAD_FACTORS:-0.5 1 2 4}; do
			bench "$target" "${f}x" -mode open -rate "${f}x" -prepared "$prepared"
		done
		;;
	bimodal)
		rate=${BIMODAL_RATE:-400}
		bench "$target" "$rate" -mode open -rate "$rate" -prepared "$prepared"
		;;
	lanes)
		for f in ${LANES_FACTORS:-1 2 4}; do
			bench "$target" "${f}x" -mode open -rate "${f}x" -prepared "$prepared"
		done
		;;
	esac
	stop_server
done

echo "end:   $(date -u +%FT%TZ) $(uptime)" >>"$out/uptime.txt"
cat "$out/uptime.txt" >&2
shopt -s nullglob
"$bin/hyper-bench" report -o "$results/report.html" "$results"/*/run-*.json
