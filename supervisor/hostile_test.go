package supervisor

// Issue 14, "Hostile tenants": the supervisor's part. The HTTP layer's
// limits are tested in httpapi, the server's (timeouts, connection cap) in
// integration/hostile_http_test.go.

import (
	"net/http"
	"testing"

	"github.com/hyper-sched/hyper-sched/httpapi"
)

// TestNameLimitsAgree: /call refuses a wasm_name longer than the longest
// module name, which needs both limits to be the same.
func TestNameLimitsAgree(t *testing.T) {
	if MaxNameLen != httpapi.MaxNameLen {
		t.Errorf("got supervisor.MaxNameLen %d, httpapi.MaxNameLen %d; want them equal", MaxNameLen, httpapi.MaxNameLen)
	}
}

// TestRegisterInvalidName: a name no module can have is the client's
// mistake, a 400 that says why; it was a 404 Error_Invalid_wasm_name, the
// answer for a valid name that is not registered, which stays a 404.
func TestRegisterInvalidName(t *testing.T) {
	r := newStoreRig(t)
	for _, name := range []string{"fib\u202e.wasm", "cafe\u0301.wasm", "../etc", ".hidden", "f\u0456b.wasm"} {
		_, err := r.register(regOpts{}, httpapi.Upload{Name: name, Wasm: wasmOf("v1")})
		if status, code := httpapi.StatusOf(err); err == nil || status != http.StatusBadRequest {
			t.Errorf("register %+q: got %v (%d %s), want 400", name, err, status, code)
		}
	}
	r.agree(nil)
	if _, err := r.s.Module("nope.wasm"); !is404(err) {
		t.Errorf("GET /modules/nope.wasm: got %v, want 404", err)
	}
	if err := r.s.DeleteModule("nope.wasm"); !is404(err) {
		t.Errorf("DELETE /modules/nope.wasm: got %v, want 404", err)
	}
}

func is404(err error) bool {
	status, code := httpapi.StatusOf(err)
	return err != nil && status == http.StatusNotFound && code == "Error_Invalid_wasm_name"
}
