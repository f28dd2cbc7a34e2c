# hyper-sched: `make run` starts the daemon with its defaults (as root),
# `make test` is what CI runs.

GO      ?= go
BIN     := bin
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: all build run test vet unit fixtures check-fixtures fuzz-smoke bench vm-test install clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/ ./cmd/...

run: build
	$(BIN)/hyper-sched

# vet, then every test under the race detector: unit tests and the
# integration tests that start the real binary and real workers. -p 1:
# packages share the machine's cgroups and CPUs, so they run one at a time.
test: vet check-fixtures
	$(GO) test -race -count=1 -p 1 -timeout 30m ./...

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...

# Rebuild the wasm fixtures from their sources.
fixtures:
	./testdata/build.sh

# The checked-in .wasm files must be what their sources build to.
check-fixtures:
	@if command -v wat2wasm >/dev/null; then \
		./testdata/build.sh && git diff --exit-code --stat -- testdata; \
	else echo "check-fixtures: wat2wasm (wabt) not installed, skipped"; fi

# Each fuzz target briefly; the corpora live in testdata/fuzz of each package.
FUZZTIME ?= 10s
fuzz-smoke:
	$(GO) test -run XXX -fuzz '^FuzzRead$$' -fuzztime $(FUZZTIME) ./ipc/
	$(GO) test -run XXX -fuzz '^FuzzCompile$$' -fuzztime $(FUZZTIME) ./engine/
	$(GO) test -run XXX -fuzz '^FuzzParams$$' -fuzztime $(FUZZTIME) ./wasmval/
	$(GO) test -run XXX -fuzz '^FuzzFlex$$' -fuzztime $(FUZZTIME) ./wasmval/
	$(GO) test -run XXX -fuzz '^FuzzDecodeCall$$' -fuzztime $(FUZZTIME) ./httpapi/
	$(GO) test -run XXX -fuzz '^FuzzDecodeRegister$$' -fuzztime $(FUZZTIME) ./httpapi/

# cgroup v2 and systemd, in QEMU guests (root, apt; images cached in vm/.cache).
vm-test:
	./vm/run.sh

# Install the binaries and the systemd unit (systemd/install.sh).
install: build
	./systemd/install.sh

bench:
	$(GO) test -run XXX -bench . -benchmem ./ipc/ ./sched/ ./engine/ ./wasmval/ ./httpapi/

clean:
	rm -rf $(BIN)

# Load-generator scenarios (make bench-overhead, bench-overload, …).
include bench/bench.mk
