package benchd

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hyper-sched/hyper-sched/engine"
	"github.com/hyper-sched/hyper-sched/ipc"
)

func load(tb testing.TB, file string) *engine.Module {
	tb.Helper()
	ctx := context.Background()
	e, err := engine.New(ctx, engine.Config{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { e.Close(ctx) })
	wasm, err := os.ReadFile(filepath.Join("..", "testdata", file))
	if err != nil {
		tb.Fatal(err)
	}
	m, err := e.Compile(ctx, wasm)
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

func TestSummarize(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	tests := []struct {
		in   []time.Duration
		want Summary
	}{
		{nil, Summary{}},
		{ms(5), Summary{5e6, 5e6, 5e6, 5e6}},
		{ms(3, 1, 2), Summary{1e6, 2e6, 3e6, 3e6}},
		// 100 runs: p99 is the 99th smallest, not the max.
		{append(ms(make([]int, 98)...), ms(7, 9)...), Summary{0, 0, 7e6, 9e6}},
	}
	for _, tt := range tests {
		if got := Summarize(tt.in); got != tt.want {
			t.Errorf("Summarize(%v): got %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestCalibrate(t *testing.T) {
	m := load(t, "fib.wasm")
	var progress int
	out := Calibrate(context.Background(), m, ipc.Calibrate{Module: "fib.wasm", Export: "fib_r", Params: []uint64{15}},
		func(ipc.Progress) { progress++ })
	if out.Err != "" || out.Trap != "" {
		t.Fatalf("got error %q trap %q", out.Err, out.Trap)
	}
	if out.Runs < DefaultMinRuns || out.Warmup != warmupRuns {
		t.Errorf("got %d runs after %d warm-up, want at least %d after %d", out.Runs, out.Warmup, DefaultMinRuns, warmupRuns)
	}
	if !(out.MinNs <= out.MedianNs && out.MedianNs <= out.P99Ns && out.P99Ns <= out.MaxNs && out.MinNs > 0) {
		t.Errorf("order statistics out of order: %+v", out)
	}
	if len(out.Results) != 1 || out.Results[0] != 610 {
		t.Errorf("fib_r(15): got %v, want [610]", out.Results)
	}
	t.Run("budget", func(t *testing.T) {
		out := Calibrate(context.Background(), m, ipc.Calibrate{Export: "fib_r", Params: []uint64{25}, BudgetNs: int64(50 * time.Millisecond), MinRuns: 1000}, nil)
		if out.Stable || out.Runs >= 1000 || out.Runs == 0 {
			t.Errorf("budget of 50ms: got %d runs, stable %v; want a few, unstable", out.Runs, out.Stable)
		}
	})
	t.Run("trap", func(t *testing.T) {
		out := Calibrate(context.Background(), load(t, "trap.wasm"), ipc.Calibrate{Export: "unreachable"}, nil)
		if out.Trap == "" || out.Runs != 0 {
			t.Errorf("got trap %q after %d runs, want a trap at once", out.Trap, out.Runs)
		}
	})
	t.Run("unknown export", func(t *testing.T) {
		if out := Calibrate(context.Background(), m, ipc.Calibrate{Export: "nope"}, nil); out.Err == "" {
			t.Errorf("got no error for an unknown export")
		}
	})
}

// BenchmarkCalibrateFib30 calibrates fib_r(30) ten times, as /test does,
// and reports the spread of the reported medians: (max-min)/min.
//
//	go test -run XXX -bench CalibrateFib30 -benchtime 1x ./benchd/
func BenchmarkCalibrateFib30(b *testing.B) {
	m := load(b, "fib.wasm")
	for b.Loop() {
		var lo, hi, total time.Duration
		for i := range 10 {
			out := Calibrate(context.Background(), m, ipc.Calibrate{Export: "fib_r", Params: []uint64{30}}, nil)
			med := time.Duration(out.MedianNs)
			total += time.Duration(out.TotalNs)
			if i == 0 || med < lo {
				lo = med
			}
			hi = max(hi, med)
		}
		b.ReportMetric(float64(lo.Microseconds())/1000, "median-min-ms")
		b.ReportMetric(float64(hi.Microseconds())/1000, "median-max-ms")
		b.ReportMetric(100*float64(hi-lo)/float64(lo), "spread-%")
		b.ReportMetric(float64(total.Milliseconds())/10, "calibration-ms")
	}
}
