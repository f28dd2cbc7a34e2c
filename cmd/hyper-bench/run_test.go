package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// fakeDaemon imitates hyper-sched's /call, /register, /test and /status
// answers, with the outcome chosen by the export name. It is a fake, and
// that is enough here: these tests check hyper-bench's sending, counting
// and result file, while the real daemon's answers are covered by the
// lead's integration tests (integration/), which start the real binary.
type fakeDaemon struct {
	mu    sync.Mutex
	calls map[string]int // by export
	conns map[string]bool
}

func newFakeDaemon(t *testing.T) (*fakeDaemon, *httptest.Server) {
	f := &fakeDaemon{calls: map[string]int{}, conns: map[string]bool{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *fakeDaemon) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var c struct {
		Export string `json:"export_func"`
	}
	json.Unmarshal(body, &c)
	w.Header().Set("Content-Type", "application/json")
	switch r.URL.Path {
	case "/register":
		io.WriteString(w, `{"status":"Success","sha256":"0123456789abcdef","unchanged":false}`)
		return
	case "/status":
		io.WriteString(w, `{"status":"Success","processes":[{"name":"benchd","cpu":-1},{"name":"worker-2:0","cpu":2},{"name":"worker-2:1","cpu":2},{"name":"worker-3:0","cpu":3},{"name":"worker-3:1","cpu":3}]}`)
		return
	case "/test":
		io.WriteString(w, `{"status":"Success","result":"3","estimate_ms":2.5,"calibration":{"median_ns":1800000,"p99_ns":2400000,"instantiate_ns":200000}}`)
		return
	}
	f.mu.Lock()
	f.calls[c.Export]++
	f.conns[r.RemoteAddr] = true
	f.mu.Unlock()
	switch c.Export {
	case "ok":
		io.WriteString(w, `{"status":"Success","result":"[I32(1)]","deadline_met":true,"timings_us":{"total":100}}`)
	case "late":
		io.WriteString(w, `{"status":"Success","result":"[I32(1)]","deadline_met":false,"timings_us":{"total":100}}`)
	case "reject":
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `{"status":"Error_Unschedulable","error":"no core can finish it in time"}`)
	case "kill":
		w.WriteHeader(http.StatusGatewayTimeout)
		io.WriteString(w, `{"status":"Error_Deadline_exceeded","error":"killed"}`)
	default:
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, `{"status":"Error_Trap","error":"unreachable"}`)
	}
}

const fakeWorkload = `{"modules":{"m.wasm":"m.wasm"},"classes":[
 {"name":"ok","module":"m.wasm","export":"ok","params":["1"],"deadline_ms":50,"share":2},
 {"name":"late","module":"m.wasm","export":"late","deadline_ms":50},
 {"name":"reject","module":"m.wasm","export":"reject","deadline_ms":50},
 {"name":"kill","module":"m.wasm","export":"kill","deadline_ms":50},
 {"name":"trap","module":"m.wasm","export":"trap"}]}`

func writeWorkload(t *testing.T) string {
	dir := t.TempDir()
	p := filepath.Join(dir, "w.json")
	if err := os.WriteFile(p, []byte(fakeWorkload), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "m.wasm"), []byte("\x00asm\x01\x00\x00\x00"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestRun runs hyper-bench run for about a second in each mode and checks
// that every call the fake received is counted once, under its outcome.
func TestRun(t *testing.T) {
	for _, mode := range [][]string{
		{"-mode", "open", "-rate", "300"},
		{"-mode", "closed", "-clients", "4"},
	} {
		t.Run(mode[1], func(t *testing.T) {
			fake, srv := newFakeDaemon(t)
			wl := writeWorkload(t)
			out := filepath.Join(t.TempDir(), "result.json")
			args := append([]string{"run", "-url", srv.URL, "-workload", wl, "-duration", "1s", "-warmup", "200ms",
				"-out", out, "-label", "fake", "-scenario", "test"}, mode...)
			var stdout, stderr bytes.Buffer
			if code := run(context.Background(), args, &stdout, &stderr); code != 0 {
				t.Fatalf("exit %d, stderr:\n%s", code, stderr.String())
			}
			r, err := readResult(out)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]func(c ClassResult) int64{
				"ok": func(c ClassResult) int64 { return c.OK }, "late": func(c ClassResult) int64 { return c.Missed },
				"reject": func(c ClassResult) int64 { return c.Rejected }, "kill": func(c ClassResult) int64 { return c.Missed504 },
				"trap": func(c ClassResult) int64 { return c.Errors },
			}
			fake.mu.Lock()
			defer fake.mu.Unlock()
			var received, counted int
			for _, c := range r.Classes {
				received += fake.calls[c.Name]
				counted += int(c.Sent)
				if c.Sent == 0 {
					t.Errorf("class %s: no call sent", c.Name)
				}
				if got := want[c.Name](c); got != c.Sent {
					t.Errorf("class %s: got %d calls with its outcome out of %d sent (%+v)", c.Name, got, c.Sent, c)
				}
			}
			// The warm-up's calls reach the server but are not counted.
			if counted >= received || counted == 0 {
				t.Errorf("got %d calls counted, %d received: want 0 < counted < received", counted, received)
			}
			tot := r.Total
			if tot.Sent != int64(counted) || tot.OK+tot.Rejected+tot.Missed+tot.Errors != tot.Sent {
				t.Errorf("total: got %+v, want outcomes summing to %d", tot, counted)
			}
			if tot.Errors != r.Classes[4].Sent || tot.ErrorKind["500 Error_Trap"] != tot.Errors {
				t.Errorf("total errors: got %d %v, want %d trap", tot.Errors, tot.ErrorKind, r.Classes[4].Sent)
			}
			if tot.Latency.Count != tot.OK+tot.Missed-tot.Missed504 {
				t.Errorf("latency count: got %d, want the 200 answers, %d", tot.Latency.Count, tot.OK+tot.Missed-tot.Missed504)
			}
			if r.Label != "fake" || r.Scenario != "test" || r.Mode != mode[1] || r.Machine.NProc == 0 || r.Command[0] != "hyper-bench" {
				t.Errorf("result header: got %+v %+v %v", r.Label, r.Machine, r.Command)
			}
			if mode[1] == "open" && (tot.Sent < 150 || tot.Sent > 450) {
				t.Errorf("open loop at 300/s for 1s: got %d calls, want about 300", tot.Sent)
			}
			// Keep-alive: far fewer connections than calls.
			if len(fake.conns) > 64 {
				t.Errorf("got %d connections for %d calls: keep-alive is not working", len(fake.conns), received)
			}
			if !strings.Contains(stdout.String(), "result: "+out) || !strings.Contains(stderr.String(), "sent ") {
				t.Errorf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
			}
		})
	}
}

func TestPrepareAndRateFactor(t *testing.T) {
	_, srv := newFakeDaemon(t)
	wl := writeWorkload(t)
	prep := filepath.Join(t.TempDir(), "prepared.json")
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"prepare", "-url", srv.URL, "-workload", wl, "-o", prep}, &stdout, &stderr); code != 0 {
		t.Fatalf("prepare: exit %d, stderr:\n%s", code, stderr.String())
	}
	p, err := readPrepared(prep)
	if err != nil {
		t.Fatal(err)
	}
	// Two workers, 2 ms per call of every class: 1000 calls/s.
	if p.Workers != 2 || len(p.Classes) != 5 || p.CapacityPerS < 999.99 || p.CapacityPerS > 1000.01 {
		t.Errorf("prepared: got %+v, want 2 workers, 5 classes, capacity 1000/s", p)
	}
	if !strings.Contains(stderr.String(), "registered m.wasm") {
		t.Errorf("prepare stderr: got %q, want the registration", stderr.String())
	}
	out := filepath.Join(t.TempDir(), "r.json")
	stdout.Reset()
	stderr.Reset()
	args := []string{"run", "-url", srv.URL, "-workload", wl, "-duration", "300ms", "-rate", "0.2x", "-prepared", prep, "-out", out}
	if code := run(context.Background(), args, &stdout, &stderr); code != 0 {
		t.Fatalf("run: exit %d, stderr:\n%s", code, stderr.String())
	}
	r, err := readResult(out)
	if err != nil {
		t.Fatal(err)
	}
	if r.Rate < 199.99 || r.Rate > 200.01 || r.LoadFactor != 0.2 {
		t.Errorf("got rate %v factor %v, want 200 and 0.2", r.Rate, r.LoadFactor)
	}
}

func TestUsage(t *testing.T) {
	tests := []struct {
		args []string
		code int
		msg  string
	}{
		{nil, 2, "usage"},
		{[]string{"fly"}, 2, "unknown command"},
		{[]string{"run"}, 2, "-workload is required"},
		{[]string{"run", "-workload", "w", "-mode", "open"}, 2, "needs -rate"},
		{[]string{"run", "-workload", "w", "-mode", "sideways"}, 2, "want open, closed or cameras"},
		{[]string{"run", "-workload", "w", "-mode", "cameras"}, 2, "needs -cameras"},
		{[]string{"run", "-workload", "w", "-mode", "cameras", "-cameras", "2", "-fps", "0"}, 2, "-fps 0"},
		{[]string{"run", "-workload", "/nonexistent", "-mode", "closed"}, 1, "read workload"},
		{[]string{"report"}, 2, "at least one result"},
		{[]string{"report", "-o", "/dev/null", "/nonexistent.json"}, 1, "read result"},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), tt.args, &stdout, &stderr)
		if code != tt.code || !strings.Contains(stderr.String(), tt.msg) {
			t.Errorf("%v: got exit %d, stderr %q; want %d and %q", tt.args, code, stderr.String(), tt.code, tt.msg)
		}
	}
}

func TestReportCommand(t *testing.T) {
	dir := t.TempDir()
	var files []string
	for i, r := range []*Result{fakeResult("s", "a", 100, 1e6), fakeResult("s", "a", 200, 2e6)} {
		p := filepath.Join(dir, "r"+string(rune('0'+i))+".json")
		if err := writeResult(p, r); err != nil {
			t.Fatal(err)
		}
		files = append(files, p)
	}
	out := filepath.Join(dir, "report.html")
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), append([]string{"report", "-o", out}, files...), &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte("Goodput, all classes")) {
		t.Errorf("report lacks the goodput plot")
	}
}
