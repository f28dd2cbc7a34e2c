package integration

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hyper-sched/hyper-sched/isolate"
)

// cpusetGroup returns the cpuset cgroup of pid: the v2 path where the v2
// hierarchy has the cpuset controller, else the v1 cpuset path.
func cpusetGroup(t *testing.T, pid int, v2 bool) string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		t.Fatalf("cgroup of %d: %v", pid, err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if v2 && parts[0] == "0" || !v2 && strings.Contains(","+parts[1]+",", ",cpuset,") {
			return parts[2]
		}
	}
	t.Fatalf("cgroup of %d: no cpuset line in %q", pid, b)
	return ""
}

func cpusAllowed(t *testing.T, pid int) []int {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatalf("status of %d: %v", pid, err)
	}
	m := regexp.MustCompile(`(?m)^Cpus_allowed_list:\s*(\S+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("status of %d: no Cpus_allowed_list", pid)
	}
	cpus, err := isolate.ParseList(string(m[1]))
	if err != nil {
		t.Fatal(err)
	}
	return cpus
}

// cpusetHierarchy says where this machine's cpuset controller is, and
// skips the test, naming what is missing, when the daemon cannot use it.
func cpusetHierarchy(t *testing.T) (root string, v2 bool) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (CAP_SYS_ADMIN) to create cgroups")
	}
	if c, err := os.ReadFile("/sys/fs/cgroup/cgroup.controllers"); err == nil && strings.Contains(string(c), "cpuset") {
		return "/sys/fs/cgroup", true
	}
	if _, err := os.Stat("/sys/fs/cgroup/cpuset/cpuset.cpus"); err == nil {
		return "/sys/fs/cgroup/cpuset", false
	}
	t.Skip("needs a cpuset controller: cgroup v2 with cpuset, or a v1 cpuset hierarchy at /sys/fs/cgroup/cpuset")
	return "", false
}

// waitFree waits a while for a hyper-sched started by someone else on this
// machine (another test run) to leave the base group, which one daemon at a
// time can own.
func waitFree(t *testing.T, supervisor string) {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(filepath.Join(supervisor, "cgroup.procs"))
		if err != nil || strings.TrimSpace(string(b)) == "" {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestIsolation runs the real daemon as root and checks from /proc that
// each worker sits in its own cpuset cgroup and may run on its CPU only,
// that benchd and the supervisor stay off the worker CPUs, that a
// restarted worker goes back into its group, and that the groups are gone
// after a clean stop.
func TestIsolation(t *testing.T) {
	root, v2 := cpusetHierarchy(t)
	waitFree(t, filepath.Join(root, "hyper-sched", "supervisor"))
	d := start(t, t.TempDir())
	if m := regexp.MustCompile(`(\S+) is in use by pid (\d+), another hyper-sched`).FindStringSubmatch(d.logs()); m != nil {
		t.Skipf("needs %s for itself: pid %s, another hyper-sched on this machine, holds it", m[1], m[2])
	}
	if m := regexp.MustCompile(`held exclusively \(cpuset.cpu_exclusive\) by cpuset group (\S+):`).FindStringSubmatch(d.logs()); m != nil {
		t.Skipf("needs the worker CPUs, which cpuset group %s holds exclusively (another program, or a hyper-sched from before issue 13)", m[1])
	}
	st := d.get("/status")
	hk, _ := isolate.ParseList(st.str("housekeeping_cpus"))
	wk, _ := isolate.ParseList(st.str("worker_cpus"))
	shared := slices.ContainsFunc(hk, func(c int) bool { return slices.Contains(wk, c) })
	lanes := d.status().Lanes
	check := func() (workerCPUs []int) {
		t.Helper()
		procs := d.procs()
		perCPU := map[int]int{}
		for name, fpid := range procs {
			pid := int(fpid)
			n, _, isWorker := laneOf(name)
			if !isWorker {
				continue
			}
			perCPU[n]++
			if !slices.Contains(workerCPUs, n) {
				workerCPUs = append(workerCPUs, n)
			}
			if got := cpusAllowed(t, pid); len(got) != 1 || got[0] != n {
				t.Errorf("%s: got Cpus_allowed_list %v, want exactly [%d]", name, got, n)
			}
			// Every lane of a CPU is in that CPU's group.
			cpu := strconv.Itoa(n)
			group := cpusetGroup(t, pid, v2)
			if !strings.HasSuffix(group, "/hyper-sched/worker-"+cpu) {
				t.Errorf("%s: got cpuset cgroup %q, want …/hyper-sched/worker-%s; log:\n%s", name, group, cpu, d.logs())
				continue
			}
			eff := "cpuset.cpus.effective"
			if !v2 {
				eff = "cpuset.effective_cpus"
			}
			if b, err := os.ReadFile(filepath.Join(root, group, eff)); err != nil || strings.TrimSpace(string(b)) != cpu {
				t.Errorf("%s: got %s %q (%v), want %q", name, eff, b, err, cpu)
			}
		}
		for cpu, n := range perCPU {
			if n != lanes {
				t.Errorf("worker-%d: got %d lanes RUNNING, want lanes_per_cpu %d", cpu, n, lanes)
			}
		}
		if len(workerCPUs) == 0 {
			t.Fatalf("no worker is RUNNING: %v", procs)
		}
		for name, pid := range map[string]int{"benchd": int(procs["benchd"]), "supervisor": d.cmd.Process.Pid} {
			if pid == 0 {
				t.Errorf("%s is not RUNNING", name)
				continue
			}
			if group := cpusetGroup(t, pid, v2); !strings.HasSuffix(group, "/hyper-sched/"+name) {
				t.Errorf("%s: got cpuset cgroup %q, want …/hyper-sched/%s; log:\n%s", name, group, name, d.logs())
			}
			if shared {
				continue // one CPU does both jobs
			}
			got := cpusAllowed(t, pid)
			for _, c := range got {
				if slices.Contains(workerCPUs, c) {
					t.Errorf("%s: got Cpus_allowed_list %v, which includes worker CPU %d", name, got, c)
				}
			}
		}
		return workerCPUs
	}
	check()

	// Lanes killed from outside come back in their group.
	before := d.procs()
	for name, pid := range before {
		if _, _, ok := laneOf(name); ok {
			syscall.Kill(int(pid), syscall.SIGKILL)
		}
	}
	d.waitRestarted(before)
	check()

	base := filepath.Dir(filepath.Join(root, cpusetGroup(t, d.cmd.Process.Pid, v2)))
	d.stop()
	// Gone, unless another daemon on this machine has made it again since.
	if _, err := os.Stat(base); !os.IsNotExist(err) {
		b, _ := os.ReadFile(filepath.Join(base, "supervisor", "cgroup.procs"))
		if strings.TrimSpace(string(b)) == "" {
			t.Errorf("after a clean stop: got %v for %s, want it removed; log:\n%s", err, base, d.logs())
		}
	}
}
