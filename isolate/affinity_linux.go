package isolate

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// SetAffinity pins every thread of process pid to cpus. sched_setaffinity
// acts on one thread, and a Go process already has several; everyThread
// covers the ones created meanwhile. Where a cpuset allows only some of
// cpus, the kernel keeps those, and so does every thread.
func SetAffinity(pid int, cpus []int) error {
	var asked unix.CPUSet
	for _, c := range cpus {
		asked.Set(c)
	}
	want := asked // what the kernel keeps of asked, once it has said
	err := everyThread(pid,
		func(tid int) (bool, error) {
			var got unix.CPUSet
			err := unix.SchedGetaffinity(tid, &got)
			return got == want, err
		},
		func(tid int) error {
			if err := unix.SchedSetaffinity(tid, &asked); err != nil {
				return err
			}
			want = unix.CPUSet{} // the kernel writes only its CPUs' words
			return unix.SchedGetaffinity(tid, &want)
		})
	if err != nil {
		return fmt.Errorf("set affinity of %d to %s: %w", pid, FormatList(cpus), err)
	}
	return nil
}

// Affinity returns the CPUs process (or thread) pid may run on.
func Affinity(pid int) ([]int, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(pid, &set); err != nil {
		return nil, fmt.Errorf("get affinity of %d: %w", pid, err)
	}
	var out []int
	for c := 0; c <= maxCPU && len(out) < set.Count(); c++ {
		if set.IsSet(c) {
			out = append(out, c)
		}
	}
	return out, nil
}

// Isolated returns the kernel's isolated CPUs (isolcpus=), or none.
func Isolated() []int {
	cpus, _ := readList("/sys/devices/system/cpu/isolated")
	return cpus
}

// Allowed returns the CPUs this process's cgroup allows: the cpuset's
// effective CPUs (cgroup v2, then v1), falling back to the online CPUs. The
// inherited affinity is deliberately not used: isolcpus= removes isolated
// CPUs from it, and those are the ones workers want.
//
// The CPUs of partitions left by a previous run by hand that died (SIGKILL)
// count as allowed: the kernel took them out of every other group's
// effective CPUs, and Setup releases them before any child starts.
func Allowed() ([]int, error) {
	for _, p := range cpusetFiles() {
		if cpus, err := readList(p); err == nil && len(cpus) > 0 {
			if strings.HasSuffix(p, "/cpuset.cpus.effective") {
				cpus = union(cpus, stalePartitions(filepath.Dir(p)))
			}
			return cpus, nil
		}
	}
	b, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		return nil, fmt.Errorf("allowed cpus: %w", err)
	}
	return ParseList(string(b))
}

// cpusetFiles lists where this process's effective cpuset may be read,
// most specific first: v1 before v2, the order of /proc/self/cgroup. The
// mounts are the conventional ones, as in stalePartitions.
func cpusetFiles() []string {
	v2, v1, err := memberships(0)
	if err != nil {
		return nil
	}
	var out []string
	if g, ok := v1["cpuset"]; ok {
		out = append(out, "/sys/fs/cgroup/cpuset"+g+"/cpuset.effective_cpus",
			"/sys/fs/cgroup/cpuset"+g+"/cpuset.cpus")
	}
	if v2 != "" {
		out = append(out, "/sys/fs/cgroup"+v2+"/cpuset.cpus.effective")
	}
	return out
}

// stalePartitions returns the CPUs held by the valid partitions under
// /sys/fs/cgroup/hyper-sched when no supervisor lives there any more,
// limited to what the group at own may have (its cpuset.cpus, when set).
func stalePartitions(own string) []int {
	const base = "/sys/fs/cgroup/hyper-sched"
	if !exists(base) || otherLive(filepath.Join(base, Supervisor)) != 0 {
		return nil
	}
	var out []int
	for _, g := range subgroups(base) {
		dir := filepath.Join(base, g)
		if part, _ := readString(filepath.Join(dir, "cpuset.cpus.partition")); part != "isolated" && part != "root" {
			continue
		}
		cpus, _ := readList(filepath.Join(dir, "cpuset.cpus.effective"))
		out = union(out, cpus)
	}
	limit, _ := readList(filepath.Join(own, "cpuset.cpus"))
	if len(limit) == 0 {
		limit, _ = readList("/sys/devices/system/cpu/online")
	}
	return intersect(out, limit)
}
