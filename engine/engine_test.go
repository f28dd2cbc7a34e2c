package engine

import (
	"context"
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/hyper-sched/hyper-sched/wasmval"
)

// fixture returns the bytes of ../testdata/name.
func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", name))
	if err != nil {
		t.Fatalf("read fixture: %v", err)
	}
	return b
}

func newEngine(t testing.TB, cfg Config) *Engine {
	t.Helper()
	e, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	t.Cleanup(func() {
		if err := e.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return e
}

func compile(t testing.TB, e *Engine, name string) *Module {
	t.Helper()
	m, err := e.Compile(context.Background(), fixture(t, name))
	if err != nil {
		t.Fatalf("Compile(%s): %v", name, err)
	}
	t.Cleanup(func() { _ = m.Close(context.Background()) })
	return m
}

func f32(v float32) uint64 { return uint64(math.Float32bits(v)) }
func f64(v float64) uint64 { return math.Float64bits(v) }
func i32(v int32) uint64   { return uint64(uint32(v)) }

func TestCall(t *testing.T) {
	e := newEngine(t, Config{})
	tests := []struct {
		file, export string
		params, want []uint64
	}{
		{"fib.wasm", "fib_r", []uint64{30}, []uint64{832040}},
		{"fib.wasm", "fib", []uint64{32}, []uint64{2178309}},
		{"fib.wasm", "fib", []uint64{0}, []uint64{0}},
		{"fib.wasm", "noop", nil, nil},
		{"fib.wasm", "add", []uint64{2, 3}, []uint64{5}},
		{"fib.wasm", "add", []uint64{i32(-1), 1}, []uint64{0}},
		{"fib.wasm", "add64", []uint64{1 << 40, 1}, []uint64{1<<40 + 1}},
		{"fib.wasm", "mulf", []uint64{f32(1.5), f32(-2)}, []uint64{f32(-3)}},
		{"fib.wasm", "mulf64", []uint64{f64(0.5), f64(1e300)}, []uint64{f64(5e299)}},
		{"loop.wasm", "spin", []uint64{0}, []uint64{0}},
		{"loop.wasm", "spin", []uint64{3}, []uint64{33}},
		{"memgrow.wasm", "grow", []uint64{1}, []uint64{1}},
		{"memgrow.wasm", "grow", []uint64{4096}, []uint64{i32(-1)}}, // 1+4096 pages > default limit
		{"trap.wasm", "div0", []uint64{7}, []uint64{14}},
		{"reactor.wasm", "ready", nil, []uint64{42}},
		{"command.wasm", "ping", nil, []uint64{7}},
		{"types.wasm", "ok", nil, []uint64{1}},
	}
	for _, tt := range tests {
		t.Run(tt.file+"/"+tt.export, func(t *testing.T) {
			m := compile(t, e, tt.file)
			res, err := m.Call(context.Background(), tt.export, tt.params)
			if err != nil {
				t.Fatalf("Call: %v", err)
			}
			if !slices.Equal(res.Results, tt.want) {
				t.Errorf("got %#x, want %#x", res.Results, tt.want)
			}
			if res.Instantiate <= 0 || res.Exec <= 0 {
				t.Errorf("got times %v, %v, want both > 0", res.Instantiate, res.Exec)
			}
		})
	}
}

func TestTrap(t *testing.T) {
	e := newEngine(t, Config{})
	m := compile(t, e, "trap.wasm")
	tests := []struct {
		export string
		params []uint64
		msg    string
	}{
		{"unreachable", nil, "unreachable"},
		{"div0", []uint64{0}, "integer divide by zero"},
		{"oob", nil, "out of bounds memory access"},
		{"recurse", []uint64{0}, "stack overflow"},
	}
	for _, tt := range tests {
		t.Run(tt.export, func(t *testing.T) {
			_, err := m.Call(context.Background(), tt.export, tt.params)
			var trap *TrapError
			if !errors.As(err, &trap) {
				t.Fatalf("got %v (%T), want *TrapError", err, err)
			}
			if trap.Msg != tt.msg {
				t.Errorf("got Msg %q, want %q", trap.Msg, tt.msg)
			}
			if trap.Stack == "" && tt.msg != "stack overflow" {
				t.Errorf("got empty Stack, want a wasm stack trace")
			}
			if got, want := err.Error(), "wasm trap: "+tt.msg; got != want {
				t.Errorf("got %q, want %q", got, want)
			}
		})
	}
	// A stack overflow ends one instance only: the module and the engine go on.
	for range 3 {
		if _, err := m.Call(context.Background(), "recurse", []uint64{0}); err == nil {
			t.Fatalf("recurse: got nil error, want a trap")
		}
		res, err := m.Call(context.Background(), "div0", []uint64{50})
		if err != nil || !slices.Equal(res.Results, []uint64{2}) {
			t.Fatalf("div0(50) after overflow: got %v, %v, want [2], nil", res.Results, err)
		}
	}
	fib := compile(t, e, "fib.wasm")
	res, err := fib.Call(context.Background(), "fib_r", []uint64{20})
	if err != nil || !slices.Equal(res.Results, []uint64{6765}) {
		t.Fatalf("fib_r(20) after overflow: got %v, %v, want [6765], nil", res.Results, err)
	}
}

func TestStartTrap(t *testing.T) {
	e := newEngine(t, Config{})
	m := compile(t, e, "starttrap.wasm")
	_, err := m.Call(context.Background(), "noop", nil)
	var trap *TrapError
	if !errors.As(err, &trap) || trap.Msg != "unreachable" {
		t.Fatalf("got %v, want *TrapError unreachable", err)
	}
	if got, want := err.Error(), "instantiate: wasm trap: unreachable"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	t.Logf("stack:\n%s", trap.Stack)
}

func TestMemoryLimit(t *testing.T) {
	e := newEngine(t, Config{MemoryLimitPages: 16})
	m := compile(t, e, "memgrow.wasm")
	for _, tt := range []struct{ n, want uint64 }{
		{15, 1},       // 1 + 15 = 16 pages: allowed, returns the old size
		{16, i32(-1)}, // 17 pages: refused, not a trap
		{0, 1},        // fresh instance: still 1 page
		{1 << 20, i32(-1)},
	} {
		res, err := m.Call(context.Background(), "grow", []uint64{tt.n})
		if err != nil {
			t.Fatalf("grow(%d): %v", tt.n, err)
		}
		if !slices.Equal(res.Results, []uint64{tt.want}) {
			t.Errorf("grow(%d): got %#x, want %#x", tt.n, res.Results, tt.want)
		}
	}
}

func TestCompileError(t *testing.T) {
	e := newEngine(t, Config{})
	fib := fixture(t, "fib.wasm")
	tests := []struct {
		name string
		wasm []byte
	}{
		{"notwasm", fixture(t, "notwasm.wasm")},
		{"empty", nil},
		{"truncated", fib[:len(fib)-3]},
		{"bad version", append([]byte{0, 'a', 's', 'm', 2, 0, 0, 0}, fib[8:]...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := e.Compile(context.Background(), tt.wasm)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("got %v, %v, want ErrInvalid", m, err)
			}
			var ie *ImportError
			if errors.As(err, &ie) {
				t.Errorf("got ImportError %v, want a decode error", ie)
			}
		})
	}
	// The header alone is a valid empty module.
	m, err := e.Compile(context.Background(), fib[:8])
	if err != nil {
		t.Fatalf("empty module: %v", err)
	}
	defer m.Close(context.Background())
	if got := m.Exports(); len(got) != 0 {
		t.Errorf("empty module: got exports %v, want none", got)
	}
}

func TestCompileWazeroPanic(t *testing.T) {
	// Found by FuzzCompile: function 1 has type index 48 of 4, and wazero
	// v1.12.0's validator indexes with it before checking it.
	wasm := []byte("\x00asm\x01\x00\x00\x00\x01\x14\x04`\x04\x7f\x7f\x7f\x7f\x01\x7f`\x01\x7f\x00`\x00\x00`\x00\x01\x7f\x03\x03\x02\x020\n\x18\x02\x11\x00AAA0A0A0x\x00\x1aA0\x10\x01\v\x04\x00A0\v")
	e := newEngine(t, Config{})
	if _, err := e.Compile(context.Background(), wasm); !errors.Is(err, ErrInvalid) {
		t.Fatalf("got %v, want ErrInvalid", err)
	}
	m := compile(t, e, "fib.wasm")
	if res, err := m.Call(context.Background(), "fib_r", []uint64{10}); err != nil || !slices.Equal(res.Results, []uint64{55}) {
		t.Fatalf("fib_r(10) after the panic: got %v, %v, want [55], nil", res.Results, err)
	}
}

func TestCompileHugeCount(t *testing.T) {
	// Found by FuzzCompile: wazero v1.12.0 allocates a vector by its declared
	// count before reading it; these 17 bytes declare ~10^8 exports and made
	// it allocate 3.5 GB. precheck rejects them before wazero sees them.
	tests := []struct {
		name string
		wasm []byte
		msg  string
	}{
		{"export count", []byte("\x00asm\x01\x00\x00\x00\a\n\xdb\xb6\xfa0000000"), "export count"},
		{"custom section size", []byte("\x00asm\x01\x00\x00\x00\x00\xff\xff\xff\xff\x0f\x01x"), "exceeds"},
		{"data length", []byte("\x00asm\x01\x00\x00\x00\x0b\x07\x01\x01\xff\xff\xff\xff\x0f"), "data length"},
		{"locals", []byte("\x00asm\x01\x00\x00\x00\x01\x04\x01\x60\x00\x00\x03\x02\x01\x00\x0a\x0a\x01\x08\x01\xff\xff\xff\xff\x0f\x7f\x0b"), "locals"},
	}
	e := newEngine(t, Config{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.Compile(context.Background(), tt.wasm)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("got %v, want ErrInvalid mentioning %q", err, tt.msg)
			}
		})
	}
}

func TestImportError(t *testing.T) {
	e := newEngine(t, Config{})
	_, err := e.Compile(context.Background(), fixture(t, "badimport.wasm"))
	var ie *ImportError
	if !errors.As(err, &ie) {
		t.Fatalf("got %v (%T), want *ImportError", err, err)
	}
	if want := []string{"env.host_fn"}; !slices.Equal(ie.Names, want) {
		t.Errorf("got Names %q, want %q", ie.Names, want)
	}
	if got, want := err.Error(), `unresolved import "env.host_fn"`; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("got errors.Is(err, ErrInvalid) false, want true")
	}
	// WASI imports resolve.
	compile(t, e, "wasi_hello.wasm")
}

func TestImportErrorKinds(t *testing.T) {
	// Hand-assembled: imports env.f (func), wasi_snapshot_preview1.fd_write
	// with the wrong type, wasi_snapshot_preview1.nope, env.mem (memory),
	// env.tab (table) and env.g (global).
	wasm := []byte{0, 'a', 's', 'm', 1, 0, 0, 0,
		// type section: 1 type, () -> ()
		1, 4, 1, 0x60, 0, 0,
	}
	imports := []byte{6}
	entry := func(module, name string, desc ...byte) {
		imports = append(imports, byte(len(module)))
		imports = append(imports, module...)
		imports = append(imports, byte(len(name)))
		imports = append(imports, name...)
		imports = append(imports, desc...)
	}
	entry("env", "f", 0, 0)
	entry("wasi_snapshot_preview1", "fd_write", 0, 0)
	entry("wasi_snapshot_preview1", "nope", 0, 0)
	entry("env", "mem", 2, 0, 1)
	entry("env", "tab", 1, 0x70, 0, 0)
	entry("env", "g", 3, 0x7f, 0)
	wasm = append(wasm, 2, byte(len(imports)))
	wasm = append(wasm, imports...)

	e := newEngine(t, Config{})
	_, err := e.Compile(context.Background(), wasm)
	var ie *ImportError
	if !errors.As(err, &ie) {
		t.Fatalf("got %v (%T), want *ImportError", err, err)
	}
	want := []string{"env.f", "wasi_snapshot_preview1.fd_write", "wasi_snapshot_preview1.nope", "env.mem", "env.tab", "env.g"}
	if !slices.Equal(ie.Names, want) {
		t.Errorf("got Names %q, want %q", ie.Names, want)
	}
	if msg := err.Error(); !strings.Contains(msg, `"wasi_snapshot_preview1.fd_write" (type ()->(), want (i32,i32,i32,i32)->i32)`) {
		t.Errorf("got %q, want the fd_write type mismatch explained", msg)
	}
}

func TestNoStateLeak(t *testing.T) {
	e := newEngine(t, Config{})
	m := compile(t, e, "counter.wasm")
	for _, export := range []string{"incr", "incr_mem"} {
		for i := range 3 {
			res, err := m.Call(context.Background(), export, nil)
			if err != nil {
				t.Fatalf("%s: %v", export, err)
			}
			if !slices.Equal(res.Results, []uint64{1}) {
				t.Errorf("%s call %d: got %v, want [1]", export, i, res.Results)
			}
		}
	}
}

func TestWASI(t *testing.T) {
	e := newEngine(t, Config{})
	m := compile(t, e, "wasi_hello.wasm")
	call := func(export string, params ...uint64) (Result, error) {
		t.Helper()
		return m.Call(context.Background(), export, params)
	}

	res, err := call("hello")
	if err != nil {
		t.Fatalf("hello: %v", err)
	}
	if string(res.Stdout) != "hello\n" || res.Stderr != nil {
		t.Errorf("hello: got stdout %q, stderr %q, want %q, nil", res.Stdout, res.Stderr, "hello\n")
	}

	res, err = call("hello_err")
	if err != nil {
		t.Fatalf("hello_err: %v", err)
	}
	if res.Stdout != nil || string(res.Stderr) != "hello\n" {
		t.Errorf("hello_err: got stdout %q, stderr %q, want nil, %q", res.Stdout, res.Stderr, "hello\n")
	}

	res, err = call("spam", 1000) // 6000 bytes
	if err != nil {
		t.Fatalf("spam: %v", err)
	}
	if got, want := len(res.Stdout), DefaultStdoutLimit; got != want {
		t.Errorf("spam: got %d bytes, want %d", got, want)
	}
	if !strings.HasPrefix(string(res.Stdout), "hello\nhello\n") {
		t.Errorf("spam: got %.20q..., want the first bytes kept", res.Stdout)
	}

	_, err = call("quit", 3)
	var exit *ExitError
	if !errors.As(err, &exit) || exit.Code != 3 {
		t.Errorf("quit(3): got %v, want *ExitError with Code 3", err)
	}
	if res, err := call("quit", 0); err != nil || res.Results != nil {
		t.Errorf("quit(0): got %v, %v, want nil, nil", res.Results, err)
	}
}

func TestStdoutLimit(t *testing.T) {
	e := newEngine(t, Config{StdoutLimit: 100})
	m := compile(t, e, "wasi_hello.wasm")
	res, err := m.Call(context.Background(), "spam", []uint64{1000})
	if err != nil {
		t.Fatalf("spam: %v", err)
	}
	if got := len(res.Stdout); got != 100 {
		t.Errorf("got %d bytes, want 100", got)
	}
}

func TestCommand(t *testing.T) {
	e := newEngine(t, Config{})
	m := compile(t, e, "command.wasm")
	// ping works, so _start did not run (and exit) at instantiation.
	res, err := m.Call(context.Background(), "ping", nil)
	if err != nil || res.Stdout != nil {
		t.Fatalf("ping: got stdout %q, %v, want nil, nil", res.Stdout, err)
	}
	res, err = m.Call(context.Background(), "_start", nil)
	if err != nil {
		t.Fatalf("_start: %v", err)
	}
	if got, want := string(res.Stdout), "started\n"; got != want {
		t.Errorf("_start: got stdout %q, want %q", got, want)
	}
}

func TestExports(t *testing.T) {
	e := newEngine(t, Config{})
	i32, i64, f32, f64 := wasmval.I32, wasmval.I64, wasmval.F32, wasmval.F64
	want := []Export{
		{"add", []wasmval.Type{i32, i32}, []wasmval.Type{i32}},
		{"add64", []wasmval.Type{i64, i64}, []wasmval.Type{i64}},
		{"fib", []wasmval.Type{i32}, []wasmval.Type{i32}},
		{"fib_r", []wasmval.Type{i32}, []wasmval.Type{i32}},
		{"mulf", []wasmval.Type{f32, f32}, []wasmval.Type{f32}},
		{"mulf64", []wasmval.Type{f64, f64}, []wasmval.Type{f64}},
		{"noop", []wasmval.Type{}, []wasmval.Type{}},
	}
	got := compile(t, e, "fib.wasm").Exports()
	eq := func(a, b Export) bool {
		return a.Name == b.Name && slices.Equal(a.Params, b.Params) && slices.Equal(a.Results, b.Results)
	}
	if !slices.EqualFunc(got, want, eq) {
		t.Errorf("fib exports: got %v, want %v", got, want)
	}
	names := func(xs []Export) (s []string) {
		for _, x := range xs {
			s = append(s, x.Name)
		}
		return s
	}
	for _, tt := range []struct {
		file string
		want []string
	}{
		{"reactor.wasm", []string{"ready"}},  // _initialize is not callable
		{"types.wasm", []string{"ok"}},       // v128 and externref are left out
		{"startloop.wasm", []string{"noop"}}, // compiles; only instantiation hangs
		{"command.wasm", []string{"_start", "ping"}},
	} {
		if got := names(compile(t, e, tt.file).Exports()); !slices.Equal(got, tt.want) {
			t.Errorf("%s exports: got %q, want %q", tt.file, got, tt.want)
		}
	}
	m := compile(t, e, "fib.wasm")
	if x, ok := m.Export("add64"); !ok || !eq(x, want[1]) {
		t.Errorf("Export(add64): got %v, %v, want %v, true", x, ok, want[1])
	}
	if _, ok := m.Export("nope"); ok {
		t.Errorf("Export(nope): got ok, want false")
	}
}

func TestCallError(t *testing.T) {
	e := newEngine(t, Config{})
	fib := compile(t, e, "fib.wasm")
	types := compile(t, e, "types.wasm")
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name   string
		m      *Module
		ctx    context.Context
		export string
		params []uint64
		want   error
		msg    string
	}{
		{"unknown export", fib, context.Background(), "nope", nil, ErrNoExport, `engine: no such export: "nope"`},
		{"v128 export", types, context.Background(), "vec", []uint64{0, 0}, ErrNoExport, ""},
		{"too many params", fib, context.Background(), "fib_r", []uint64{1, 2}, ErrParamCount, "engine: wrong number of params: fib_r takes 1, got 2"},
		{"too few params", fib, context.Background(), "add", nil, ErrParamCount, "takes 2, got 0"},
		{"params to void", fib, context.Background(), "noop", []uint64{1}, ErrParamCount, "takes 0, got 1"},
		{"canceled", fib, canceled, "noop", nil, context.Canceled, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.m.Call(tt.ctx, tt.export, tt.params)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("got %q, want it to contain %q", err, tt.msg)
			}
		})
	}
}

func TestModuleLifecycle(t *testing.T) {
	ctx := context.Background()
	e := newEngine(t, Config{})
	wasm := fixture(t, "fib.wasm")
	m1, err := e.Compile(ctx, wasm)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := e.Compile(ctx, slices.Clone(wasm))
	if err != nil {
		t.Fatal(err)
	}
	if m1 != m2 {
		t.Fatalf("same bytes compiled twice: got two Modules, want one")
	}
	if m1.CompileTime() <= 0 {
		t.Errorf("got CompileTime %v, want > 0", m1.CompileTime())
	}
	if err := m1.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := m2.Call(ctx, "noop", nil); err != nil {
		t.Fatalf("Call with one reference left: %v", err)
	}
	if err := m2.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := m2.Call(ctx, "noop", nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Call after last Close: got %v, want ErrClosed", err)
	}
	if err := m2.Close(ctx); err != nil {
		t.Fatalf("extra Close: got %v, want nil", err)
	}
	m3, err := e.Compile(ctx, wasm)
	if err != nil {
		t.Fatal(err)
	}
	defer m3.Close(ctx)
	if m3 == m1 {
		t.Fatalf("compile after last Close: got the closed Module, want a new one")
	}
	if _, err := m3.Call(ctx, "noop", nil); err != nil {
		t.Fatalf("Call on recompiled module: %v", err)
	}
}

func TestEngineClose(t *testing.T) {
	ctx := context.Background()
	e, err := New(ctx, Config{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := e.Compile(ctx, fixture(t, "fib.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(ctx); err != nil {
		t.Fatalf("second Close: got %v, want nil", err)
	}
	if _, err := m.Call(ctx, "noop", nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Call after engine Close: got %v, want ErrClosed", err)
	}
	if _, err := e.Compile(ctx, fixture(t, "fib.wasm")); !errors.Is(err, ErrClosed) {
		t.Errorf("Compile after Close: got %v, want ErrClosed", err)
	}
	if err := m.Close(ctx); err != nil {
		t.Errorf("Module Close after engine Close: %v", err)
	}
}

func TestConfig(t *testing.T) {
	for _, cfg := range []Config{
		{MemoryLimitPages: 65537},
		{StdoutLimit: -1},
	} {
		if e, err := New(context.Background(), cfg); err == nil {
			e.Close(context.Background())
			t.Errorf("New(%+v): got nil error, want one", cfg)
		}
	}
	e := newEngine(t, Config{})
	want := Config{MemoryLimitPages: DefaultMemoryLimitPages, StdoutLimit: DefaultStdoutLimit}
	if got := e.Config(); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestCompilationCache(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "cache") // New creates it
	wasm := fixture(t, "fib.wasm")

	e1 := newEngine(t, Config{CacheDir: dir})
	m1, err := e1.Compile(ctx, wasm)
	if err != nil {
		t.Fatal(err)
	}
	files := 0
	err = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files++
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if files == 0 {
		t.Fatalf("got no files in %s after Compile, want the compiled module", dir)
	}

	e2 := newEngine(t, Config{CacheDir: dir})
	m2, err := e2.Compile(ctx, wasm)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("compile: cold %v, from cache %v", m1.CompileTime(), m2.CompileTime())
	res, err := m2.Call(ctx, "fib_r", []uint64{20})
	if err != nil || !slices.Equal(res.Results, []uint64{6765}) {
		t.Fatalf("fib_r(20) from cached code: got %v, %v, want [6765], nil", res.Results, err)
	}
}

func TestConcurrent(t *testing.T) {
	ctx := context.Background()
	e := newEngine(t, Config{})
	fib, counter := fixture(t, "fib.wasm"), fixture(t, "counter.wasm")
	var wg sync.WaitGroup
	mods := make([]*Module, 8)
	for i := range mods {
		wg.Go(func() {
			m, err := e.Compile(ctx, fib)
			if err != nil {
				t.Error(err)
				return
			}
			mods[i] = m
			for range 20 {
				res, err := m.Call(ctx, "fib_r", []uint64{15})
				if err != nil || !slices.Equal(res.Results, []uint64{610}) {
					t.Errorf("fib_r(15): got %v, %v, want [610], nil", res.Results, err)
					return
				}
			}
		})
		wg.Go(func() {
			m, err := e.Compile(ctx, counter)
			if err != nil {
				t.Error(err)
				return
			}
			defer m.Close(ctx)
			for range 20 {
				res, err := m.Call(ctx, "incr", nil)
				if err != nil || !slices.Equal(res.Results, []uint64{1}) {
					t.Errorf("incr: got %v, %v, want [1], nil", res.Results, err)
					return
				}
			}
		})
	}
	wg.Wait()
	for _, m := range mods {
		if m != mods[0] {
			t.Errorf("concurrent Compile of the same bytes: got different Modules, want one")
		}
		if m != nil {
			m.Close(ctx)
		}
	}
}
