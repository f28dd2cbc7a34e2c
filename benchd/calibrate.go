package benchd

import (
	"bytes"
	"context"
	"runtime"
	"slices"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hyper-sched/hyper-sched/engine"
	"github.com/hyper-sched/hyper-sched/ipc"
	"github.com/hyper-sched/hyper-sched/isolate"
	"github.com/hyper-sched/hyper-sched/session"
)

// Calibration defaults. A run is instantiate + call, what a worker spends on
// one job, timed as a worker's core would see it (runClock).
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
// The runs get req's stdin, argv and environment, the representative input
// its client gave, so that the run measured is the one the estimate stands
// for; output is kept to the engine's limit and dropped.
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
	out := &ipc.Calibrated{ID: req.ID, Module: req.Module, Export: req.Export}
	start := time.Now()
	defer func() { out.TotalNs = time.Since(start).Nanoseconds() }()

	// The thread is locked so that run_delay (runClock) is the call's, and
	// idle so that it yields the shared CPU to the supervisor.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	isolate.SetThreadIdle() // a refusal was logged by idle already
	clk := openRunClock()
	defer clk.close()
	io := session.CallIO([]byte(req.Module), []byte(req.Export), req.Stdin, req.Args, req.Env, 0)
	run := func() (total, inst time.Duration, ok bool) {
		t := clk.start()
		r, err := m.CallIO(ctx, req.Export, req.Params, io)
		d := clk.since(t)
		// An exit with any code is a run: the guest's answer to the input.
		if out.Trap, out.Err = engine.Failure(err); out.Trap != "" || out.Err != "" {
			return 0, 0, false
		}
		out.Results = r.Results
		out.Clock = clk.name()
		return d, r.Instantiate, true
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
			progress(ipc.Progress{ID: req.ID, Runs: len(runs), ElapsedNs: time.Since(start).Nanoseconds(),
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

// schedstatPath is the calling thread's scheduler statistics: time on the
// CPU, time spent runnable waiting for a CPU (run_delay), timeslices; ns.
var schedstatPath = "/proc/thread-self/schedstat"

// runClock times runs on the locked calling thread as a worker's core would
// see them: wall time less the time the thread waited, runnable, for a CPU.
// What is left is the call's time on the CPU plus the time it blocked on its
// own (a WASI sleep, a read): both take a worker's core, since the
// supervisor dispatches nothing else to it until the job ends. The CPU time
// of the thread, used before, missed the second (a guest sleeping 50 ms
// through poll_oneoff calibrated at 0.5 ms); plain wall time counts the time
// other threads held benchd's shared CPU, which at SCHED_IDLE is much of it
// whenever the supervisor or anything else is busy.
//
// A wait for the CPU while the guest's own timer runs is subtracted though
// on a quiet core the sleep would have covered it: that run comes out short
// by the wait, which the median absorbs.
//
// Without schedstat (kernel without CONFIG_SCHED_INFO, no /proc) it falls
// back to plain wall time, an overestimate on a busy CPU, and says so.
type runClock struct {
	fd  int // schedstatPath opened on the locked thread; -1 for wall time
	buf [96]byte
}

// openRunClock opens the calling thread's schedstat; the thread must stay
// locked until close.
func openRunClock() *runClock {
	c := &runClock{fd: -1}
	fd, err := unix.Open(schedstatPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return c
	}
	c.fd = fd
	if _, ok := c.runDelay(); !ok {
		c.close()
	}
	return c
}

func (c *runClock) close() {
	if c.fd >= 0 {
		unix.Close(c.fd)
		c.fd = -1
	}
}

// name is the clock's name for Calibrated.Clock.
func (c *runClock) name() string {
	if c.fd >= 0 {
		return ipc.ClockWallMinusRunDelay
	}
	return ipc.ClockWall
}

// runDelay reads the thread's run_delay. A kernel that keeps no scheduler
// statistics prints "0 0 0": a thread that is running has had a timeslice,
// so a zero count means the numbers are not kept.
func (c *runClock) runDelay() (time.Duration, bool) {
	n, err := unix.Pread(c.fd, c.buf[:], 0)
	if err != nil || n <= 0 {
		return 0, false
	}
	f := bytes.Fields(c.buf[:n])
	if len(f) < 3 {
		return 0, false
	}
	delay, err1 := strconv.ParseInt(string(f[1]), 10, 64)
	pcount, err2 := strconv.ParseInt(string(f[2]), 10, 64)
	if err1 != nil || err2 != nil || pcount == 0 {
		return 0, false
	}
	return time.Duration(delay), true
}

// mark is a run's start on a runClock.
type mark struct {
	outer time.Time // before reading run_delay
	inner time.Time // after
	delay time.Duration
	ok    bool // delay was read
}

// start marks the start of a run.
func (c *runClock) start() mark {
	m := mark{outer: time.Now()}
	if c.fd >= 0 {
		m.delay, m.ok = c.runDelay()
	}
	m.inner = time.Now()
	return m
}

// since is the time of the run begun at m on this clock: the wall time
// between the two reads of run_delay (inner) less the waits for the CPU in
// it. The growth of run_delay counts the waits between the reads, within
// the outer interval (the thread was running at each end); those that fell
// in the reads themselves, outer − inner at most, are not the run's. So
// inner − max(0, growth − (outer − inner)) never undercounts the run, and
// is exact whenever the reads (about 4 µs each here) were not preempted,
// which the median sees. A read that fails mid-calibration turns the clock
// into plain wall time for the rest of it.
func (c *runClock) since(m mark) time.Duration {
	inner := time.Since(m.inner)
	var delay time.Duration
	ok := m.ok && c.fd >= 0
	if ok {
		delay, ok = c.runDelay()
	}
	if !ok {
		c.close()
		return inner
	}
	reads := time.Since(m.outer) - inner
	wait := min(max(delay-m.delay-reads, 0), inner)
	return inner - wait
}
