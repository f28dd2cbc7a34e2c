#!/bin/sh
# build.sh rebuilds every .wasm in this directory from its source: .wat with
# wabt's wat2wasm, the Go programs with GOOS=wasip1, the C ones with clang's
# wasm32-wasi target and Debian's wasi-libc. The output is deterministic, so
# running it again changes nothing. A missing Go or C toolchain is skipped
# with a message (CI checks the fixtures with wabt alone); wat2wasm is
# required. notwasm.wasm has no source: it is deliberately not wasm.
set -eu
cd "$(dirname "$0")"
command -v wat2wasm >/dev/null || { echo "build.sh: wat2wasm not found (apt-get install wabt)" >&2; exit 1; }
for src in *.wat; do
	wat2wasm "$src" -o "${src%.wat}.wasm"
done

# Go: the large module (a wasip1 reactor) and a wasip1 command, built
# reproducibly.
if command -v go >/dev/null; then
	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -trimpath -ldflags=-buildid= -o gowasm.wasm ./gowasm
	GOOS=wasip1 GOARCH=wasm go build -trimpath -ldflags="-s -w -buildid=" -o gojson.wasm ./gojson
else
	echo "build.sh: go not found; gowasm.wasm and gojson.wasm left as they are" >&2
fi

# C: wasm32-wasi commands.
CLANG=""
for c in clang-16 clang; do
	if command -v "$c" >/dev/null && [ -f /usr/lib/wasm32-wasi/libc.a ]; then CLANG=$c; break; fi
done
if [ -n "$CLANG" ]; then
	for src in *.c; do
		"$CLANG" --target=wasm32-wasi -O2 -Wl,--strip-all -o "${src%.c}.wasm" "$src"
	done
else
	echo "build.sh: clang with wasi-libc not found (apt-get install -y clang-16 lld-16 wasi-libc libclang-rt-16-dev-wasm32); *.c fixtures left as they are" >&2
fi
