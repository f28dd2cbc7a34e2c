# bench/lib.sh: what bench/overhead.sh and bench/ab.sh share. Sourced, not
# run.

# bench_tmp makes the scratch directory $tmp (NAME in its name) with a
# modules directory holding testdata/fib.wasm, and makes the script kill
# and reap the processes in the array pids, then remove $tmp, on exit.
bench_tmp() { # NAME
	tmp=$(mktemp -d "/tmp/$1.XXXXXX")
	mkdir -p "$tmp/modules"
	cp "$root/testdata/fib.wasm" "$tmp/modules/"
	pids=()
	trap bench_cleanup EXIT
	trap 'exit 130' INT TERM
}

bench_cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}

# bench_noop_lua writes the wrk script of a no-op /call to FILE.
bench_noop_lua() { # FILE
	cat >"$1" <<'LUA'
wrk.method = "POST"
wrk.body = '{"wasm_name":"fib.wasm","export_func":"noop","params":[],"results_length":"0"}'
wrk.headers["Content-Type"] = "application/json"
LUA
}
