package supervisor

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func scanOf(files map[string]fileStat) dirScan {
	return dirScan{files: files, bad: map[string]string{}}
}

// TestPlanDir: what one scan of the module dir loads and removes.
func TestPlanDir(t *testing.T) {
	a1, a2 := fileStat{Size: 10, MTime: 1, Ino: 7}, fileStat{Size: 10, MTime: 2, Ino: 7}
	b1 := fileStat{Size: 20, MTime: 1, Ino: 8}
	none := map[string]fileStat{}
	for _, tt := range []struct {
		name        string
		prev, cur   map[string]fileStat
		tried       map[string]fileStat
		owned       map[string]string
		force       bool
		load, remov []string
	}{
		{"first scan at start loads everything", none, map[string]fileStat{"a.wasm": a1, "b.wasm": b1}, none, nil, true,
			[]string{"a.wasm", "b.wasm"}, nil},
		{"a new file waits for a second look", none, map[string]fileStat{"a.wasm": a1}, none, nil, false, nil, nil},
		{"a settled new file loads", map[string]fileStat{"a.wasm": a1}, map[string]fileStat{"a.wasm": a1}, none, nil, false,
			[]string{"a.wasm"}, nil},
		{"a file still changing waits", map[string]fileStat{"a.wasm": a1}, map[string]fileStat{"a.wasm": a2},
			map[string]fileStat{"a.wasm": a1}, map[string]string{"a.wasm": "x"}, false, nil, nil},
		{"a changed file loads once settled", map[string]fileStat{"a.wasm": a2}, map[string]fileStat{"a.wasm": a2},
			map[string]fileStat{"a.wasm": a1}, map[string]string{"a.wasm": "x"}, false, []string{"a.wasm"}, nil},
		{"a version tried is not tried again", map[string]fileStat{"a.wasm": a1}, map[string]fileStat{"a.wasm": a1},
			map[string]fileStat{"a.wasm": a1}, nil, false, nil, nil},
		{"SIGHUP tries every file again", map[string]fileStat{"a.wasm": a1}, map[string]fileStat{"a.wasm": a1},
			map[string]fileStat{"a.wasm": a1}, map[string]string{"a.wasm": "x"}, true, []string{"a.wasm"}, nil},
		{"gone for one scan stays", map[string]fileStat{"a.wasm": a1}, none, map[string]fileStat{"a.wasm": a1},
			map[string]string{"a.wasm": "x"}, false, nil, nil},
		{"gone for two scans is removed", none, none, map[string]fileStat{"a.wasm": a1},
			map[string]string{"a.wasm": "x"}, false, nil, []string{"a.wasm"}},
		{"gone at start is removed at once", none, none, none, map[string]string{"a.wasm": "x"}, true, nil, []string{"a.wasm"}},
		{"a module not from the dir is never removed", none, none, none, nil, true, nil, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := planDir(scanOf(tt.prev), scanOf(tt.cur), tt.tried, tt.owned, tt.force)
			if !slices.Equal(p.Load, tt.load) || !slices.Equal(p.Remove, tt.remov) {
				t.Errorf("got load %q remove %q, want load %q remove %q", p.Load, p.Remove, tt.load, tt.remov)
			}
		})
	}
}

// TestPlanDirConverges: whatever the directory does, once it stops
// changing two scans bring the registered set to exactly its files, each
// tried in its last version, and a further scan changes nothing.
func TestPlanDirConverges(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	names := []string{"a.wasm", "b.wasm", "c.wasm", "d.wasm"}
	for round := range 2000 {
		var prev dirScan = scanOf(map[string]fileStat{})
		tried, owned := map[string]fileStat{}, map[string]string{}
		apply := func(cur dirScan, force bool) dirPlan {
			p := planDir(prev, cur, tried, owned, force)
			for _, n := range p.Load {
				tried[n] = cur.files[n]
				owned[n] = "sha" // every load succeeds here
			}
			for _, n := range p.Remove {
				delete(owned, n)
				delete(tried, n)
			}
			prev = cur
			return p
		}
		var cur dirScan
		for step := range 1 + r.IntN(8) {
			files := map[string]fileStat{}
			for _, n := range names {
				if r.IntN(3) > 0 {
					files[n] = fileStat{Size: int64(r.IntN(2)), MTime: int64(r.IntN(2)), Ino: 1}
				}
			}
			cur = scanOf(files)
			apply(cur, step == 0 || r.IntN(10) == 0)
		}
		apply(cur, false)
		apply(cur, false)
		for n, st := range cur.files {
			if _, ok := owned[n]; !ok || tried[n] != st {
				t.Fatalf("round %d: %s (%+v) not loaded in its last version: owned %v tried %v", round, n, st, owned, tried)
			}
		}
		for n := range owned {
			if _, ok := cur.files[n]; !ok {
				t.Fatalf("round %d: %s is registered but not in the dir %v", round, n, cur.files)
			}
		}
		if p := apply(cur, false); len(p.Load)+len(p.Remove) > 0 {
			t.Fatalf("round %d: a quiet dir still changes: %+v", round, p)
		}
	}
}

// TestScanDir: .wasm files and symlinks to them are modules; hidden
// files, other suffixes are ignored; a directory or a name no module can
// have is reported.
func TestScanDir(t *testing.T) {
	dir := t.TempDir()
	for name, data := range map[string]string{"fib.wasm": "x", ".fib.wasm.tmp123": "x", "notes.txt": "x", ".hidden.wasm": "x",
		"data/real.wasm": "yy"} {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.Symlink("data/real.wasm", filepath.Join(dir, "linked.wasm")) // a ConfigMap's layout
	os.Symlink("nowhere.wasm", filepath.Join(dir, "dangling.wasm"))
	os.Mkdir(filepath.Join(dir, "adir.wasm"), 0o755)
	os.WriteFile(filepath.Join(dir, "bad\u200bname.wasm"), []byte("x"), 0o644)
	sc, err := scanDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var files, bad []string
	for n := range sc.files {
		files = append(files, n)
	}
	for n := range sc.bad {
		bad = append(bad, n)
	}
	slices.Sort(files)
	slices.Sort(bad)
	if want := []string{"fib.wasm", "linked.wasm"}; !slices.Equal(files, want) {
		t.Errorf("files: got %q, want %q", files, want)
	}
	if want := []string{"adir.wasm", "bad\u200bname.wasm", "dangling.wasm"}; !slices.Equal(bad, want) {
		t.Errorf("bad: got %q, want %q (%v)", bad, want, sc.bad)
	}
	if sc.files["linked.wasm"].Size != 2 {
		t.Errorf("linked.wasm: got size %d, want the target's 2", sc.files["linked.wasm"].Size)
	}
}
