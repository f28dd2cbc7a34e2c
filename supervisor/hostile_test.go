package supervisor

// Issue 14, hostile tenants: what a register leaves in memory.
//
//	go test -race -count=1 -run 'TestHostile' ./supervisor/

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/hyper-sched/hyper-sched/httpapi"
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
