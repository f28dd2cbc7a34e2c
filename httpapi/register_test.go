package httpapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/hyper-sched/hyper-sched/apierr"
)

func form(t *testing.T, files map[string][]byte, fields map[string]string) *http.Request {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, v := range files {
		w, _ := mw.CreateFormFile(k, "upload.wasm")
		w.Write(v)
	}
	for k, v := range fields {
		mw.WriteField(k, v)
	}
	mw.Close()
	r, _ := http.NewRequest(http.MethodPost, "/register", &buf)
	r.Header.Set("Content-Type", mw.FormDataContentType())
	return r
}

// spoolDir is an empty spool for one test; it checks at the end that
// every file was removed.
func spoolDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	t.Cleanup(func() {
		if ents, _ := os.ReadDir(dir); len(ents) > 0 {
			t.Errorf("spool not empty at the end: %d files", len(ents))
		}
	})
	return dir
}

func TestDecodeRegister(t *testing.T) {
	wasm := []byte("\x00asm\x01\x00\x00\x00")
	u := NewUploads(spoolDir(t), 1<<30)
	t.Run("seed form", func(t *testing.T) {
		spec, err := u.DecodeRegister(form(t, map[string][]byte{"fib.wasm": wasm}, nil), 1<<20, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer spec.Release()
		if len(spec.Modules) != 1 || spec.Modules[0].Name != "fib.wasm" || spec.Modules[0].Wasm != nil {
			t.Fatalf("got %+v, want fib.wasm, spooled", spec.Modules)
		}
		m := spec.Modules[0]
		got, err := os.ReadFile(m.File)
		h := sha256.Sum256(wasm)
		if err != nil || !bytes.Equal(got, wasm) || m.Size != int64(len(wasm)) || m.SHA256 != hex.EncodeToString(h[:]) {
			t.Errorf("spooled: got %q (%v), size %d, sha256 %s; want the bytes, their size and sha256", got, err, m.Size, m.SHA256)
		}
	})
	t.Run("calibration fields", func(t *testing.T) {
		spec, err := u.DecodeRegister(form(t, map[string][]byte{"fib.wasm": wasm},
			map[string]string{"export_func": "fib_r", "param_type": "i32", "params": "30, 31", "replace": "true"}), 1<<20, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer spec.Release()
		if spec.Export != "fib_r" || string(spec.ParamTypes) != `"i32"` || string(spec.Params) != `["30","31"]` || !spec.Replace {
			t.Errorf("got %+v %s %s", spec, spec.ParamTypes, spec.Params)
		}
	})
	t.Run("json params", func(t *testing.T) {
		spec, err := u.DecodeRegister(form(t, map[string][]byte{"m": wasm}, map[string]string{"params": `["1", 2]`}), 1<<20, nil)
		if err != nil || string(spec.Params) != `["1", 2]` {
			t.Errorf("got %s, %v", spec.Params, err)
		}
		spec.Release()
	})
	many := map[string][]byte{}
	for _, n := range []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o", "p", "q"} {
		many[n] = wasm
	}
	for _, tt := range []struct {
		name string
		req  *http.Request
		code string
	}{
		{"too large", form(t, map[string][]byte{"m": make([]byte, 100)}, nil), "Error_Too_large"},
		{"too large, second", form(t, map[string][]byte{"a": wasm, "m": make([]byte, 100)}, nil), "Error_Too_large"},
		{"17 files", form(t, many, nil), "Error_Too_large"},
		{"unknown field", form(t, map[string][]byte{"m": wasm}, map[string]string{"color": "red"}), "Error_Bad_request"},
		{"not multipart", func() *http.Request {
			r, _ := http.NewRequest(http.MethodPost, "/register", strings.NewReader("{}"))
			r.Header.Set("Content-Type", "application/json")
			return r
		}(), "Error_Bad_request"},
		{"declared larger than a form", func() *http.Request {
			r := form(t, map[string][]byte{"m": wasm}, nil)
			r.ContentLength = FormCap(64) + 1
			return r
		}(), "Error_Too_large"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := u.DecodeRegister(tt.req, 64, nil)
			if _, code := StatusOf(err); err == nil || code != tt.code {
				t.Errorf("got %v (%s), want %s", err, code, tt.code)
			}
			if n := u.InFlight(); n != 0 {
				t.Errorf("after a refused form the spool holds %d bytes, want 0", n)
			}
		})
	}
}

// TestDecodeRegisterParts: a form of more parts than MaxModulesPerForm
// files and a few fields is refused, whatever the parts are.
func TestDecodeRegisterParts(t *testing.T) {
	u := NewUploads(spoolDir(t), 1<<30)
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for range maxFormParts + 1 {
		mw.WriteField("replace", "true")
	}
	mw.Close()
	r, _ := http.NewRequest(http.MethodPost, "/register", &buf)
	r.Header.Set("Content-Type", mw.FormDataContentType())
	if _, err := u.DecodeRegister(r, 1<<20, nil); apierr.CodeOf(err) != apierr.TooLarge || !strings.Contains(err.Error(), "parts") {
		t.Errorf("got %v, want Too_large naming the parts", err)
	}
}

// stalled is a form body that gives its first bytes and then fails the
// test if read further: whatever decides on them must not need the rest.
type stalled struct {
	t    *testing.T
	head []byte
}

func (s *stalled) Read(p []byte) (int, error) {
	if len(s.head) == 0 {
		s.t.Error("read past the bytes that decide the answer")
		return 0, errors.New("stalled")
	}
	n := copy(p, s.head)
	s.head = s.head[n:]
	return n, nil
}

// TestDecodeRegisterChecksNameFirst: a module file whose name the backend
// refuses is refused before its bytes are read.
func TestDecodeRegisterChecksNameFirst(t *testing.T) {
	u := NewUploads(spoolDir(t), 1<<30)
	head := "--b\r\nContent-Disposition: form-data; name=\"a/b\"; filename=\"x\"\r\n\r\n" + strings.Repeat("x", 100)
	r, _ := http.NewRequest(http.MethodPost, "/register", &stalled{t: t, head: []byte(head)})
	r.Header.Set("Content-Type", "multipart/form-data; boundary=b")
	check := func(name string) error {
		if strings.Contains(name, "/") {
			return errorf(apierr.InvalidWasmName, "module name %q contains a path separator", name)
		}
		return nil
	}
	if _, err := u.DecodeRegister(r, 1<<20, check); apierr.CodeOf(err) != apierr.InvalidWasmName {
		t.Errorf("got %v, want Invalid_wasm_name", err)
	}
}

// TestUploadBudget: forms in flight hold at most the budget, each what it
// spooled. Beyond it a form is answered 503 with Retry-After — before a
// byte is read when its Content-Length says so; released, the budget is
// back.
func TestUploadBudget(t *testing.T) {
	u := NewUploads(spoolDir(t), 3<<20)
	mod := func(n int) map[string][]byte { return map[string][]byte{"m": bytes.Repeat([]byte{1}, n)} }
	a, err := u.DecodeRegister(form(t, mod(2<<20), nil), 4<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := u.InFlight(); got != 2<<20 {
		t.Errorf("in flight: got %d, want the 2 MiB it spooled", got)
	}
	_, err = u.DecodeRegister(form(t, mod(1<<20+1), nil), 4<<20, nil)
	var ae *apierr.Error
	if !errors.As(err, &ae) || ae.Code != apierr.Unschedulable || ae.RetryAfter <= 0 || !strings.Contains(ae.Msg, "in flight") {
		t.Fatalf("second form over the budget: got %v, want Unschedulable with RetryAfter", err)
	}
	// Chunked: taken as it arrives.
	chunked := form(t, mod(1<<20+1), nil)
	chunked.ContentLength = -1
	if _, err := u.DecodeRegister(chunked, 4<<20, nil); apierr.CodeOf(err) != apierr.Unschedulable {
		t.Errorf("chunked form over the budget: got %v, want Unschedulable", err)
	}
	// Never fits: 413.
	if _, err := u.DecodeRegister(form(t, mod(3<<20+1), nil), 4<<20, nil); apierr.CodeOf(err) != apierr.TooLarge {
		t.Errorf("form over the whole budget: got %v, want Too_large", err)
	}
	a.Release()
	a.Release()
	if got := u.InFlight(); got != 0 {
		t.Errorf("after release: %d bytes in flight, want 0", got)
	}
	chunked = form(t, mod(2<<20), nil)
	chunked.ContentLength = -1
	b, err := u.DecodeRegister(chunked, 4<<20, nil)
	if err != nil {
		t.Fatalf("chunked form within the budget: %v", err)
	}
	if got := u.InFlight(); got != 2<<20 {
		t.Errorf("chunked form in flight: got %d bytes, want the 2 MiB it spooled", got)
	}
	b.Release()
}

// TestUploadStalled: a form whose client stalls holds what it sent, a MiB
// ahead at most, not what it declared.
func TestUploadStalled(t *testing.T) {
	u := NewUploads(spoolDir(t), 8<<20)
	pr, pw := io.Pipe()
	r, _ := http.NewRequest(http.MethodPost, "/register", pr)
	r.Header.Set("Content-Type", "multipart/form-data; boundary=b")
	r.ContentLength = 6 << 20
	done := make(chan error, 1)
	go func() {
		_, err := u.DecodeRegister(r, 8<<20, nil)
		done <- err
	}()
	pw.Write([]byte("--b\r\nContent-Disposition: form-data; name=\"m\"; filename=\"m\"\r\n\r\n"))
	pw.Write(bytes.Repeat([]byte{1}, 1<<20)) // returns once read: spooled
	if got := u.InFlight(); got < 1<<20 || got > 2<<20 {
		t.Errorf("stalled after 1 MiB of 6: %d bytes in flight, want 1 to 2 MiB", got)
	}
	pw.CloseWithError(io.ErrUnexpectedEOF)
	if err := <-done; err == nil {
		t.Error("a form cut short was accepted")
	}
	if got := u.InFlight(); got != 0 {
		t.Errorf("after the form failed: %d bytes in flight, want 0", got)
	}
}

// TestRegisterHandlerReleases: the handler releases the spool once the
// backend answered, and passes the backend's check.
func TestRegisterHandlerReleases(t *testing.T) {
	dir := spoolDir(t)
	u := NewUploads(dir, 1<<30)
	b := &spoolBackend{}
	h := New(b, Options{Uploads: u})
	w := httptest.NewRecorder()
	h.ServeHTTP(w, form(t, map[string][]byte{"m.wasm": []byte("\x00asm")}, nil))
	if w.Code != 200 || b.files != 1 {
		t.Fatalf("got %d %s, backend saw %d spooled files; want 200 and 1", w.Code, w.Body, b.files)
	}
	if u.InFlight() != 0 {
		t.Errorf("after the answer: %d bytes in flight", u.InFlight())
	}
}

// FuzzDecodeRegister feeds arbitrary multipart bodies: every one ends in a
// spec or a 4xx error, never a panic, and no module exceeds the cap.
func FuzzDecodeRegister(f *testing.F) {
	const boundary = "xYzZY"
	seed := func(parts string) []byte {
		return []byte(strings.ReplaceAll(parts, "\n", "\r\n"))
	}
	f.Add(seed("--xYzZY\nContent-Disposition: form-data; name=\"fib.wasm\"; filename=\"fib.wasm\"\n\n\x00asm\x01\x00\x00\x00\n--xYzZY--\n"))
	f.Add(seed("--xYzZY\nContent-Disposition: form-data; name=\"params\"\n\n30,31\n--xYzZY--\n"))
	f.Add(seed("--xYzZY\nContent-Disposition: form-data; name=\"../../etc\"; filename=\"x\"\n\nAAAA\n--xYzZY"))
	f.Add(seed("--xYzZY\nContent-Disposition: form-data; name=\"input\"; filename=\"in\"\n\n{\"a\":1}\n--xYzZY\nContent-Disposition: form-data; name=\"args\"\n\n[\"a\"]\n--xYzZY\nContent-Disposition: form-data; name=\"env\"\n\n{\"K\":\"v\"}\n--xYzZY--\n"))
	u := NewUploads(f.TempDir(), 1<<20)
	f.Fuzz(func(t *testing.T, body []byte) {
		r, _ := http.NewRequest(http.MethodPost, "/register", bytes.NewReader(body))
		r.Header.Set("Content-Type", "multipart/form-data; boundary="+boundary)
		spec, err := u.DecodeRegister(r, 64, nil)
		if err != nil {
			if status, _ := StatusOf(err); status >= 500 {
				t.Fatalf("got status %d, want 4xx", status)
			}
			return
		}
		defer spec.Release()
		for _, m := range spec.Modules {
			fi, err := os.Stat(m.File)
			if err != nil || fi.Size() > 64 || m.Size != fi.Size() {
				t.Fatalf("module %q: spooled %v %v, size %d; want at most the cap of 64", m.Name, fi, err, m.Size)
			}
		}
	})
}

// spoolBackend registers anything; it counts the spooled files it saw.
type spoolBackend struct {
	Backend
	files int
}

func (b *spoolBackend) Register(_ context.Context, spec RegisterSpec) ([]Registered, error) {
	for _, m := range spec.Modules {
		if _, err := os.Stat(m.File); err == nil {
			b.files++
		}
	}
	return []Registered{{Name: spec.Modules[0].Name}}, nil
}
