package httpapi

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestOpenUnder: /init opens regular files inside its directory only,
// whatever the path says through "..", symlinks or special files.
func TestOpenUnder(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "init")
	out := filepath.Join(base, "out")
	for _, d := range []string{dir, out, filepath.Join(dir, "sub")} {
		os.MkdirAll(d, 0o750)
	}
	os.WriteFile(filepath.Join(dir, "a.wasm"), []byte("a"), 0o644)
	os.WriteFile(filepath.Join(dir, "sub", "b.wasm"), []byte("bb"), 0o644)
	os.WriteFile(filepath.Join(out, "s.wasm"), []byte("secret"), 0o644)
	os.Symlink(filepath.Join(out, "s.wasm"), filepath.Join(dir, "out.wasm"))
	os.Symlink("sub/b.wasm", filepath.Join(dir, "in.wasm"))
	os.Symlink(out, filepath.Join(dir, "outdir"))
	syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644)
	// The init dir itself through a symlink: what it resolves to counts.
	link := filepath.Join(base, "link")
	os.Symlink(dir, link)
	for _, tt := range []struct {
		dir, path string
		size      int64 // -1: refused
	}{
		{dir, filepath.Join(dir, "a.wasm"), 1},
		{dir, "a.wasm", 1},
		{dir, "sub/b.wasm", 2},
		{dir, filepath.Join(dir, "in.wasm"), 2},
		{link, filepath.Join(link, "a.wasm"), 1},
		{link, filepath.Join(dir, "a.wasm"), 1},
		{dir, filepath.Join(dir, "out.wasm"), -1},
		{dir, filepath.Join(dir, "outdir", "s.wasm"), -1},
		{dir, filepath.Join(out, "s.wasm"), -1},
		{dir, dir + "/../out/s.wasm", -1},
		{dir, dir + "/sub/../a.wasm", -1},
		{dir, "../out/s.wasm", -1},
		{dir, dir, -1},
		{dir, filepath.Join(dir, "sub"), -1},
		{dir, filepath.Join(dir, "fifo"), -1},
		{dir, filepath.Join(dir, "none.wasm"), -1},
		{dir, "/dev/zero", -1},
		{dir, "/", -1},
	} {
		f, size, err := openUnder(tt.dir, tt.path)
		if f != nil {
			f.Close()
		}
		switch {
		case tt.size < 0 && err == nil:
			t.Errorf("openUnder(%s, %s): opened it, want it refused", tt.dir, tt.path)
		case tt.size < 0:
			if status, _ := StatusOf(err); status != http.StatusBadRequest {
				t.Errorf("openUnder(%s, %s): got %v (%d), want 400", tt.dir, tt.path, err, status)
			}
		case err != nil || size != tt.size:
			t.Errorf("openUnder(%s, %s): got %d bytes, %v; want %d", tt.dir, tt.path, size, err, tt.size)
		}
	}
}

// TestInitOff: without an init dir, /init says how to turn it on.
func TestInitOff(t *testing.T) {
	h := New(&spoolBackend{}, Options{})
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/init", strings.NewReader(`{"path":"/x/fib.wasm","wasm_name":"fib.wasm","is_infer":false}`)))
	if w.Code != http.StatusNotFound || !strings.Contains(w.Body.String(), "--init-dir") {
		t.Errorf("got %d %s, want 404 naming --init-dir", w.Code, w.Body)
	}
}

// TestInit: the prototype's body registers the file as a one-module form,
// spooled, and the spool is empty after the answer.
func TestInit(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "fib.wasm"), []byte("\x00asm\x01\x00\x00\x00"), 0o644)
	b := &spoolBackend{}
	u := NewUploads(spoolDir(t), 1<<20)
	h := New(b, Options{InitDir: dir, Uploads: u, URL: "http://h:1"})
	for _, body := range []string{
		`{"path":"` + filepath.Join(dir, "fib.wasm") + `","wasm_name":"fib.wasm","is_infer":false}`,
		`{"path":"fib.wasm","wasm_name":"fib.wasm","is_infer":"false"}`,
		`{"path":"fib.wasm","wasm_name":"fib.wasm"}`,
	} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/init", strings.NewReader(body)))
		if w.Code != 200 || !strings.Contains(w.Body.String(), `"status":"Success","url":"http://h:1/call"`) {
			t.Errorf("%s: got %d %s, want 200 Success with the url", body, w.Code, w.Body)
		}
	}
	if b.files != 3 || u.InFlight() != 0 {
		t.Errorf("backend saw %d spooled files, %d bytes left in flight; want 3, 0", b.files, u.InFlight())
	}
	for _, body := range []string{`{"path":"fib.wasm"}`, `{"wasm_name":"fib.wasm"}`, `{"path":"fib.wasm","wasm_name":"fib.wasm","is_infer":3}`, `[]`} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/init", strings.NewReader(body)))
		if w.Code != http.StatusBadRequest {
			t.Errorf("%s: got %d %s, want 400", body, w.Code, w.Body)
		}
	}
}
