package httpapi

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestDecodeCallInput(t *testing.T) {
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	b64 := base64.StdEncoding.EncodeToString(all)
	tests := []struct {
		name  string
		body  string
		input []byte
		args  []string
		env   []string
		code  string
	}{
		{"none", `{"wasm_name":"m","export_func":"f"}`, nil, nil, nil, ""},
		{"text", `{"wasm_name":"m","export_func":"_start","input":"h\u00e9\n"}`, []byte("hé\n"), nil, nil, ""},
		{"empty text", `{"wasm_name":"m","export_func":"_start","input":""}`, []byte{}, nil, nil, ""},
		{"base64", `{"wasm_name":"m","export_func":"_start","input_base64":"` + b64 + `"}`, all, nil, nil, ""},
		{"args and env", `{"wasm_name":"m","export_func":"_start","args":["a","b c"],"env":{"Z":"1","A":"x=y"}}`,
			nil, []string{"a", "b c"}, []string{"A=x=y", "Z=1"}, ""},
		{"both inputs", `{"wasm_name":"m","export_func":"f","input":"a","input_base64":"YQ=="}`, nil, nil, nil, "Error_Bad_request"},
		{"bad base64", `{"wasm_name":"m","export_func":"f","input_base64":"!!"}`, nil, nil, nil, "Error_Bad_request"},
		{"unpadded base64", `{"wasm_name":"m","export_func":"f","input_base64":"YQ"}`, nil, nil, nil, "Error_Bad_request"},
		{"input not a string", `{"wasm_name":"m","export_func":"f","input":5}`, nil, nil, nil, "Error_Bad_request"},
		{"args not strings", `{"wasm_name":"m","export_func":"f","args":[1]}`, nil, nil, nil, "Error_Bad_request"},
		{"NUL in an arg", `{"wasm_name":"m","export_func":"f","args":["a\u0000b"]}`, nil, nil, nil, "Error_Bad_request"},
		{"= in an env name", `{"wasm_name":"m","export_func":"f","env":{"A=B":"c"}}`, nil, nil, nil, "Error_Bad_request"},
		{"empty env name", `{"wasm_name":"m","export_func":"f","env":{"":"c"}}`, nil, nil, nil, "Error_Bad_request"},
		{"NUL in an env value", `{"wasm_name":"m","export_func":"f","env":{"A":"\u0000"}}`, nil, nil, nil, "Error_Bad_request"},
		{"args too long", `{"wasm_name":"m","export_func":"f","args":["` + strings.Repeat("a", MaxArgsLen) + `"]}`, nil, nil, nil, "Error_Bad_request"},
		{"env too long", `{"wasm_name":"m","export_func":"f","env":{"A":"` + strings.Repeat("a", MaxArgsLen) + `"}}`, nil, nil, nil, "Error_Bad_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeCall([]byte(tt.body), time.Time{})
			if tt.code != "" {
				if _, code := StatusOf(err); err == nil || code != tt.code {
					t.Fatalf("got %v, want %s", err, tt.code)
				}
				return
			}
			if err != nil {
				t.Fatalf("got %v, want no error", err)
			}
			if !bytes.Equal(got.Input, tt.input) || (got.Input == nil) != (tt.input == nil) ||
				!slices.Equal(got.Args, tt.args) || !slices.Equal(got.Env, tt.env) {
				t.Errorf("got input %q args %q env %q, want %q %q %q", got.Input, got.Args, got.Env, tt.input, tt.args, tt.env)
			}
		})
	}
}

// TestCallOutput: the answer's output fields for text, bytes, a cut
// stream and an exit code, and capture_output's fields as before.
func TestCallOutput(t *testing.T) {
	three := 3
	for _, tt := range []struct {
		name string
		body string
		res  CallResult
		want map[string]any // fields that must be there; nil: must be absent
	}{
		{"text", `{"wasm_name":"m","export_func":"f"}`, CallResult{Stdout: []byte("hi"), StdoutBytes: 2},
			map[string]any{"output": "hi", "output_base64": nil, "output_truncated": nil, "stderr": nil, "exit_code": nil, "stdout": nil}},
		{"no output", `{"wasm_name":"m","export_func":"f"}`, CallResult{},
			map[string]any{"output": "", "output_base64": nil}},
		{"bytes", `{"wasm_name":"m","export_func":"f"}`, CallResult{Stdout: []byte{0xff, 0}, StdoutBytes: 2},
			map[string]any{"output": nil, "output_base64": "/wA="}},
		{"cut", `{"wasm_name":"m","export_func":"f"}`, CallResult{Stdout: []byte("ab"), StdoutBytes: 10, Stderr: []byte("e"), StderrBytes: 5},
			map[string]any{"output": "ab", "output_truncated": true, "output_bytes": float64(10), "output_kept_bytes": float64(2),
				"stderr": "e", "stderr_truncated": true, "stderr_bytes": float64(5)}},
		{"exit", `{"wasm_name":"m","export_func":"_start"}`, CallResult{ExitCode: &three, Stderr: []byte("bye")},
			map[string]any{"exit_code": float64(3), "stderr": "bye", "status": "Success"}},
		{"capture_output", `{"wasm_name":"m","export_func":"f","capture_output":true}`,
			CallResult{Stdout: []byte(strings.Repeat("x", 5000) + "\xff"), StdoutBytes: 5001},
			map[string]any{"stdout": strings.Repeat("x", 4096), "stderr": "", "output_base64": base64.StdEncoding.EncodeToString([]byte(strings.Repeat("x", 5000) + "\xff"))}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := &fakeBackend{res: &tt.res}
			w := httptest.NewRecorder()
			New(b, Options{}).ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/call", strings.NewReader(tt.body)))
			var a map[string]any
			if err := json.Unmarshal(w.Body.Bytes(), &a); err != nil || w.Code != 200 {
				t.Fatalf("got %d %q", w.Code, w.Body)
			}
			for k, v := range tt.want {
				got, ok := a[k]
				if v == nil && ok {
					t.Errorf("%s: got %v, want no such field", k, got)
				}
				if v != nil && got != v {
					t.Errorf("%s: got %v, want %v", k, got, v)
				}
			}
		})
	}
}

// TestCallInputLimit: an input over Options.MaxInput is a 413 naming the
// flag, before the backend sees it; one at the limit passes.
func TestCallInputLimit(t *testing.T) {
	b := &fakeBackend{}
	h := New(b, Options{MaxInput: 100})
	for _, tt := range []struct {
		body string
		code int
	}{
		{`{"wasm_name":"m","export_func":"f","input":"` + strings.Repeat("x", 100) + `"}`, 200},
		{`{"wasm_name":"m","export_func":"f","input":"` + strings.Repeat("x", 101) + `"}`, 413},
		{`{"wasm_name":"m","export_func":"f","input_base64":"` + base64.StdEncoding.EncodeToString(make([]byte, 101)) + `"}`, 413},
	} {
		for _, path := range []string{"/call", "/test"} {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, path, strings.NewReader(tt.body)))
			if w.Code != tt.code || (tt.code == 413 && !strings.Contains(w.Body.String(), "--max-input")) {
				t.Errorf("%s with %d bytes of body: got %d %s, want %d", path, len(tt.body), w.Code, w.Body, tt.code)
			}
		}
	}
	if len(b.calls) != 2 {
		t.Errorf("got %d calls and tests, want 2 (the ones at the limit)", len(b.calls))
	}
}

// inputBackend registers anything and keeps the spec it got.
type inputBackend struct {
	Backend
	spec RegisterSpec
}

func (b *inputBackend) Register(_ context.Context, spec RegisterSpec) ([]Registered, error) {
	b.spec = spec
	return []Registered{{Name: spec.Modules[0].Name}}, nil
}

// TestRegisterInput: a register form's input file, args and env reach the
// backend, within --max-input; the input part is spooled and removed.
func TestRegisterInput(t *testing.T) {
	u := NewUploads(spoolDir(t), 1<<30)
	b := &inputBackend{}
	h := New(b, Options{Uploads: u, MaxInput: 8})
	wasm := []byte("\x00asm\x01\x00\x00\x00")
	for _, tt := range []struct {
		name   string
		input  []byte
		fields map[string]string
		code   int
		args   []string
		env    []string
	}{
		{"input, args, env", []byte{0, 1, 255}, map[string]string{"export_func": "_start", "args": `["a","b c"]`, "env": `{"B":"2","A":"1"}`}, 200,
			[]string{"a", "b c"}, []string{"A=1", "B=2"}},
		{"comma args", nil, map[string]string{"args": "x,y"}, 200, []string{"x", "y"}, nil},
		{"input at the limit", make([]byte, 8), nil, 200, nil, nil},
		{"input over the limit", make([]byte, 9), nil, 413, nil, nil},
		{"bad env", nil, map[string]string{"env": `{"A=B":"c"}`}, 400, nil, nil},
		{"env not an object", nil, map[string]string{"env": `x`}, 400, nil, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b.spec = RegisterSpec{}
			var buf bytes.Buffer
			mw := multipart.NewWriter(&buf)
			w, _ := mw.CreateFormFile("m.wasm", "m.wasm")
			w.Write(wasm)
			if tt.input != nil {
				w, _ := mw.CreateFormFile(InputField, "request.bin")
				w.Write(tt.input)
			}
			for k, v := range tt.fields {
				mw.WriteField(k, v)
			}
			mw.Close()
			r := httptest.NewRequest(http.MethodPost, "/register", &buf)
			r.Header.Set("Content-Type", mw.FormDataContentType())
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			if rec.Code != tt.code {
				t.Fatalf("got %d %s, want %d", rec.Code, rec.Body, tt.code)
			}
			if tt.code != 200 {
				return
			}
			if !bytes.Equal(b.spec.Input, tt.input) || !slices.Equal(b.spec.Args, tt.args) || !slices.Equal(b.spec.Env, tt.env) {
				t.Errorf("got input %q args %q env %q, want %q %q %q", b.spec.Input, b.spec.Args, b.spec.Env, tt.input, tt.args, tt.env)
			}
			if len(b.spec.Modules) != 1 || b.spec.Modules[0].Name != "m.wasm" {
				t.Errorf("got modules %+v, want m.wasm alone: input is no module", b.spec.Modules)
			}
		})
	}
	if u.InFlight() != 0 {
		t.Errorf("after the registers: %d bytes in flight", u.InFlight())
	}
}

// blockingBackend holds a call until release is closed; a second call
// while one is held fails at once, so that a test cannot hang on it.
type blockingBackend struct {
	Backend
	held    atomic.Bool
	started chan struct{}
	release chan struct{}
}

func (b *blockingBackend) Call(ctx context.Context, spec CallSpec) (*CallResult, error) {
	if b.held.Swap(true) {
		return nil, errors.New("test: a second call reached the backend while the first held the budget")
	}
	defer b.held.Store(false)
	b.started <- struct{}{}
	<-b.release
	return &CallResult{Stdout: spec.Input, StdoutBytes: int64(len(spec.Input))}, nil
}

// TestInputBudget: call bodies held at once are bounded: a call whose
// body does not fit while another holds the budget is answered 503 with
// Retry-After, declared or not; once the first is answered it fits, and
// everything is given back.
func TestInputBudget(t *testing.T) {
	b := &blockingBackend{started: make(chan struct{}, 1), release: make(chan struct{})}
	hd, h := newHandler(b, Options{MaxInput: 1 << 20, MaxInputInFlight: 200 << 10})
	in := bytes.Repeat([]byte("x"), 200<<10) // 200 KiB: 136 KiB of the 200 beyond the free 64 KiB
	first := make(chan *httptest.ResponseRecorder)
	go func() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/run/m", bytes.NewReader(in)))
		first <- w
	}()
	<-b.started
	for _, chunked := range []bool{false, true} {
		for _, path := range []string{"/run/m", "/call"} {
			body := in
			if path == "/call" {
				body = []byte(`{"wasm_name":"m","export_func":"f","input":"` + string(in) + `"}`)
			}
			req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
			if chunked {
				req.ContentLength = -1
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != 503 || w.Header().Get("Retry-After") == "" || !strings.Contains(w.Body.String(), "Error_Unschedulable") {
				t.Errorf("%s (chunked %v) while the budget is held: got %d %s, want 503 with Retry-After", path, chunked, w.Code, w.Body)
			}
		}
	}
	close(b.release)
	if w := <-first; w.Code != 200 || w.Body.Len() != len(in) {
		t.Fatalf("first: got %d, %d bytes", w.Code, w.Body.Len())
	}
	w := httptest.NewRecorder()
	go func() { <-b.started }()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/run/m", bytes.NewReader(in)))
	if w.Code != 200 {
		t.Errorf("after the first answer: got %d %s, want 200", w.Code, w.Body)
	}
	if n := hd.inputs.inFlight(); n != 0 {
		t.Errorf("at the end: %d bytes held, want 0", n)
	}
}
