package integration

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestMetrics: GET /metrics is Prometheus text with the call, admission,
// latency, queue and restart series.
func TestMetrics(t *testing.T) {
	d := start(t, t.TempDir())
	if a := d.register(map[string]string{"fib.wasm": "fib.wasm", "trap.wasm": "trap.wasm"}, nil); a.code != 200 {
		t.Fatalf("register: %d %s", a.code, a.raw)
	}
	d.post("/call", `{"wasm_name":"fib.wasm","export_func":"fib_r","params":["10"],"expected_deadline":"1000"}`)
	d.post("/call", `{"wasm_name":"trap.wasm","export_func":"unreachable"}`)
	w := d.firstWorker()
	lanes := d.status().Lanes
	resp, err := http.Get(d.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("got %d %q, want 200 text/plain", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	// Series per core are labelled worker-<cpu>; per process, with the
	// lane's name.
	for _, want := range []string{
		fmt.Sprintf(`hyper_sched_lanes_up{proc="%s"} %d`, w, lanes),
		`hyper_sched_preemptions_total{proc="` + w + `"} 0`,
		`hyper_sched_quantum_rotations_total{proc="` + w + `"} 0`,
		`hyper_sched_stopped_jobs{proc="` + w + `"} 0`,
		`hyper_sched_restarts_total{proc="` + w + `:0"} 0`,
		`hyper_sched_process_running{proc="` + w + `:0"} 1`,
		`hyper_sched_calls_total{outcome="success"} 1`,
		`hyper_sched_calls_total{outcome="trap"} 1`,
		`hyper_sched_admission_decisions_total{decision="admitted"} 1`,
		`hyper_sched_admission_decisions_total{decision="best_effort"} 1`,
		`hyper_sched_call_latency_seconds_count{export="fib_r",module="fib.wasm"} 1`,
		`hyper_sched_exec_seconds_bucket{export="fib_r",module="fib.wasm",le="+Inf"} 1`,
		`hyper_sched_queue_length{proc="worker-`,
		`hyper_sched_core_busy_seconds_total{proc="worker-`,
		`hyper_sched_restarts_total{proc="benchd"} 0`,
		`hyper_sched_calibrations_total{result=`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
