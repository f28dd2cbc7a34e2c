package httpapi

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/hyper-sched/hyper-sched/wasmval"
)

func TestParseRunHeaders(t *testing.T) {
	tests := []struct {
		name   string
		header map[string][]string
		query  string
		want   runHeaders
		code   string
	}{
		{"none", nil, "", runHeaders{}, ""},
		{"deadline and time", map[string][]string{HeaderDeadline: {"35"}, HeaderExecution: {" 0.5 "}}, "",
			runHeaders{Deadline: 35 * time.Millisecond, Declared: 500 * time.Microsecond}, ""},
		{"zero deadline is best effort", map[string][]string{HeaderDeadline: {"0"}}, "", runHeaders{}, ""},
		{"task name", map[string][]string{HeaderTaskName: {"cam-1"}}, "", runHeaders{TaskName: "cam-1"}, ""},
		{"params", nil, "params=1,-2,%2D3", runHeaders{Params: []byte(`["1","-2","-3"]`)}, ""},
		{"empty params", nil, "params=", runHeaders{Params: []byte(`null`)}, ""},
		{"deadline twice", map[string][]string{HeaderDeadline: {"5", "6"}}, "", runHeaders{}, "Error_Bad_request"},
		{"deadline not a number", map[string][]string{HeaderDeadline: {"soon"}}, "", runHeaders{}, "Error_Invalid_params"},
		{"negative deadline", map[string][]string{HeaderDeadline: {"-1"}}, "", runHeaders{}, "Error_Invalid_params"},
		{"deadline below 1 µs", map[string][]string{HeaderDeadline: {"0.0001"}}, "", runHeaders{}, "Error_Invalid_params"},
		{"deadline over a day", map[string][]string{HeaderDeadline: {"1e12"}}, "", runHeaders{}, "Error_Invalid_params"},
		{"long deadline", map[string][]string{HeaderDeadline: {strings.Repeat("1", 100)}}, "", runHeaders{}, "Error_Invalid_params"},
		{"task name with a control character", map[string][]string{HeaderTaskName: {"a\u202eb"}}, "", runHeaders{}, "Error_Bad_request"},
		{"task name too long", map[string][]string{HeaderTaskName: {strings.Repeat("a", MaxTaskNameLen+1)}}, "", runHeaders{}, "Error_Bad_request"},
		{"unknown query key", nil, "param=1", runHeaders{}, "Error_Bad_request"},
		{"params twice", nil, "params=1&params=2", runHeaders{}, "Error_Bad_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseRunHeaders(http.Header(tt.header), tt.query)
			if tt.code != "" {
				if _, code := StatusOf(err); err == nil || code != tt.code {
					t.Fatalf("got %+v, %v; want %s", got, err, tt.code)
				}
				return
			}
			if err != nil {
				t.Fatalf("got %v, want no error", err)
			}
			if got.Deadline != tt.want.Deadline || got.Declared != tt.want.Declared || got.TaskName != tt.want.TaskName ||
				string(got.Params) != string(tt.want.Params) {
				t.Errorf("got %+v (params %s), want %+v (params %s)", got, got.Params, tt.want, tt.want.Params)
			}
		})
	}
}

// FuzzRunHeaders: any headers and query parse to times within /call's
// rules or to a 4xx, never a panic.
func FuzzRunHeaders(f *testing.F) {
	f.Add("35", "5", "cam-1", "params=1,2")
	f.Add("", "", "", "")
	f.Add("1e-300", "-0", "a\u202e", "params=%2D1&x=2")
	f.Add("0.001", "NaN", strings.Repeat("n", 200), "params=")
	f.Fuzz(func(t *testing.T, deadline, exec, name, query string) {
		h := http.Header{}
		for k, v := range map[string]string{HeaderDeadline: deadline, HeaderExecution: exec, HeaderTaskName: name} {
			if v != "" {
				h.Set(k, v)
			}
		}
		rh, err := parseRunHeaders(h, query)
		if err != nil {
			if status, _ := StatusOf(err); status >= 500 || status < 400 {
				t.Fatalf("got status %d for %q", status, err)
			}
			return
		}
		for _, d := range []time.Duration{rh.Deadline, rh.Declared} {
			if d < 0 || (d > 0 && d < time.Microsecond) || d > maxMillis*time.Millisecond {
				t.Fatalf("got time %v, outside /call's rules", d)
			}
		}
		if len(rh.TaskName) > MaxTaskNameLen {
			t.Fatalf("got a task name of %d bytes", len(rh.TaskName))
		}
	})
}

// TestRun drives the raw route's handler: body in, body out, the answer
// headers, and errors as JSON.
func TestRun(t *testing.T) {
	three, met := 3, true
	b := &fakeBackend{res: &CallResult{TaskID: 7, Worker: "worker-1:0", Stdout: []byte{0, 1, 255}, StdoutBytes: 300,
		Stderr: []byte("bad\n100%"), StderrBytes: 8, ExitCode: &three, DeadlineMet: &met, Estimate: 5 * time.Millisecond,
		EstimateSource: "learned", Queue: 100 * time.Microsecond, Instantiate: 20 * time.Microsecond,
		Exec: time.Millisecond, Total: 1500 * time.Microsecond}}
	h := New(b, Options{MaxInput: 10})
	req := httptest.NewRequest(http.MethodPost, "/run/echo.wasm", strings.NewReader("0123456789"))
	req.Header.Set(HeaderDeadline, "35")
	req.Header.Set(HeaderExecution, "5")
	req.Header.Set(HeaderTaskName, "t1")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != 200 || !bytes.Equal(w.Body.Bytes(), []byte{0, 1, 255}) {
		t.Fatalf("got %d %q, want 200 and the stdout", w.Code, w.Body)
	}
	for k, want := range map[string]string{
		"Content-Type": "application/octet-stream", headerExitCode: "3", headerTruncated: "true", headerOutBytes: "300",
		headerStderr: "bad%0A100%25", headerErrBytes: "8", headerTaskID: "7", headerWorker: "worker-1:0", headerMet: "true",
		headerEstimate: "5; source=learned", "Server-Timing": "queue;dur=0.1, inst;dur=0.02, exec;dur=1, total;dur=1.5",
	} {
		if got := w.Header().Get(k); got != want {
			t.Errorf("%s: got %q, want %q", k, got, want)
		}
	}
	if s, err := url.PathUnescape(w.Header().Get(headerStderr)); err != nil || s != "bad\n100%" {
		t.Errorf("Hyper-Stderr decodes to %q, %v; want the stderr", s, err)
	}
	spec := b.calls[0]
	if spec.Module != "echo.wasm" || spec.Export != "_start" || string(spec.Input) != "0123456789" || spec.TaskName != "t1" ||
		spec.Deadline != 35*time.Millisecond || spec.Declared != 5*time.Millisecond {
		t.Errorf("got spec %+v", spec)
	}

	// A function with params and results.
	b.res = &CallResult{Types: []wasmval.Type{wasmval.I32}, Results: []uint64{3}}
	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/run/echo.wasm/add?params=1,2", nil))
	if w.Code != 200 || w.Header().Get(headerResult) != "[I32(3)]" || w.Header().Get(headerExitCode) != "" || w.Body.Len() != 0 {
		t.Errorf("add: got %d %v %q", w.Code, w.Header(), w.Body)
	}
	if spec := b.calls[1]; spec.Export != "add" || string(spec.Params) != `["1","2"]` {
		t.Errorf("add: got export %q params %s", spec.Export, spec.Params)
	}

	// Over --max-input, declared or not: 413 as JSON, the backend never asked.
	for _, chunked := range []bool{false, true} {
		req := httptest.NewRequest(http.MethodPost, "/run/echo.wasm", strings.NewReader("0123456789x"))
		if chunked {
			req.ContentLength = -1
		}
		w = httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 413 || !strings.Contains(w.Body.String(), `"status":"Error_Too_large"`) || !strings.Contains(w.Body.String(), "--max-input") {
			t.Errorf("11 bytes (chunked %v): got %d %s, want 413 Error_Too_large naming --max-input", chunked, w.Code, w.Body)
		}
	}
	// A bad header: 400 as JSON.
	req = httptest.NewRequest(http.MethodPost, "/run/echo.wasm", nil)
	req.Header.Set(HeaderDeadline, "soon")
	w = httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != 400 || w.Header().Get("Content-Type") != "application/json" {
		t.Errorf("bad deadline: got %d %s", w.Code, w.Body)
	}
	if len(b.calls) != 2 {
		t.Errorf("got %d calls, want 2", len(b.calls))
	}
}

func TestEscapeHeader(t *testing.T) {
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	s := escapeHeader(all)
	if !validHeaderText(s) {
		t.Fatalf("got %q: not a header value", s)
	}
	if back, err := url.PathUnescape(s); err != nil || back != string(all) {
		t.Errorf("decodes to %q, %v; want every byte back", back, err)
	}
}

// validHeaderText reports whether s is a header value escapeHeader could
// have made.
func validHeaderText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] >= 0x7f {
			return false
		}
	}
	return true
}
