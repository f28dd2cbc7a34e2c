package isolate

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// SetRealTime gives every thread of process pid SCHED_FIFO at priority,
// including the ones created while it works (everyThread).
//
// When the kernel refuses, the error says why as far as it can be told:
// a cgroup v1 cpu group without cpu.rt_runtime_us, or a missing
// CAP_SYS_NICE / RLIMIT_RTPRIO.
func SetRealTime(pid, priority int) error {
	err := everyThread(pid, hasPolicy(unix.SCHED_FIFO, uint32(priority)), setPolicy(unix.SCHED_FIFO, uint32(priority)))
	if err == nil {
		return nil
	}
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("set SCHED_FIFO/%d on %d: %w (%s)", priority, pid, err, rtHint(pid, priority))
	}
	return fmt.Errorf("set SCHED_FIFO/%d on %d: %w", priority, pid, err)
}

// rtHint explains a refused SCHED_FIFO.
func rtHint(pid, priority int) string {
	if _, v1, err := memberships(pid); err == nil && v1["cpu"] != "" && v1["cpu"] != "/" {
		if dir := v1Dir("cpu", v1["cpu"]); dir != "" {
			if v, err := readString(filepath.Join(dir, "cpu.rt_runtime_us")); err == nil && v == "0" {
				return fmt.Sprintf("its cgroup v1 cpu group %s has cpu.rt_runtime_us 0: a v1 cpu cgroup needs RT time before SCHED_FIFO is allowed in it", v1["cpu"])
			}
		}
	}
	var lim unix.Rlimit
	if err := unix.Prlimit(pid, unix.RLIMIT_RTPRIO, nil, &lim); err == nil && lim.Cur < uint64(priority) {
		return fmt.Sprintf("SCHED_FIFO needs CAP_SYS_NICE or RLIMIT_RTPRIO >= %d (it is %d)", priority, lim.Cur)
	}
	return "SCHED_FIFO needs CAP_SYS_NICE, and RT time in the process's cpu cgroup (CONFIG_RT_GROUP_SCHED)"
}

// v1Dir finds the directory of a v1 group of controller ctrl.
func v1Dir(ctrl, group string) string {
	mounts, _ := cgroupMounts()
	for _, m := range mounts {
		if !m.v2 && slices.Contains(m.supers, ctrl) {
			return filepath.Join(m.dir, strings.TrimPrefix(group, m.root))
		}
	}
	return ""
}

// Policy describes the scheduling policy of every thread of pid:
// "SCHED_OTHER", "SCHED_FIFO/10", or, when the threads differ,
// "mixed: SCHED_FIFO/10 x5, SCHED_OTHER x1".
func Policy(pid int) (string, error) {
	tids, err := tasks(pid)
	if err != nil {
		return "", fmt.Errorf("policy of %d: %w", pid, err)
	}
	count := map[string]int{}
	var order []string
	for _, tid := range tids {
		a, err := unix.SchedGetAttr(tid, 0)
		if err != nil {
			continue // exited meanwhile
		}
		name := policyName(a.Policy)
		if a.Policy == unix.SCHED_FIFO || a.Policy == unix.SCHED_RR {
			name += "/" + strconv.Itoa(int(a.Priority))
		}
		if count[name] == 0 {
			order = append(order, name)
		}
		count[name]++
	}
	switch len(order) {
	case 0:
		return "", fmt.Errorf("policy of %d: no thread left", pid)
	case 1:
		return order[0], nil
	}
	parts := make([]string, len(order))
	for i, name := range order {
		parts[i] = fmt.Sprintf("%s x%d", name, count[name])
	}
	return "mixed: " + strings.Join(parts, ", "), nil
}

func policyName(p uint32) string {
	switch p {
	case unix.SCHED_NORMAL:
		return "SCHED_OTHER"
	case unix.SCHED_FIFO:
		return "SCHED_FIFO"
	case unix.SCHED_RR:
		return "SCHED_RR"
	case unix.SCHED_BATCH:
		return "SCHED_BATCH"
	case unix.SCHED_IDLE:
		return "SCHED_IDLE"
	case unix.SCHED_DEADLINE:
		return "SCHED_DEADLINE"
	}
	return "policy-" + strconv.Itoa(int(p))
}
