package integration

import (
	"strings"
	"testing"
	"time"
)

// The dispatch overhead admission charges is measured when the daemon
// starts, on the real lanes, and said in /status and the log; one given
// with --dispatch-overhead is charged as given, with no wake-up cost.
// Calls are answered either way, lanes spinning or not.
func TestDispatchOverheadMeasured(t *testing.T) {
	d := start(t, t.TempDir())
	st := d.status()
	if st.OverheadSource != "measured" || st.DispatchOverheadUs <= 0 || st.WakeCostUs < 0 || st.TailCostUs < 0 {
		t.Fatalf("status: overhead %vµs wake %vµs tail %vµs source %q, want a measured overhead",
			st.DispatchOverheadUs, st.WakeCostUs, st.TailCostUs, st.OverheadSource)
	}
	if !strings.Contains(d.logs(), "measured the dispatch overhead") {
		t.Errorf("no log line of the measure; log:\n%s", d.logs())
	}
	t.Logf("measured: overhead %vµs, wake-up %vµs, tail %vµs", st.DispatchOverheadUs, st.WakeCostUs, st.TailCostUs)

	fixed := start(t, t.TempDir(), "--dispatch-overhead", "70us", "--worker-spin", "0")
	st = fixed.status()
	if st.OverheadSource != "flag" || st.DispatchOverheadUs != 70 || st.WakeCostUs != 0 || st.TailCostUs != 0 {
		t.Fatalf("status with --dispatch-overhead 70us: overhead %vµs wake %vµs tail %vµs source %q",
			st.DispatchOverheadUs, st.WakeCostUs, st.TailCostUs, st.OverheadSource)
	}
	for _, dm := range []*daemon{d, fixed} {
		if a := dm.register(map[string]string{"fib.wasm": "fib.wasm"}, nil); a.code != 200 {
			t.Fatalf("register: %d %s", a.code, a.raw)
		}
		for i := range 50 {
			if a := dm.post("/call", `{"wasm_name":"fib.wasm","export_func":"fib","params":["20"],"expected_deadline":"1000"}`); a.code != 200 {
				t.Fatalf("call %d: %d %s", i, a.code, a.raw)
			}
			if i%10 == 9 {
				time.Sleep(2 * time.Millisecond) // past a spin: the lane sleeps
			}
		}
	}
}
