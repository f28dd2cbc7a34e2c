package integration

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestCalibrationKilled: a call that never ends is calibrated, benchd is
// killed at the limit and restarted, the answer says so, and the workers
// keep serving meanwhile.
func TestCalibrationKilled(t *testing.T) {
	d := start(t, t.TempDir(), "--calibration-budget", "300ms")
	if a := d.register(map[string]string{"loop.wasm": "loop.wasm"},
		map[string]string{"export_func": "spin", "params": "100"}); a.code != 200 {
		t.Fatalf("register: %d %s", a.code, a.raw)
	}
	before := d.procs()["benchd"]
	var wg sync.WaitGroup
	wg.Add(1)
	var test answer
	go func() {
		defer wg.Done()
		test = d.post("/test", `{"wasm_name":"loop.wasm","export_func":"forever"}`)
	}()
	// Calls keep working while benchd is stuck.
	for i := 0; i < 20; i++ {
		if a := d.post("/call", `{"wasm_name":"loop.wasm","export_func":"spin","params":["100"]}`); a.code != 200 {
			t.Errorf("call during the stuck calibration: got %d %s", a.code, a.raw)
		}
		time.Sleep(10 * time.Millisecond)
	}
	wg.Wait()
	if test.code != http.StatusGatewayTimeout || !strings.Contains(test.str("error"), "benchd") || !strings.Contains(test.str("error"), "killed") {
		t.Fatalf("test of forever: got %d %s, want 504 saying benchd was killed", test.code, test.raw)
	}
	// benchd is back with a new pid and calibrates again.
	deadline := time.Now().Add(20 * time.Second)
	for {
		if pid := d.procs()["benchd"]; pid != 0 && pid != before {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("benchd not restarted; log:\n%s", d.logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if a := d.post("/test", `{"wasm_name":"loop.wasm","export_func":"spin","params":["1000"]}`); a.code != 200 {
		t.Fatalf("test after the restart: got %d %s", a.code, a.raw)
	}
	// The failed calibration is recorded with the module, and a register
	// of a module whose only parameterless export loops still succeeds.
	if a := d.register(map[string]string{"startloop.wasm": "startloop.wasm"}, nil); a.code != 200 || !strings.Contains(a.raw, "killed") {
		t.Errorf("register startloop.wasm: got %d %s, want 200 with the calibration's failure", a.code, a.raw)
	}
}

// TestFirstUseCalibration: a deadline call of a never-measured pair
// without a declared estimate is admitted at once, unverified (estimate
// source "none"), never waiting for a calibration; benchd measures it in
// the background, the calibration is stored with the module, and the next
// call of the same pair runs on a learned estimate.
func TestFirstUseCalibration(t *testing.T) {
	d := start(t, t.TempDir())
	if a := d.register(map[string]string{"fib.wasm": "fib.wasm"}, nil); a.code != 200 {
		t.Fatalf("register: %d %s", a.code, a.raw)
	}
	a := d.post("/call", `{"wasm_name":"fib.wasm","export_func":"fib_r","params":["20"],"expected_deadline":"5000"}`)
	if a.code != 200 || a.str("estimate_source") != "none" {
		t.Fatalf("first call: got %d %s, want 200, admitted unverified (estimate_source none)", a.code, a.raw)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		m := d.get("/modules/fib.wasm")
		if strings.Contains(m.raw, `"export":"fib_r","params":["20"]`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the background calibration of fib_r(20) is not stored with the module after 30s: %s", m.raw)
		}
		time.Sleep(50 * time.Millisecond)
	}
	a = d.post("/call", `{"wasm_name":"fib.wasm","export_func":"fib_r","params":["20"],"expected_deadline":"5000"}`)
	if a.code != 200 || a.str("estimate_source") != "learned" {
		t.Fatalf("second call: got %d %s, want 200 on a learned estimate", a.code, a.raw)
	}
	// Declared but not learned: admitted at once on the declared value,
	// unverified.
	a = d.post("/call", `{"wasm_name":"fib.wasm","export_func":"fib_r","params":["21"],"expected_execution_time":"50","expected_deadline":"5000"}`)
	if a.code != 200 || a.str("estimate_source") != "declared" {
		t.Fatalf("declared call: got %d %s, want 200 on the declared estimate", a.code, a.raw)
	}
}
