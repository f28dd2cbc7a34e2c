package engine

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzCompile feeds arbitrary bytes to Compile, which must never panic and
// must reject what it cannot run with an ErrInvalid error. Exports are listed
// but never called: a fuzzed start function or body may loop forever.
func FuzzCompile(f *testing.F) {
	paths, err := filepath.Glob(filepath.Join("..", "testdata", "*.wasm"))
	if err != nil || len(paths) == 0 {
		f.Fatalf("glob fixtures: %v, %d found", err, len(paths))
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	ctx := context.Background()
	e, err := New(ctx, Config{})
	if err != nil {
		f.Fatal(err)
	}
	defer e.Close(ctx)
	f.Fuzz(func(t *testing.T, wasm []byte) {
		_, _ = nonFuncMemImports(wasm) // must not panic on raw bytes either
		m, err := e.Compile(ctx, wasm)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("got %v, want an ErrInvalid error", err)
			}
			return
		}
		for _, x := range m.Exports() {
			if got, ok := m.Export(x.Name); !ok || got.Name != x.Name {
				t.Fatalf("Export(%q): got %v, %v", x.Name, got, ok)
			}
		}
		if err := m.Close(ctx); err != nil {
			t.Fatal(err)
		}
	})
}
