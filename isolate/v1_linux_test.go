package isolate

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// TestV1LeavesCPUsShareable checks that on a cgroup v1 cpuset hierarchy no
// group of ours holds CPUs exclusively, so that a sibling of the base made
// the way docker, kubelet or another hyper-sched make theirs (with all of
// the parent's CPUs) is not refused: neither while the daemon runs with a
// dedicated worker, nor after it was killed without Close.
func TestV1LeavesCPUsShareable(t *testing.T) {
	if needCgroups(t) != ModeCgroup1 {
		t.Skip("tests the cgroup v1 cpuset hierarchy; this machine has cpuset on cgroup v2")
	}
	online, err := Allowed()
	if err != nil {
		t.Fatal(err)
	}
	if len(online) < 2 {
		t.Skip("needs two CPUs: a housekeeping one and a dedicated worker one")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	keepAffinity(t)

	c := setupCgroups(t, Options{Name: testName(), Housekeeping: online[:1]}, ModeCgroup1)
	defer c.Close()
	p := prepareGroup(t, c, "worker-x", online[len(online)-1:])
	if !p.Dedicated {
		t.Fatalf("worker-x on CPU %d beside housekeeping CPU %d: got not dedicated", online[len(online)-1], online[0])
	}
	base := filepath.Dir(p.Path)
	parent := filepath.Dir(base)

	shareable := func(when string) {
		t.Helper()
		for _, dir := range []string{base, filepath.Join(base, Supervisor), p.Path} {
			if v, err := readString(filepath.Join(dir, "cpuset.cpu_exclusive")); err != nil || v != "0" {
				t.Errorf("%s: %s has cpuset.cpu_exclusive %q (%v), want 0", when, dir, v, err)
			}
		}
		n := filepath.Join(parent, testName()+"-neighbour")
		if err := os.Mkdir(n, 0o755); err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		defer rmdir(n)
		all, _ := readString(filepath.Join(parent, "cpuset.cpus"))
		if err := writeString(filepath.Join(n, "cpuset.cpus"), all); err != nil {
			t.Errorf("%s: a sibling of %s cannot have its parent's CPUs %s: %v", when, base, all, err)
		}
		if err := writeString(filepath.Join(n, "cpuset.cpus"), FormatList(online[:1])); err != nil {
			t.Errorf("%s: a sibling of %s cannot have housekeeping CPU %d: %v", when, base, online[0], err)
		}
	}
	shareable("while running")

	// A daemon killed with SIGKILL: the supervisor is gone from its group
	// and nothing was closed; the groups stay until the next start.
	if err := moveSelf(c.b.(interface{ originDir() string }).originDir()); err != nil {
		t.Fatal(err)
	}
	shareable("after a kill")
}
