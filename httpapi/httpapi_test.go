package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fakeBackend answers every call with no results and records the specs.
type fakeBackend struct {
	Backend // nil: the methods a test does not use panic
	calls   []CallSpec
	names   []string    // looked up by Module, DeleteModule, Timeline
	res     *CallResult // Call's answer, if not nil
}

func (f *fakeBackend) Call(_ context.Context, spec CallSpec) (*CallResult, error) {
	f.calls = append(f.calls, spec)
	if f.res != nil {
		return f.res, nil
	}
	return &CallResult{TaskName: spec.TaskName}, nil
}

// TestCallBodyLimit: /call reads at most MaxBody bytes (default
// DefaultMaxBody) and answers a larger body 413, naming the limit, before
// decoding any of it.
func TestCallBodyLimit(t *testing.T) {
	b := &fakeBackend{}
	// The body's limit leaves room for an input of --max-input as base64.
	h := New(b, Options{MaxInput: 1000})
	limit := DefaultMaxBody + 2000
	call := func(body string) (int, map[string]any) {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/call", strings.NewReader(body)))
		var a map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &a); err != nil {
			t.Fatalf("answer is not JSON: %q", w.Body)
		}
		return w.Code, a
	}
	small := `{"wasm_name":"m","export_func":"f"}`
	if code, a := call(small); code != http.StatusOK || len(b.calls) != 1 {
		t.Fatalf("small body: got %d %v, want 200", code, a)
	}
	pad := limit - len(small) + 1
	big := `{"wasm_name":"m","export_func":"f","pad":"` + strings.Repeat("x", pad) + `"}`
	code, a := call(big)
	if code != http.StatusRequestEntityTooLarge || a["status"] != "Error_Too_large" ||
		!strings.Contains(a["error"].(string), strconv.Itoa(limit)) {
		t.Errorf("body of %d bytes: got %d %v, want 413 Error_Too_large naming %d", len(big), code, a, limit)
	}
	if len(b.calls) != 1 {
		t.Errorf("got %d calls, want the large body refused before the backend", len(b.calls))
	}
}

func (f *fakeBackend) Module(name string) (any, error) {
	f.names = append(f.names, name)
	return name, nil
}
func (f *fakeBackend) DeleteModule(name string) error { f.names = append(f.names, name); return nil }
func (f *fakeBackend) Timeline(name string) (any, error) {
	f.names = append(f.names, name)
	return name, nil
}

// TestModuleRoutesNFC: GET and DELETE /modules/NAME look NAME up in NFC,
// the one form a module is registered in.
func TestModuleRoutesNFC(t *testing.T) {
	b := &fakeBackend{}
	h := New(b, Options{})
	for _, method := range []string{http.MethodGet, http.MethodDelete} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(method, "/modules/cafe%CC%81.wasm", nil))
		if w.Code != http.StatusOK {
			t.Errorf("%s: got %d %s, want 200", method, w.Code, w.Body)
		}
	}
	if want := []string{"caf\u00e9.wasm", "caf\u00e9.wasm"}; strings.Join(b.names, " ") != strings.Join(want, " ") {
		t.Errorf("got lookups %+q, want %+q", b.names, want)
	}
}

// TestUnameLimit: /uname refuses a name longer than any task's.
func TestUnameLimit(t *testing.T) {
	b := &fakeBackend{}
	h := New(b, Options{})
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/uname?uname="+strings.Repeat("n", MaxTaskNameLen+1), nil))
	if w.Code != http.StatusBadRequest || len(b.names) != 0 || !strings.Contains(w.Body.String(), strconv.Itoa(MaxTaskNameLen)) {
		t.Errorf("got %d %s (lookups %d), want 400 naming the limit, no lookup", w.Code, w.Body, len(b.names))
	}
}

func (f *fakeBackend) Test(_ context.Context, spec CallSpec) (*Tested, error) {
	f.calls = append(f.calls, spec)
	return &Tested{Estimate: time.Millisecond}, nil
}
