// Package benchd is the calibration process: it compiles and validates
// registered modules (filling the shared compilation cache, so workers load
// them as cache hits) and measures how long a call really takes on this
// machine, as a worker will run it.
//
// It runs as its own process on a housekeeping CPU, never on the HTTP
// listener, the scheduler or a worker core. It never bounds its own runs: a
// call that loops forever is stopped by the supervisor killing benchd
// (DESIGN.md §3). It does bound its compiles (CompileBudget), which wazero
// cannot interrupt either, to answer a module too costly to compile with a
// clear error instead of the supervisor's timeout.
package benchd

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/hyper-sched/hyper-sched/internal/race"
	"github.com/hyper-sched/hyper-sched/ipc"
	"github.com/hyper-sched/hyper-sched/isolate"
	"github.com/hyper-sched/hyper-sched/session"
)

// Run serves the supervisor on conn until it closes and returns the exit
// code: 0 when the supervisor closed the connection, 1 otherwise.
func Run(ctx context.Context, conn io.ReadWriter, log *slog.Logger) int {
	return session.Run(ctx, conn, "benchd", log, idle, handle, session.Budget{For: CompileBudget})
}

// CompileBudget is what compiling a module of size bytes may cost benchd:
// 10 s of CPU plus 2 s per MiB, and 256 MiB of memory plus 64 bytes per
// byte. A 3 MB Go module takes 1.3 s of CPU and 60 MiB (0.4 s and 20 bytes
// per byte), so real modules stay far below it; a module that makes wazero
// spend more is refused as too costly and benchd kills itself to stop the
// compile (see session.Budget). The supervisor's own limit, a minute of wall time
// (supervisor/bench.go compileLimit), still ends a benchd that answers
// nothing.
func CompileBudget(size int) (cpu time.Duration, mem int64) {
	// The race detector makes wazero's compiler several times slower (a
	// 3 MiB Go wasip1 module takes ~16 s of CPU), and the budget is set for
	// production builds.
	return race.Scale(10*time.Second+time.Duration(size)*2*time.Second/(1<<20), 4), 256<<20 + 64*int64(size)
}

// idle lowers benchd to SCHED_IDLE: calibrations use what the housekeeping
// CPUs leave and never delay the supervisor. The time a run waits for its CPU
// is taken out of its measurement (calibrate.go), so it does not count.
func idle(_ ipc.Hello, log *slog.Logger) error {
	if err := isolate.SetIdlePolicy(os.Getpid()); err != nil {
		log.Warn("benchd keeps normal priority", "err", err)
	}
	return nil
}

func handle(ctx context.Context, s *session.Session, k ipc.Kind) error {
	if k != ipc.KindCalibrate {
		return fmt.Errorf("unexpected %v frame", k)
	}
	var req ipc.Calibrate
	if err := s.Conn.Decode(&req); err != nil {
		return err
	}
	var out *ipc.Calibrated
	if m, ok := s.Module([]byte(req.Module)); ok {
		out = Calibrate(ctx, m, req, func(p ipc.Progress) { s.Conn.Write(ipc.KindProgress, &p) })
	} else {
		out = &ipc.Calibrated{ID: req.ID, Module: req.Module, Export: req.Export, Missing: true,
			Err: fmt.Sprintf("module %q is not loaded in benchd", req.Module)}
	}
	return s.Conn.Write(ipc.KindCalibrated, out)
}
