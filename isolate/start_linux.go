package isolate

import (
	"os/exec"
	"runtime"

	"golang.org/x/sys/unix"
)

// Start starts cmd, the process of group name, so that it is born with
// what every one of its threads must have: the group's SCHED_FIFO where
// wanted, and its CPUs as affinity where no cpuset will set them (affinity
// mode, or a nil *Cgroups, where cpus is used). A new process and each of
// its threads inherit both from the thread that forks, so no thread can
// escape them, not even one cloned while Place walks /proc/PID/task (a
// thread in mid-clone is not listed yet but already has its parent's
// attributes). Place still runs afterwards, to check and repair.
func (c *Cgroups) Start(name string, cmd *exec.Cmd, cpus []int) error {
	prio := 0
	if c != nil {
		c.mu.Lock()
		p, ok := c.groups[name]
		if ok && p.RealTime {
			prio = c.opts.Priority
		}
		if ok && c.b != nil && p.Mode != ModeAffinity {
			cpus = nil // the cpuset sets them, for all threads at once
		}
		c.mu.Unlock()
	}
	return startFrom(cmd, cpus, prio)
}

// startFrom starts cmd from a thread of its own that has affinity cpus
// (none: unchanged) and SCHED_FIFO at prio (0: unchanged), as far as the
// kernel allows it. The thread gets its own attributes back before it
// returns to the runtime. It is never ended: Pdeathsig fires when the
// forking thread exits, not the process.
func startFrom(cmd *exec.Cmd, cpus []int, prio int) error {
	if len(cpus) == 0 && prio == 0 {
		return cmd.Start()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		restore := lend(cpus, prio)
		errc <- cmd.Start()
		if restore() {
			runtime.UnlockOSThread()
			return
		}
		// It kept the child's attributes: keep the runtime off it, and
		// keep it alive for the child's Pdeathsig.
		select {}
	}()
	return <-errc
}

// lend gives the calling thread affinity cpus and SCHED_FIFO at prio
// where the kernel allows; the function it returns undoes what was done
// and reports whether all of it was.
func lend(cpus []int, prio int) (restore func() bool) {
	var undo []func() error
	if len(cpus) > 0 {
		var old, set unix.CPUSet
		for _, c := range cpus {
			set.Set(c)
		}
		if unix.SchedGetaffinity(0, &old) == nil && unix.SchedSetaffinity(0, &set) == nil {
			undo = append(undo, func() error { return unix.SchedSetaffinity(0, &old) })
		}
	}
	if prio > 0 {
		if old, err := unix.SchedGetAttr(0, 0); err == nil && setPolicy(unix.SCHED_FIFO, uint32(prio))(0) == nil {
			undo = append(undo, func() error { return unix.SchedSetAttr(0, old, 0) })
		}
	}
	return func() bool {
		ok := true
		for _, u := range undo {
			if u() != nil {
				ok = false
			}
		}
		return ok
	}
}
