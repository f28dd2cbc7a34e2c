package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// chainDaemon starts a daemon for the chain tests with sleep.wasm
// registered and sleep_ms(20) measured, with flags added.
func chainDaemon(t *testing.T, name string, flags ...string) *daemon {
	t.Helper()
	d := start(t, t.TempDir(), append([]string{"--cgroup-name", "hs-i16-chain-" + name}, flags...)...)
	if a := d.register(map[string]string{"sleep.wasm": "sleep.wasm"},
		map[string]string{"export_func": "sleep_ms", "params": "20"}); a.code != 200 {
		t.Fatalf("register sleep.wasm: %d %s", a.code, a.raw)
	}
	return d
}

// TestChainMet: a chain of two measured stages with room in its deadline
// runs both, in order, on time, and answers each stage's deadline and
// timings; /uname keeps its stages.
func TestChainMet(t *testing.T) {
	d := chainDaemon(t, "met")
	a := d.post("/call", `{"wasm_name":"sleep.wasm","task_unique_name":"chain-met","export_func":"sleep_ms","params":["20"],"expected_deadline":"400",
		"then":[{"export_func":"sleep_ms","params":["20"]}]}`)
	if a.code != 200 {
		t.Fatalf("chain: got %d %s, want 200", a.code, a.raw)
	}
	var res struct {
		DeadlineMet bool `json:"deadline_met"`
		Stages      []struct {
			Stage       int     `json:"stage"`
			Result      string  `json:"result"`
			DeadlineMs  float64 `json:"deadline_ms"`
			DeadlineMet bool    `json:"deadline_met"`
			Source      string  `json:"estimate_source"`
			Timings     struct {
				Total int64 `json:"total"`
			} `json:"timings_us"`
		} `json:"stages"`
	}
	if err := json.Unmarshal([]byte(a.raw), &res); err != nil {
		t.Fatal(err)
	}
	if !res.DeadlineMet || len(res.Stages) != 2 {
		t.Fatalf("answer: %s", a.raw)
	}
	s1, s2 := res.Stages[0], res.Stages[1]
	if s1.Stage != 1 || s2.Stage != 2 || s1.Result != "[I32(0)]" || !s1.DeadlineMet || !s2.DeadlineMet ||
		s2.DeadlineMs != 400 || s1.DeadlineMs >= s2.DeadlineMs || s1.Source != "learned" {
		t.Errorf("stages: got %+v", res.Stages)
	}
	// Stage 2 slept 20 ms after stage 1 ended.
	if s2.Timings.Total < s1.Timings.Total+20_000 {
		t.Errorf("stage 2 ended at %d µs, stage 1 at %d µs: want stage 2 after stage 1 and its 20 ms", s2.Timings.Total, s1.Timings.Total)
	}
	u := d.get("/uname?uname=chain-met")
	tl, _ := u.body["result"].(map[string]any)
	stages, _ := tl["stages"].([]any)
	if u.code != 200 || tl["state"] != "done" || len(stages) != 2 {
		t.Errorf("/uname: got %d %s, want done with 2 stages", u.code, u.raw)
	}
	var st struct {
		Counters struct {
			Chains   uint64 `json:"chains"`
			Admitted uint64 `json:"admitted"`
		} `json:"counters"`
	}
	if err := json.Unmarshal([]byte(d.get("/status").raw), &st); err != nil || st.Counters.Chains != 1 || st.Counters.Admitted != 1 {
		t.Errorf("/status counters: got %+v (%v), want 1 chain, 1 call admitted", st.Counters, err)
	}
}

// TestChainRefusedWhole: with the worker core taken by an unmeasured call
// until its deadline (one lane: no preemption), a chain that cannot end in
// time is refused at arrival, 503 with Retry-After, and none of its stages
// is queued or runs; the call holding the core is untouched.
func TestChainRefusedWhole(t *testing.T) {
	d := chainDaemon(t, "refused", "--lanes", "1")
	hold := make(chan answer, 1)
	go func() {
		hold <- d.post("/call", `{"wasm_name":"sleep.wasm","task_unique_name":"hold","export_func":"sleep_ms","params":["300"],"expected_deadline":"2000"}`)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for d.status().InFlight == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the holding call never got in flight")
		}
		time.Sleep(5 * time.Millisecond)
	}
	before := d.status().Dispatch.Admitted
	req, _ := http.NewRequest(http.MethodPost, d.url+"/call", strings.NewReader(
		`{"wasm_name":"sleep.wasm","task_unique_name":"chain-refused","export_func":"sleep_ms","params":["20"],"expected_deadline":"200",
		"then":[{"export_func":"sleep_ms","params":["20"]},{"export_func":"sleep_ms","params":["20"]}]}`))
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(raw), "Error_Unschedulable") ||
		!strings.Contains(string(raw), "chain of 3 stages") || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("chain: got %d %s (Retry-After %q), want 503 Error_Unschedulable with Retry-After", resp.StatusCode, raw, resp.Header.Get("Retry-After"))
	}
	st := d.status()
	if st.Dispatch.Admitted != before {
		t.Errorf("dispatcher admitted: %d before the chain, %d after: a stage was admitted", before, st.Dispatch.Admitted)
	}
	for _, p := range st.Procs {
		if p.Queue != nil && p.Queue.Queued != 0 {
			t.Errorf("%s: %d queued, want none", p.Name, p.Queue.Queued)
		}
	}
	u := d.get("/uname?uname=chain-refused")
	tl, _ := u.body["result"].(map[string]any)
	if state, _ := tl["state"].(string); !strings.HasPrefix(state, "refused") || tl["task_id"] != nil {
		t.Errorf("/uname: got %s, want refused", u.raw)
	}
	if a := <-hold; a.code != 200 {
		t.Errorf("the holding call: got %d %s", a.code, a.raw)
	}
	// Once the core is free the same chain is met.
	a := d.post("/call", `{"wasm_name":"sleep.wasm","export_func":"sleep_ms","params":["20"],"expected_deadline":"200",
		"then":[{"export_func":"sleep_ms","params":["20"]},{"export_func":"sleep_ms","params":["20"]}]}`)
	if a.code != 200 {
		t.Errorf("chain on an idle core: got %d %s", a.code, a.raw)
	}
	if fmt.Sprint(a.body["deadline_met"]) != "true" {
		t.Errorf("chain on an idle core: %s, want deadline_met", a.raw)
	}
}

// TestChainStageTrap: a stage that traps ends the chain with a 500 naming
// it (unit tests cover the stages after it: here the trapping stage,
// which can never be measured, must be the last).
func TestChainStageTrap(t *testing.T) {
	d := chainDaemon(t, "trap")
	if a := d.register(map[string]string{"trap.wasm": "trap.wasm"}, nil); a.code != 200 {
		t.Fatalf("register trap.wasm: %d %s", a.code, a.raw)
	}
	a := d.post("/call", `{"wasm_name":"sleep.wasm","export_func":"sleep_ms","params":["20"],"expected_deadline":"2000",
		"then":[{"wasm_name":"trap.wasm","export_func":"unreachable","expected_execution_time":"5"}]}`)
	if a.code != 500 || a.str("status") != "Error_Trap" || !strings.Contains(a.str("error"), "chain stage 2 of 2 (trap.wasm unreachable)") {
		t.Errorf("chain: got %d %s, want 500 Error_Trap naming stage 2", a.code, a.raw)
	}
	// An unmeasured stage before the last: measured now, retry later.
	a = d.post("/call", `{"wasm_name":"trap.wasm","export_func":"unreachable","expected_deadline":"2000",
		"then":[{"wasm_name":"sleep.wasm","export_func":"sleep_ms","params":["20"]}]}`)
	if a.code != 503 || !strings.Contains(a.str("error"), "no measured execution time yet") {
		t.Errorf("unmeasured first stage: got %d %s, want 503 asking for a retry", a.code, a.raw)
	}
}

// TestChainPiped: each stage's stdout is the next stage's stdin, in
// order, under one deadline; a stage that exits non-zero ends the chain
// naming it.
func TestChainPiped(t *testing.T) {
	d := chainDaemon(t, "piped")
	if a := d.register(map[string]string{"upper.wasm": "upper.wasm"}, nil); a.code != 200 {
		t.Fatalf("register upper.wasm: %d %s", a.code, a.raw)
	}
	// Measure the first stage on its input; the later ones are estimated
	// without their stdin, which their predecessors make.
	for _, body := range []string{
		`{"wasm_name":"upper.wasm","export_func":"_start","input":"ab"}`,
		`{"wasm_name":"upper.wasm","export_func":"mark","input":"ab"}`,
		`{"wasm_name":"upper.wasm","export_func":"_start"}`,
		`{"wasm_name":"upper.wasm","export_func":"mark"}`,
	} {
		if a := d.post("/test", body); a.code != 200 {
			t.Fatalf("/test %s: %d %s", body, a.code, a.raw)
		}
	}
	for _, tc := range []struct {
		first, second, want string
		mid                 int // stage 1's output bytes
	}{{"_start", "mark", "ABx", 2}, {"mark", "_start", "ABX", 3}} {
		a := d.post("/call", `{"wasm_name":"upper.wasm","export_func":"`+tc.first+`","input":"ab","expected_deadline":"500",
			"then":[{"export_func":"`+tc.second+`"}]}`)
		if a.code != 200 || a.str("output") != tc.want || fmt.Sprint(a.body["deadline_met"]) != "true" {
			t.Errorf("ab | %s | %s: got %d %s, want output %q", tc.first, tc.second, a.code, a.raw, tc.want)
		}
		stages, _ := a.body["stages"].([]any)
		if len(stages) != 2 {
			t.Errorf("stages: %s", a.raw)
			continue
		}
		if s1, _ := stages[0].(map[string]any); fmt.Sprint(s1["output_bytes"]) != fmt.Sprint(tc.mid) {
			t.Errorf("stage 1 output_bytes: got %v, want %d", s1["output_bytes"], tc.mid)
		}
	}
	// A stage that exits 3 ends the chain: the stage after it never runs.
	if a := d.register(map[string]string{"echo.wasm": "echo.wasm"}, nil); a.code != 200 {
		t.Fatalf("register echo.wasm: %d %s", a.code, a.raw)
	}
	if a := d.post("/test", `{"wasm_name":"echo.wasm","export_func":"exit3"}`); a.code != 200 {
		t.Logf("/test exit3: %d %s", a.code, a.raw)
	}
	a := d.post("/call", `{"wasm_name":"upper.wasm","export_func":"_start","input":"ab","expected_deadline":"500",
		"then":[{"wasm_name":"echo.wasm","export_func":"exit3"},{"wasm_name":"upper.wasm","export_func":"mark"}]}`)
	if a.code != 500 || !strings.Contains(a.str("error"), "chain stage 2 of 3 (echo.wasm exit3): exited with code 3") ||
		!strings.Contains(a.str("error"), "stage 3 did not run") {
		t.Errorf("exit 3 mid-chain: got %d %s, want 500 naming stage 2", a.code, a.raw)
	}
}

// TestChainClientGone: a client that goes away while an early stage runs
// cancels the stages not started; a started stage runs to its end, and
// the chain's timeline says the last stage never started. (The server
// sees the client go when its connection closes, which on a loaded
// machine can take a while: two 200 ms stages leave it that time.)
func TestChainClientGone(t *testing.T) {
	d := chainDaemon(t, "gone")
	if a := d.post("/test", `{"wasm_name":"sleep.wasm","export_func":"sleep_ms","params":["200"]}`); a.code != 200 {
		t.Fatalf("/test sleep_ms(200): %d %s", a.code, a.raw)
	}
	req, _ := http.NewRequest(http.MethodPost, d.url+"/call", strings.NewReader(
		`{"wasm_name":"sleep.wasm","task_unique_name":"chain-gone","export_func":"sleep_ms","params":["200"],"expected_deadline":"5000",
		"then":[{"export_func":"sleep_ms","params":["200"]},{"export_func":"sleep_ms","params":["20"]}]}`))
	impatient := &http.Client{Timeout: 50 * time.Millisecond}
	if resp, err := impatient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("the chain answered within 50 ms: %d", resp.StatusCode)
	}
	var tl map[string]any
	deadline := time.Now().Add(10 * time.Second)
	for {
		u := d.get("/uname?uname=chain-gone")
		tl, _ = u.body["result"].(map[string]any)
		if state, _ := tl["state"].(string); state != "in flight" && state != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the chain is still in flight: %s", u.raw)
		}
		time.Sleep(20 * time.Millisecond)
	}
	state, _ := tl["state"].(string)
	if !strings.Contains(state, "client went away") {
		t.Errorf("state: got %q, want a stage cancelled as the client went away", state)
	}
	stages, _ := tl["stages"].([]any)
	if len(stages) != 3 {
		t.Fatalf("stages: %v", tl)
	}
	s1, _ := stages[0].(map[string]any)
	s3, _ := stages[2].(map[string]any)
	evs, _ := s3["events"].([]any)
	var whats []string
	for _, e := range evs {
		em, _ := e.(map[string]any)
		w, _ := em["event"].(string)
		whats = append(whats, w)
	}
	if s1["state"] != "done" || fmt.Sprint(whats) != "[arrived admitted cancelled]" {
		t.Errorf("stages: got stage 1 %v, stage 3 events %v; want stage 1 done, stage 3 [arrived admitted cancelled]; timeline %v", s1["state"], whats, tl)
	}
	if st := d.status(); st.InFlight != 0 {
		t.Errorf("in flight after: %d", st.InFlight)
	}
}

// BenchmarkChainNoop measures POST /call of a chain of k no-op stages end
// to end, one client over a keep-alive connection, against k = 1 (a
// single call): what each stage after the first adds is the hop between
// stages (a result in, the next job out, on the same core) and the
// stage's own instance.
//
//	go test -run XXX -bench ChainNoop -benchtime 2000x ./integration/
func BenchmarkChainNoop(b *testing.B) {
	d := start(b, b.TempDir(), append([]string{"--cgroup-name", "hs-i16-chain-bench"}, strings.Fields(os.Getenv("HS_BENCH_FLAGS"))...)...)
	if a := d.register(map[string]string{"fib.wasm": "fib.wasm"}, nil); a.code != 200 {
		b.Fatalf("register: %d %s", a.code, a.raw)
	}
	for _, k := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("stages=%d", k), func(b *testing.B) {
			body := `{"wasm_name":"fib.wasm","export_func":"noop","expected_deadline":"100"`
			if k > 1 {
				body += `,"then":[` + strings.TrimSuffix(strings.Repeat(`{"export_func":"noop"},`, k-1), ",") + `]`
			}
			call := timedCall(b, d, body+"}")
			reportLatency(b, 200, call)
		})
	}
}
