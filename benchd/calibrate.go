package benchd

import (
	"context"
	"runtime"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hyper-sched/hyper-sched/engine"
	"github.com/hyper-sched/hyper-sched/ipc"
	"github.com/hyper-sched/hyper-sched/isolate"
)

// Calibration defaults. A run is instantiate + call, what a worker spends on
// one job, measured in CPU time of the calling thread.
const (
	DefaultBudget  = 2 * time.Second
	DefaultMinRuns = 20
	DefaultMaxRuns = 2000
	warmupRuns     = 3
	// stableTolerance: the median of all runs and the median of the runs
	// before the last batch differ by less than this fraction.
	stableTolerance = 0.01
	batch           = 10
	progressEvery   = 250 * time.Millisecond
)

// Calibrate measures req's call on m: warm-up runs, then runs until the
// median is stable (and at least MinRuns), MaxRuns, or the budget is spent.
// A trap or error ends it at once with the reason in the answer.
func Calibrate(ctx context.Context, m *engine.Module, req ipc.Calibrate, progress func(ipc.Progress)) *ipc.Calibrated {
	budget := time.Duration(req.BudgetNs)
	if budget <= 0 {
		budget = DefaultBudget
	}
	minRuns, maxRuns := req.MinRuns, req.MaxRuns
	if minRuns <= 0 {
		minRuns = DefaultMinRuns
	}
	if maxRuns < minRuns {
		maxRuns = max(DefaultMaxRuns, minRuns)
	}
	out := &ipc.Calibrated{Module: req.Module, Export: req.Export}
	start := time.Now()
	defer func() { out.TotalNs = time.Since(start).Nanoseconds() }()

	// Runs are timed on this thread's CPU clock, not the wall clock: benchd
	// shares the housekeeping CPUs (at idle priority), and time spent
	// preempted is not time the call needs. On an isolated worker core the
	// two are the same. The thread is locked so the clock is the call's.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	isolate.SetThreadIdle() // a refusal was logged by idle already
	run := func() (total, inst time.Duration, ok bool) {
		c0 := threadCPU()
		r, err := m.Call(ctx, req.Export, req.Params)
		cpu := threadCPU() - c0
		if err != nil {
			out.Trap, out.Err = engine.Failure(err)
			return 0, 0, false
		}
		out.Results = r.Results
		if cpu <= 0 { // no thread clock: fall back to the wall clock
			cpu = r.Instantiate + r.Exec
		}
		return cpu, r.Instantiate, true
	}
	// Warm-up: the first runs pay for page faults and cold caches.
	for i := 0; i < warmupRuns && time.Since(start) < budget/10; i++ {
		if _, _, ok := run(); !ok {
			return out
		}
		out.Warmup++
	}
	var runs, insts []time.Duration
	lastProgress := time.Now()
	prevMedian := time.Duration(-1)
	for len(runs) < maxRuns {
		total, inst, ok := run()
		if !ok {
			return out
		}
		runs = append(runs, total)
		insts = append(insts, inst)
		if time.Since(lastProgress) >= progressEvery && progress != nil {
			lastProgress = time.Now()
			progress(ipc.Progress{Runs: len(runs), ElapsedNs: time.Since(start).Nanoseconds(),
				MedianNs: median(runs).Nanoseconds()})
		}
		if len(runs)%batch == 0 {
			med := median(runs)
			if len(runs) >= minRuns && prevMedian >= 0 && relDiff(med, prevMedian) < stableTolerance {
				out.Stable = true
				break
			}
			prevMedian = med
		}
		if time.Since(start) >= budget && len(runs) >= 1 {
			break
		}
	}
	s := Summarize(runs)
	out.Runs = len(runs)
	out.MinNs, out.MedianNs, out.P99Ns, out.MaxNs = s.Min.Nanoseconds(), s.Median.Nanoseconds(), s.P99.Nanoseconds(), s.Max.Nanoseconds()
	out.InstantiateNs = median(insts).Nanoseconds()
	return out
}

// Summary is the order statistics of a set of run times.
type Summary struct{ Min, Median, P99, Max time.Duration }

// Summarize returns runs' min, median, p99 (nearest rank) and max; zero for
// no runs.
func Summarize(runs []time.Duration) Summary {
	if len(runs) == 0 {
		return Summary{}
	}
	s := slices.Clone(runs)
	slices.Sort(s)
	return Summary{Min: s[0], Median: s[len(s)/2], P99: s[rank(len(s), 0.99)], Max: s[len(s)-1]}
}

// rank is the nearest-rank index of quantile q among n sorted values.
func rank(n int, q float64) int {
	i := int(q*float64(n)+0.999999) - 1
	return min(max(i, 0), n-1)
}

func median(d []time.Duration) time.Duration { return Summarize(d).Median }

func relDiff(a, b time.Duration) float64 {
	if b == 0 {
		return 1
	}
	d := float64(a-b) / float64(b)
	if d < 0 {
		d = -d
	}
	return d
}

// threadCPU is the calling thread's CPU time, 0 if unavailable.
func threadCPU() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}
