package engine

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/hyper-sched/hyper-sched/wasmval"
)

// Engine is one wazero runtime (the optimizing compiler where the platform
// supports it, else the interpreter) with WASI snapshot preview1
// instantiated once, and the set of modules compiled in it. It is safe for
// concurrent use.
type Engine struct {
	cfg   Config
	rt    wazero.Runtime
	cache wazero.CompilationCache // nil when cfg.CacheDir is ""
	wasi  map[string]api.FunctionDefinition
	inst  wazero.ModuleConfig // per-call instance settings, less stdout and stderr

	closed atomic.Bool

	mu   sync.Mutex
	mods map[[sha256.Size]byte]*Module // by content; guards Module.refs too
}

// New returns an Engine configured by cfg, after filling cfg's zero fields
// with their defaults and validating it. With a CacheDir, New creates the
// directory if needed. The caller must Close the Engine.
func New(ctx context.Context, cfg Config) (*Engine, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	rc := wazero.NewRuntimeConfig().
		WithMemoryLimitPages(cfg.MemoryLimitPages).
		// Deadlines are enforced by killing the process, never in the
		// engine: the checks cost ~100x in tight loops (DESIGN.md §1).
		WithCloseOnContextDone(false)
	e := &Engine{cfg: cfg, mods: make(map[[sha256.Size]byte]*Module)}
	if cfg.CacheDir != "" {
		e.cache, err = wazero.NewCompilationCacheWithDir(cfg.CacheDir)
		if err != nil {
			return nil, fmt.Errorf("engine: open compilation cache %s: %w", cfg.CacheDir, err)
		}
		rc = rc.WithCompilationCache(e.cache)
	}
	e.rt = wazero.NewRuntimeWithConfig(ctx, rc)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, e.rt); err != nil {
		_ = e.Close(ctx) // the instantiate error is the one to report
		return nil, fmt.Errorf("engine: instantiate WASI: %w", err)
	}
	e.wasi = e.rt.Module(wasi_snapshot_preview1.ModuleName).ExportedFunctionDefinitions()
	e.inst = wazero.NewModuleConfig().
		// Anonymous, so the same module can be instantiated any number of
		// times at once; a module's own name section would otherwise clash.
		WithName("").
		// Run a WASI reactor's initializer, which must precede its exports;
		// never a command's _start (wazero's default), which runs main and
		// exits: it stays callable as an export instead.
		WithStartFunctions("_initialize").
		WithSysWalltime().
		WithSysNanotime().
		WithSysNanosleep().
		WithRandSource(rand.Reader)
	return e, nil
}

// Config returns the Engine's configuration with defaults filled in.
func (e *Engine) Config() Config { return e.cfg }

// Compile validates and compiles wasm, or returns the Module already compiled
// from the same bytes (by SHA-256) in this Engine. Each successful Compile
// takes one reference to the Module, released by one [Module.Close].
//
// Bytes that are not a valid module give an error matching [ErrInvalid]
// (the text format is named as such, with the way to convert it); a module
// with imports other than WASI preview1 functions gives an [*ImportError],
// which matches ErrInvalid too. Also invalid: a module whose minimum memory
// exceeds Config.MemoryLimitPages, a module over any limit of limits.go
// ([MaxTableElements], [MaxLocals], ...), ref.func in a function body, and
// any vector whose declared length exceeds the bytes that follow it, which
// wazero would otherwise allocate before noticing. Tables are compiled with
// their maxima lowered to MaxTableElements together. Compilation is not
// interruptible; ctx is passed to wazero.
//
// # Notes
//
//   - Start functions do not run here but at every instantiation, that is in
//     every [Module.Call]. A module whose start function never returns
//     compiles fine and then hangs every call: the caller's deadline, enforced
//     by killing the process, is what stops it.
//   - With a CacheDir, wazero looks the compiled code up on disk first, so a
//     short [Module.CompileTime] means a cache hit (a warm compile).
func (e *Engine) Compile(ctx context.Context, wasm []byte) (*Module, error) {
	key := sha256.Sum256(wasm)
	e.mu.Lock()
	if e.closed.Load() {
		e.mu.Unlock()
		return nil, ErrClosed
	}
	if m := e.mods[key]; m != nil {
		m.refs++
		e.mu.Unlock()
		<-m.ready
		if m.err != nil {
			return nil, m.err
		}
		return m, nil
	}
	m := &Module{e: e, hash: key, ready: make(chan struct{}), refs: 1}
	e.mods[key] = m
	e.mu.Unlock()

	err := m.compile(ctx, wasm)
	if err != nil {
		e.mu.Lock()
		delete(e.mods, key)
		e.mu.Unlock()
		m.err = err
	}
	close(m.ready)
	if err != nil {
		return nil, err
	}
	return m, nil
}

// compile fills in m from wasm; it runs once, before m.ready is closed.
func (m *Module) compile(ctx context.Context, wasm []byte) error {
	start := time.Now()
	wasm, err := precheck(wasm)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	c, err := compileModule(ctx, m.e.rt, wasm)
	m.compileTime = time.Since(start)
	if err != nil {
		if m.e.closed.Load() {
			return ErrClosed
		}
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if err := checkImports(c, wasm, m.e.wasi); err != nil {
		_ = c.Close(ctx) // the import error is the one to report
		return err
	}
	m.compiled = c
	m.byName = make(map[string]int)
	for name, f := range c.ExportedFunctions() {
		if name == "_initialize" { // already run by every instantiation
			continue
		}
		params, ok1 := ValueTypes(f.ParamTypes())
		results, ok2 := ValueTypes(f.ResultTypes())
		if !ok1 || !ok2 {
			continue
		}
		m.exports = append(m.exports, Export{Name: name, Params: params, Results: results})
	}
	sort.Slice(m.exports, func(i, j int) bool { return m.exports[i].Name < m.exports[j].Name })
	for i, x := range m.exports {
		m.byName[x.Name] = i
	}
	return nil
}

// compileModule is rt.CompileModule, with a panic turned into an error.
// wazero v1.12.0's validator panics on some malformed modules (a function
// whose type index is out of range, called before it is checked: see
// testdata/fuzz/FuzzCompile/wazero-functype-index-panic), and module bytes
// come from outside. Such panics happen while decoding and validating a new
// module, before any shared runtime state is touched, so recovering leaves
// the runtime usable.
func compileModule(ctx context.Context, rt wazero.Runtime, wasm []byte) (c wazero.CompiledModule, err error) {
	defer func() {
		if r := recover(); r != nil {
			c, err = nil, fmt.Errorf("wazero panicked: %v", r)
		}
	}()
	return rt.CompileModule(ctx, wasm)
}

// ValueTypes converts wazero value types; ok is false for v128 and
// reference types, which hyper-sched cannot pass.
func ValueTypes(ts []api.ValueType) (out []wasmval.Type, ok bool) {
	out = make([]wasmval.Type, len(ts))
	for i, t := range ts {
		switch t {
		case api.ValueTypeI32:
			out[i] = wasmval.I32
		case api.ValueTypeI64:
			out[i] = wasmval.I64
		case api.ValueTypeF32:
			out[i] = wasmval.F32
		case api.ValueTypeF64:
			out[i] = wasmval.F64
		default:
			return nil, false
		}
	}
	return out, true
}

// Close closes the runtime, every Module compiled in it and the compilation
// cache handle (the files stay). It must not be called while calls are
// running: wazero does not wait for them. Later Compile and Call return
// ErrClosed. Closing twice is a no-op.
func (e *Engine) Close(ctx context.Context) error {
	if e.closed.Swap(true) {
		return nil
	}
	e.mu.Lock()
	e.mods = nil
	e.mu.Unlock()
	var errs []error
	if e.rt != nil {
		errs = append(errs, e.rt.Close(ctx))
	}
	if e.cache != nil {
		errs = append(errs, e.cache.Close(ctx))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("engine: close: %w", err)
	}
	return nil
}
