// Package coreworker is the executor that runs on one worker CPU: after the
// hello it pins itself, compiles the modules the supervisor sends, and runs
// one job at a time, answering each with its results, its timings or its
// trap.
//
// It holds no scheduling state. Deadlines are not enforced here: the
// supervisor kills this process when a job overruns (DESIGN.md §1), so a job
// never needs to be interrupted from inside.
package coreworker

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/hyper-sched/hyper-sched/engine"
	"github.com/hyper-sched/hyper-sched/internal/race"
	"github.com/hyper-sched/hyper-sched/ipc"
	"github.com/hyper-sched/hyper-sched/isolate"
	"github.com/hyper-sched/hyper-sched/session"
)

// Run serves the supervisor on conn until it closes. It returns the process
// exit code: 0 when the supervisor closed the connection, 1 otherwise.
func Run(ctx context.Context, conn io.ReadWriter, log *slog.Logger) int {
	w := worker{in: newSpinReader(conn)}
	rw := struct {
		io.Reader
		io.Writer
	}{w.in, newSocketWriter(conn)}
	// No compile budget: a worker compiles only modules benchd compiled
	// within its budget, and most often loads them from the cache.
	return session.Run(ctx, rw, "coreworker", log, w.setup, w.handle, session.Budget{})
}

// setup confines the worker to its CPU before any work (until the hello
// the process has only waited) and takes its spin budget.
func (w *worker) setup(h ipc.Hello, _ *slog.Logger) error {
	w.in.spin = time.Duration(h.SpinNs)
	if h.CPU < 0 {
		return nil
	}
	return isolate.SetAffinity(os.Getpid(), []int{h.CPU})
}

// worker keeps the job and result frames it reuses, so that steady-state
// decoding and encoding do not allocate.
type worker struct {
	job ipc.Job
	res ipc.Result
	in  *spinReader
}

func (w *worker) handle(ctx context.Context, s *session.Session, k ipc.Kind) error {
	if k == ipc.KindPark {
		return nil // reading it ended the spin: block for the next frame
	}
	if k != ipc.KindJob {
		return fmt.Errorf("unexpected %v frame", k)
	}
	if err := s.Conn.Decode(&w.job); err != nil {
		return err
	}
	w.run(ctx, s)
	if err := s.Conn.Write(ipc.KindResult, &w.res); err != nil {
		return fmt.Errorf("write result: %w", err)
	}
	w.prepare(ctx, s)
	w.in.arm()
	return nil
}

// prepareMax bounds the instantiation a lane does between jobs: no more
// than a slow hop (the dispatch overhead's tail), which is what a Park
// frame, read only once it is done, may wait for. A race-instrumented
// build, where instantiating even a tiny module takes several times 50 µs,
// would never prepare without its factor, and its tests would not see it.
var prepareMax = race.Scale(50*time.Microsecond, 20)

// prepare makes the instance the next call of the job's module will run
// in (engine.Module.Prepare) while the lane waits for it, taking the
// instantiation off that call's path. Only when the lane spins (the
// dispatcher parks it before another lane of its core runs), the job had
// no input (a prepared instance has none), and it succeeded, its module
// instantiated within prepareMax: a module whose start functions take
// longer keeps instantiating in its calls, where its time is a job's.
func (w *worker) prepare(ctx context.Context, s *session.Session) {
	job, res := &w.job, &w.res
	if w.in.spin <= 0 || len(job.Stdin) > 0 || len(job.Args) > 0 || len(job.Env) > 0 ||
		res.Err != "" || res.InstNs > prepareMax.Nanoseconds() {
		return
	}
	if m, ok := s.Module(job.Module); ok {
		_ = m.Prepare(ctx, s.OutputLimit(), string(job.Export)) // a failure is the next call's to meet
	}
}

func (w *worker) run(ctx context.Context, s *session.Session) {
	job, res := &w.job, &w.res
	*res = ipc.Result{ID: job.ID, Results: res.Results[:0], Stdout: res.Stdout[:0], Stderr: res.Stderr[:0],
		StartMono: ipc.Monotonic()}
	m, ok := s.Module(job.Module)
	if !ok {
		res.Err = fmt.Sprintf("module %q is not loaded", job.Module)
		return
	}
	io := s.IO(job.Module, job.Export, job.Stdin, job.Args, job.Env)
	// The output goes straight into the result's reused buffers.
	io.Stdout, io.Stderr = res.Stdout, res.Stderr
	r, err := m.CallIO(ctx, string(job.Export), job.Params, io)
	res.InstNs, res.ExecNs = r.Instantiate.Nanoseconds(), r.Exec.Nanoseconds()
	res.Stdout, res.Stderr = r.Stdout, r.Stderr
	res.StdoutBytes, res.StderrBytes = r.StdoutBytes, r.StderrBytes
	// An exit, whatever its code, is the guest's answer (Failure leaves
	// it out); a trap after it cannot happen.
	res.Exited, res.ExitCode = r.Exited, r.ExitCode
	if err != nil {
		res.Trap, res.Err = engine.Failure(err)
		return
	}
	res.Results = append(res.Results, r.Results...)
}
