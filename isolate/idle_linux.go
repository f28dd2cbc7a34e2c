package isolate

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// SetIdlePolicy puts every thread of process pid under SCHED_IDLE: it runs
// only when its CPUs have nothing else to do. benchd uses it on the
// housekeeping CPUs so that a long calibration never delays the
// supervisor's HTTP answers (docs/benchmarks.md: p99 of /call during a
// calibration went from 0.35 ms to 4.7 ms without it).
func SetIdlePolicy(pid int) error { return setProcessPolicy(pid, unix.SCHED_IDLE, "SCHED_IDLE") }

// SetThreadIdle puts the calling thread under SCHED_IDLE. benchd calls it
// on the thread it locks for a calibration, so that the thread doing the
// heavy work is idle even if SetIdlePolicy's walk raced with its creation.
func SetThreadIdle() error {
	return setPolicy(unix.SCHED_IDLE, 0)(0)
}

// SetNormalPolicy puts every thread of process pid back under SCHED_OTHER
// at nice: a worker lane warmed up (or compiled a module) under SCHED_IDLE,
// once it is placed on its worker CPU without real-time.
func SetNormalPolicy(pid, nice int) error {
	done := func(tid int) (bool, error) {
		a, err := unix.SchedGetAttr(tid, 0)
		if err != nil {
			return false, err
		}
		return a.Policy == unix.SCHED_NORMAL && a.Nice == int32(nice), nil
	}
	attr := &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_NORMAL, Nice: int32(nice)}
	set := func(tid int) error { return unix.SchedSetAttr(tid, attr, 0) }
	if err := everyThread(pid, done, set); err != nil {
		return fmt.Errorf("set SCHED_OTHER nice %d on %d: %w", nice, pid, err)
	}
	return nil
}

// setProcessPolicy gives every thread of pid a policy without priority.
func setProcessPolicy(pid int, policy uint32, name string) error {
	if err := everyThread(pid, hasPolicy(policy, 0), setPolicy(policy, 0)); err != nil {
		return fmt.Errorf("set %s on %d: %w", name, pid, err)
	}
	return nil
}

// SetNice gives every thread of process pid the nice value nice (SCHED_OTHER
// weight). The supervisor takes a negative one on the housekeeping CPUs, so
// that the lanes' answers are read and the next jobs sent before benchd,
// a lane warming up, or any other process there gets the CPU.
func SetNice(pid, nice int) error {
	get := func(tid int) (bool, error) {
		// getpriority's raw syscall returns 20 - nice.
		p, err := unix.Getpriority(unix.PRIO_PROCESS, tid)
		return 20-p == nice, err
	}
	set := func(tid int) error { return unix.Setpriority(unix.PRIO_PROCESS, tid, nice) }
	if err := everyThread(pid, get, set); err != nil {
		return fmt.Errorf("set nice %d on %d: %w", nice, pid, err)
	}
	return nil
}
