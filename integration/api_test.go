package integration

import (
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The seed's three curl lines (DESIGN.md §5), byte for byte.
const (
	seedCall = `{"wasm_name":"fib.wasm","task_unique_name":"fibabc","export_func":"fib_r","param_type":"i32","params":["30"],"results_length":"1","expected_execution_time":"5","expected_deadline":"35"}`
	seedTest = `{"wasm_name":"fib.wasm","export_func":"fib","param_type":"i32","params":["32"],"results_length":"1","expected_deadline":"30"}`
)

func TestSeedClients(t *testing.T) {
	d := start(t, t.TempDir())
	reg := d.register(map[string]string{"fib.wasm": "fib.wasm"}, nil)
	if reg.code != http.StatusOK || reg.str("status") != "Success" {
		t.Fatalf("register: got %d %s, want 200 Success", reg.code, reg.raw)
	}
	if got, want := reg.str("url"), d.url+"/call"; got != want {
		t.Errorf("register url: got %q, want %q", got, want)
	}
	if reg.str("expected_execution_time") == "" {
		t.Errorf("register: no expected_execution_time in %s", reg.raw)
	}
	// A generous deadline: this test checks the seed's JSON, not timing on
	// a shared machine (the seed's 35 ms is exercised in TestDeadlines).
	call := d.post("/call", strings.Replace(seedCall, `"expected_deadline":"35"`, `"expected_deadline":"5000"`, 1))
	if call.code != http.StatusOK {
		t.Fatalf("call: got %d %s, want 200", call.code, call.raw)
	}
	if got, want := call.str("result"), "[I32(832040)]"; got != want {
		t.Errorf("call result: got %q, want %q", got, want)
	}
	results, _ := call.body["results"].([]any)
	if len(results) != 1 || results[0].(map[string]any)["value"].(float64) != 832040 {
		t.Errorf("call results: got %v, want one i32 832040", call.body["results"])
	}
	for _, k := range []string{"task_id", "worker", "cpu", "lane", "deadline_met", "timings_us"} {
		if _, ok := call.body[k]; !ok {
			t.Errorf("call answer lacks %q: %s", k, call.raw)
		}
	}
	test := d.post("/test", seedTest)
	if test.code != http.StatusOK {
		t.Fatalf("test: got %d %s, want 200", test.code, test.raw)
	}
	if ms, err := strconv.Atoi(test.str("result")); err != nil || ms < 1 {
		t.Errorf("test result: got %q, want whole milliseconds", test.str("result"))
	}
	// JSON numbers work as well as strings.
	num := d.post("/call", `{"wasm_name":"fib.wasm","export_func":"add","params":[2,40]}`)
	if got := num.str("result"); num.code != 200 || got != "[I32(42)]" {
		t.Errorf("call with numbers: got %d %s, want [I32(42)]", num.code, num.raw)
	}
	// Re-registering identical bytes is idempotent.
	again := d.register(map[string]string{"fib.wasm": "fib.wasm"}, nil)
	if again.code != 200 || again.body["unchanged"] != true {
		t.Errorf("re-register: got %d %s, want 200 unchanged", again.code, again.raw)
	}
	// Other bytes under the taken name: 409 unless replace=true.
	if a := d.register(map[string]string{"fib.wasm": "counter.wasm"}, nil); a.code != http.StatusConflict {
		t.Errorf("register other bytes: got %d %s, want 409", a.code, a.raw)
	}
	if a := d.register(map[string]string{"fib.wasm": "counter.wasm"}, map[string]string{"replace": "true"}); a.code != 200 {
		t.Errorf("replace: got %d %s, want 200", a.code, a.raw)
	}
}

func TestErrors(t *testing.T) {
	// wazero grows the stack to ~400 MB before reporting an overflow: ~2 s
	// under the race detector, past the default best-effort cap.
	d := start(t, t.TempDir(), "--best-effort-cap", "20s")
	for _, f := range []string{"fib.wasm", "trap.wasm"} {
		if a := d.register(map[string]string{f: f}, nil); a.code != 200 {
			t.Fatalf("register %s: %d %s", f, a.code, a.raw)
		}
	}
	if a := d.register(map[string]string{"loop.wasm": "loop.wasm"},
		map[string]string{"export_func": "spin", "param_type": "i32", "params": "1000"}); a.code != 200 {
		t.Fatalf("register loop.wasm: %d %s", a.code, a.raw)
	}
	tests := []struct {
		name     string
		do       func() answer
		code     int
		status   string
		errorHas string
	}{
		{"bad import", func() answer { return d.register(map[string]string{"bad.wasm": "badimport.wasm"}, nil) },
			422, "Error_Invalid_wasm", "env.host_fn"},
		{"not wasm", func() answer { return d.register(map[string]string{"x.wasm": "notwasm.wasm"}, nil) },
			422, "Error_Invalid_wasm", ""},
		{"path in name", func() answer { return d.register(map[string]string{"dir/x.wasm": "fib.wasm"}, nil) },
			400, "Error_Bad_request", "path separator"},
		{"dot-dot name", func() answer { return d.register(map[string]string{"..": "fib.wasm"}, nil) },
			400, "Error_Bad_request", "dot"},
		{"unknown module", func() answer { return d.post("/call", `{"wasm_name":"nope.wasm","export_func":"f"}`) },
			404, "Error_Invalid_wasm_name", "nope.wasm"},
		{"unknown export", func() answer { return d.post("/call", `{"wasm_name":"fib.wasm","export_func":"nope"}`) },
			404, "Error_Invalid_export_func", "nope"},
		{"bad json", func() answer { return d.post("/call", `{"wasm_name":`) }, 400, "Error_Bad_request", ""},
		{"bad param", func() answer {
			return d.post("/call", `{"wasm_name":"fib.wasm","export_func":"fib_r","param_type":"i32","params":["3.5"]}`)
		}, 400, "Error_Invalid_params", "3.5"},
		{"wrong param count", func() answer {
			return d.post("/call", `{"wasm_name":"fib.wasm","export_func":"fib_r","params":["1","2"]}`)
		}, 400, "Error_Invalid_params", "takes 1"},
		{"wrong param type", func() answer {
			return d.post("/call", `{"wasm_name":"fib.wasm","export_func":"fib_r","param_type":"f64","params":["1"]}`)
		}, 400, "Error_Invalid_params", "does not match"},
		{"C not below D", func() answer {
			return d.post("/call", `{"wasm_name":"fib.wasm","export_func":"fib_r","params":["5"],"expected_execution_time":"5","expected_deadline":"5"}`)
		}, 422, "Error_Invalid_deadline", ""},
		{"unreachable", func() answer { return d.post("/call", `{"wasm_name":"trap.wasm","export_func":"unreachable"}`) },
			500, "Error_Trap", "unreachable"},
		{"div by zero", func() answer {
			return d.post("/call", `{"wasm_name":"trap.wasm","export_func":"div0","params":["0"]}`)
		}, 500, "Error_Trap", "divide"},
		{"out of bounds", func() answer { return d.post("/call", `{"wasm_name":"trap.wasm","export_func":"oob"}`) },
			500, "Error_Trap", "out of bounds"},
		{"stack overflow", func() answer {
			return d.post("/call", `{"wasm_name":"trap.wasm","export_func":"recurse","params":["0"]}`)
		}, 500, "Error_Trap", "stack"},
		{"unknown endpoint", func() answer { return d.get("/nope") }, 404, "Error_Bad_request", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := tt.do()
			if a.code != tt.code || a.str("status") != tt.status {
				t.Fatalf("got %d %s, want %d %s", a.code, a.raw, tt.code, tt.status)
			}
			if !strings.Contains(strings.ToLower(a.str("error")), strings.ToLower(tt.errorHas)) {
				t.Errorf("error %q does not mention %q", a.str("error"), tt.errorHas)
			}
			// Whatever happened, the worker still serves.
			if ok := d.post("/call", `{"wasm_name":"fib.wasm","export_func":"fib_r","params":["10"]}`); ok.str("result") != "[I32(55)]" {
				t.Fatalf("call after %s: got %d %s, want [I32(55)]", tt.name, ok.code, ok.raw)
			}
		})
	}
}

func TestWorkerKilledAndRestart(t *testing.T) {
	dir := t.TempDir()
	d := start(t, dir)
	if a := d.register(map[string]string{"fib.wasm": "fib.wasm"}, nil); a.code != 200 {
		t.Fatalf("register: %d %s", a.code, a.raw)
	}
	before := d.procs()
	for name, pid := range before {
		if !strings.HasPrefix(name, "worker-") {
			continue
		}
		if err := syscall.Kill(int(pid), syscall.SIGKILL); err != nil {
			t.Fatalf("kill %s: %v", name, err)
		}
	}
	d.waitRestarted(before)
	if a := d.post("/call", seedCall); a.str("result") != "[I32(832040)]" {
		t.Fatalf("call after SIGKILL: got %d %s", a.code, a.raw)
	}
	// Modules survive a restart of the daemon.
	d.stop()
	d2 := start(t, dir)
	if a := d2.get("/modules/fib.wasm"); a.code != 200 {
		t.Fatalf("module after restart: got %d %s, want 200", a.code, a.raw)
	}
	if a := d2.post("/call", `{"wasm_name":"fib.wasm","export_func":"fib_r","params":["20"]}`); a.str("result") != "[I32(6765)]" {
		t.Fatalf("call after daemon restart: got %d %s", a.code, a.raw)
	}
	if a := d2.get("/status"); a.code != 200 || a.body["ready"] != true {
		t.Errorf("status: got %d %s", a.code, a.raw)
	}
	if a := d2.get("/warm-start-latency"); !strings.HasPrefix(a.str("result"), "cnt: 1,") {
		t.Errorf("warm-start-latency: got %s, want cnt: 1", a.raw)
	}
	if a := d2.get("/modules"); a.code != 200 {
		t.Errorf("modules: got %d %s", a.code, a.raw)
	}
	req, _ := http.NewRequest(http.MethodDelete, d2.url+"/modules/fib.wasm", nil)
	if a := d2.do(req); a.code != 200 {
		t.Errorf("delete: got %d %s", a.code, a.raw)
	}
	if a := d2.get("/modules/fib.wasm"); a.code != 404 {
		t.Errorf("module after delete: got %d %s, want 404", a.code, a.raw)
	}
	if _, err := os.Stat(dir + "/state/modules/fib.wasm"); !os.IsNotExist(err) {
		t.Errorf("module dir after delete: got %v, want not exist", err)
	}
}

func TestDeadlines(t *testing.T) {
	d := start(t, t.TempDir())
	if a := d.register(map[string]string{"loop.wasm": "loop.wasm"},
		map[string]string{"export_func": "spin", "params": "1000"}); a.code != 200 {
		t.Fatalf("register: %d %s", a.code, a.raw)
	}
	// A job that never ends is killed at its deadline, answered 504, and
	// its worker comes back.
	start := time.Now()
	a := d.post("/call", `{"wasm_name":"loop.wasm","export_func":"forever","expected_execution_time":"10","expected_deadline":"200"}`)
	if a.code != http.StatusGatewayTimeout || a.str("status") != "Error_Deadline_exceeded" {
		t.Fatalf("forever: got %d %s, want 504 Error_Deadline_exceeded", a.code, a.raw)
	}
	if took := time.Since(start); took < 200*time.Millisecond {
		t.Errorf("forever answered after %v, before its 200ms deadline", took)
	}
	d.waitHealthy()
	if a := d.post("/call", `{"wasm_name":"loop.wasm","export_func":"spin","params":["10"]}`); a.code != 200 {
		t.Fatalf("call after the kill: got %d %s", a.code, a.raw)
	}
	// Best effort is capped too.
	a = d.post("/call", `{"wasm_name":"loop.wasm","export_func":"forever"}`)
	if a.code != http.StatusGatewayTimeout || !strings.Contains(a.str("error"), "best-effort") {
		t.Fatalf("forever without deadline: got %d %s, want 504 naming the best-effort cap", a.code, a.raw)
	}
	// The timeline of a finished task.
	d.waitHealthy()
	d.post("/call", `{"wasm_name":"loop.wasm","task_unique_name":"tl","export_func":"spin","params":["10"],"expected_deadline":"5000"}`)
	tl := d.get("/uname?uname=tl")
	if tl.code != 200 || !strings.Contains(tl.raw, `"finished"`) || !strings.Contains(tl.raw, `"deadline_met":true`) {
		t.Errorf("uname: got %d %s, want a finished timeline that met its deadline", tl.code, tl.raw)
	}
	if a := d.get("/uname?uname=nope"); a.code != 404 {
		t.Errorf("uname of an unknown task: got %d %s", a.code, a.raw)
	}
}
