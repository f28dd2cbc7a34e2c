// Package benchd is the calibration process: it compiles and validates
// registered modules (filling the shared compilation cache, so workers load
// them as cache hits) and measures how long a call really takes on this
// machine, as a worker will run it.
//
// It runs as its own process on a housekeeping CPU, never on the HTTP
// listener, the scheduler or a worker core. It never bounds its own runs: a
// call that loops forever is stopped by the supervisor killing benchd
// (DESIGN.md §3).
package benchd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"time"

	"github.com/hyper-sched/hyper-sched/coreworker"
	"github.com/hyper-sched/hyper-sched/engine"
	"github.com/hyper-sched/hyper-sched/ipc"
	"github.com/hyper-sched/hyper-sched/isolate"
)

// Run serves the supervisor on conn until it closes and returns the exit
// code: 0 when the supervisor closed the connection, 1 otherwise.
func Run(ctx context.Context, conn io.ReadWriter, log *slog.Logger) int {
	if err := serve(ctx, ipc.NewConn(conn, 0), log); err != nil {
		log.Error("benchd stopped", "err", err)
		return 1
	}
	return 0
}

func serve(ctx context.Context, c *ipc.Conn, log *slog.Logger) error {
	h, err := ipc.ReadHello(c)
	if err != nil {
		return err
	}
	runtime.GOMAXPROCS(1) // as in coreworker: measure what workers will see
	// Idle priority: calibrations use what the housekeeping CPUs leave, never
	// delaying the supervisor. A preempted run only lengthens that one
	// sample, which the median and the stability check absorb.
	if err := isolate.SetIdlePolicy(os.Getpid()); err != nil {
		log.Warn("benchd keeps normal priority", "err", err)
	}
	eng, err := engine.New(ctx, engine.Config{
		CacheDir:         h.Engine.CacheDir,
		MemoryLimitPages: h.Engine.MemoryLimitPages,
	})
	if err != nil {
		return fmt.Errorf("start engine: %w", err)
	}
	defer eng.Close(ctx)
	if err := c.Write(ipc.KindHello, &ipc.Hello{Version: ipc.Version, Role: "benchd",
		Proc: h.Proc, Pid: os.Getpid(), CPU: -1}); err != nil {
		return fmt.Errorf("write hello: %w", err)
	}
	mods := map[string]*engine.Module{}
	for {
		k, err := c.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read frame: %w", err)
		}
		switch k {
		case ipc.KindLoad:
			var l ipc.Load
			if err := c.Decode(&l); err != nil {
				return err
			}
			out := &ipc.Loaded{Name: l.Name, SHA256: l.SHA256}
			start := time.Now()
			m, err := eng.Compile(ctx, l.Wasm)
			out.CompileNs = time.Since(start).Nanoseconds()
			if err != nil {
				out.Err = err.Error()
			} else {
				if old, ok := mods[l.Name]; ok && old != m {
					old.Close(ctx)
				}
				mods[l.Name] = m
				out.Exports = coreworker.Exports(m)
			}
			if err := c.Write(ipc.KindLoaded, out); err != nil {
				return err
			}
		case ipc.KindUnload:
			var u ipc.Unload
			if err := c.Decode(&u); err != nil {
				return err
			}
			if m, ok := mods[u.Name]; ok {
				delete(mods, u.Name)
				m.Close(ctx)
			}
		case ipc.KindCalibrate:
			var req ipc.Calibrate
			if err := c.Decode(&req); err != nil {
				return err
			}
			var out *ipc.Calibrated
			if m, ok := mods[req.Module]; ok {
				out = Calibrate(ctx, m, req, func(p ipc.Progress) { c.Write(ipc.KindProgress, &p) })
			} else {
				out = &ipc.Calibrated{Module: req.Module, Export: req.Export,
					Err: fmt.Sprintf("module %q is not loaded in benchd", req.Module)}
			}
			if err := c.Write(ipc.KindCalibrated, out); err != nil {
				return err
			}
		default:
			return fmt.Errorf("unexpected %v frame", k)
		}
	}
}
