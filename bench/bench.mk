# bench/bench.mk: hyper-bench scenarios, included by the top-level Makefile.
#
#   make bench-overhead     noop, one client, closed loop (20 s per target)
#   make bench-throughput   fib_r(20), closed loop, 1..64 clients
#   make bench-overload     two deadline classes at 0.5x..4x the worker core's capacity
#   make bench-bimodal      rare fib_r(32) D=1000 among fib_r(20) D=10, 400 calls/s
#   make bench-lanes        fib_r(35) D=2000 among fib_r(27) D=8 at 1x/2x/4x, --lanes 3 vs --lanes 1
#   make bench-report       re-render bench/results/report.html
#
# Each scenario builds the binaries, starts hyper-sched (as root: cgroups),
# the Go baseline and the Node.js baseline in turn on private ports and
# temporary directories, runs hyper-bench against each, stops them, and writes
# bench/results/SCENARIO/run-*.json and bench/results/report.html. Knobs (see
# bench/scenario.sh): BENCH_DURATION (per step; default 20s for overhead, 30s
# otherwise), BENCH_WARMUP (2s), BENCH_TARGETS, OVERLOAD_FACTORS ("0.5 1 2 4"),
# THROUGHPUT_CLIENTS ("1 4 16 64"), BIMODAL_RATE (400 calls/s), HS_PORT/GO_PORT/NODE_PORT
# (3931-3933), BENCH_CLIENT_CPUS (taskset list for hyper-bench; default unpinned).
# Example: make bench-overload BENCH_DURATION=10s

GO            ?= go
BENCH_BIN     ?= $(CURDIR)/bench/bin
BENCH_RESULTS ?= $(CURDIR)/bench/results

BENCH_ENV = BENCH_BIN=$(BENCH_BIN) BENCH_RESULTS=$(BENCH_RESULTS)

.PHONY: bench-build bench-overhead bench-throughput bench-overload bench-bimodal bench-lanes bench-report bench-clean

bench-build:
	$(GO) build -o $(BENCH_BIN)/ ./cmd/hyper-sched ./cmd/hyper-bench ./bench/gobaseline ./bench/hiccup

bench-overhead bench-throughput bench-overload bench-bimodal bench-lanes: bench-%: bench-build
	$(BENCH_ENV) bench/scenario.sh $*

bench-report: bench-build
	$(BENCH_BIN)/hyper-bench report -o $(BENCH_RESULTS)/report.html $(wildcard $(BENCH_RESULTS)/*/run-*.json)

bench-clean:
	rm -rf $(BENCH_BIN) $(BENCH_RESULTS)
