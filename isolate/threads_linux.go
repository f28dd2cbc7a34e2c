package isolate

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// maxPasses bounds everyThread's passes that change something, for a
// process that creates threads faster than they can be walked; a Go
// process settles within two or three.
const maxPasses = 50

// everyThread makes a per-thread attribute (affinity, scheduling policy,
// nice) hold for the whole process pid, for every thread it has when
// everyThread returns and every thread it creates afterwards.
//
// The kernel sets these per thread, and a new thread inherits them from
// the thread that creates it, copied at the start of the clone
// (copy_process: dup_task_struct), while the thread is listed in
// /proc/PID/task only at its end. In between, the creator may wait for a
// CPU, sleep in cgroup_can_fork while any process on the machine moves
// between cgroups, sleep in reclaim, or lose its vCPU to the host: for as
// long as that lasts, a thread with the old value can still appear. No
// waiting time is long enough to rule it out (a confirming pass 200 µs
// after a clean one was not: "mixed: SCHED_FIFO/11 x7, SCHED_FIFO/10 x1"),
// so everyThread watches the threads instead. It walks until a pass finds
// every thread done, and until each thread it changed has been seen out
// of clone() since: asleep in another system call, stopped, gone, or
// having run long enough that it is computing (threadProbe, cloneCPU).
// A clone begun before the change has then ended, and the thread it made
// is in the next listing. Threads found already done need no watching:
// they were done before any clone of theirs began. A pass does not count
// as clean unless its listing was complete (readTasks: /proc/PID/task
// leaves live threads out when others exit meanwhile), nor when a thread
// ends between its listing and its check if it may have ended a clone
// meanwhile (it was not seen done) or was the last one listed (the
// listing may have stopped at it).
//
// done reports whether tid already has the attribute; set gives it. A
// thread that exits meanwhile (ESRCH) needs nothing. The error names the
// thread that could not be changed, or was still in a clone after
// settleLimit.
func everyThread(pid int, done func(tid int) (bool, error), set func(tid int) error) error {
	return walk(procTasks(pid), done, set)
}

const (
	// settleLimit bounds the wait for changed threads to leave clone().
	settleLimit = time.Second
	// cloneCPU is the CPU time after which a thread never seen asleep is
	// taken to be computing rather than cloning: a clone() of a thread
	// takes tens of microseconds of CPU, and the margin covers a host's
	// stolen time charged to the thread where the guest does not account
	// it.
	cloneCPU = 5 * time.Millisecond
	// The wait between passes while changed threads are watched: short
	// at first (most are asleep already), doubling.
	firstWait, maxWait = 50 * time.Microsecond, 2 * time.Millisecond
)

// taskView is what everyThread needs of a process, and the clock it waits
// by: procTasks reads /proc; the tests simulate a process.
type taskView interface {
	// list returns the threads the process has now, oldest first, and
	// whether the listing is complete (readTasks).
	list() (tids []int, complete bool, err error)
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
	watched := map[int]time.Duration{} // changed, not yet seen out of clone(): CPU time at the change
	good := map[int]bool{}             // seen done, or changed, in this walk
	deadline := v.now().Add(settleLimit)
	wait := firstWait
	for changes := 0; ; {
		// Before listing: a thread seen out of clone() now is listed by
		// then with any thread it was cloning.
		stuck := 0
		for tid, cpu := range watched {
			if p := v.probe(tid); p.gone || p.out || p.cpu-cpu >= cloneCPU {
				delete(watched, tid)
			} else {
				stuck = tid
			}
		}
		tids, complete, err := v.list()
		if err != nil {
			return err
		}
		changed, unsure := false, !complete
		for i, tid := range tids {
			ok, err := done(tid)
			if ok {
				good[tid] = true
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
			switch {
			case errors.Is(err, unix.ESRCH):
				// Gone since the listing. It may have ended a clone with
				// the old value before, unless it was good; and if it
				// was listed last, the listing may have stopped at it.
				unsure = unsure || !good[tid] || i == len(tids)-1
			case err != nil:
				return &threadError{tid: tid, err: err}
			default:
				good[tid] = true
				watched[tid] = v.probe(tid).cpu
				changed = true
			}
		}
		switch {
		case changed:
			if changes++; changes >= maxPasses {
				return fmt.Errorf("threads still appearing unchanged after %d passes", maxPasses)
			}
		case !unsure && len(watched) == 0:
			return nil
		case !v.now().Before(deadline) && len(watched) > 0:
			return &threadError{tid: stuck, err: fmt.Errorf("still inside a clone() begun before its change after %v: a thread it makes may have the old value", settleLimit)}
		case !v.now().Before(deadline):
			return fmt.Errorf("no complete listing of the threads after %v: they keep ending while listed", settleLimit)
		case len(watched) > 0:
			v.sleep(wait)
			wait = min(2*wait, maxWait)
		}
	}
}

// procTasks is the taskView of process pid: /proc/PID/task, and the
// real clock.
type procTasks int

func (p procTasks) list() ([]int, bool, error) { return readTasks(int(p)) }

func (procTasks) sleep(d time.Duration) { time.Sleep(d) }

func (procTasks) now() time.Time { return time.Now() }

// probe reads /proc/PID/task/TID: the state in stat; the system call a
// sleeping thread is in, from syscall; where a thread waiting for a CPU
// is, from its kernel stack (a thread on a CPU has none to show, and
// counts by its CPU time); and the CPU time and the number of times it
// was given a CPU, from schedstat, before and after, so that a stack read
// while the thread started to run is not believed.
func (p procTasks) probe(tid int) threadProbe {
	dir := "/proc/" + strconv.Itoa(int(p)) + "/task/" + strconv.Itoa(tid) + "/"
	cpu, runs, counted := schedstat(dir)
	pr := threadProbe{cpu: cpu}
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
	b, err := os.ReadFile(dir + "syscall")
	if err != nil {
		// syscall needs the right to ptrace the process. By the state
		// alone: inside clone() a thread sleeps only uninterruptibly
		// (memory, cgroup locks: D), never in S.
		pr.out = state == 'S'
		return pr
	}
	if f := strings.Fields(string(b)); len(f) > 0 && f[0] != "running" {
		nr, err := strconv.Atoi(f[0])
		pr.out = err == nil && nr != unix.SYS_CLONE && nr != unix.SYS_CLONE3
		return pr
	}
	// Runnable: on a CPU, or waiting for one, maybe for long (a thread
	// spinning at the same SCHED_FIFO priority on its CPU). The stack
	// needs CAP_SYS_ADMIN; without it, only CPU time tells.
	stack, err := os.ReadFile(dir + "stack")
	if _, again, ok := schedstat(dir); err == nil && counted && ok && again == runs && len(bytes.TrimSpace(stack)) > 0 {
		pr.out = !inClone(stack)
	}
	return pr
}

// schedstat reads a thread's CPU time and the number of times it was
// given a CPU.
func schedstat(dir string) (cpu time.Duration, runs int64, ok bool) {
	b, err := os.ReadFile(dir + "schedstat")
	f := strings.Fields(string(b))
	if err != nil || len(f) < 3 {
		return 0, 0, false
	}
	ns, err1 := strconv.ParseInt(f[0], 10, 64)
	runs, err2 := strconv.ParseInt(f[2], 10, 64)
	return time.Duration(ns), runs, err1 == nil && err2 == nil
}

// inClone reports whether a kernel stack, as /proc/TID/stack shows it, is
// inside clone() or clone3().
func inClone(stack []byte) bool {
	for _, fn := range []string{"copy_process", "kernel_clone", "_do_fork", "sys_clone"} {
		if bytes.Contains(stack, []byte(fn)) {
			return true
		}
	}
	return false
}

// threadError names the thread everyThread failed on.
type threadError struct {
	tid int
	err error
}

func (e *threadError) Error() string { return "thread " + strconv.Itoa(e.tid) + ": " + e.err.Error() }
func (e *threadError) Unwrap() error { return e.err }

// tasks lists the threads of process pid, from a complete listing
// where one is had within a few tries (readTasks).
func tasks(pid int) ([]int, error) {
	for try := 0; ; try++ {
		tids, complete, err := readTasks(pid)
		if err != nil || complete || try == 20 {
			return tids, err
		}
	}
}

// readTasks lists the threads of process pid, oldest first, and says
// whether the listing is complete: whether it has every thread that lived
// from its start to its end, but for one that a thread listed last, gone
// by now, may hide (walk checks that). /proc/PID/task leaves live threads
// out when others exit meanwhile (seen here: 101 of 109,324 listings of a
// churning process): the kernel ends a read at a thread that exits as it
// is reached, or just after it was listed, and a further read goes on by
// position, skipping as many threads as exited before; a read also ends
// early when a signal arrives. So the listing is one read into room for
// every thread, complete when it went past no exited thread (the file
// position counts those) and a second read finds nothing more.
func readTasks(pid int) (tids []int, complete bool, err error) {
	for size := 16 << 10; ; size *= 2 {
		tids, complete, full, err := readTasksInto(pid, make([]byte, size))
		if !full {
			return tids, complete, err
		}
	}
}

// readTasksInto is readTasks with buf; full says buf may have been too
// small for all the threads.
func readTasksInto(pid int, buf []byte) (tids []int, complete, full bool, err error) {
	dir := "/proc/" + strconv.Itoa(pid) + "/task"
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, false, false, &fs.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(fd)
	n, err := unix.ReadDirent(fd, buf)
	if err != nil {
		return nil, false, false, &fs.PathError{Op: "read", Path: dir, Err: err}
	}
	// An entry takes at most 32 bytes: with less room left than twice
	// that, there may be more than fitted.
	if n > len(buf)-64 {
		return nil, false, true, nil
	}
	pos, err := unix.Seek(fd, 0, io.SeekCurrent)
	if err == nil {
		var more int
		more, err = unix.ReadDirent(fd, buf[n:n+64])
		complete = more == 0 && pos == int64(records(buf[:n]))
	}
	if err != nil {
		return nil, false, false, &fs.PathError{Op: "read", Path: dir, Err: err}
	}
	_, _, names := unix.ParseDirent(buf[:n], -1, nil)
	tids = make([]int, 0, len(names))
	for _, name := range names {
		if tid, err := strconv.Atoi(name); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids, complete, false, nil
}

// records counts the entries of a getdents64 buffer, "." and ".."
// included: struct linux_dirent64 has its length at byte 16.
func records(buf []byte) int {
	n := 0
	for len(buf) >= 19 {
		reclen := int(binary.NativeEndian.Uint16(buf[16:]))
		if reclen == 0 || reclen > len(buf) {
			break
		}
		buf = buf[reclen:]
		n++
	}
	return n
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
