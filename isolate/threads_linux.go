package isolate

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// maxPasses bounds everyThread for a process that creates threads faster
// than they can be walked; a Go process settles within two or three.
const maxPasses = 50

// everyThread makes a per-thread attribute (affinity, scheduling policy)
// hold for the whole process pid. The kernel sets these per thread, and a
// new thread inherits them from the thread that creates it, so a thread
// cloned by one not yet changed escapes a single walk of /proc/PID/task
// (the VM guests caught a worker with one SCHED_OTHER thread this way).
// everyThread walks until one whole pass finds every thread already
// done: then each thread created after that pass began was created by a
// thread that was done, and inherited it. A clone that began before its
// creator was changed copies the old value but is listed only once the
// clone completes, possibly after that pass; so a clean pass is confirmed
// by a second one after settle, longer than a clone takes (the isolate
// tests caught such a thread under load).
//
// done reports whether tid already has the attribute; set gives it. A
// thread that exits meanwhile (ESRCH) counts as done.
func everyThread(pid int, done func(tid int) (bool, error), set func(tid int) error) error {
	clean := false
	for pass := 0; pass < maxPasses; pass++ {
		tids, err := tasks(pid)
		if err != nil {
			return err
		}
		changed := false
		for _, tid := range tids {
			ok, err := done(tid)
			if errors.Is(err, unix.ESRCH) || ok {
				continue
			}
			if err == nil {
				err = set(tid)
			}
			if err == nil {
				// A change racing with set (a sched_setaffinity from
				// elsewhere, a cpuset rewrite) can undo it at once: fail
				// now rather than loop.
				if ok, err = done(tid); err == nil && !ok {
					err = errors.New("the kernel did not keep the new value")
				}
			}
			if err != nil && !errors.Is(err, unix.ESRCH) {
				return &threadError{tid: tid, err: err}
			}
			changed = true
		}
		switch {
		case changed:
			clean = false
		case clean:
			return nil
		default:
			clean = true
			time.Sleep(settle)
		}
	}
	return fmt.Errorf("threads still appearing unchanged after %d passes over /proc/%d/task", maxPasses, pid)
}

// settle is how long everyThread waits before its confirming pass.
const settle = 200 * time.Microsecond

// threadError names the thread everyThread failed on.
type threadError struct {
	tid int
	err error
}

func (e *threadError) Error() string { return "thread " + strconv.Itoa(e.tid) + ": " + e.err.Error() }
func (e *threadError) Unwrap() error { return e.err }

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

// hasPolicy reports whether tid runs under policy at priority.
func hasPolicy(policy, priority uint32) func(tid int) (bool, error) {
	return func(tid int) (bool, error) {
		a, err := unix.SchedGetAttr(tid, 0)
		if err != nil {
			return false, err
		}
		return a.Policy == policy && a.Priority == priority, nil
	}
}

// setPolicy gives tid policy at priority.
func setPolicy(policy, priority uint32) func(tid int) error {
	attr := &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: policy, Priority: priority}
	return func(tid int) error { return unix.SchedSetAttr(tid, attr, 0) }
}
