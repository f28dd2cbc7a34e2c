package httpapi

import (
	"bytes"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
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

func TestDecodeRegister(t *testing.T) {
	wasm := []byte("\x00asm\x01\x00\x00\x00")
	t.Run("seed form", func(t *testing.T) {
		spec, err := DecodeRegister(form(t, map[string][]byte{"fib.wasm": wasm}, nil), 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if len(spec.Modules) != 1 || spec.Modules[0].Name != "fib.wasm" || !bytes.Equal(spec.Modules[0].Wasm, wasm) {
			t.Errorf("got %+v, want fib.wasm with its bytes", spec.Modules)
		}
	})
	t.Run("calibration fields", func(t *testing.T) {
		spec, err := DecodeRegister(form(t, map[string][]byte{"fib.wasm": wasm},
			map[string]string{"export_func": "fib_r", "param_type": "i32", "params": "30, 31", "replace": "true"}), 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if spec.Export != "fib_r" || string(spec.ParamTypes) != `"i32"` || string(spec.Params) != `["30","31"]` || !spec.Replace {
			t.Errorf("got %+v %s %s", spec, spec.ParamTypes, spec.Params)
		}
	})
	t.Run("json params", func(t *testing.T) {
		spec, err := DecodeRegister(form(t, map[string][]byte{"m": wasm}, map[string]string{"params": `["1", 2]`}), 1<<20)
		if err != nil || string(spec.Params) != `["1", 2]` {
			t.Errorf("got %s, %v", spec.Params, err)
		}
	})
	for _, tt := range []struct {
		name string
		req  *http.Request
		code string
	}{
		{"too large", form(t, map[string][]byte{"m": make([]byte, 100)}, nil), "Error_Too_large"},
		{"unknown field", form(t, map[string][]byte{"m": wasm}, map[string]string{"color": "red"}), "Error_Bad_request"},
		{"not multipart", func() *http.Request {
			r, _ := http.NewRequest(http.MethodPost, "/register", strings.NewReader("{}"))
			r.Header.Set("Content-Type", "application/json")
			return r
		}(), "Error_Bad_request"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeRegister(tt.req, 64)
			if _, code := StatusOf(err); err == nil || code != tt.code {
				t.Errorf("got %v (%s), want %s", err, code, tt.code)
			}
		})
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
	f.Fuzz(func(t *testing.T, body []byte) {
		r, _ := http.NewRequest(http.MethodPost, "/register", bytes.NewReader(body))
		r.Header.Set("Content-Type", "multipart/form-data; boundary="+boundary)
		spec, err := DecodeRegister(r, 64)
		if err != nil {
			if status, _ := StatusOf(err); status >= 500 {
				t.Fatalf("got status %d, want 4xx", status)
			}
			return
		}
		for _, m := range spec.Modules {
			if len(m.Wasm) > 64 {
				t.Fatalf("module %q has %d bytes, over the cap of 64", m.Name, len(m.Wasm))
			}
		}
	})
}
