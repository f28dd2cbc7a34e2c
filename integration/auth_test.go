package integration

import (
	"bytes"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

func TestToken(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := start(t, dir, "--token-file", tokenFile)
	upload := func(token string) answer {
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		fw, _ := mw.CreateFormFile("fib.wasm", "fib.wasm")
		data, _ := os.ReadFile("../testdata/fib.wasm")
		fw.Write(data)
		mw.Close()
		req, _ := http.NewRequest(http.MethodPost, d.url+"/register", &buf)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		return d.do(req)
	}
	if a := upload(""); a.code != http.StatusUnauthorized || a.str("status") != "Error_Unauthorized" {
		t.Errorf("register without token: got %d %s, want 401", a.code, a.raw)
	}
	if a := upload("wrong"); a.code != http.StatusUnauthorized {
		t.Errorf("register with a wrong token: got %d %s, want 401", a.code, a.raw)
	}
	if a := upload("s3cret"); a.code != http.StatusOK {
		t.Fatalf("register with the token: got %d %s, want 200", a.code, a.raw)
	}
	// Calling needs no token.
	if a := d.post("/call", `{"wasm_name":"fib.wasm","export_func":"fib_r","params":["10"]}`); a.code != 200 {
		t.Errorf("call: got %d %s, want 200", a.code, a.raw)
	}
	req, _ := http.NewRequest(http.MethodDelete, d.url+"/modules/fib.wasm", nil)
	if a := d.do(req); a.code != http.StatusUnauthorized {
		t.Errorf("delete without token: got %d %s, want 401", a.code, a.raw)
	}
}
