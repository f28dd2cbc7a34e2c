package engine

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// compileChildEnv makes the test binary act as a fresh process that
// compiles one module and prints how long it took (Go: os/exec's
// helper-process pattern).
const compileChildEnv = "ENGINE_TEST_COMPILE_CHILD"

func TestMain(m *testing.M) {
	if spec := os.Getenv(compileChildEnv); spec != "" {
		os.Exit(compileChild(spec))
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
