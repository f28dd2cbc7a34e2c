package supervisor

// Issue 13, the module store: what is on disk, what GET /modules says and
// what the workers run agree, also across a restart, whatever order
// registers, deletes and calibration saves come in and whichever step of
// theirs fails. Supervisor.Register and DeleteModule run against a fake
// benchd (compiles anything, export f(i32) -> i32), one worker lane whose
// frames are kept rather than sent (storeRig.workerModules replays them),
// and the store's hook, which fails, blocks or crashes the steps that
// change the state dir.
//
//	go test -race -count=1 -run 'TestRegister|TestDelete|TestStore|TestCalibrationSave' ./supervisor/

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/hyper-sched/hyper-sched/apierr"
	"github.com/hyper-sched/hyper-sched/httpapi"
	"github.com/hyper-sched/hyper-sched/ipc"
	"github.com/hyper-sched/hyper-sched/wasmval"
)

// storeRig is a Supervisor with a fake benchd and one fake worker lane
// that keeps what it was sent to load and unload.
type storeRig struct {
	t    *testing.T
	s    *Supervisor
	dir  string
	lane *fakeModules

	mu     sync.Mutex
	loads  map[string]bool // sha256 of every Load benchd received
	fault  func(op, path string) error
	parked chan string       // names whose lock a writer waited for ("lockwait")
	tags   map[string]string // sha256 → the tag of wasmOf, for messages
	// exports, if not nil, are what benchd answers every module has;
	// else f(i32) -> i32.
	exports []ipc.Export
}

// wasmOf is a module's bytes; the fake benchd refuses those containing
// "invalid".
func wasmOf(tag string) []byte { return []byte("\x00asm\x01\x00\x00\x00" + tag) }

func newStoreRig(t *testing.T) *storeRig {
	t.Helper()
	s := testSupervisor(t)
	dir := tmpfsDir(t)
	st, errs := openStore(dir)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	r := &storeRig{t: t, s: s, dir: dir, loads: map[string]bool{}, parked: make(chan string, 1024),
		tags: map[string]string{}}
	s.store = st
	st.hook = r.step
	r.lane = serveFakeModules(t, s, s.workers[0])
	s.calib.measure = func(ctx context.Context, cl *call) (*ipc.Calibrated, error) {
		return &ipc.Calibrated{Export: cl.export.Name, Runs: 10, MinNs: 1000, MedianNs: 2000, P99Ns: 3000, MaxNs: 4000, Stable: true}, nil
	}
	t.Cleanup(s.calib.stop)
	benchd := fakeBenchd(t, s)
	go r.serveBenchd(benchd)
	return r
}

// serveBenchd answers every Load: an error for bytes containing
// "invalid", else export f(i32) -> i32. Other frames (Unload) are read and
// dropped.
func (r *storeRig) serveBenchd(c *ipc.Conn) {
	i32 := []uint8{uint8(wasmval.I32)}
	for {
		k, err := c.Read()
		if err != nil {
			return
		}
		if k != ipc.KindLoad {
			continue
		}
		var l ipc.Load
		if err := c.Decode(&l); err != nil {
			return
		}
		ans := &ipc.Loaded{ID: l.ID, Name: l.Name, SHA256: l.SHA256, CompileNs: 1000}
		r.mu.Lock()
		switch {
		case bytes.Contains(l.Wasm, []byte("invalid")):
			ans.Err = "invalid module"
		case r.exports != nil:
			ans.Exports = r.exports
		default:
			ans.Exports = []ipc.Export{{Name: "f", Params: i32, Results: i32}}
		}
		r.loads[l.SHA256] = true
		r.mu.Unlock()
		if err := c.Write(ipc.KindLoaded, ans); err != nil {
			return
		}
	}
}

// loaded reports whether benchd was sent wasm to compile.
func (r *storeRig) loaded(wasm []byte) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.loads[Sum(wasm)]
}

// step is the store's hook: a contended name lock is reported on parked,
// every other step goes to the test's fault, if any.
func (r *storeRig) step(op, path string) error {
	if op == "lockwait" {
		r.parked <- path
		return nil
	}
	r.mu.Lock()
	f := r.fault
	r.mu.Unlock()
	if f == nil {
		return nil
	}
	return f(op, path)
}

func (r *storeRig) setFault(f func(op, path string) error) {
	r.mu.Lock()
	r.fault = f
	r.mu.Unlock()
}

// isParked reports whether a writer waited for name's lock since the
// last call.
func (r *storeRig) isParked(name string) bool {
	for {
		select {
		case n := <-r.parked:
			if n == name {
				return true
			}
		default:
			return false
		}
	}
}

// regOpts are the form fields of a register.
type regOpts struct {
	replace bool
	export  string
	params  string
}

// register is Supervisor.Register of one form; a panic is returned as an
// error, as the HTTP server would answer it (500).
func (r *storeRig) register(o regOpts, files ...httpapi.Upload) (regs []httpapi.Registered, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("register panicked: %v", p)
		}
	}()
	r.mu.Lock()
	for _, f := range files {
		r.tags[Sum(f.Wasm)] = string(f.Wasm[8:])
	}
	r.mu.Unlock()
	spec := httpapi.RegisterSpec{Modules: files, Replace: o.replace, Export: o.export}
	if o.params != "" {
		spec.Params = json.RawMessage(o.params)
	}
	return r.s.Register(context.Background(), spec)
}

// mustRegister registers name with wasm, replacing it.
func (r *storeRig) mustRegister(name string, wasm []byte) {
	r.t.Helper()
	if _, err := r.register(regOpts{replace: true}, httpapi.Upload{Name: name, Wasm: wasm}); err != nil {
		r.t.Fatalf("register %s: %v", name, err)
	}
}

// workerModules is what the lane holds, name → sha256, once it has read
// every frame sent so far.
func (r *storeRig) workerModules() map[string]string { return r.lane.held() }

// served is what GET /modules lists, name → sha256.
func (r *storeRig) served() map[string]string {
	out := map[string]string{}
	for _, v := range r.s.Modules().([]moduleView) {
		m := v.Module
		out[m.Name] = m.SHA256
	}
	return out
}

// reopened is the store a restart would load from the state dir, name →
// sha256. Nothing may fail to load, and nothing but the modules' own
// files may be left once it is open.
func reopened(t *testing.T, dir string) map[string]string {
	t.Helper()
	st, errs := openStore(dir)
	if len(errs) > 0 {
		t.Errorf("restart: got errors %v, want none", errs)
	}
	out := map[string]string{}
	for _, m := range st.all() {
		out[m.Name] = m.SHA256
	}
	ents, err := os.ReadDir(st.dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if _, ok := out[e.Name()]; !ok {
			t.Errorf("restart: %s left in the module store", e.Name())
			continue
		}
		files, _ := os.ReadDir(filepath.Join(st.dir, e.Name()))
		for _, f := range files {
			if !slices.Contains([]string{wasmFile, metaFile, calibrationsFile}, f.Name()) {
				t.Errorf("restart: %s/%s left in the module store", e.Name(), f.Name())
			}
		}
	}
	return out
}

// agree checks that GET /modules, the worker and a restart all hold
// exactly want (name → wasm).
func (r *storeRig) agree(want map[string][]byte) {
	r.t.Helper()
	w := map[string]string{}
	r.mu.Lock()
	for name, wasm := range want {
		w[name] = Sum(wasm)
		r.tags[Sum(wasm)] = string(wasm[8:])
	}
	tags := maps.Clone(r.tags)
	r.mu.Unlock()
	show := func(m map[string]string) string {
		var parts []string
		for name, sha := range m {
			tag, ok := tags[sha]
			if !ok {
				tag = sha[:8]
			}
			parts = append(parts, name+"="+tag)
		}
		slices.Sort(parts)
		return "[" + strings.Join(parts, " ") + "]"
	}
	for _, c := range []struct {
		what string
		got  map[string]string
	}{{"GET /modules", r.served()}, {"the worker", r.workerModules()}, {"a restart", reopened(r.t, r.dir)}} {
		if !maps.Equal(c.got, w) {
			r.t.Errorf("%s: got %s, want %s", c.what, show(c.got), show(w))
		}
	}
}

// await runs f on its own goroutine; its result comes on the channel.
func await[T any](f func() T) <-chan T {
	ch := make(chan T, 1)
	go func() { ch <- f() }()
	return ch
}

type regResult struct {
	regs []httpapi.Registered
	err  error
}

func (r *storeRig) registerAsync(o regOpts, files ...httpapi.Upload) <-chan regResult {
	return await(func() regResult {
		regs, err := r.register(o, files...)
		return regResult{regs, err}
	})
}

// TestRegisterReplaceRace: replace=true registers of one name, v2 then v4.
// v2 is committed and is being installed on the workers when v4 comes.
// Whatever order they finish in, the workers must end with what GET
// /modules and the disk hold. Before the fix, v4 was committed and
// installed while v2's install was under way; v2's install then
// overwrote it on the workers: they ran v2, memory and disk held v4.
func TestRegisterReplaceRace(t *testing.T) {
	r := newStoreRig(t)
	v1, v2, v4 := wasmOf("v1"), wasmOf("v2"), wasmOf("v4")
	r.mustRegister("m.wasm", v1)

	entered, release := make(chan struct{}), make(chan struct{})
	r.s.installHook = func(m *Module) error {
		if m.SHA256 == Sum(v2) {
			close(entered)
			<-release
		}
		return nil
	}
	a := r.registerAsync(regOpts{replace: true}, httpapi.Upload{Name: "m.wasm", Wasm: v2})
	<-entered
	b := r.registerAsync(regOpts{replace: true}, httpapi.Upload{Name: "m.wasm", Wasm: v4})
	var resB *regResult
	honWait(t, "v4's register finished or waits for v2's", func() bool {
		select {
		case res := <-b:
			resB = &res
			return true
		default:
			return r.isParked("m.wasm")
		}
	})
	close(release)
	if res := <-a; res.err != nil {
		t.Fatalf("register v2: %v", res.err)
	}
	if resB == nil {
		res := <-b
		resB = &res
	}
	if resB.err != nil {
		t.Fatalf("register v4: %v", resB.err)
	}
	r.agree(map[string][]byte{"m.wasm": v4})
}

// TestRegisterNewNameRace: two registers of one new name, without
// replace=true. The second comes while the first is being written to disk.
// With other bytes it must be a 409; with the same bytes it is the same
// module, unchanged. Before the fix, with other bytes both succeeded (the
// second overwrote the first); with the same bytes the second panicked:
// benchd's client answered a compile of bytes it had already compiled
// with a nil Loaded (ensureLoaded), which registerOne dereferenced.
func TestRegisterNewNameRace(t *testing.T) {
	for _, same := range []bool{false, true} {
		t.Run(fmt.Sprintf("same=%v", same), func(t *testing.T) {
			r := newStoreRig(t)
			wa, wb := wasmOf("a"), wasmOf("b")
			if same {
				wb = wa
			}
			entered, release := make(chan struct{}), make(chan struct{})
			var once sync.Once
			r.setFault(func(op, path string) error {
				once.Do(func() {
					close(entered)
					<-release
				})
				return nil
			})
			a := r.registerAsync(regOpts{}, httpapi.Upload{Name: "n.wasm", Wasm: wa})
			<-entered
			b := r.registerAsync(regOpts{}, httpapi.Upload{Name: "n.wasm", Wasm: wb})
			var resB *regResult
			honWait(t, "the second register finished, compiled or waits for the first", func() bool {
				select {
				case res := <-b:
					resB = &res
					return true
				default:
					return (!same && r.loaded(wb)) || r.isParked("n.wasm")
				}
			})
			close(release)
			if res := <-a; res.err != nil {
				t.Fatalf("first register: %v", res.err)
			}
			if resB == nil {
				res := <-b
				resB = &res
			}
			switch {
			case same && (resB.err != nil || !resB.regs[0].Unchanged):
				t.Errorf("second register, same bytes: got %+v, %v; want unchanged", resB.regs, resB.err)
			case !same && apierr.CodeOf(resB.err) != apierr.Conflict:
				t.Errorf("second register, other bytes: got %+v, %v; want a Conflict", resB.regs, resB.err)
			}
			r.agree(map[string][]byte{"n.wasm": wa})
		})
	}
}

// TestRegisterRetryAfterFailedCommit: a register that failed to write its
// module (the disk is full) is sent again once there is room. Before the
// fix the retry panicked: benchd had compiled the bytes the first time,
// so ensureLoaded answered nil.
func TestRegisterRetryAfterFailedCommit(t *testing.T) {
	r := newStoreRig(t)
	w := wasmOf("m")
	r.setFault(func(op, path string) error {
		if op == "write" {
			return syscall.ENOSPC
		}
		return nil
	})
	if _, err := r.register(regOpts{}, httpapi.Upload{Name: "m.wasm", Wasm: w}); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("register on a full disk: got %v, want ENOSPC", err)
	}
	r.agree(nil)
	r.setFault(nil)
	if _, err := r.register(regOpts{}, httpapi.Upload{Name: "m.wasm", Wasm: w}); err != nil {
		t.Fatalf("register again: %v", err)
	}
	r.agree(map[string][]byte{"m.wasm": w})
}

// errCrash is what every step of the state dir fails with once a test's
// simulated crash happened: nothing more reaches the disk.
var errCrash = errors.New("crashed")

// faultAt returns a hook that fails the k-th step (from 1) that changes
// the state dir: with crash, every later step fails too, as if the process
// had died there. hit reports whether step k came.
func faultAt(k int, crash bool) (hook func(op, path string) error, hit func() bool) {
	var mu sync.Mutex
	n := 0
	return func(op, path string) error {
			mu.Lock()
			defer mu.Unlock()
			n++
			switch {
			case n == k && crash:
				return errCrash
			case n == k:
				return fmt.Errorf("%s %s: %w", op, path, syscall.ENOSPC)
			case n > k && crash:
				return errCrash
			}
			return nil
		}, func() bool {
			mu.Lock()
			defer mu.Unlock()
			return n >= k
		}
}

// TestRegisterFaultAtEveryStep replaces v1 with v2, failing each step that
// changes the state dir in turn. With one failed step (a full disk), the
// register fails and everything keeps v1, or it succeeds and everything
// has v2. With a crash at that step (every later step fails too), a
// restart finds v1 or v2, whole. Before the fix, a replace that failed
// after writing module.wasm left the old meta.json beside it: v1 was
// served and was gone after a restart (sha256 mismatch).
//
// Each runs twice: with renameat2 RENAME_EXCHANGE, and as on a file system
// without it (the hook refuses it with EINVAL).
func TestRegisterFaultAtEveryStep(t *testing.T) {
	v1, v2 := wasmOf("v1"), wasmOf("v2")
	for _, mode := range []struct{ crash, noExchange bool }{{false, false}, {true, false}, {false, true}, {true, true}} {
		crash := mode.crash
		for k := 1; ; k++ {
			r := newStoreRig(t)
			r.mustRegister("m.wasm", v1)
			hook, hit := faultAt(k, crash)
			if mode.noExchange {
				hook = withoutExchange(hook)
			}
			r.setFault(hook)
			_, err := r.register(regOpts{replace: true}, httpapi.Upload{Name: "m.wasm", Wasm: v2})
			if !hit() {
				if err != nil {
					t.Fatalf("register without a fault: %v", err)
				}
				break
			}
			r.setFault(nil)
			switch {
			case crash:
				got := reopened(t, r.dir)
				if got["m.wasm"] != Sum(v1) && got["m.wasm"] != Sum(v2) || len(got) != 1 {
					t.Errorf("crash at step %d: restart got %v, want m.wasm at v1 or v2", k, got)
				}
			case err != nil:
				r.agree(map[string][]byte{"m.wasm": v1})
			default:
				r.agree(map[string][]byte{"m.wasm": v2})
			}
			if t.Failed() {
				t.Fatalf("%+v, fault at step %d: register answered %v", mode, k, err)
			}
		}
	}
}

// withoutExchange wraps a fault hook: renameat2 RENAME_EXCHANGE is
// refused, as a file system without it does, and not counted as a step.
func withoutExchange(hook func(op, path string) error) func(op, path string) error {
	return func(op, path string) error {
		if op == "exchange" {
			return unix.EINVAL
		}
		return hook(op, path)
	}
}

// TestRegisterUndoFails: a replace whose commit fails (the store dir
// cannot be synced after the swap), and whose undoing fails too (the swap
// back is refused), stays registered at the new version, on the workers
// as in memory and on disk, and the answer says so.
func TestRegisterUndoFails(t *testing.T) {
	r := newStoreRig(t)
	v1, v2 := wasmOf("v1"), wasmOf("v2")
	r.mustRegister("m.wasm", v1)
	swapped := false
	r.setFault(func(op, path string) error {
		switch {
		case op == "exchange" && swapped:
			return syscall.EIO
		case op == "exchange":
			swapped = true
		case op == "sync" && swapped && filepath.Base(path) == "modules":
			return syscall.EIO
		}
		return nil
	})
	_, err := r.register(regOpts{replace: true}, httpapi.Upload{Name: "m.wasm", Wasm: v2})
	if err == nil || !strings.Contains(err.Error(), "stay at the new version") {
		t.Errorf("got %v, want an error that says m.wasm stays at the new version", err)
	}
	r.setFault(nil)
	r.agree(map[string][]byte{"m.wasm": v2})
}

// TestDeleteFaultAtEveryStep deletes a module, failing each step that
// changes the state dir in turn: the DELETE fails and the module stays
// served everywhere, or it succeeds and the module is gone everywhere; a
// crash leaves it whole or gone. Before the fix, a DELETE on a read-only
// state dir answered 500 and dropped the module from memory until the
// restart brought it back.
func TestDeleteFaultAtEveryStep(t *testing.T) {
	w := wasmOf("m")
	for _, crash := range []bool{false, true} {
		for k := 1; ; k++ {
			r := newStoreRig(t)
			r.mustRegister("m.wasm", w)
			hook, hit := faultAt(k, crash)
			r.setFault(hook)
			err := r.s.DeleteModule("m.wasm")
			if !hit() {
				if err != nil {
					t.Fatalf("delete without a fault: %v", err)
				}
				break
			}
			r.setFault(nil)
			switch {
			case crash:
				if got := reopened(t, r.dir); len(got) > 1 || len(got) == 1 && got["m.wasm"] != Sum(w) {
					t.Errorf("crash at step %d: restart got %v, want m.wasm whole or gone", k, got)
				}
			case err != nil:
				r.agree(map[string][]byte{"m.wasm": w})
			default:
				r.agree(nil)
			}
			if t.Failed() {
				t.Fatalf("crash %v, fault at step %d: delete answered %v", crash, k, err)
			}
		}
	}
}

// TestDeleteReadOnly: a DELETE on a read-only state dir says why it failed,
// and the module stays served; once the dir is writable again the DELETE
// goes through.
func TestDeleteReadOnly(t *testing.T) {
	r := newStoreRig(t)
	w := wasmOf("m")
	r.mustRegister("m.wasm", w)
	r.setFault(func(op, path string) error { return &os.PathError{Op: op, Path: path, Err: syscall.EROFS} })
	err := r.s.DeleteModule("m.wasm")
	if err == nil || !strings.Contains(err.Error(), "read-only file system") {
		t.Errorf("delete on a read-only dir: got %v, want an error that says read-only", err)
	}
	r.agree(map[string][]byte{"m.wasm": w})
	r.setFault(nil)
	if err := r.s.DeleteModule("m.wasm"); err != nil {
		t.Fatalf("delete: %v", err)
	}
	r.agree(nil)
}

// TestCalibrationSaveFaultAtEveryStep saves a calibration, failing each
// step in turn: the module keeps its bytes and is served everywhere, with
// the old calibrations or the new in memory and on disk alike.
func TestCalibrationSaveFaultAtEveryStep(t *testing.T) {
	w := wasmOf("m")
	for _, crash := range []bool{false, true} {
		for k := 1; ; k++ {
			r := newStoreRig(t)
			r.mustRegister("m.wasm", w)
			hook, hit := faultAt(k, crash)
			r.setFault(hook)
			stored, err := r.s.store.putCalibration("m.wasm", Sum(w), testCalibration(1, calTest))
			if !hit() {
				if err != nil || !stored {
					t.Fatalf("calibration without a fault: %v %v", stored, err)
				}
				break
			}
			r.setFault(nil)
			if !crash {
				r.agree(map[string][]byte{"m.wasm": w})
				cur, _ := r.s.store.get("m.wasm")
				st, _ := openStore(r.dir)
				re, _ := st.get("m.wasm")
				if re == nil || len(cur.Calibrations) != len(re.Calibrations) || stored != (len(cur.Calibrations) == 1) {
					t.Errorf("fault at step %d: stored %v, %v; got %d calibrations in memory, %v on disk", k, stored, err, len(cur.Calibrations), re)
				}
			} else if got := reopened(t, r.dir); got["m.wasm"] != Sum(w) {
				t.Errorf("crash at step %d: restart got %v, want m.wasm", k, got)
			}
			if t.Failed() {
				t.Fatalf("crash %v, fault at step %d", crash, k)
			}
		}
	}
}

// TestRegisterValidatesBeforeCommit: a register whose export_func or
// params do not fit the new module is refused and changes nothing. Before
// the fix it was refused after the module had been replaced.
func TestRegisterValidatesBeforeCommit(t *testing.T) {
	v1, v2 := wasmOf("v1"), wasmOf("v2")
	for _, c := range []struct {
		name   string
		opts   regOpts
		code   apierr.Code
		before map[string][]byte
	}{
		{"unknown export, replace", regOpts{replace: true, export: "nope"}, apierr.InvalidExportFunc, map[string][]byte{"m.wasm": v1}},
		{"bad params, replace", regOpts{replace: true, export: "f", params: `["x"]`}, apierr.InvalidParams, map[string][]byte{"m.wasm": v1}},
		{"params count, replace", regOpts{replace: true, export: "f", params: `["1","2"]`}, apierr.InvalidParams, map[string][]byte{"m.wasm": v1}},
		{"unknown export, new", regOpts{export: "nope"}, apierr.InvalidExportFunc, nil},
		{"bad params, new", regOpts{export: "f", params: `["x"]`}, apierr.InvalidParams, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newStoreRig(t)
			for name, w := range c.before {
				r.mustRegister(name, w)
			}
			_, err := r.register(c.opts, httpapi.Upload{Name: "m.wasm", Wasm: v2})
			if apierr.CodeOf(err) != c.code {
				t.Errorf("got %v (class %v), want class %v", err, apierr.CodeOf(err), c.code)
			}
			r.agree(c.before)
		})
	}
	// And with a fitting call, the module is replaced and calibrated.
	r := newStoreRig(t)
	r.mustRegister("m.wasm", v1)
	regs, err := r.register(regOpts{replace: true, export: "f", params: `["7"]`}, httpapi.Upload{Name: "m.wasm", Wasm: v2})
	if err != nil || len(regs) != 1 || regs[0].SHA256 != Sum(v2) {
		t.Fatalf("register with a fitting call: got %+v, %v", regs, err)
	}
	if cals, _ := regs[0].Calibrations.([]Calibration); len(cals) != 1 || cals[0].Params[0] != "7" {
		t.Errorf("calibrations: got %+v, want f(7)", regs[0].Calibrations)
	}
	r.agree(map[string][]byte{"m.wasm": v2})
}

// TestRegisterFormAllOrNothing: a form with several modules is registered
// whole or not at all, whichever module fails and wherever. Before the
// fix, the modules before the failing one stayed registered.
func TestRegisterFormAllOrNothing(t *testing.T) {
	a1, a2, b1, b2, bad := wasmOf("a1"), wasmOf("a2"), wasmOf("b1"), wasmOf("b2"), wasmOf("invalid")
	failOn := func(name string) func(op, path string) error {
		return func(op, path string) error {
			if op == "write" && strings.Contains(path, name) {
				return syscall.ENOSPC
			}
			return nil
		}
	}
	for _, c := range []struct {
		name    string
		opts    regOpts
		files   []httpapi.Upload
		fault   func(op, path string) error
		install string // the module whose install fails
		code    apierr.Code
	}{
		{"invalid second", regOpts{replace: true}, []httpapi.Upload{{Name: "a.wasm", Wasm: a2}, {Name: "c.wasm", Wasm: bad}}, nil, "", apierr.InvalidWasm},
		{"conflict second", regOpts{}, []httpapi.Upload{{Name: "c.wasm", Wasm: a2}, {Name: "b.wasm", Wasm: b2}}, nil, "", apierr.Conflict},
		{"unknown export", regOpts{replace: true, export: "nope"}, []httpapi.Upload{{Name: "a.wasm", Wasm: a2}, {Name: "b.wasm", Wasm: b2}}, nil, "", apierr.InvalidExportFunc},
		{"disk full on second", regOpts{replace: true}, []httpapi.Upload{{Name: "a.wasm", Wasm: a2}, {Name: "c.wasm", Wasm: b2}}, failOn("c.wasm"), "", apierr.Internal},
		{"disk full on replaced second", regOpts{replace: true}, []httpapi.Upload{{Name: "c.wasm", Wasm: a2}, {Name: "b.wasm", Wasm: b2}}, failOn("b.wasm"), "", apierr.Internal},
		{"install fails on second", regOpts{replace: true}, []httpapi.Upload{{Name: "a.wasm", Wasm: a2}, {Name: "c.wasm", Wasm: b2}}, nil, "c.wasm", apierr.WorkerLost},
		{"install fails on replaced second", regOpts{replace: true}, []httpapi.Upload{{Name: "c.wasm", Wasm: a2}, {Name: "b.wasm", Wasm: b2}}, nil, "b.wasm", apierr.WorkerLost},
		{"a name twice", regOpts{replace: true}, []httpapi.Upload{{Name: "c.wasm", Wasm: a2}, {Name: "c.wasm", Wasm: b2}}, nil, "", apierr.BadRequest},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newStoreRig(t)
			before := map[string][]byte{"a.wasm": a1, "b.wasm": b1}
			for name, w := range before {
				r.mustRegister(name, w)
			}
			r.setFault(c.fault)
			r.s.installHook = func(m *Module) error {
				if m.Name == c.install && m.SHA256 == Sum(b2) {
					return apierr.New(apierr.WorkerLost, "worker-1:0 failed to load %s", m.Name)
				}
				return nil
			}
			_, err := r.register(c.opts, c.files...)
			if apierr.CodeOf(err) != c.code || err == nil {
				t.Errorf("got %v (class %v), want class %v", err, apierr.CodeOf(err), c.code)
			}
			r.setFault(nil)
			r.agree(before)
		})
	}
}

// TestRegisterInstallFailureRollsBack: a module the workers could not
// install is rolled back, on disk and in memory: the previous version is
// installed again, or a new module removed.
func TestRegisterInstallFailureRollsBack(t *testing.T) {
	v1, v2 := wasmOf("v1"), wasmOf("v2")
	for _, replace := range []bool{true, false} {
		t.Run(fmt.Sprintf("replace=%v", replace), func(t *testing.T) {
			r := newStoreRig(t)
			before := map[string][]byte{}
			if replace {
				r.mustRegister("m.wasm", v1)
				before["m.wasm"] = v1
			}
			r.s.installHook = func(m *Module) error {
				if m.SHA256 == Sum(v2) {
					return apierr.New(apierr.WorkerLost, "worker-1:0 failed to load m.wasm")
				}
				return nil
			}
			_, err := r.register(regOpts{replace: true}, httpapi.Upload{Name: "m.wasm", Wasm: v2})
			if apierr.CodeOf(err) != apierr.WorkerLost {
				t.Errorf("got %v, want the install's WorkerLost", err)
			}
			r.agree(before)
		})
	}
}

// TestCalibrationSaveRacesDelete: calibration saves of a module race its
// DELETE and its replacement. A deleted module stays deleted (no
// calibration recreates its directory), a replaced one keeps no
// calibration of the bytes it replaced.
func TestCalibrationSaveRacesDelete(t *testing.T) {
	r := newStoreRig(t)
	v1, v2 := wasmOf("v1"), wasmOf("v2")
	for round := range 20 {
		r.mustRegister("m.wasm", v1)
		var wg sync.WaitGroup
		for i := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := range 5 {
					r.s.store.putCalibration("m.wasm", Sum(v1), testCalibration(10*i+j, calBackground))
				}
			}()
		}
		if round%2 == 0 {
			if err := r.s.DeleteModule("m.wasm"); err != nil {
				t.Fatal(err)
			}
		} else {
			r.mustRegister("m.wasm", v2)
		}
		wg.Wait()
		if round%2 == 0 {
			r.agree(nil)
			if _, err := os.Stat(filepath.Join(r.dir, "modules", "m.wasm")); !os.IsNotExist(err) {
				t.Fatalf("round %d: the deleted module's directory: got %v, want none", round, err)
			}
			continue
		}
		r.agree(map[string][]byte{"m.wasm": v2})
		st, _ := openStore(r.dir)
		for _, m := range []*Module{first(r.s.store.get("m.wasm")), first(st.get("m.wasm"))} {
			if len(m.Calibrations) != 0 {
				t.Fatalf("round %d: the replacement has %d calibrations of the bytes it replaced", round, len(m.Calibrations))
			}
		}
		if err := r.s.DeleteModule("m.wasm"); err != nil {
			t.Fatal(err)
		}
	}
}

func first[T any](v T, _ bool) T { return v }

// TestStoreConcurrentMix runs registers (replace=true, several byte
// versions), registers of new names, deletes and calibration saves of a
// few names at once, then checks that GET /modules, the worker and a
// restart agree.
func TestStoreConcurrentMix(t *testing.T) {
	r := newStoreRig(t)
	names := []string{"a.wasm", "b.wasm", "c.wasm"}
	versions := [][]byte{wasmOf("v1"), wasmOf("v2"), wasmOf("v3"), wasmOf("v4")}
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 13))
			for range 30 {
				name := names[rng.IntN(len(names))]
				w := versions[rng.IntN(len(versions))]
				switch rng.IntN(4) {
				case 0:
					r.s.DeleteModule(name)
				case 1:
					r.s.store.putCalibration(name, Sum(w), testCalibration(rng.IntN(100), calBackground))
				case 2:
					_, err := r.register(regOpts{}, httpapi.Upload{Name: name, Wasm: w})
					if err != nil && apierr.CodeOf(err) != apierr.Conflict {
						t.Errorf("register %s: %v", name, err)
					}
				default:
					if _, err := r.register(regOpts{replace: true}, httpapi.Upload{Name: name, Wasm: w}); err != nil {
						t.Errorf("replace %s: %v", name, err)
					}
				}
			}
		}()
	}
	wg.Wait()
	want := map[string][]byte{}
	for _, m := range r.s.store.all() {
		b, err := m.wasmBytes()
		if err != nil {
			t.Fatal(err)
		}
		want[m.Name] = b
	}
	r.agree(want)
}

// TestStoreRecovery opens a state dir left by crashes in the middle of
// store changes: a version being written, a replaced version not yet
// removed, a version moved aside by a swap that could not exchange, a
// deleted module not yet removed, a file being written. Each module is
// whole after the restart, and nothing else is left.
func TestStoreRecovery(t *testing.T) {
	dir := tmpfsDir(t)
	st, _ := openStore(dir)
	for _, name := range []string{"a.wasm", "b.wasm", "c.wasm"} {
		if err := st.put(testModule(name, "\x00asm\x01\x00\x00\x00"+name)); err != nil {
			t.Fatal(err)
		}
	}
	md := filepath.Join(dir, "modules")
	cp := func(from, to string) {
		t.Helper()
		if err := os.MkdirAll(to, 0o750); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{wasmFile, metaFile} {
			b, err := os.ReadFile(filepath.Join(from, f))
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(to, f), b, 0o600)
		}
	}
	// a.wasm: a new version half written beside it, the old one not yet
	// removed after a swap.
	os.MkdirAll(filepath.Join(md, ".new.1.a.wasm"), 0o750)
	os.WriteFile(filepath.Join(md, ".new.1.a.wasm", wasmFile), []byte("half"), 0o600)
	cp(filepath.Join(md, "a.wasm"), filepath.Join(md, ".new.2.a.wasm"))
	// b.wasm: moved aside by a swap that renamed (no exchange), before
	// the new version took its place.
	if err := os.Rename(filepath.Join(md, "b.wasm"), filepath.Join(md, ".old.3.b.wasm")); err != nil {
		t.Fatal(err)
	}
	// c.wasm: deleted (moved to the trash), not yet removed; a file being
	// written in a.wasm.
	cp(filepath.Join(md, "c.wasm"), filepath.Join(md, ".del.4.c.wasm"))
	os.RemoveAll(filepath.Join(md, "c.wasm"))
	os.WriteFile(filepath.Join(md, "a.wasm", ".tmp-123"), []byte("x"), 0o600)

	got := reopened(t, dir)
	want := map[string]string{
		"a.wasm": Sum([]byte("\x00asm\x01\x00\x00\x00a.wasm")),
		"b.wasm": Sum([]byte("\x00asm\x01\x00\x00\x00b.wasm")),
	}
	if !maps.Equal(got, want) {
		t.Errorf("restart: got %v, want %v", got, want)
	}
}

// TestNameLocks: one name's lock excludes, another name's does not, a wait
// can be given up, and a lock nobody holds or waits for is forgotten.
func TestNameLocks(t *testing.T) {
	var l nameLocks
	ctx := context.Background()
	if err := l.lock(ctx, "a", nil); err != nil {
		t.Fatal(err)
	}
	if err := l.lock(ctx, "b", func() { t.Error("b waited for a's lock") }); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	waited := make(chan struct{})
	got := await(func() error { return l.lock(cctx, "a", func() { close(waited) }) })
	<-waited
	cancel()
	if err := <-got; !errors.Is(err, context.Canceled) {
		t.Errorf("a wait given up: got %v, want context.Canceled", err)
	}
	next := await(func() error { return l.lock(ctx, "a", nil) })
	l.unlock("a")
	if err := <-next; err != nil {
		t.Fatal(err)
	}
	l.unlock("a")
	l.unlock("b")
	if len(l.m) != 0 {
		t.Errorf("locks left: %v", l.m)
	}
}
