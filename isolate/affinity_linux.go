package isolate

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// SetAffinity pins every thread of process pid to cpus. sched_setaffinity
// acts on one thread, and a Go process already has several, so each task in
// /proc/PID/task is pinned; threads created later inherit the mask of the
// thread that creates them.
func SetAffinity(pid int, cpus []int) error {
	var set unix.CPUSet
	for _, c := range cpus {
		set.Set(c)
	}
	// Threads may appear while we walk; two passes catch the ones the first
	// pass raced with.
	for pass := 0; pass < 2; pass++ {
		tids, err := tasks(pid)
		if err != nil {
			return fmt.Errorf("set affinity of %d: %w", pid, err)
		}
		for _, tid := range tids {
			err := unix.SchedSetaffinity(tid, &set)
			if err != nil && !errors.Is(err, unix.ESRCH) { // a thread that exited meanwhile
				return fmt.Errorf("set affinity of %d/%d to %s: %w", pid, tid, FormatList(cpus), err)
			}
		}
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

func tasks(pid int) ([]int, error) {
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	if err != nil {
		return nil, err
	}
	out := make([]int, 0, len(ents))
	for _, e := range ents {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, tid)
		}
	}
	return out, nil
}

// Isolated returns the kernel's isolated CPUs (isolcpus=), or none.
func Isolated() []int {
	b, err := os.ReadFile("/sys/devices/system/cpu/isolated")
	if err != nil {
		return nil
	}
	cpus, _ := ParseList(string(b))
	return cpus
}

// Allowed returns the CPUs this process's cgroup allows: the cpuset's
// effective CPUs (cgroup v2, then v1), falling back to the online CPUs. The
// inherited affinity is deliberately not used: isolcpus= removes isolated
// CPUs from it, and those are the ones workers want.
func Allowed() ([]int, error) {
	for _, p := range cpusetFiles() {
		if b, err := os.ReadFile(p); err == nil {
			if cpus, err := ParseList(string(b)); err == nil && len(cpus) > 0 {
				return cpus, nil
			}
		}
	}
	b, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		return nil, fmt.Errorf("allowed cpus: %w", err)
	}
	return ParseList(string(b))
}

// cpusetFiles lists where this process's effective cpuset may be read,
// most specific first.
func cpusetFiles() []string {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case parts[0] == "0" && parts[1] == "":
			out = append(out, "/sys/fs/cgroup"+parts[2]+"/cpuset.cpus.effective")
		case strings.Contains(","+parts[1]+",", ",cpuset,"):
			out = append(out, "/sys/fs/cgroup/cpuset"+parts[2]+"/cpuset.effective_cpus",
				"/sys/fs/cgroup/cpuset"+parts[2]+"/cpuset.cpus")
		}
	}
	return out
}
