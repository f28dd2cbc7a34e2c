package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestDeadlineAt: on the real daemon, deadline_at makes the budget
// absolute (what is left at arrival is the call's deadline), a passed one
// is a 504 with nothing run, both deadlines or seconds are a 400, the raw
// route's Hyper-Deadline-At does the same, and every answer names the
// node (Hyper-Node).
func TestDeadlineAt(t *testing.T) {
	d := start(t, t.TempDir(), "--node-name", "node-a", "--cgroup-name", "hs-i17-cluster-dlat", "--lanes", "1")
	if a := d.register(map[string]string{"fib.wasm": "fib.wasm"}, nil); a.code != 200 {
		t.Fatalf("register: got %d %s", a.code, a.raw)
	}
	call := func(extra string) (answer, http.Header) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, d.url+"/call",
			strings.NewReader(`{"wasm_name":"fib.wasm","export_func":"add","params":["2","3"]`+extra+`}`))
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		a := answer{code: resp.StatusCode, raw: string(raw)}
		if err := json.Unmarshal(raw, &a.body); err != nil {
			t.Fatalf("answer is not JSON: %q", raw)
		}
		return a, resp.Header
	}
	now := func() int64 { return time.Now().UnixMilli() }

	a, h := call(fmt.Sprintf(`,"deadline_at":"%d"`, now()+2000))
	if a.code != 200 || a.str("result") != "[I32(5)]" {
		t.Fatalf("deadline_at 2 s ahead: got %d %s", a.code, a.raw)
	}
	if ms, _ := a.body["deadline_ms"].(float64); ms <= 0 || ms > 2000 {
		t.Errorf("deadline_at 2 s ahead: deadline_ms %v, want what was left, in (0, 2000]", a.body["deadline_ms"])
	}
	if got := h.Get("Hyper-Node"); got != "node-a" {
		t.Errorf("Hyper-Node: got %q, want node-a", got)
	}
	before := d.get("/status").body["counters"]
	if a, _ := call(fmt.Sprintf(`,"deadline_at":%d`, now()-50)); a.code != http.StatusGatewayTimeout ||
		a.str("status") != "Error_Deadline_exceeded" || !strings.Contains(a.str("error"), "nothing ran") {
		t.Errorf("deadline_at passed: got %d %s, want 504 Error_Deadline_exceeded, nothing ran", a.code, a.raw)
	}
	if after := d.get("/status").body["counters"]; fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("a passed deadline_at changed the counters: %v → %v; nothing should have been admitted", before, after)
	}
	if a, _ := call(fmt.Sprintf(`,"expected_deadline":"30","deadline_at":"%d"`, now()+1000)); a.code != 400 {
		t.Errorf("both deadlines: got %d %s, want 400", a.code, a.raw)
	}
	if a, _ := call(fmt.Sprintf(`,"deadline_at":%d`, time.Now().Unix()+10)); a.code != 400 || !strings.Contains(a.str("error"), "seconds") {
		t.Errorf("deadline_at in seconds: got %d %s, want 400 that says so", a.code, a.raw)
	}
	if resp, err := http.Get(d.url + "/healthz"); err != nil || resp.Header.Get("Hyper-Node") != "node-a" {
		t.Errorf("GET /healthz: Hyper-Node missing (%v)", err)
	}

	// The raw route: Hyper-Deadline-At, the same rules.
	run := func(at string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, d.url+"/run/fib.wasm/add?params=2,3", nil)
		req.Header.Set("Hyper-Deadline-At", at)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	if resp := run(fmt.Sprint(now() + 2000)); resp.StatusCode != 200 || resp.Header.Get("Hyper-Deadline-Met") != "true" ||
		resp.Header.Get("Hyper-Result") != "[I32(5)]" || resp.Header.Get("Hyper-Node") != "node-a" {
		t.Errorf("/run with Hyper-Deadline-At 2 s ahead: got %d, headers %v", resp.StatusCode, resp.Header)
	}
	if resp := run(fmt.Sprint(now() - 50)); resp.StatusCode != http.StatusGatewayTimeout {
		t.Errorf("/run with Hyper-Deadline-At passed: got %d, want 504", resp.StatusCode)
	}
}
