package integration

import "testing"

// TestCaptureOutput: a call's WASI stdout and stderr come back when asked
// for, bounded, and not otherwise.
func TestCaptureOutput(t *testing.T) {
	d := start(t, t.TempDir())
	if a := d.register(map[string]string{"hello.wasm": "wasi_hello.wasm"}, nil); a.code != 200 {
		t.Fatalf("register: %d %s", a.code, a.raw)
	}
	a := d.post("/call", `{"wasm_name":"hello.wasm","export_func":"hello","capture_output":true}`)
	if a.code != 200 || a.str("stdout") != "hello\n" {
		t.Errorf("hello with capture: got %d %s, want stdout \"hello\\n\"", a.code, a.raw)
	}
	a = d.post("/call", `{"wasm_name":"hello.wasm","export_func":"hello_err","capture_output":true}`)
	if a.code != 200 || a.str("stderr") == "" {
		t.Errorf("hello_err with capture: got %d %s, want stderr", a.code, a.raw)
	}
	a = d.post("/call", `{"wasm_name":"hello.wasm","export_func":"hello"}`)
	if _, ok := a.body["stdout"]; ok || a.code != 200 {
		t.Errorf("hello without capture: got %d %s, want no stdout field", a.code, a.raw)
	}
	a = d.post("/call", `{"wasm_name":"hello.wasm","export_func":"spam","params":["100000"],"capture_output":true}`)
	if a.code != 200 || len(a.str("stdout")) > 4096 || len(a.str("stdout")) == 0 {
		t.Errorf("spam: got %d, stdout of %d bytes, want 1..4096", a.code, len(a.str("stdout")))
	}
}

// TestLimits: the configured limits answer with clear errors.
func TestLimits(t *testing.T) {
	d := start(t, t.TempDir(), "--max-modules", "1", "--memory-pages", "2")
	if a := d.register(map[string]string{"mem.wasm": "memgrow.wasm"}, nil); a.code != 200 {
		t.Fatalf("register: %d %s", a.code, a.raw)
	}
	if a := d.register(map[string]string{"fib.wasm": "fib.wasm"}, nil); a.code != 413 || a.str("status") != "Error_Too_large" {
		t.Errorf("second module over --max-modules 1: got %d %s, want 413", a.code, a.raw)
	}
	// memory.grow past --memory-pages fails inside wasm (-1), the worker serves on.
	if a := d.post("/call", `{"wasm_name":"mem.wasm","export_func":"grow","params":["10"]}`); a.str("result") != "[I32(-1)]" {
		t.Errorf("grow past the limit: got %d %s, want [I32(-1)]", a.code, a.raw)
	}
	if a := d.post("/call", `{"wasm_name":"mem.wasm","export_func":"grow","params":["0"]}`); a.code != 200 {
		t.Errorf("grow 0: got %d %s", a.code, a.raw)
	}
}
