package engine

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// compileChildEnv makes the test binary act as a fresh process that
// compiles one module and prints how long it took (Go: os/exec's
// helper-process pattern).
const compileChildEnv = "ENGINE_TEST_COMPILE_CHILD"

// callChildEnv makes the test binary act as a fresh process that calls one
// export and prints its memory use (see callInChild).
const callChildEnv = "ENGINE_TEST_CALL_CHILD"

func TestMain(m *testing.M) {
	if spec := os.Getenv(compileChildEnv); spec != "" {
		os.Exit(compileChild(spec))
	}
	if spec := os.Getenv(callChildEnv); spec != "" {
		os.Exit(callChild(spec))
	}
	os.Exit(m.Run())
}

// compileChild compiles the module at path with the cache in dir, as a
// coreworker does after start, and prints the compile time in ns.
func compileChild(spec string) int {
	cacheDir, path, _ := strings.Cut(spec, "|")
	ctx := context.Background()
	wasm, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	e, err := New(ctx, Config{CacheDir: cacheDir})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer e.Close(ctx)
	t0 := time.Now()
	if _, err := e.Compile(ctx, wasm); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(time.Since(t0).Nanoseconds())
	return 0
}

// compileInChild runs one fresh process compiling path with cacheDir and
// returns its compile time.
func compileInChild(tb testing.TB, cacheDir, path string) time.Duration {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), compileChildEnv+"="+cacheDir+"|"+path)
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("compile child: %v", err)
	}
	ns, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if err != nil {
		tb.Fatalf("compile child printed %q", out)
	}
	return time.Duration(ns)
}

// TestCacheAcrossProcesses: what one process (benchd) compiles, a new
// process (a worker) finds in the cache directory.
func TestCacheAcrossProcesses(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join("..", "testdata", "fib.wasm")
	compileInChild(t, dir, path)
	var files int
	filepath.Walk(dir, func(_ string, fi os.FileInfo, _ error) error {
		if fi != nil && !fi.IsDir() {
			files++
		}
		return nil
	})
	if files == 0 {
		t.Fatalf("cache dir empty after a compile in another process")
	}
	compileInChild(t, dir, path) // a hit; must work, however long it takes
}

// BenchmarkCompileFreshProcess measures what a restarted worker pays per
// module: compile in a new process with an empty cache (cold) and with the
// cache benchd filled (cached), for a small WAT module and a 3 MiB Go
// wasip1 module.
//
//	go test -run XXX -bench CompileFreshProcess -benchtime 5x ./engine/
func BenchmarkCompileFreshProcess(b *testing.B) {
	for _, mod := range []string{"fib.wasm", "gowasm.wasm"} {
		path := filepath.Join("..", "testdata", mod)
		b.Run(mod+"/cold", func(b *testing.B) {
			var total time.Duration
			for b.Loop() {
				total += compileInChild(b, b.TempDir(), path)
			}
			b.ReportMetric(float64(total.Microseconds())/float64(b.N)/1000, "compile-ms")
		})
		b.Run(mod+"/cached", func(b *testing.B) {
			dir := b.TempDir()
			compileInChild(b, dir, path)
			var total time.Duration
			for b.Loop() {
				total += compileInChild(b, dir, path)
			}
			b.ReportMetric(float64(total.Microseconds())/float64(b.N)/1000, "compile-ms")
		})
	}
}

// callChild compiles the module at path with a memory limit of pages, as a
// worker does, then calls export with param once, and prints its result and
// the process's resident memory before the call and at its peak, in KiB.
// Like a worker it runs with GOMAXPROCS 2 (session.procs).
func callChild(spec string) int {
	f := strings.Split(spec, "|")
	path, export := f[0], f[1]
	pages, _ := strconv.ParseUint(f[2], 10, 32)
	param, _ := strconv.ParseUint(f[3], 10, 32)
	runtime.GOMAXPROCS(2)
	ctx := context.Background()
	wasm, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	e, err := New(ctx, Config{MemoryLimitPages: uint32(pages)})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	m, err := e.Compile(ctx, wasm)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if _, err := m.Call(ctx, export, []uint64{0}); err != nil { // warm up
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	before := peakRSS()
	res, err := m.Call(ctx, export, []uint64{param})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(res.Results[0], before, peakRSS())
	return 0
}

// peakRSS is the process's peak resident memory in KiB.
func peakRSS() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Maxrss
}

// callInChild runs callChild in a fresh process and returns the call's
// result and how much the call raised the process's peak memory, in KiB.
func callInChild(t *testing.T, file, export string, pages uint32, param uint64) (result uint64, grew int64) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s|%s|%d|%d", callChildEnv,
		filepath.Join("..", "testdata", file), export, pages, param))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("call child: %v", err)
	}
	var before, peak int64
	if _, err := fmt.Sscan(string(out), &result, &before, &peak); err != nil {
		t.Fatalf("call child printed %q: %v", out, err)
	}
	return result, peak - before
}

// TestInstanceMemoryBound: a call growing its linear memory to the limit a
// page at a time, and one growing a table as far as it may, raise a fresh
// worker-like process's peak memory by about the limit, not a multiple.
func TestInstanceMemoryBound(t *testing.T) {
	const pages = 1024 // 64 MiB
	// Touched memory is counted in 4 KiB pages, the limit in 64 KiB ones;
	// the slack is for the runtime's own growth.
	const slack = 16 << 10 // KiB
	size, grew := callInChild(t, "memfill.wasm", "fill", pages, 1<<16)
	t.Logf("filling %d pages raised peak memory by %d KiB", pages, grew)
	if size != pages {
		t.Errorf("memory grew to %d pages, want the limit of %d", size, pages)
	}
	if limit := int64(pages*64 + slack); grew > limit {
		t.Errorf("filling %d pages raised peak memory by %d KiB, want at most %d", pages, grew, limit)
	}
	share := uint64(MaxTableElements-1) / 2
	old, grew := callInChild(t, "tablegrow.wasm", "grow", pages, share)
	t.Logf("growing a table by %d raised peak memory by %d KiB", share, grew)
	if old != 1 {
		t.Errorf("table.grow(%d) returned %d, want 1", share, old)
	}
	// wazero keeps 8 bytes per element, and growing may copy them once.
	if limit := int64(2*8*MaxTableElements/1024 + slack); grew > limit {
		t.Errorf("growing a table by %d raised peak memory by %d KiB, want at most %d", share, grew, limit)
	}
}
