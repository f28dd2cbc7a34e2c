package integration

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestModuleDir: --module-dir keeps a directory's .wasm files registered
// on the real daemon: loaded before /healthz says ready, files added,
// changed and removed are followed, a bad file is shown in /status and
// /metrics and logged once, HTTP cannot delete or replace the dir's
// modules, a directory gone for a while removes nothing, a file removed while the daemon is stopped is unregistered at
// the next start, and SIGHUP rescans at once.
func TestModuleDir(t *testing.T) {
	dir := t.TempDir()
	mods := filepath.Join(dir, "modules")
	os.Mkdir(mods, 0o755)
	put := func(name, fixture string) {
		t.Helper()
		b, err := os.ReadFile(filepath.Join("..", "testdata", fixture))
		if err != nil {
			t.Fatal(err)
		}
		// Written beside and renamed, as rsync does: a scan never sees
		// half a file (the two-scan settling covers in-place writes).
		tmp := filepath.Join(mods, "."+name+".tmp")
		if err := os.WriteFile(tmp, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(mods, name)); err != nil {
			t.Fatal(err)
		}
	}
	put("fib.wasm", "fib.wasm")
	put("bad.wasm", "notwasm.wasm")
	flags := []string{"--module-dir", mods, "--module-dir-interval", "100ms", "--calibration-budget", "200ms",
		"--cgroup-name", "hs-i17-cluster-mdir", "--lanes", "1"}
	d := start(t, dir, flags...)

	type module struct {
		Name   string `json:"name"`
		SHA256 string `json:"sha256"`
		Source string `json:"source"`
	}
	modules := func() map[string]module {
		t.Helper()
		a := d.get("/modules")
		var doc struct {
			Result []module `json:"result"`
		}
		if err := json.Unmarshal([]byte(a.raw), &doc); err != nil {
			t.Fatalf("/modules: %v in %s", err, a.raw)
		}
		out := map[string]module{}
		for _, m := range doc.Result {
			out[m.Name] = m
		}
		return out
	}
	type dirStatus struct {
		Modules []string `json:"modules"`
		Errors  []struct {
			File    string `json:"file"`
			Error   string `json:"error"`
			Serving string `json:"serving_sha256"`
		} `json:"errors"`
	}
	dirState := func() dirStatus {
		t.Helper()
		var doc struct {
			ModuleDir *dirStatus `json:"module_dir"`
		}
		a := d.get("/status")
		if err := json.Unmarshal([]byte(a.raw), &doc); err != nil || doc.ModuleDir == nil {
			t.Fatalf("/status has no module_dir (%v): %s", err, a.raw)
		}
		return *doc.ModuleDir
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not after 30s; modules %v; module_dir %+v; log:\n%s", what, modules(), dirState(), d.logs())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	metric := func(name string) string {
		t.Helper()
		resp, err := http.Get(d.url + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		buf := make([]byte, 64<<10)
		for {
			n, err := resp.Body.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		for _, line := range strings.Split(b.String(), "\n") {
			if v, ok := strings.CutPrefix(line, name+" "); ok {
				return v
			}
		}
		return ""
	}

	// Loaded at start, before ready.
	if m, ok := modules()["fib.wasm"]; !ok || m.Source != "module-dir" {
		t.Fatalf("fib.wasm at start: got %+v, want it registered with source module-dir", m)
	}
	fibSHA := modules()["fib.wasm"].SHA256
	if a := d.post("/call", `{"wasm_name":"fib.wasm","export_func":"add","params":["2","3"]}`); a.code != 200 || a.str("result") != "[I32(5)]" {
		t.Fatalf("call fib.wasm add: got %d %s, want 200 [I32(5)]", a.code, a.raw)
	}
	st := dirState()
	if len(st.Errors) != 1 || st.Errors[0].File != "bad.wasm" || st.Errors[0].Error == "" {
		t.Fatalf("module_dir errors: got %+v, want bad.wasm's", st.Errors)
	}
	if got := metric("hyper_sched_module_dir_files_failing"); got != "1" {
		t.Errorf("hyper_sched_module_dir_files_failing: got %q, want 1", got)
	}
	if _, ok := modules()["bad.wasm"]; ok {
		t.Errorf("bad.wasm is registered; want it refused")
	}

	// HTTP may not delete or replace the dir's modules; its own are its.
	req, _ := http.NewRequest(http.MethodDelete, d.url+"/modules/fib.wasm", nil)
	if a := d.do(req); a.code != http.StatusConflict || !strings.Contains(a.str("error"), "--module-dir") {
		t.Errorf("DELETE fib.wasm: got %d %s, want 409 naming --module-dir", a.code, a.raw)
	}
	if a := d.register(map[string]string{"fib.wasm": "loop.wasm"}, map[string]string{"replace": "true"}); a.code != http.StatusConflict {
		t.Errorf("register over fib.wasm: got %d %s, want 409", a.code, a.raw)
	}
	if a := d.register(map[string]string{"counter.wasm": "counter.wasm"}, nil); a.code != 200 {
		t.Fatalf("register counter.wasm: got %d %s", a.code, a.raw)
	}
	if m := modules()["counter.wasm"]; m.Source != "http" {
		t.Errorf("counter.wasm: got source %q, want http", m.Source)
	}

	// Added, changed, fixed, removed.
	put("types.wasm", "types.wasm")
	waitFor("types.wasm added", func() bool { return modules()["types.wasm"].Source == "module-dir" })
	put("fib.wasm", "reactor.wasm")
	waitFor("fib.wasm changed", func() bool { m := modules()["fib.wasm"]; return m.SHA256 != fibSHA && m.SHA256 != "" })
	put("bad.wasm", "fib.wasm")
	waitFor("bad.wasm fixed", func() bool { return modules()["bad.wasm"].Source == "module-dir" && len(dirState().Errors) == 0 })
	if got := metric("hyper_sched_module_dir_files_failing"); got != "0" {
		t.Errorf("hyper_sched_module_dir_files_failing once fixed: got %q, want 0", got)
	}
	goodBad := modules()["bad.wasm"].SHA256
	put("bad.wasm", "notwasm.wasm") // broken again: the last good version stays served
	waitFor("bad.wasm broken again", func() bool { return len(dirState().Errors) == 1 })
	if e := dirState().Errors[0]; e.File != "bad.wasm" || e.Serving != goodBad {
		t.Errorf("error of bad.wasm broken again: got %+v, want it serving sha256 %s", e, goodBad)
	}
	if m := modules()["bad.wasm"]; m.SHA256 != goodBad {
		t.Errorf("bad.wasm broken again: got sha256 %s served, want the last good %s", m.SHA256, goodBad)
	}
	os.Remove(filepath.Join(mods, "types.wasm"))
	waitFor("types.wasm removed", func() bool { _, ok := modules()["types.wasm"]; return !ok })
	if _, ok := modules()["counter.wasm"]; !ok {
		t.Errorf("counter.wasm (registered over HTTP) went with the dir's changes")
	}
	// bad.wasm at start, and once more when broken again: once per
	// version of the file, not once per scan.
	if n := strings.Count(d.logs(), "file not loaded; retried when it changes"); n != 2 {
		t.Errorf("logged %d failures to load, want 2; log:\n%s", n, d.logs())
	}

	// A directory that cannot be read (an unmounted volume) removes
	// nothing: it is an error of its own until it is back.
	before := modules()
	if err := os.Rename(mods, mods+".away"); err != nil {
		t.Fatal(err)
	}
	waitFor("the unreadable dir reported", func() bool {
		for _, e := range dirState().Errors {
			if e.File == "" && e.Error != "" {
				return true
			}
		}
		return false
	})
	time.Sleep(300 * time.Millisecond) // three more scans
	if after := modules(); len(after) != len(before) {
		t.Errorf("with the dir unreadable: got modules %v, want them all kept: %v", after, before)
	}
	if err := os.Rename(mods+".away", mods); err != nil {
		t.Fatal(err)
	}
	waitFor("the dir back", func() bool {
		for _, e := range dirState().Errors {
			if e.File == "" {
				return false
			}
		}
		return true
	})

	// Removed while stopped: unregistered at the next start. SIGHUP
	// rescans at once, with scans otherwise an hour apart.
	d.stop()
	os.Remove(filepath.Join(mods, "fib.wasm"))
	flags[3] = "1h"
	d = start(t, dir, flags...)
	if _, ok := modules()["fib.wasm"]; ok {
		t.Errorf("fib.wasm removed while stopped is still registered")
	}
	if _, ok := modules()["counter.wasm"]; !ok {
		t.Errorf("counter.wasm (HTTP) was lost over the restart")
	}
	put("types.wasm", "types.wasm")
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor("types.wasm after SIGHUP", func() bool { return modules()["types.wasm"].Source == "module-dir" })
}
