#!/bin/sh
# run.sh sends the smart-traffic example's frames to a running hyper-sched:
# it registers stages/traffic.wasm (the four stages fused), calibrated on a
# frame, then posts camera 0's first frames to the raw route, each with a
# 33 ms deadline, and prints each decision under the generator's truth.
#
#   examples/traffic/run.sh [URL] [FRAMES]     (default http://127.0.0.1:3001, 5)
#
# Needs curl, and bin/framegen (make traffic) or Go (go run).
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

# Calibrated on a frame: _start with no input would measure the error path.
framegen -camera 0 -frame 0 >"$tmp/frame"
curl -sS -o "$tmp/reg" -w "register traffic.wasm: HTTP %{http_code}\n" -F "traffic.wasm=@$here/stages/traffic.wasm" \
	-F export_func=_start -F "input=@$tmp/frame" "$URL/register"
grep -q '"status":"Success"' "$tmp/reg" || { cat "$tmp/reg"; echo; exit 1; }

k=0
while [ "$k" -lt "$N" ]; do
	framegen -camera 0 -frame "$k" -truth >"$tmp/frame" 2>"$tmp/truth"
	echo "frame $k truth:  $(cat "$tmp/truth")"
	# POST /run/MODULE: the body is stdin, the answer's body stdout.
	code=$(curl -sS -o "$tmp/answer" -D "$tmp/headers" -w "%{http_code}" --data-binary @"$tmp/frame" \
		-H "Hyper-Deadline-Ms: 33" "$URL/run/traffic.wasm")
	met=$(tr -d '\r' <"$tmp/headers" | sed -n 's/^Hyper-Deadline-Met: //Ip')
	timing=$(tr -d '\r' <"$tmp/headers" | sed -n 's/^Server-Timing: //Ip')
	echo "frame $k answer: HTTP $code $(cat "$tmp/answer")"
	echo "        deadline met: ${met:-no answer}; ms: $timing"
	k=$((k + 1))
done
