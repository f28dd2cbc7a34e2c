package engine

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/hyper-sched/hyper-sched/wasmval"
)

// Module is a compiled module of an [Engine]. It is safe for concurrent use:
// every Call runs in its own instance.
type Module struct {
	e    *Engine
	hash [sha256.Size]byte

	// Set once by Engine.Compile before ready is closed; read-only after.
	ready       chan struct{}
	err         error
	compiled    wazero.CompiledModule
	compileTime time.Duration
	exports     []Export
	byName      map[string]int

	refs int // references held by Compile callers; guarded by e.mu

	mu     sync.Mutex
	active int       // calls in progress, and the prepared instance
	dead   bool      // refs reached 0; compiled is closed once active is 0
	prep   *prepared // the next call's instance, if made (Prepare)
}

// Export is an exported function and its signature.
type Export struct {
	Name            string
	Params, Results []wasmval.Type
}

// Result is the outcome of one [Module.Call].
type Result struct {
	// Results are the returned values as raw bits, as wazero gives them:
	// i32 zero-extended, f32 and f64 as IEEE 754 bits. nil for a function
	// without results.
	Results []uint64
	// Instantiate is the time to instantiate a fresh instance, including
	// its start functions, and to prepare the call: the warm-start cost.
	Instantiate time.Duration
	// Exec is the time of the call itself.
	Exec time.Duration
	// Stdout and Stderr are the first IO.OutputLimit (by default
	// Config.StdoutLimit) bytes the call wrote to each; nil when it wrote
	// none.
	Stdout, Stderr []byte
	// StdoutBytes and StderrBytes count every byte the call wrote to each,
	// kept or not: more than len(Stdout) means the output was cut.
	StdoutBytes, StderrBytes int64
	// Exited is set when the guest called WASI proc_exit, with ExitCode its
	// code; a non-zero code also makes Call return an [*ExitError].
	Exited   bool
	ExitCode uint32
}

// IO is a call's WASI input: what it reads on stdin, its argv and its
// environment. The zero value is empty stdin, an empty argv and no
// environment, with Config.StdoutLimit as the output limit.
type IO struct {
	// Stdin is what the guest reads on fd 0, then EOF. Call does not
	// modify it.
	Stdin []byte
	// Args is the whole argv, the program name first; nil is an empty argv.
	Args []string
	// Env holds "KEY=VALUE" entries; a KEY must not hold '=' and no entry
	// may hold NUL.
	Env []string
	// OutputLimit is how many bytes of stdout, and separately of stderr,
	// are kept; 0 means Config.StdoutLimit.
	OutputLimit int
	// Stdout and Stderr, if not nil, are the buffers the output is kept
	// in, from length 0: Result's slices then share their storage. A
	// caller that hands the same buffers to every call allocates nothing
	// for output once they have grown: a fresh megabyte per call costs
	// more in page faults than the copying it holds.
	Stdout, Stderr []byte
}

// CompileTime returns how long the first Compile of these bytes took in this
// Engine: a cold start, or a cache load when the compilation cache already
// held them.
func (m *Module) CompileTime() time.Duration { return m.compileTime }

// Exports returns the callable exported functions, sorted by name: those
// whose params and results are all i32, i64, f32 or f64. Functions using
// v128 or reference types are left out, as is a WASI reactor's _initialize,
// which every instantiation runs already. The slices inside must not be
// modified.
func (m *Module) Exports() []Export { return slices.Clone(m.exports) }

// Export returns the callable export called name, or false. Its slices must
// not be modified.
func (m *Module) Export(name string) (Export, bool) {
	i, ok := m.byName[name]
	if !ok {
		return Export{}, false
	}
	return m.exports[i], true
}

// Call instantiates a fresh instance of the module, calls export with params
// (raw bits, one per parameter; nil for none) and closes the instance, so no
// state survives from one call to the next. It is CallIO with an empty IO.
func (m *Module) Call(ctx context.Context, export string, params []uint64) (Result, error) {
	return m.CallIO(ctx, export, params, IO{})
}

// CallIO is Call with stdin, argv and environment from io.
//
// The instance gets WASI with no preopened directories, io's environment,
// argv and stdin, the real clocks, sleep and a cryptographic random source;
// its stdout and stderr go to buffers bounded by io.OutputLimit, and what
// goes beyond is counted and dropped, without the guest seeing an error.
// A WASI command is called through its export _start, which returns by
// proc_exit: exit code 0 is a success, another is an [*ExitError]; both
// set Result.Exited.
//
// Errors: ErrNoExport for a name [Module.Export] does not know,
// ErrParamCount for a wrong number of params, ctx's error if it is already
// done, [*TrapError] for a trap (wrapped with "instantiate: " when a start
// function trapped), [*ExitError] for a WASI proc_exit other than exit code 0
// from a function without results, and ErrClosed after Close. On error the
// Result still holds the times and output gathered so far.
//
// # Notes
//
//   - Call never stops a running function: ctx is checked only before the
//     call, and the deadline is enforced by killing the process (see the
//     package doc). A start function that never returns hangs Call in
//     instantiation.
//   - A call blocks its goroutine's OS thread, and while wasm runs the Go
//     runtime cannot stop that thread for garbage collection.
func (m *Module) CallIO(ctx context.Context, export string, params []uint64, io IO) (Result, error) {
	i, ok := m.byName[export]
	if !ok {
		return Result{}, fmt.Errorf("%w: %q", ErrNoExport, export)
	}
	x := m.exports[i]
	if len(params) != len(x.Params) {
		return Result{}, fmt.Errorf("%w: %s takes %d, got %d", ErrParamCount, export, len(x.Params), len(params))
	}
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	if !m.acquire() {
		return Result{}, ErrClosed
	}
	defer m.release()

	limit := m.outputLimit(io.OutputLimit)
	var (
		res  Result
		inst api.Module
		out  *output
		mem  *allocator // the instance's linear memory, freed when the call ends
		fn   api.Function
		t0   = time.Now()
	)
	if p := m.takePrepared(io, limit); p != nil {
		defer m.release() // the prepared instance's reference
		inst, out, mem = p.inst, &p.out, &p.mem
		defer mem.free()
		if p.export == export {
			fn = p.fn
		}
		t0 = t0.Add(-p.took) // the instantiation it did not wait for
		// Output a start function wrote stays where it was written.
		if out.stdout.n == 0 {
			out.stdout.b = io.Stdout[:0]
		}
		if out.stderr.n == 0 {
			out.stderr.b = io.Stderr[:0]
		}
	} else {
		out, mem = new(output), new(allocator)
		out.stdout.limit, out.stderr.limit = limit, limit
		out.stdout.b, out.stderr.b = io.Stdout[:0], io.Stderr[:0]
		cfg := m.e.inst.WithStdout(&out.stdout).WithStderr(&out.stderr)
		// Each With clones the config: only what this call sets.
		if len(io.Stdin) > 0 {
			cfg = cfg.WithStdin(bytes.NewReader(io.Stdin))
		}
		if len(io.Args) > 0 {
			cfg = cfg.WithArgs(io.Args...)
		}
		for _, kv := range io.Env {
			k, v, _ := strings.Cut(kv, "=")
			cfg = cfg.WithEnv(k, v)
		}
		var err error
		// Freed also when instantiation fails, which wazero would leave
		// to the collector.
		defer mem.free()
		inst, err = m.e.rt.InstantiateModule(mem.context(ctx), m.compiled, cfg)
		if err != nil {
			res.Instantiate = time.Since(t0)
			out.fill(&res)
			err = classify(err, false)
			res.exited(err)
			return res, fmt.Errorf("instantiate: %w", err)
		}
	}
	if fn == nil {
		fn = inst.ExportedFunction(export) // allocates its call stack
	}
	t1 := time.Now()
	res.Instantiate = t1.Sub(t0)
	results, err := fn.Call(ctx, params...)
	res.Exec = time.Since(t1)
	_ = inst.Close(ctx) // closing a finished instance only releases memory
	out.fill(&res)
	if err != nil {
		if code, ok := exitCode(err); ok {
			res.Exited, res.ExitCode = true, code
		}
		// A proc_exit(0) from a function with results leaves none to report.
		return res, classify(err, len(x.Results) == 0)
	}
	if len(results) > 0 {
		res.Results = slices.Clone(results)
	}
	return res, nil
}

// Close releases one reference taken by [Engine.Compile]. The compiled code
// is freed when the last reference is released and the last running Call
// has returned; later Calls return ErrClosed, and compiling the same bytes
// again compiles anew. Extra Closes are no-ops.
func (m *Module) Close(ctx context.Context) error {
	e := m.e
	e.mu.Lock()
	if m.refs == 0 {
		e.mu.Unlock()
		return nil
	}
	m.refs--
	last := m.refs == 0
	if last && e.mods[m.hash] == m {
		delete(e.mods, m.hash)
	}
	e.mu.Unlock()
	if !last {
		return nil
	}
	m.mu.Lock()
	m.dead = true
	p := m.prep
	m.prep = nil
	free := m.active == 0
	m.mu.Unlock()
	if p != nil {
		m.discard(p) // its release frees the code if nothing else runs
		return nil
	}
	if free {
		return m.free(ctx)
	}
	return nil
}

func (m *Module) acquire() bool {
	if m.e.closed.Load() {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.dead {
		return false
	}
	m.active++
	return true
}

func (m *Module) release() {
	m.mu.Lock()
	m.active--
	free := m.dead && m.active == 0
	m.mu.Unlock()
	if free {
		_ = m.free(context.Background()) // nothing to report it to
	}
}

func (m *Module) free(ctx context.Context) error {
	if err := m.compiled.Close(ctx); err != nil {
		return fmt.Errorf("engine: close module: %w", err)
	}
	return nil
}

// output holds a call's bounded stdout and stderr.
type output struct{ stdout, stderr bounded }

func (o *output) fill(r *Result) {
	r.Stdout, r.StdoutBytes = o.stdout.b, o.stdout.n
	r.Stderr, r.StderrBytes = o.stderr.b, o.stderr.n
}

// exited records an exit reported as an error by classify.
func (r *Result) exited(err error) {
	var e *ExitError
	if errors.As(err, &e) {
		r.Exited, r.ExitCode = true, e.Code
	}
}

// bounded keeps the first limit bytes written to it and drops the rest,
// reporting success so that the guest does not fail on a full buffer; n
// counts them all.
type bounded struct {
	b     []byte
	limit int
	n     int64
}

func (w *bounded) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	if room := w.limit - len(w.b); room > 0 {
		w.b = append(w.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}
