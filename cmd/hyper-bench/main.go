// Command hyper-bench generates load against hyper-sched (or any server that
// answers hyper-sched's POST /call) and reports the results.
//
//	hyper-bench prepare -url URL -workload FILE [-o prepared.json]
//	hyper-bench run     -url URL -workload FILE -out result.json [-mode open -rate N|Nx | -mode closed -clients N | -mode cameras -cameras N] ...
//	hyper-bench report  -o report.html result.json...
//
// prepare registers the workload's modules and measures each class with
// /test, so that a run starts from measured estimates and "Nx" rates mean N
// times the worker cores' capacity. run sends calls in open loop (Poisson
// arrivals, latency from the intended send time), closed loop (clients back
// to back) or as cameras (each sending a frame per period, see frames.go)
// and writes one JSON result. report renders results as one
// self-contained HTML page with inline SVG plots.
//
// It measures; it never asserts. Its numbers go to docs/benchmarks.md, and
// the notes on how to read them to docs/hyper-bench.md.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage:
  hyper-bench prepare -url URL -workload FILE [-o prepared.json]
  hyper-bench run -url URL -workload FILE -out result.json [-mode open|closed|cameras] [-rate N|Nx] [-clients N] [-cameras N -fps 30] [-duration 30s] ...
  hyper-bench report -o report.html result.json...
"hyper-bench COMMAND -h" lists a command's flags.
`

// run is the whole program; it returns the exit status: 0 success, 1
// failure, 2 bad usage.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "run":
		return runCmd(ctx, args[1:], stdout, stderr)
	case "prepare":
		return prepareCmd(ctx, args[1:], stdout, stderr)
	case "report":
		return reportCmd(args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "hyper-bench: unknown command %q\n%s", args[0], usage)
	return 2
}
