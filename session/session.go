// Package session is what every child process of the supervisor shares:
// the hello (settings in, pid out), the engine built from those settings,
// the table of loaded modules, and the frame loop that serves Load and
// Unload. coreworker and benchd add their own frames (jobs, calibrations)
// through a handler.
//
// A session never decides anything about scheduling, and it stops on the
// first broken frame: the supervisor restarts the process.
package session

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/hyper-sched/hyper-sched/engine"
	"github.com/hyper-sched/hyper-sched/ipc"
)

// Session is a child's connection to the supervisor after the hello.
type Session struct {
	Conn   *ipc.Conn
	Engine *engine.Engine
	Log    *slog.Logger
	mods   map[string]*engine.Module
	budget Budget
	limits ipc.Limits // from the hello
}

// Handler serves one frame of a kind the session does not know; it returns
// an error to end the session.
type Handler func(ctx context.Context, s *Session, k ipc.Kind) error

// Run accepts the supervisor on conn, calls setup (pinning, priority) once
// the hello is read and before anything else is done, then serves frames
// until the supervisor closes the connection, compiling modules within
// budget. It returns the exit code: 0 for a clean close, 1 otherwise.
func Run(ctx context.Context, conn io.ReadWriter, role string, log *slog.Logger,
	setup func(h ipc.Hello, log *slog.Logger) error, handle Handler, budget Budget) int {
	s, err := accept(ctx, ipc.NewConn(conn, 0), role, log, setup)
	if err == nil {
		s.budget = budget
		defer s.Engine.Close(ctx)
		err = s.serve(ctx, handle)
	}
	if err != nil {
		log.Error(role+" stopped", "err", err)
		return 1
	}
	return 0
}

// childProcs is the GOMAXPROCS of a child: one, for one wasm call at a time on
// one CPU. Lanes had two while the read that waited for their next frame was
// a read(2) in the runtime's syscall state: with one P, sysmon took it from
// the waiting goroutine and the frame was run on another thread after a
// wake-up. Since they wait in the runtime's poller (supervisorConn in
// cmd/hyper-sched), one P has the lower tail: the daemon's own p99 lower in
// six rounds of six, no second P's GC worker or idle thread to wake on the
// lane's CPU (docs/benchmarks.md, issue 15, sixth pass). benchd's compile
// budget counts the process's CPU time, which a second P's parallel GC work
// raised past the budget of a 3 MiB Go module under -race.
const childProcs = 1

// laneGCPercent is a coreworker's GOGC. Every call allocates ~14 KB of Go
// heap (wazero's instance), and a lane's live heap is small (its modules'
// metadata: compiled code and linear memory are mapped outside the heap),
// so at the default 100 a lane collected every few hundred calls, and each
// collection's marking took the job's CPU: calls that met one made up the
// p99. At 400 it collects a quarter as often, for a heap up to five times
// its live size, a few MB more (docs/benchmarks.md, issue 15).
const laneGCPercent = 400

// gcPercent is the GOGC of a child: laneGCPercent for a coreworker, the
// default for benchd, whose heap holds what it compiles.
func gcPercent(role string) int {
	if role == "coreworker" {
		return laneGCPercent
	}
	return 100
}

func accept(ctx context.Context, c *ipc.Conn, role string, log *slog.Logger,
	setup func(ipc.Hello, *slog.Logger) error) (*Session, error) {
	h, err := ipc.ReadHello(c)
	if err != nil {
		return nil, err
	}
	log = log.With("proc", h.Proc)
	if setup != nil {
		if err := setup(h, log); err != nil {
			return nil, err
		}
	}
	runtime.GOMAXPROCS(childProcs)
	debug.SetGCPercent(gcPercent(role))
	if err := h.Limits.Check(); err != nil {
		return nil, err
	}
	c.SetLimits(h.Limits)
	eng, err := engine.New(ctx, engine.Config{
		CacheDir:         h.Engine.CacheDir,
		MemoryLimitPages: h.Engine.MemoryLimitPages,
		StdoutLimit:      h.Limits.Output(),
	})
	if err != nil {
		return nil, fmt.Errorf("start engine: %w", err)
	}
	if err := c.Write(ipc.KindHello, &ipc.Hello{Version: ipc.Version, Role: role,
		Proc: h.Proc, Pid: os.Getpid(), CPU: h.CPU}); err != nil {
		eng.Close(ctx)
		return nil, fmt.Errorf("write hello: %w", err)
	}
	return &Session{Conn: c, Engine: eng, Log: log, mods: map[string]*engine.Module{}, limits: h.Limits}, nil
}

func (s *Session) serve(ctx context.Context, handle Handler) error {
	for {
		k, err := s.Conn.Read()
		if errors.Is(err, io.EOF) {
			return nil // the supervisor closed: a clean stop
		}
		if err != nil {
			return fmt.Errorf("read frame: %w", err)
		}
		switch k {
		case ipc.KindLoad:
			var l ipc.Load
			if err := s.Conn.Decode(&l); err != nil {
				return err
			}
			if out := s.load(ctx, &l); out != nil {
				if err := s.Conn.Write(ipc.KindLoaded, out); err != nil {
					return fmt.Errorf("write loaded: %w", err)
				}
			}
		case ipc.KindUnload:
			var u ipc.Unload
			if err := s.Conn.Decode(&u); err != nil {
				return err
			}
			if m, ok := s.mods[u.Name]; ok {
				delete(s.mods, u.Name)
				m.Close(ctx)
			}
		default:
			if err := handle(ctx, s, k); err != nil {
				return err
			}
		}
	}
}

// Module returns a loaded module by name. The lookup with string(b) of a
// []byte does not allocate.
func (s *Session) Module(name []byte) (*engine.Module, bool) {
	m, ok := s.mods[string(name)]
	return m, ok
}

// OutputLimit is the output limit of the session's calls (the hello's
// Limits), as CallIO gives it.
func (s *Session) OutputLimit() int { return s.limits.Output() }

// IO is CallIO with the session's output limit (the hello's Limits).
func (s *Session) IO(module, export, stdin, args, env []byte) engine.IO {
	return CallIO(module, export, stdin, args, env, s.limits.Output())
}

// CallIO returns the WASI input of a call of module's export, from the Job
// form of its stdin, argv and environment (ipc.Job), keeping outputLimit
// bytes of each output (0: the engine's). A command (export _start) or a
// call given arguments gets the module's name as argv[0], as a program run
// from a shell does; any other call gets an empty argv, so that a call
// without input allocates nothing here.
func CallIO(module, export, stdin, args, env []byte, outputLimit int) engine.IO {
	io := engine.IO{Stdin: stdin, OutputLimit: outputLimit}
	if len(args) > 0 || string(export) == "_start" {
		io.Args = append([]string{string(module)}, ipc.SplitList(args)...)
	}
	if len(env) > 0 {
		io.Env = ipc.SplitList(env)
	}
	return io
}

// compile compiles l's module within the session's budget. A compile over
// it is answered at once with an error, the process is ended (Budget.Exit),
// and over is true: then there is nothing left to answer.
func (s *Session) compile(ctx context.Context, l *ipc.Load) (m *engine.Module, over bool, err error) {
	if s.budget.For == nil {
		m, err = s.Engine.Compile(ctx, l.Wasm)
		return m, false, err
	}
	done := make(chan struct{})
	stopped := make(chan bool, 1)
	go func() {
		fired := false
		s.budget.watch(len(l.Wasm), done, func(reason string) {
			fired = true
			msg := reason + "; the module is too costly to compile (docs/RATIONALE.md)"
			s.Log.Error("compile over its budget; killing this process to stop it", "module", l.Name, "err", msg)
			s.Conn.Write(ipc.KindLoaded, &ipc.Loaded{ID: l.ID, Name: l.Name, SHA256: l.SHA256, Err: msg})
			exit := s.budget.Exit
			if exit == nil {
				exit = killSelf
			}
			exit()
		})
		stopped <- fired
	}()
	m, err = s.Engine.Compile(ctx, l.Wasm)
	close(done)
	return m, <-stopped, err
}

// load compiles a module (a cache hit when benchd compiled it first) and
// describes its exports. It returns nil when the compile went over its
// budget, which has been answered already.
func (s *Session) load(ctx context.Context, l *ipc.Load) *ipc.Loaded {
	start := time.Now()
	m, over, err := s.compile(ctx, l)
	if over {
		if m != nil {
			m.Close(ctx)
		}
		return nil // answered by the watcher
	}
	out := &ipc.Loaded{ID: l.ID, Name: l.Name, SHA256: l.SHA256, CompileNs: time.Since(start).Nanoseconds()}
	if err != nil {
		out.Err = err.Error()
		s.Log.Warn("compile module", "module", l.Name, "err", err)
		return out
	}
	// Close even when old == m: Compile of the same bytes took a reference
	// of its own, and Unload releases only one.
	if old, ok := s.mods[l.Name]; ok {
		old.Close(ctx)
	}
	s.mods[l.Name] = m
	for _, e := range m.Exports() {
		x := ipc.Export{Name: e.Name}
		for _, t := range e.Params {
			x.Params = append(x.Params, uint8(t))
		}
		for _, t := range e.Results {
			x.Results = append(x.Results, uint8(t))
		}
		out.Exports = append(out.Exports, x)
	}
	return out
}
