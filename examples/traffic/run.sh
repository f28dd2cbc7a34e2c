#!/bin/sh
# run.sh sends the smart-traffic example's frames to a running hyper-sched:
# it registers stages/traffic.wasm (the four stages fused), then posts camera
# 0's first frames, each as one /call with a 33 ms deadline, and prints each
# decision under the generator's ground truth.
#
#   examples/traffic/run.sh [URL] [FRAMES]     (default http://127.0.0.1:3001, 5)
#
# Needs curl and base64, and bin/framegen (make traffic) or Go (go run).
set -eu
URL=${1:-http://127.0.0.1:3001}
N=${2:-5}
here=$(cd "$(dirname "$0")" && pwd)
if [ -x "$here/../../bin/framegen" ]; then
	framegen() { "$here/../../bin/framegen" "$@"; }
else
	framegen() { (cd "$here/../.." && go run ./examples/traffic/cmd/framegen "$@"); }
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

curl -sS -o "$tmp/reg" -w "register traffic.wasm: HTTP %{http_code}\n" -F "traffic.wasm=@$here/stages/traffic.wasm" "$URL/register"
grep -q '"status":"Success"' "$tmp/reg" || { cat "$tmp/reg"; echo; exit 1; }

k=0
while [ "$k" -lt "$N" ]; do
	framegen -camera 0 -frame "$k" -truth >"$tmp/frame" 2>"$tmp/truth"
	# The body is written to a file: a frame in base64 is longer than one
	# command-line argument may be.
	{
		printf '{"wasm_name":"traffic.wasm","export_func":"_start","expected_deadline":"33","input_base64":"'
		base64 -w0 "$tmp/frame"
		printf '"}'
	} >"$tmp/body"
	echo "frame $k truth:  $(cat "$tmp/truth")"
	curl -sS -H "Content-Type: application/json" --data-binary @"$tmp/body" "$URL/call" >"$tmp/answer"
	if command -v jq >/dev/null; then
		jq -r '"frame '"$k"' answer: \(.output // .error | rtrimstr("\n")) (\(.status), exec \(.timings_us.exec) µs, total \(.timings_us.total) µs)"' "$tmp/answer"
	else
		echo "frame $k answer: $(cat "$tmp/answer")"
	fi
	k=$((k + 1))
done
