#!/bin/sh
# build.sh builds the smart-traffic stages (WASI commands) from their C
# sources with clang and wasi-libc from Debian:
#   apt-get install clang-16 lld-16 wasi-libc libclang-rt-16-dev-wasm32
# The .wasm files are checked in beside the sources, so a machine without
# clang still runs the example. The output is deterministic (no debug info,
# no paths), so running it again changes nothing.
set -eu
cd "$(dirname "$0")"
CC=${WASI_CC:-}
if [ -z "$CC" ]; then
	for c in /usr/lib/llvm-16/bin/clang clang-16 clang; do
		if command -v "$c" >/dev/null 2>&1; then CC=$c; break; fi
	done
fi
[ -n "$CC" ] || { echo "build.sh: clang not found (apt-get install clang-16 lld-16 wasi-libc libclang-rt-16-dev-wasm32)" >&2; exit 1; }
CFLAGS="--target=wasm32-wasi -O2 -std=c11 -Wall -Wextra -Werror -Wno-unused-parameter"
LDFLAGS="-Wl,--strip-all -Wl,-z,stack-size=262144"
for stage in decode detect count decide; do
	$CC $CFLAGS $LDFLAGS -o $stage.wasm $stage.c traffic.c
done
$CC $CFLAGS $LDFLAGS -o traffic.wasm fused.c traffic.c
