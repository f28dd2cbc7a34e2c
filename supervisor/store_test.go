package supervisor

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hyper-sched/hyper-sched/wasmval"
)

func TestValidName(t *testing.T) {
	for _, name := range []string{"fib.wasm", "a", "detect-v2.wasm", "ünïcode.wasm", strings.Repeat("x", MaxNameLen)} {
		if err := ValidName(name); err != nil {
			t.Errorf("ValidName(%q): got %v, want nil", name, err)
		}
	}
	for _, name := range []string{"", ".", "..", ".hidden", "a/b", `a\b`, "../etc/passwd", "a\x00b", "a\nb", "a b",
		"\xff", strings.Repeat("x", MaxNameLen+1)} {
		if err := ValidName(name); err == nil {
			t.Errorf("ValidName(%q): got nil, want an error", name)
		}
	}
}

func TestStore(t *testing.T) {
	dir := t.TempDir()
	st, errs := openStore(dir)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	wasm := []byte("\x00asm\x01\x00\x00\x00")
	m := &Module{Name: "m.wasm", SHA256: Sum(wasm), Size: len(wasm), Registered: time.Unix(1, 0).UTC(), wasm: wasm,
		Exports: []ExportInfo{{Name: "f", Params: []wasmval.Type{wasmval.I32}, Results: []wasmval.Type{}}}}
	if err := st.put(m); err != nil {
		t.Fatal(err)
	}
	// Reopened, the module is back with its bytes.
	st2, errs := openStore(dir)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	got, ok := st2.get("m.wasm")
	if !ok || got.SHA256 != m.SHA256 || string(got.wasm) != string(wasm) || len(got.Exports) != 1 {
		t.Fatalf("reloaded: got %+v, want %+v", got, m)
	}
	// No temporary files are left behind.
	ents, _ := os.ReadDir(filepath.Join(dir, "modules", "m.wasm"))
	if len(ents) != 2 {
		t.Errorf("module dir has %d entries, want module.wasm and meta.json", len(ents))
	}
	// A corrupted module is skipped and reported; others still load.
	os.WriteFile(filepath.Join(dir, "modules", "m.wasm", "module.wasm"), []byte("changed"), 0o600)
	os.MkdirAll(filepath.Join(dir, "modules", "junk"), 0o750)
	st3, errs := openStore(dir)
	if len(errs) != 2 || st3.len() != 0 {
		t.Errorf("corrupt store: got %d errors and %d modules, want 2 and 0", len(errs), st3.len())
	}
	if err := st.remove("m.wasm"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "modules", "m.wasm")); !os.IsNotExist(err) {
		t.Errorf("after remove: got %v, want not exist", err)
	}
}
