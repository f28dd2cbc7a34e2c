#!/bin/sh
# build.sh rebuilds every .wasm in this directory from its .wat source with
# wabt's wat2wasm. The output is deterministic, so running it again changes
# nothing. notwasm.wasm has no source: it is deliberately not wasm.
set -eu
cd "$(dirname "$0")"
command -v wat2wasm >/dev/null || { echo "build.sh: wat2wasm not found (apt-get install wabt)" >&2; exit 1; }
for src in *.wat; do
	wat2wasm "$src" -o "${src%.wat}.wasm"
done

# The large module: Go's wasip1 reactor, built reproducibly.
if command -v go >/dev/null; then
	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -trimpath -ldflags=-buildid= -o gowasm.wasm ./gowasm
fi
