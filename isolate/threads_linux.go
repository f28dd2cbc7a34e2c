package isolate

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
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
	return walk(procTasks(pid), done, set)
}

// taskView is what everyThread needs of a process, and the clock it waits
// by: procTasks reads /proc; the tests simulate a process.
type taskView interface {
	// list returns the threads the process has now.
	list() ([]int, error)
	// probe tells what thread tid is doing now.
	probe(tid int) threadProbe
	sleep(d time.Duration)
	now() time.Time
}

// threadProbe is what a thread is doing, as far as it matters to a clone
// it may be in.
type threadProbe struct {
	gone bool // it has exited
	// out says it cannot be inside clone() now: asleep in another system
	// call or outside any, or stopped.
	out bool
	cpu time.Duration // CPU time it has used so far
}

// walk is everyThread on any taskView.
func walk(v taskView, done func(tid int) (bool, error), set func(tid int) error) error {
	clean := false
	for pass := 0; pass < maxPasses; pass++ {
		tids, err := v.list()
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
			v.sleep(settle)
		}
	}
	return fmt.Errorf("threads still appearing unchanged after %d passes", maxPasses)
}

// settle is how long everyThread waits before its confirming pass.
const settle = 200 * time.Microsecond

// procTasks is the taskView of process pid: /proc/PID/task, and the
// real clock.
type procTasks int

func (p procTasks) list() ([]int, error) { return tasks(int(p)) }

func (procTasks) sleep(d time.Duration) { time.Sleep(d) }

func (procTasks) now() time.Time { return time.Now() }

// probe reads /proc/PID/task/TID: the state in stat, the system call in
// syscall (what it is blocked in, or "running" while it runs or waits
// for a CPU), and the CPU time in schedstat.
func (p procTasks) probe(tid int) threadProbe {
	dir := "/proc/" + strconv.Itoa(int(p)) + "/task/" + strconv.Itoa(tid) + "/"
	var pr threadProbe
	if b, err := os.ReadFile(dir + "schedstat"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 0 {
			ns, _ := strconv.ParseInt(f[0], 10, 64)
			pr.cpu = time.Duration(ns)
		}
	}
	stat, err := os.ReadFile(dir + "stat")
	if err != nil {
		pr.gone = errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ESRCH)
		return pr
	}
	state := byte('?')
	if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) {
		state = stat[i+2]
	}
	switch state {
	case 'Z', 'X':
		pr.gone = true
		return pr
	case 'T', 't':
		// Stopped at a signal: a clone it was in was abandoned for the
		// signal and starts again afterwards, from its new value.
		pr.out = true
		return pr
	}
	if b, err := os.ReadFile(dir + "syscall"); err == nil {
		f := strings.Fields(string(b))
		if len(f) > 0 && f[0] != "running" {
			nr, err := strconv.Atoi(f[0])
			pr.out = err == nil && nr != unix.SYS_CLONE && nr != unix.SYS_CLONE3
		}
		return pr
	}
	// syscall needs the right to ptrace the process. By the state alone:
	// inside clone() a thread sleeps only uninterruptibly (memory, cgroup
	// locks: D), never in S.
	pr.out = state == 'S'
	return pr
}

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
