package benchd

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

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
	out := Calibrate(context.Background(), m, ipc.Calibrate{ID: 42, Module: "fib.wasm", Export: "fib_r", Params: []uint64{15}},
		func(p ipc.Progress) {
			progress++
			if p.ID != 42 {
				t.Errorf("progress carries id %d, want 42", p.ID)
			}
		})
	if out.Err != "" || out.Trap != "" {
		t.Fatalf("got error %q trap %q", out.Err, out.Trap)
	}
	if out.ID != 42 {
		t.Errorf("answer carries id %d, want the request's 42", out.ID)
	}
	if want := wantClock(t); out.Clock != want {
		t.Errorf("clock: got %q, want %q", out.Clock, want)
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
	t.Run("input", func(t *testing.T) {
		// need_input traps on an empty stdin: the runs got theirs.
		echo := load(t, "echo.wasm")
		if out := Calibrate(context.Background(), echo, ipc.Calibrate{Module: "echo.wasm", Export: "need_input", Stdin: []byte("x")}, nil); out.Trap != "" || out.Runs == 0 {
			t.Errorf("with input: got trap %q after %d runs, want runs", out.Trap, out.Runs)
		}
		if out := Calibrate(context.Background(), echo, ipc.Calibrate{Module: "echo.wasm", Export: "need_input"}, nil); out.Trap == "" {
			t.Errorf("without input: got %d runs, want the trap", out.Runs)
		}
		// An exit with a code is a run, not a failure.
		if out := Calibrate(context.Background(), echo, ipc.Calibrate{Module: "echo.wasm", Export: "exit3"}, nil); out.Err != "" || out.Trap != "" || out.Runs == 0 {
			t.Errorf("exit 3: got err %q trap %q after %d runs, want runs", out.Err, out.Trap, out.Runs)
		}
	})
	t.Run("unknown export", func(t *testing.T) {
		if out := Calibrate(context.Background(), m, ipc.Calibrate{Export: "nope"}, nil); out.Err == "" {
			t.Errorf("got no error for an unknown export")
		}
	})
}

// wantClock is the clock Calibrate should report here: run_delay is kept
// by every kernel with CONFIG_SCHED_INFO (schedstats or delay accounting).
func wantClock(t *testing.T) string {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	c := openRunClock()
	defer c.close()
	if c.name() != ipc.ClockWallMinusRunDelay {
		t.Logf("%s keeps no run_delay here: calibrations use the wall clock", schedstatPath)
	}
	return c.name()
}

// TestCalibrateSleep: a guest that blocks in WASI poll_oneoff for 20 ms
// takes a worker's core for 20 ms, and calibration must say so; timed on the
// thread's CPU clock it came out at ~0.2 ms.
//
// The bound cannot flake low: Go's timers never fire early, so each run's
// goroutine is parked for at least 20 ms, and run_delay, which is
// subtracted, only counts time the thread was runnable, never the time it
// was blocked waiting for that timer. Load only makes runs longer.
func TestCalibrateSleep(t *testing.T) {
	m := load(t, "sleep.wasm")
	const ms = 20
	out := Calibrate(context.Background(), m, ipc.Calibrate{Export: "sleep_ms", Params: []uint64{ms},
		BudgetNs: int64(time.Second), MinRuns: 10}, nil)
	if out.Err != "" || out.Trap != "" {
		t.Fatalf("got error %q trap %q", out.Err, out.Trap)
	}
	if len(out.Results) != 1 || out.Results[0] != 0 {
		t.Fatalf("sleep_ms: poll_oneoff returned errno %v, want 0", out.Results)
	}
	t.Logf("sleep_ms(%d): median %v over %d runs (min %v, max %v), clock %s", ms,
		time.Duration(out.MedianNs), out.Runs, time.Duration(out.MinNs), time.Duration(out.MaxNs), out.Clock)
	if out.MedianNs < ms*int64(time.Millisecond) {
		t.Errorf("sleep_ms(%d) calibrated at a median of %v, want at least %d ms", ms, time.Duration(out.MedianNs), ms)
	}
}

// TestCalibrateContended: CPU-bound code calibrates at about its time on a
// CPU of its own even when busy loops at normal priority share its CPU.
// benchd's thread (SCHED_IDLE) and four loops are pinned to one CPU, where
// the thread gets a fifth of the time or less. Timed on plain wall time, the
// contended median of fib_r(30) came out 5 to 10 times the quiet one
// (26.0 ms against 4.9 ms, 53.4 ms against 6.0 ms); wall time less
// run_delay stayed within 7 %.
//
// The bound, 3x either way, holds on a loaded machine: every wait for the
// CPU is subtracted, whoever causes it (the loops, other tests, other
// VMs' builds), and what is not (the host taking the vCPU, a busy SMT
// sibling) slows the quiet and the contended phase alike and by far less
// than 3x. It still fails for a clock that counts the waits.
func TestCalibrateContended(t *testing.T) {
	const spinners = 4
	if testing.Short() {
		t.Skip("busy-loops a CPU for a few seconds")
	}
	if wantClock(t) != ipc.ClockWallMinusRunDelay {
		t.Skip("no run_delay: the wall clock cannot discount a competitor")
	}
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh for the busy loop:", err)
	}
	m := load(t, "fib.wasm")
	// This goroutine keeps its thread locked to the end, so the thread,
	// pinned and left at SCHED_IDLE by Calibrate, exits with it.
	runtime.LockOSThread()
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		t.Skip("cannot read the CPU affinity:", err)
	}
	cpu := -1
	for i := 0; i < 1024; i++ {
		if set.IsSet(i) {
			cpu = i // the last allowed: CPU 0 takes most interrupts
		}
	}
	var one unix.CPUSet
	one.Set(cpu)
	if err := unix.SchedSetaffinity(0, &one); err != nil {
		t.Skipf("cannot pin to CPU %d: %v", cpu, err)
	}
	req := ipc.Calibrate{Export: "fib_r", Params: []uint64{30}, BudgetNs: int64(2 * time.Second), MinRuns: 10, MaxRuns: 100}
	quiet := Calibrate(context.Background(), m, req, nil)

	// Runs of ~5 ms, longer than a timeslice, are all preempted, and with
	// four loops each waits four times its own length or more: a clock
	// that counted the waits would put the median at 5x.
	for i := 0; i < spinners; i++ {
		busy := exec.Command(sh, "-c", "while :; do :; done")
		if err := busy.Start(); err != nil {
			t.Skip("cannot start a busy loop:", err)
		}
		defer func() { busy.Process.Kill(); busy.Wait() }()
		if err := unix.SchedSetaffinity(busy.Process.Pid, &one); err != nil {
			t.Skipf("cannot pin a busy loop to CPU %d: %v", cpu, err)
		}
		// Calibrate once each loop runs: its shell has exec'd and spun.
		for deadline := time.Now().Add(5 * time.Second); cpuTime(busy.Process.Pid) < 10*time.Millisecond; {
			if time.Now().After(deadline) {
				t.Skip("a busy loop does not get to run")
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	contended := Calibrate(context.Background(), m, req, nil)

	for _, c := range []struct {
		name string
		out  *ipc.Calibrated
	}{{"quiet", quiet}, {"contended", contended}} {
		if c.out.Err != "" || c.out.Runs == 0 {
			t.Fatalf("%s: got error %q after %d runs", c.name, c.out.Err, c.out.Runs)
		}
		t.Logf("fib_r(30) on CPU %d, %s: median %v over %d runs, %v of wall time per run, clock %s", cpu, c.name,
			time.Duration(c.out.MedianNs), c.out.Runs, time.Duration(c.out.TotalNs/int64(c.out.Runs+c.out.Warmup)), c.out.Clock)
	}
	if q, c := quiet.MedianNs, contended.MedianNs; c > 3*q || 3*c < q {
		t.Errorf("contended median %v, quiet %v: want within 3x", time.Duration(c), time.Duration(q))
	}
}

// cpuTime is process pid's time on a CPU, from its schedstat.
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/schedstat", pid))
	if err != nil {
		return 0
	}
	var ns int64
	fmt.Sscan(string(b), &ns)
	return time.Duration(ns)
}

// TestCalibrateWallFallback: without schedstat, runs are timed on the wall
// clock and the answer says so.
func TestCalibrateWallFallback(t *testing.T) {
	old := schedstatPath
	schedstatPath = filepath.Join(t.TempDir(), "no-schedstat")
	defer func() { schedstatPath = old }()
	out := Calibrate(context.Background(), load(t, "fib.wasm"), ipc.Calibrate{Export: "fib_r", Params: []uint64{15}}, nil)
	if out.Err != "" || out.Runs == 0 || out.MinNs <= 0 {
		t.Fatalf("got error %q after %d runs, min %d", out.Err, out.Runs, out.MinNs)
	}
	if out.Clock != ipc.ClockWall {
		t.Errorf("clock: got %q, want %q", out.Clock, ipc.ClockWall)
	}
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
