package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// newTestServer serves fib.wasm from the fixtures (copied alone, so that
// the test does not compile every fixture).
func newTestServer(t *testing.T) *httptest.Server {
	t.Helper()
	wasm, err := os.ReadFile("../../testdata/fib.wasm")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "fib.wasm"), wasm, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "broken.wasm"), []byte("not wasm"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := newServer(context.Background(), dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	if got := s.Names(); len(got) != 1 || got[0] != "fib.wasm" {
		t.Fatalf("modules: got %v, want [fib.wasm] (broken.wasm skipped)", got)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return srv
}

type answer struct {
	Status      string `json:"status"`
	Result      string `json:"result"`
	DeadlineMet *bool  `json:"deadline_met"`
	Timings     *struct {
		Total int64 `json:"total"`
	} `json:"timings_us"`
}

func post(t *testing.T, url, body string) (int, answer) {
	t.Helper()
	resp, err := http.Post(url+"/call", "application/json", bytes.NewReader([]byte(body)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var a answer
	if err := json.Unmarshal(b, &a); err != nil {
		t.Fatalf("answer %s is not JSON: %v", b, err)
	}
	return resp.StatusCode, a
}

func TestCall(t *testing.T) {
	srv := newTestServer(t)
	tests := []struct {
		name, body string
		code       int
		status     string
		result     string
		met        string // "true", "false" or "absent"
	}{
		{"seed client", `{"wasm_name":"fib.wasm","task_unique_name":"anon","export_func":"fib_r","param_type":"i32","params":["20"],"results_length":"1","expected_deadline":"10000"}`,
			200, "Success", "[I32(6765)]", "true"},
		{"numbers", `{"wasm_name":"fib.wasm","export_func":"add","params":[2,40],"expected_deadline":10000}`, 200, "Success", "[I32(42)]", "true"},
		{"best effort", `{"wasm_name":"fib.wasm","export_func":"noop","params":[]}`, 200, "Success", "[]", "absent"},
		{"missed", `{"wasm_name":"fib.wasm","export_func":"fib_r","params":["25"],"expected_deadline":"0.000001"}`, 200, "Success", "[I32(75025)]", "false"},
		{"no module", `{"wasm_name":"x.wasm","export_func":"fib_r","params":["1"]}`, 404, "Error_Invalid_wasm_name", "", "absent"},
		{"no export", `{"wasm_name":"fib.wasm","export_func":"nope","params":["1"]}`, 404, "Error_Invalid_export_func", "", "absent"},
		{"bad param", `{"wasm_name":"fib.wasm","export_func":"fib_r","params":["x"]}`, 400, "Error_Invalid_params", "", "absent"},
		{"param count", `{"wasm_name":"fib.wasm","export_func":"fib_r","params":[]}`, 400, "Error_Invalid_params", "", "absent"},
		{"bad deadline", `{"wasm_name":"fib.wasm","export_func":"fib_r","params":["1"],"expected_deadline":"soon"}`, 400, "Error_Invalid_params", "", "absent"},
		{"not JSON", `{`, 400, "Error_Bad_request", "", "absent"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, a := post(t, srv.URL, tt.body)
			met := "absent"
			if a.DeadlineMet != nil {
				met = map[bool]string{true: "true", false: "false"}[*a.DeadlineMet]
			}
			if code != tt.code || a.Status != tt.status || a.Result != tt.result || met != tt.met {
				t.Errorf("got %d %s %q met %s, want %d %s %q met %s", code, a.Status, a.Result, met, tt.code, tt.status, tt.result, tt.met)
			}
			if code == 200 && a.Timings == nil {
				t.Errorf("got no timings_us")
			}
		})
	}
}

// TestConcurrentCalls checks that instances do not collide: each request
// instantiates its own, anonymous instance.
func TestConcurrentCalls(t *testing.T) {
	srv := newTestServer(t)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			code, a := post(t, srv.URL, `{"wasm_name":"fib.wasm","export_func":"fib_r","params":["15"]}`)
			if code != 200 || a.Result != "[I32(610)]" {
				t.Errorf("got %d %q, want 200 [I32(610)]", code, a.Result)
			}
		})
	}
	wg.Wait()
}

func TestNotCall(t *testing.T) {
	srv := newTestServer(t)
	resp, err := http.Get(srv.URL + "/status")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("GET /status: got %d, want 404", resp.StatusCode)
	}
}
