package integration

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// vmHWM is pid's peak resident memory in KiB, from /proc/pid/status.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("VmHWM of %d: %q", pid, v)
			}
			return n
		}
	}
	t.Fatalf("no VmHWM for pid %d", pid)
	return 0
}

// TestHostileEngine: a tenant's table.grow and memory.grow keep a worker
// within the per-instance bound (table.grow(-16) used to kill the worker
// with "fatal error: runtime: out of memory", and growing memory a page at
// a time to 256 MiB took 1.1 GiB), and the text format and ref.func are
// refused with errors that say why.
func TestHostileEngine(t *testing.T) {
	d := start(t, t.TempDir(), "--lanes", "1", "--best-effort-cap", "20s")
	for _, f := range []string{"tablegrow.wasm", "memfill.wasm"} {
		if reg := d.register(map[string]string{f: f}, nil); reg.code != http.StatusOK {
			t.Fatalf("register %s: got %d %s, want 200", f, reg.code, reg.raw)
		}
	}
	call := func(module, export, param string) string {
		t.Helper()
		a := d.post("/call", fmt.Sprintf(`{"wasm_name":%q,"export_func":%q,"param_type":"i32","params":[%q]}`,
			module, export, param))
		if a.code != http.StatusOK {
			t.Fatalf("%s %s(%s): got %d %s, want 200", module, export, param, a.code, a.raw)
		}
		return a.str("result")
	}
	for _, tt := range []struct{ module, export, param, want string }{
		{"tablegrow.wasm", "grow", "-16", "[I32(-1)]"},
		{"tablegrow.wasm", "grow", "262144", "[I32(-1)]"},
		{"tablegrow.wasm", "grow", "100000", "[I32(1)]"},
		{"memfill.wasm", "fill", "65536", "[I32(4096)]"}, // the default 256 MiB
	} {
		if got := call(tt.module, tt.export, tt.param); got != tt.want {
			t.Errorf("%s %s(%s): got %s, want %s", tt.module, tt.export, tt.param, got, tt.want)
		}
	}
	// 256 MiB of linear memory, the rest of an instance (tables, stack) and
	// the worker itself, race detector included.
	const bound = 640 << 10 // KiB
	lanes := lanePidsOf(t, d.cmd.Process.Pid)
	if len(lanes) == 0 {
		t.Fatal("no worker lanes found")
	}
	for title, pid := range lanes {
		hwm := vmHWM(t, pid)
		t.Logf("%s: peak %d MiB", title, hwm>>10)
		if hwm > bound {
			t.Errorf("%s: peak resident memory %d KiB, want at most %d", title, hwm, bound)
		}
	}

	for _, tt := range []struct{ file, want string }{
		{"fib.wat", "wat2wasm"},
		{"reffunc.wasm", "ref.func"},
	} {
		reg := d.register(map[string]string{tt.file: tt.file}, nil)
		if reg.code != http.StatusUnprocessableEntity || reg.str("status") != "Error_Invalid_wasm" ||
			!strings.Contains(reg.str("error"), tt.want) {
			t.Errorf("register %s: got %d %s, want 422 Error_Invalid_wasm mentioning %q", tt.file, reg.code, reg.raw, tt.want)
		}
	}
}
