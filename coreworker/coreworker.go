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
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"time"

	"github.com/hyper-sched/hyper-sched/engine"
	"github.com/hyper-sched/hyper-sched/ipc"
	"github.com/hyper-sched/hyper-sched/isolate"
)

// Run serves the supervisor on conn until it closes. It returns the process
// exit code: 0 when the supervisor closed the connection, 1 otherwise.
func Run(ctx context.Context, conn io.ReadWriter, log *slog.Logger) int {
	if err := serve(ctx, ipc.NewConn(conn, 0), log); err != nil {
		log.Error("coreworker stopped", "err", err)
		return 1
	}
	return 0
}

func serve(ctx context.Context, c *ipc.Conn, log *slog.Logger) error {
	h, err := ipc.ReadHello(c)
	if err != nil {
		return err
	}
	log = log.With("proc", h.Proc, "cpu", h.CPU)
	// Pin before any work: until the hello the process has only waited.
	if h.CPU >= 0 {
		if err := isolate.SetAffinity(os.Getpid(), []int{h.CPU}); err != nil {
			return err
		}
	}
	// One CPU, one job at a time: a second P would only let the runtime's
	// background work compete with the job. benchd does the same, so
	// calibrations see what workers see.
	runtime.GOMAXPROCS(1)
	eng, err := engine.New(ctx, engine.Config{
		CacheDir:         h.Engine.CacheDir,
		MemoryLimitPages: h.Engine.MemoryLimitPages,
	})
	if err != nil {
		return fmt.Errorf("start engine: %w", err)
	}
	defer eng.Close(ctx)
	if err := c.Write(ipc.KindHello, &ipc.Hello{Version: ipc.Version, Role: "coreworker",
		Proc: h.Proc, Pid: os.Getpid(), CPU: h.CPU}); err != nil {
		return fmt.Errorf("write hello: %w", err)
	}
	w := &worker{conn: c, eng: eng, log: log, mods: map[string]*engine.Module{}}
	return w.loop(ctx)
}

type worker struct {
	conn *ipc.Conn
	eng  *engine.Engine
	log  *slog.Logger
	mods map[string]*engine.Module
}

func (w *worker) loop(ctx context.Context) error {
	var (
		job ipc.Job
		res ipc.Result
	)
	for {
		k, err := w.conn.Read()
		if errors.Is(err, io.EOF) {
			return nil // the supervisor closed: a clean stop
		}
		if err != nil {
			return fmt.Errorf("read frame: %w", err)
		}
		switch k {
		case ipc.KindJob:
			if err := w.conn.Decode(&job); err != nil {
				return err
			}
			w.run(ctx, &job, &res)
			if err := w.conn.Write(ipc.KindResult, &res); err != nil {
				return fmt.Errorf("write result: %w", err)
			}
		case ipc.KindLoad:
			var l ipc.Load
			if err := w.conn.Decode(&l); err != nil {
				return err
			}
			if err := w.conn.Write(ipc.KindLoaded, w.load(ctx, &l)); err != nil {
				return fmt.Errorf("write loaded: %w", err)
			}
		case ipc.KindUnload:
			var u ipc.Unload
			if err := w.conn.Decode(&u); err != nil {
				return err
			}
			if m, ok := w.mods[u.Name]; ok {
				delete(w.mods, u.Name)
				m.Close(ctx)
			}
		default:
			return fmt.Errorf("unexpected %v frame", k)
		}
	}
}

func (w *worker) load(ctx context.Context, l *ipc.Load) *ipc.Loaded {
	start := time.Now()
	m, err := w.eng.Compile(ctx, l.Wasm)
	out := &ipc.Loaded{Name: l.Name, SHA256: l.SHA256, CompileNs: time.Since(start).Nanoseconds()}
	if err != nil {
		out.Err = err.Error()
		w.log.Warn("compile module", "module", l.Name, "err", err)
		return out
	}
	if old, ok := w.mods[l.Name]; ok && old != m {
		old.Close(ctx)
	}
	w.mods[l.Name] = m
	out.Exports = Exports(m)
	return out
}

// Exports lists m's exports in wire form.
func Exports(m *engine.Module) []ipc.Export {
	var out []ipc.Export
	for _, e := range m.Exports() {
		x := ipc.Export{Name: e.Name}
		for _, t := range e.Params {
			x.Params = append(x.Params, uint8(t))
		}
		for _, t := range e.Results {
			x.Results = append(x.Results, uint8(t))
		}
		out = append(out, x)
	}
	return out
}

func (w *worker) run(ctx context.Context, job *ipc.Job, res *ipc.Result) {
	*res = ipc.Result{ID: job.ID, Results: res.Results[:0], Stdout: res.Stdout[:0], Stderr: res.Stderr[:0]}
	m, ok := w.mods[string(job.Module)]
	if !ok {
		res.Err = fmt.Sprintf("module %q is not loaded", job.Module)
		return
	}
	r, err := m.Call(ctx, string(job.Export), job.Params)
	res.InstNs, res.ExecNs = r.Instantiate.Nanoseconds(), r.Exec.Nanoseconds()
	res.Stdout = append(res.Stdout, r.Stdout...)
	res.Stderr = append(res.Stderr, r.Stderr...)
	var trap *engine.TrapError
	switch {
	case errors.As(err, &trap):
		res.Trap = trap.Error()
	case err != nil:
		res.Err = err.Error()
	default:
		res.Results = append(res.Results, r.Results...)
	}
}
