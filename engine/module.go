package engine

import (
	"context"
	"crypto/sha256"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"

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
	active int  // calls in progress
	dead   bool // refs reached 0; compiled is closed once active is 0
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
	// Stdout and Stderr are the first Config.StdoutLimit bytes the call
	// wrote to each; nil when it wrote none.
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
// state survives from one call to the next.
//
// The instance gets WASI with no preopened directories, no environment
// variables, empty argv, empty stdin, the real clocks, sleep and a
// cryptographic random source; its stdout and stderr go to bounded buffers.
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
func (m *Module) Call(ctx context.Context, export string, params []uint64) (Result, error) {
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

	var out output
	out.stdout.limit = m.e.cfg.StdoutLimit
	out.stderr.limit = m.e.cfg.StdoutLimit
	cfg := m.e.inst.WithStdout(&out.stdout).WithStderr(&out.stderr)

	// The instance's linear memory is freed when the call ends, also when
	// instantiation fails, which wazero would leave to the collector.
	var mem allocator
	defer mem.free()

	var res Result
	t0 := time.Now()
	inst, err := m.e.rt.InstantiateModule(mem.context(ctx), m.compiled, cfg)
	if err != nil {
		res.Instantiate = time.Since(t0)
		out.fill(&res)
		return res, fmt.Errorf("instantiate: %w", classify(err, false))
	}
	fn := inst.ExportedFunction(export) // sets up the call stack
	t1 := time.Now()
	res.Instantiate = t1.Sub(t0)
	results, err := fn.Call(ctx, params...)
	res.Exec = time.Since(t1)
	_ = inst.Close(ctx) // closing a finished instance only releases memory
	out.fill(&res)
	if err != nil {
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
	free := m.active == 0
	m.mu.Unlock()
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
	r.Stdout = o.stdout.b
	r.Stderr = o.stderr.b
}

// bounded keeps the first limit bytes written to it and drops the rest,
// reporting success so that the guest does not fail on a full buffer.
type bounded struct {
	b     []byte
	limit int
}

func (w *bounded) Write(p []byte) (int, error) {
	if room := w.limit - len(w.b); room > 0 {
		w.b = append(w.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}
