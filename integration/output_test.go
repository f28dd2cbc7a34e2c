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
