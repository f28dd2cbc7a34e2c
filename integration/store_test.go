package integration

// Issue 13, the module store, end to end: what is on disk, what GET
// /modules says and what the workers run agree after concurrent
// registers, deletes and calibrations, and again after a restart.

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// versionWasm is a module exporting v(i32) -> i32 that returns n, whatever
// its argument: each n is other bytes, and a /call tells which one a
// worker runs. v takes a param so that a register calibrates nothing.
func versionWasm(n int) []byte {
	body := append([]byte{0x00, 0x41}, sleb128(int64(n))...) // no locals; i32.const n
	body = append(body, 0x0b)                                // end
	code := append([]byte{0x01, byte(len(body))}, body...)
	var b []byte
	b = append(b, 0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00)
	b = append(b, 0x01, 0x06, 0x01, 0x60, 0x01, 0x7f, 0x01, 0x7f) // type 0: (i32) -> i32
	b = append(b, 0x03, 0x02, 0x01, 0x00)                         // func 0: type 0
	b = append(b, 0x07, 0x05, 0x01, 0x01, 'v', 0x00, 0x00)        // export "v" = func 0
	b = append(b, 0x0a, byte(len(code)))                          // code
	return append(b, code...)
}

func sleb128(v int64) []byte {
	var out []byte
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v == 0 && c&0x40 == 0 || v == -1 && c&0x40 != 0 {
			return append(out, c)
		}
		out = append(out, c|0x80)
	}
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// storeReq sends one request from any goroutine: its status code, or an
// error (no t.Fatal off the test's goroutine).
func (d *daemon) storeReq(method, path, contentType string, body []byte) (int, string, error) {
	req, err := http.NewRequest(method, d.url+path, bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw), err
}

// registerWasm registers wasm as name, with replace=true if asked.
func (d *daemon) registerWasm(name string, wasm []byte, replace bool) (int, string, error) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, _ := mw.CreateFormFile(name, name)
	fw.Write(wasm)
	if replace {
		mw.WriteField("replace", "true")
	}
	mw.Close()
	return d.storeReq(http.MethodPost, "/register", mw.FormDataContentType(), buf.Bytes())
}

// storeView is one module as each place sees it: its sha256 in GET
// /modules and on disk, and the versions its /calls returned.
type storeView struct {
	served, disk string
	calls        map[string]bool // sha256 of the version each /call ran
}

// viewStore looks at name everywhere; versions maps a version's sha256
// to its n.
func (d *daemon) viewStore(t *testing.T, name string, versions map[int]string) storeView {
	t.Helper()
	v := storeView{calls: map[string]bool{}}
	list, _ := d.get("/modules").body["result"].([]any)
	for _, m := range list {
		if m, _ := m.(map[string]any); m["name"] == name {
			v.served, _ = m["sha256"].(string)
		}
	}
	dir := filepath.Join(d.dir, "state", "modules", name)
	if wasm, err := os.ReadFile(filepath.Join(dir, "module.wasm")); err == nil {
		var meta struct {
			SHA256 string `json:"sha256"`
		}
		b, _ := os.ReadFile(filepath.Join(dir, "meta.json"))
		json.Unmarshal(b, &meta)
		if meta.SHA256 == sum(wasm) {
			v.disk = meta.SHA256
		} else {
			v.disk = fmt.Sprintf("module.wasm %s, meta.json %s", sum(wasm)[:12], meta.SHA256)
		}
	}
	// Several calls, so that more than one lane is likely asked.
	for range 6 {
		a := d.post("/call", `{"wasm_name":"`+name+`","export_func":"v","params":["0"]}`)
		if a.code != http.StatusOK {
			v.calls[a.str("status")] = true
			continue
		}
		var n int
		fmt.Sscanf(a.str("result"), "[I32(%d)]", &n)
		v.calls[versions[n]] = true
	}
	return v
}

// TestStoreConcurrent registers eight versions of one module at once
// (replace=true), four versions of one new module at once (without:
// exactly one may win), one new module three times at once with the same
// bytes (all succeed), and deletes a fourth module while it is being
// calibrated, with calibrations of the first module going on too. Then,
// and again after a restart, the disk, GET /modules and /calls on the
// workers must agree on each module's sha256, and the deleted module must
// stay deleted.
func TestStoreConcurrent(t *testing.T) {
	dir := t.TempDir()
	d := start(t, dir, "--lanes", "2")
	versions := map[int]string{}
	for n := 1; n <= 30; n++ {
		versions[n] = sum(versionWasm(n))
	}
	if code, raw, err := d.registerWasm("d.wasm", versionWasm(21), false); err != nil || code != http.StatusOK {
		t.Fatalf("register d.wasm: %d %s %v", code, raw, err)
	}
	if code, raw, err := d.registerWasm("r.wasm", versionWasm(1), false); err != nil || code != http.StatusOK {
		t.Fatalf("register r.wasm: %d %s %v", code, raw, err)
	}

	type outcome struct {
		what string
		code int
		raw  string
		err  error
	}
	var mu sync.Mutex
	var outcomes []outcome
	var wg sync.WaitGroup
	run := func(what string, f func() (int, string, error)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, raw, err := f()
			mu.Lock()
			outcomes = append(outcomes, outcome{what, code, raw, err})
			mu.Unlock()
		}()
	}
	for n := 2; n <= 9; n++ {
		run(fmt.Sprintf("replace r.wasm v%d", n), func() (int, string, error) { return d.registerWasm("r.wasm", versionWasm(n), true) })
	}
	for n := 11; n <= 14; n++ {
		run(fmt.Sprintf("register n.wasm v%d", n), func() (int, string, error) { return d.registerWasm("n.wasm", versionWasm(n), false) })
	}
	for range 3 {
		run("register p.wasm", func() (int, string, error) { return d.registerWasm("p.wasm", versionWasm(25), false) })
	}
	for _, name := range []string{"d.wasm", "r.wasm", "d.wasm", "r.wasm"} {
		body := []byte(`{"wasm_name":"` + name + `","export_func":"v","params":["3"]}`)
		run("test "+name, func() (int, string, error) { return d.storeReq(http.MethodPost, "/test", "application/json", body) })
	}
	run("delete d.wasm", func() (int, string, error) { return d.storeReq(http.MethodDelete, "/modules/d.wasm", "", nil) })
	wg.Wait()

	newWon := 0
	for _, o := range outcomes {
		switch {
		case o.err != nil:
			t.Errorf("%s: %v", o.what, o.err)
		case strings.HasPrefix(o.what, "replace") && o.code != http.StatusOK,
			o.what == "register p.wasm" && o.code != http.StatusOK,
			o.what == "delete d.wasm" && o.code != http.StatusOK:
			t.Errorf("%s: got %d %s, want 200", o.what, o.code, o.raw)
		case strings.HasPrefix(o.what, "register n.wasm") && o.code == http.StatusOK:
			newWon++
		case strings.HasPrefix(o.what, "register n.wasm") && o.code != http.StatusConflict:
			t.Errorf("%s: got %d %s, want 200 or 409", o.what, o.code, o.raw)
		case o.code == http.StatusInternalServerError:
			t.Errorf("%s: got %d %s", o.what, o.code, o.raw)
		}
	}
	if newWon != 1 {
		t.Errorf("registers of the new n.wasm with other bytes: %d succeeded, want exactly 1", newWon)
	}

	check := func(d *daemon, when string) map[string]storeView {
		t.Helper()
		views := map[string]storeView{}
		for _, name := range []string{"r.wasm", "n.wasm", "p.wasm"} {
			v := d.viewStore(t, name, versions)
			views[name] = v
			if v.served == "" || v.disk != v.served || len(v.calls) != 1 || !v.calls[v.served] {
				t.Errorf("%s, %s: GET /modules has %.12s, the disk %.40s, calls ran %v; want one version everywhere", when, name, v.served, v.disk, v.calls)
			}
		}
		if v := d.viewStore(t, "d.wasm", versions); v.served != "" || v.disk != "" || len(v.calls) != 1 || !v.calls["Error_Invalid_wasm_name"] {
			t.Errorf("%s, deleted d.wasm: GET /modules has %q, the disk %q, calls got %v; want it gone everywhere", when, v.served, v.disk, v.calls)
		}
		ents, _ := os.ReadDir(filepath.Join(dir, "state", "modules"))
		for _, e := range ents {
			if e.Name() != "r.wasm" && e.Name() != "n.wasm" && e.Name() != "p.wasm" {
				t.Errorf("%s: %s in the module store", when, e.Name())
			}
		}
		return views
	}
	before := check(d, "after the concurrent requests")
	d.stop()
	d2 := start(t, dir, "--lanes", "2")
	after := check(d2, "after a restart")
	for name, v := range before {
		if after[name].served != v.served {
			t.Errorf("%s: served %.12s before the restart, %.12s after", name, v.served, after[name].served)
		}
	}
}
