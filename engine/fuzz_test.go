package engine

import (
	"bytes"
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
		// The tables' rewrite is a fixed point: what precheck passes on
		// passes again unchanged.
		if out, err := precheck(wasm); err == nil {
			if again, err := precheck(out); err != nil || !bytes.Equal(again, out) {
				t.Fatalf("precheck of its own output: %v, changed %v", err, !bytes.Equal(again, out))
			}
		}
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
