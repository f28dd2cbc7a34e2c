package supervisor

// Issue 14, hostile tenants: what a register leaves in memory, the
// calibrations a register causes, and the /metrics series of modules.
//
//	go test -race -count=1 -run 'TestHostile' ./supervisor/

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hyper-sched/hyper-sched/apierr"
	"github.com/hyper-sched/hyper-sched/httpapi"
	"github.com/hyper-sched/hyper-sched/ipc"
	"github.com/hyper-sched/hyper-sched/wasmval"
)

// TestHostileRegisterKeepsNoBytes: a registered module's bytes stay on
// disk, read when a child loads it; neither the store nor the spool keeps
// them once the register is over. Before, every module's bytes stayed in
// memory for good (50 × 30 MiB: 1.5 GiB), and so did those of a deleted
// module as long as anything pointed at it.
func TestHostileRegisterKeepsNoBytes(t *testing.T) {
	r := newStoreRig(t)
	w := wasmOf("big")
	r.mustRegister("m.wasm", w)
	m, ok := r.s.store.get("m.wasm")
	if !ok {
		t.Fatal("m.wasm not registered")
	}
	if m.wasm != nil {
		t.Errorf("the registered module holds its %d bytes in memory, want none", len(m.wasm))
	}
	if b, err := m.wasmBytes(); err != nil || string(b) != string(w) {
		t.Errorf("m.wasm's bytes from disk: got %q, %v; want %q", b, err, w)
	}
	if ents, _ := os.ReadDir(r.s.store.uploads); len(ents) > 0 {
		t.Errorf("the spool holds %d files after the register, want none", len(ents))
	}
	r.agree(map[string][]byte{"m.wasm": w})
	// Replaced, the old version is not read in place of the new: a child
	// asked to load it gets an error, not other bytes.
	w2 := wasmOf("big2")
	r.mustRegister("m.wasm", w2)
	if b, err := m.wasmBytes(); err == nil {
		t.Errorf("the replaced version's bytes: got %q, want an error", b)
	}
	r.agree(map[string][]byte{"m.wasm": w2})
}

// TestHostileRegisterSpooled: a register whose upload is spooled already
// (the HTTP API's) stores it as a link to the spool file: no copy, and
// the bytes never in memory whole.
func TestHostileRegisterSpooled(t *testing.T) {
	r := newStoreRig(t)
	w := wasmOf("spooled")
	f, err := os.CreateTemp(r.s.store.uploads, "upload-*.wasm")
	if err != nil {
		t.Fatal(err)
	}
	f.Write(w)
	f.Close()
	defer os.Remove(f.Name())
	spec := httpapi.RegisterSpec{Modules: []httpapi.Upload{{Name: "s.wasm", File: f.Name(), Size: int64(len(w)), SHA256: Sum(w)}}}
	if _, err := r.s.Register(t.Context(), spec); err != nil {
		t.Fatal(err)
	}
	if a, b := statID(t, f.Name()), statID(t, filepath.Join(r.s.store.dir, "s.wasm", wasmFile)); a.ino != b.ino {
		t.Errorf("module.wasm is inode %d, the upload %d: want a link, not a copy", b.ino, a.ino)
	}
	r.agree(map[string][]byte{"s.wasm": w})
}

// TestHostileLoadWithoutDescriptors: a lane starting while the process
// has no descriptor left still reads the modules it must load, from the
// reserve kept for starting children.
func TestHostileLoadWithoutDescriptors(t *testing.T) {
	r := newStoreRig(t)
	w := wasmOf("m")
	r.mustRegister("m.wasm", w)
	m, _ := r.s.store.get("m.wasm")
	r.s.fds.fill()
	defer r.s.fds.release()
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir("/proc/self/fd")
	low := unix.Rlimit{Cur: uint64(len(ents) + 8), Max: lim.Max}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &low); err != nil {
		t.Skipf("cannot lower the descriptor limit: %v", err)
	}
	var held []int
	defer func() {
		for _, fd := range held {
			unix.Close(fd)
		}
		unix.Setrlimit(unix.RLIMIT_NOFILE, &lim)
	}()
	for {
		fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			break
		}
		held = append(held, fd)
	}
	if _, err := m.loadFrame(); !isResourceErr(err) {
		t.Fatalf("with no descriptor left, reading the module: got %v, want EMFILE", err)
	}
	f, err := r.s.loadFrameOf(m)
	if err != nil || string(f.Wasm) != string(w) {
		t.Errorf("a starting lane's read with no descriptor left: got %v, want the module's bytes from the reserve", err)
	}
}

// setExports makes benchd answer that every module has exports.
func (r *storeRig) setExports(exports []ipc.Export) {
	r.mu.Lock()
	r.exports = exports
	r.mu.Unlock()
}

// parameterless returns n exports e0 … e<n-1>, each () -> i32: a register
// without export_func calibrates the first maxRegisterCalibrations.
func parameterless(n int) []ipc.Export {
	out := make([]ipc.Export, n)
	for i := range out {
		out[i] = ipc.Export{Name: fmt.Sprintf("e%d", i), Params: []uint8{}, Results: []uint8{uint8(wasmval.I32)}}
	}
	return out
}

// heldBench measures nothing: each measurement hands its context to the
// test and waits for it to end, or for release.
type heldBench struct {
	started chan context.Context
	release chan struct{}
	n       atomic.Int32
}

func newHeldBench(s *Supervisor) *heldBench {
	b := &heldBench{started: make(chan context.Context, 100), release: make(chan struct{})}
	s.calib.measure = func(ctx context.Context, cl *call) (*ipc.Calibrated, error) {
		b.n.Add(1)
		b.started <- ctx
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-b.release:
			return &ipc.Calibrated{Export: cl.export.Name, Runs: 10, MinNs: 1000, MedianNs: 2000, P99Ns: 3000, MaxNs: 4000, Stable: true}, nil
		}
	}
	return b
}

// next returns the context of the next measurement to start.
func (b *heldBench) next(t *testing.T) context.Context {
	t.Helper()
	select {
	case ctx := <-b.started:
		return ctx
	case <-time.After(10 * time.Second):
		t.Fatal("no measurement started")
		return nil
	}
}

// TestHostileCalibrationsEndWithTheClient: a register without export_func
// calibrates up to maxRegisterCalibrations exports one after the other;
// once its client has gone, none more is measured. Before, all 16 were,
// each up to twice the calibration budget of benchd's time.
func TestHostileCalibrationsEndWithTheClient(t *testing.T) {
	r := newStoreRig(t)
	r.setExports(parameterless(20))
	b := newHeldBench(r.s)
	ctx, cancel := context.WithCancel(context.Background())
	spec := httpapi.RegisterSpec{Modules: []httpapi.Upload{{Name: "m.wasm", Wasm: wasmOf("m")}}}
	done := await(func() error { _, err := r.s.Register(ctx, spec); return err })
	b.next(t) // the first export is being measured
	cancel()  // and the client goes
	<-done
	if n := b.n.Load(); n != 1 {
		t.Errorf("measurements: got %d, want 1: none after the client went", n)
	}
	// The module stays registered, its exports measured on first use.
	r.agree(map[string][]byte{"m.wasm": wasmOf("m")})
}

// TestHostileCalibrationsEndWithTheModule: a module's calibrations —
// its register's, a /test's — end when it is deleted or replaced, not
// when they are done.
func TestHostileCalibrationsEndWithTheModule(t *testing.T) {
	for _, how := range []string{"delete", "replace"} {
		t.Run(how, func(t *testing.T) {
			r := newStoreRig(t)
			r.setExports(parameterless(20))
			b := newHeldBench(r.s)
			spec := httpapi.RegisterSpec{Modules: []httpapi.Upload{{Name: "m.wasm", Wasm: wasmOf("v1")}}}
			done := await(func() error { _, err := r.s.Register(context.Background(), spec); return err })
			first := b.next(t)
			test := await(func() error {
				_, err := r.s.Test(context.Background(), httpapi.CallSpec{Module: "m.wasm", Export: "e19", ResultsLength: -1})
				return err
			})
			tested := b.next(t)
			var replaced <-chan error
			switch how {
			case "delete":
				if err := r.s.DeleteModule("m.wasm"); err != nil {
					t.Fatal(err)
				}
			case "replace":
				v2 := httpapi.RegisterSpec{Modules: []httpapi.Upload{{Name: "m.wasm", Wasm: wasmOf("v2")}}, Replace: true, Export: "e0"}
				replaced = await(func() error { _, err := r.s.Register(context.Background(), v2); return err })
				b.next(t) // v2's own calibration: the old ones have ended by now
			}
			for what, ctx := range map[string]context.Context{"the register's": first, "the /test's": tested} {
				if ctx.Err() == nil {
					t.Errorf("%s calibration of the old bytes goes on after the %s", what, how)
				}
			}
			close(b.release)
			if err := <-done; err != nil {
				t.Errorf("register: %v", err)
			}
			if err := <-test; apierr.CodeOf(err) != apierr.InvalidWasmName {
				t.Errorf("/test: got %v, want Invalid_wasm_name: the module went", err)
			}
			want := int32(2)
			if replaced != nil {
				if err := <-replaced; err != nil {
					t.Errorf("replace: %v", err)
				}
				want = 3
			}
			if n := b.n.Load(); n != want {
				t.Errorf("measurements: got %d, want %d: none of the old bytes after the %s", n, want, how)
			}
		})
	}
}

// metricsPage is GET /metrics.
func metricsPage(t *testing.T, s *Supervisor) string {
	t.Helper()
	w := httptest.NewRecorder()
	s.met.handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	return w.Body.String()
}

// callSeriesOf counts the latency series by module.
func callSeriesOf(page string) map[string]int {
	out := map[string]int{}
	for _, line := range strings.Split(page, "\n") {
		rest, ok := strings.CutPrefix(line, "hyper_sched_call_latency_seconds_count{")
		if !ok {
			continue
		}
		_, rest, _ = strings.Cut(rest, `module="`)
		module, _, _ := strings.Cut(rest, `"`)
		out[module]++
	}
	return out
}

// observe records a call of module's export in both histograms, as
// Supervisor.finish does.
func observe(s *Supervisor, module, export string) {
	s.met.latency.WithLabelValues(module, export).Observe(0.001)
	s.met.exec.WithLabelValues(module, export).Observe(0.0005)
}

// TestHostileMetricsBounded: /metrics has at most maxExportSeries exports
// of a module with series of their own (the rest under export="_other")
// and at most maxCallSeries pairs in all (the rest under module="_other"),
// however many modules and exports are called; a deleted module's series
// go with it, a replaced one's exports that are gone too. Before, 5,000
// exports made an 18.9 MB page, kept after the DELETE.
func TestHostileMetricsBounded(t *testing.T) {
	s := testSupervisor(t)
	putTestModule(t, s, "m.wasm")
	before := len(metricsPage(t, s))
	for i := range 5000 {
		observe(s, "m.wasm", fmt.Sprintf("export%d", i))
	}
	page := metricsPage(t, s)
	if got := callSeriesOf(page)["m.wasm"]; got != maxExportSeries+1 {
		t.Errorf("m.wasm after 5,000 exports called: %d series, want %d and _other", got, maxExportSeries)
	}
	if !strings.Contains(page, `hyper_sched_call_latency_seconds_count{export="_other",module="m.wasm"} 4984`) {
		t.Errorf("m.wasm's _other series does not count the 4,984 other calls")
	}
	t.Logf("page: %d bytes before, %d after 5,000 exports of one module", before, len(page))
	// An export name of 100 KB is not repeated on every line of a series.
	putTestModule(t, s, "long.wasm")
	observe(s, "long.wasm", strings.Repeat("x", 100_000))
	if page := metricsPage(t, s); strings.Contains(page, strings.Repeat("x", maxExportLabel+1)) || callSeriesOf(page)["long.wasm"] != 1 {
		t.Errorf("a long export name: %d series of long.wasm, the name in the page: %v; want one, _other",
			callSeriesOf(page)["long.wasm"], strings.Contains(page, strings.Repeat("x", maxExportLabel+1)))
	}

	// Many modules: the pairs are bounded in all.
	s.store.mu.Lock()
	for i := range 1000 {
		name := fmt.Sprintf("t%d.wasm", i)
		s.store.m[name] = &Module{Name: name, SHA256: Sum([]byte(name))}
	}
	s.store.mu.Unlock()
	for i := range 1000 {
		for e := range 5 {
			observe(s, fmt.Sprintf("t%d.wasm", i), fmt.Sprintf("e%d", e))
		}
	}
	page = metricsPage(t, s)
	total := 0
	for _, n := range callSeriesOf(page) {
		total += n
	}
	if total > maxCallSeries+1 {
		t.Errorf("after 1,000 modules × 5 exports: %d series, want at most %d and _other", total, maxCallSeries)
	}
	if !strings.Contains(page, `hyper_sched_call_latency_seconds_count{export="_other",module="_other"}`) {
		t.Error("no _other, _other series for the calls beyond the bound")
	}
	if len(page) > 1<<20 {
		t.Errorf("page: %d bytes, want under 1 MiB", len(page))
	}
	t.Logf("page: %d bytes with 1,001 modules called", len(page))

	// Deleted: m.wasm's series go. Registered again, it gets series anew.
	if err := s.DeleteModule("m.wasm"); err != nil {
		t.Fatal(err)
	}
	page = metricsPage(t, s)
	if strings.Contains(page, `module="m.wasm"`) {
		t.Errorf("after DELETE, m.wasm still has %d series", callSeriesOf(page)["m.wasm"])
	}
	// A call that ends after the DELETE does not bring them back.
	observe(s, "m.wasm", "export0")
	if strings.Contains(metricsPage(t, s), `module="m.wasm"`) {
		t.Error("a call ended after the DELETE brought m.wasm's series back")
	}
	putTestModule(t, s, "m.wasm")
	observe(s, "m.wasm", "f")
	if got := callSeriesOf(metricsPage(t, s))["m.wasm"]; got != 1 {
		t.Errorf("m.wasm registered again: %d series, want 1", got)
	}
}

// TestHostileMetricsReplaced: a replacement drops the series of the
// exports the new version does not have, and keeps the others'.
func TestHostileMetricsReplaced(t *testing.T) {
	r := newStoreRig(t)
	r.setExports(parameterless(3))
	b := newHeldBench(r.s)
	close(b.release)
	r.mustRegister("m.wasm", wasmOf("v1"))
	for _, e := range []string{"e0", "e1", "e2"} {
		observe(r.s, "m.wasm", e)
	}
	r.setExports(parameterless(2))
	r.mustRegister("m.wasm", wasmOf("v2"))
	page := metricsPage(t, r.s)
	if strings.Contains(page, `export="e2",module="m.wasm"`) || !strings.Contains(page, `export="e1",module="m.wasm"`) {
		t.Errorf("after a replacement without e2: got series %d, want e0 and e1's only", callSeriesOf(page)["m.wasm"])
	}
}
