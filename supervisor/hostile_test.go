package supervisor

// Issue 14, hostile tenants: what a register leaves in memory, and the
// calibrations a register causes.
//
//	go test -race -count=1 -run 'TestHostile' ./supervisor/

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
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
