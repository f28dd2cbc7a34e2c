// Command preempt measures the kernel mechanisms the supervisor can use to
// switch between the lanes of one worker CPU (DESIGN.md §2a): several
// processes pinned to the same CPU, at most one of them running.
//
// This process is the signaller, pinned to CPU 0. Its children run on CPU 1:
// a spinner (the running lane: a busy loop that stores an increasing counter
// in a shared memfd page) and an idle lane (blocked in read(2) on a
// socketpair; for each byte it reads it writes back its CLOCK_MONOTONIC time,
// which all processes share). Both are this binary re-executed through
// /proc/self/exe with a hidden role argument (__spinner, __lane), forked from
// a thread that has their CPU (and SCHED_FIFO policy for rows 4a–4b), so that
// every thread of theirs is born with it.
// Every measurement starts fresh children; measurements that are compared
// with each other alternate round by round, so that both see the same load.
//
// Run it as root, on a machine with CPUs 0 and 1 (SCHED_FIFO and the cgroup
// v1 freezer need root; without it those rows say why they were skipped):
//
//	go run ./bench/preempt -rounds 2000
//
// It takes one to three minutes, depending on the load. It prints the
// machine, the load average before and after, and a markdown table:
// p50/p90/p99/max in µs per measurement. The figures and what they mean for
// the supervisor are in docs/preemption.md.
//
// # Notes
//
//   - An interval starts just before the signaller's first syscall of the
//     switch, so it includes that syscall (kill(2) or write(2)) and two clock
//     reads; the header prints what one clock read costs on the machine.
//   - "Lane runs" is the lane's own clock read just after read(2) returns in
//     Go, so it includes Go's syscall exit: what a coreworker would see.
//   - "Spinner runs" is the signaller, spinning on CPU 0, seeing the counter
//     change; "stopped" and "frozen" are polled from /proc and freezer.state
//     (a poll costs a few µs, which bounds their resolution).
//   - Before each round the signaller sleeps 0.2–1 ms, then waits until the
//     lane is blocked in read(3, …) (/proc/PID/task/TID/syscall) and the
//     spinner's counter moves.
package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Hidden roles: the first argument of a re-executed child.
const (
	roleSpinner = "__spinner"
	roleLane    = "__lane"
)

const (
	pageSize    = 4096
	pollTimeout = 2 * time.Second
	freezerRoot = "/sys/fs/cgroup/freezer"
)

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case roleSpinner:
			os.Exit(spinner())
		case roleLane:
			os.Exit(lane())
		}
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// bench is the signaller's state for one run.
type bench struct {
	ctx     context.Context
	rounds  int
	alone   int // rounds of the freezer with no other group frozen
	sigCPU  int
	laneCPU int
	page    *page
	stderr  io.Writer
}

// row is one line of the result table: samples in ns, or why there are none.
type row struct {
	id, name, interval string
	ns                 []int64
	skip               string
	note               string // printed under the table
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("preempt", flag.ContinueOnError)
	fs.SetOutput(stderr)
	rounds := fs.Int("rounds", 2000, "rounds per measurement")
	aloneRounds := fs.Int("alone-rounds", 200, "rounds of rows 5d–5e (the freezer with no other group frozen: milliseconds each)")
	sigCPU := fs.Int("signal-cpu", 0, "CPU of the signaller (this process)")
	laneCPU := fs.Int("lane-cpu", 1, "CPU of the spinner and the lanes")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *rounds < 1 || *aloneRounds < 1 || *sigCPU == *laneCPU || *sigCPU < 0 || *laneCPU < 0 {
		fmt.Fprintln(stderr, "preempt: -rounds and -alone-rounds must be positive and -signal-cpu and -lane-cpu two different CPUs")
		return 2
	}

	// The measuring goroutine keeps one thread for the whole run: its
	// affinity is changed around each fork, and children's Pdeathsig is tied
	// to it, so it must never return to the pool or exit.
	runtime.LockOSThread()
	if err := pinProcess(*sigCPU); err != nil {
		fmt.Fprintf(stderr, "preempt: pin to CPU %d: %v\n", *sigCPU, err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	pg, err := newPage()
	if err != nil {
		fmt.Fprintf(stderr, "preempt: %v\n", err)
		return 1
	}
	b := &bench{ctx: ctx, rounds: *rounds, alone: *aloneRounds, sigCPU: *sigCPU, laneCPU: *laneCPU, page: pg, stderr: stderr}

	fmt.Fprintf(stdout, "# preempt, %s\n\n", time.Now().UTC().Format(time.RFC3339))
	fmt.Fprintf(stdout, "- machine: %s, %s, %s, %d CPUs online\n", kernel(), cpuModel(), runtime.Version(), runtime.NumCPU())
	fmt.Fprintf(stdout, "- signaller on CPU %d, lanes on CPU %d, %d rounds (%d for 5d–5e)\n", b.sigCPU, b.laneCPU, b.rounds, b.alone)
	fmt.Fprintf(stdout, "- clock read (unix.ClockGettime): %.2f µs\n", clockCost())
	fmt.Fprintf(stdout, "- load average before: %s\n", loadavg())

	code := 0
	var rows []row
	for _, m := range []func() ([]row, error){b.idle, b.stopOrder, b.fifo, b.freezer, b.kill} {
		rs, err := m()
		rows = append(rows, rs...)
		if err != nil {
			fmt.Fprintf(stderr, "preempt: %v\n", err)
			code = 1
		}
		if ctx.Err() != nil {
			return 1
		}
	}
	fmt.Fprintf(stdout, "- load average after: %s\n\n", loadavg())
	printTable(stdout, rows)
	return code
}

// idle is the baseline: waking the lane on a CPU that has nothing to run.
func (b *bench) idle() ([]row, error) {
	r := row{id: "0", name: "baseline, CPU idle", interval: "write → lane runs (no spinner)"}
	ln, err := b.spawn(roleLane, 0)
	if err != nil {
		return nil, err
	}
	defer ln.close()
	for range b.rounds {
		if err := b.ready(ln, nil); err != nil {
			return nil, fmt.Errorf("%s: %w", r.name, err)
		}
		t0 := now()
		if err := ln.poke(); err != nil {
			return nil, err
		}
		t1, err := ln.answer()
		if err != nil {
			return nil, err
		}
		r.ns = append(r.ns, t1-t0)
	}
	return []row{r}, nil
}

// stopOrder measures rows 1–3: waking the idle lane before or after stopping
// the spinner (alternating), and resuming the spinner afterwards.
func (b *bench) stopOrder() ([]row, error) {
	wake := row{id: "1", name: "wake first", interval: "write, SIGSTOP → lane runs"}
	stopf := row{id: "2", name: "stop first", interval: "SIGSTOP, write → lane runs"}
	resume := row{id: "3", name: "resume", interval: "SIGCONT → spinner runs"}
	sp, ln, err := b.pair()
	if err != nil {
		return nil, err
	}
	defer sp.close()
	defer ln.close()
	for i := range 2 * b.rounds {
		if err := b.ready(ln, sp); err != nil {
			return nil, fmt.Errorf("stop order: %w", err)
		}
		wakeFirst := i%2 == 0
		t0 := now()
		if wakeFirst {
			err = errors.Join(ln.poke(), unix.Kill(sp.pid, unix.SIGSTOP))
		} else {
			err = errors.Join(unix.Kill(sp.pid, unix.SIGSTOP), ln.poke())
		}
		if err != nil {
			return nil, err
		}
		t1, err := ln.answer()
		if err != nil {
			return nil, err
		}
		if wakeFirst {
			wake.ns = append(wake.ns, t1-t0)
		} else {
			stopf.ns = append(stopf.ns, t1-t0)
		}

		// Time the resume from a spinner that is really stopped and a CPU
		// the lane has left.
		if err := errors.Join(sp.waitState('T'), ln.waitBlocked()); err != nil {
			return nil, fmt.Errorf("stop order: %w", err)
		}
		c0 := b.page.ctr.Load()
		t2 := now()
		if err := unix.Kill(sp.pid, unix.SIGCONT); err != nil {
			return nil, err
		}
		if err := b.page.waitChange(c0); err != nil {
			return nil, fmt.Errorf("resume: %w", err)
		}
		if wakeFirst {
			resume.ns = append(resume.ns, now()-t2)
		}
	}
	return []row{wake, stopf, resume}, nil
}

// fifo measures rows 4a–4b, the lanes under SCHED_FIFO: at stacked
// priorities (the urgent lane above the spinner) and no signal at all; and at
// equal priorities, where a woken lane cannot preempt the spinner, so the
// supervisor wakes it and then stops the spinner.
func (b *bench) fifo() ([]row, error) {
	stacked := row{id: "4a", name: "SCHED_FIFO stacked", interval: "write → lane runs (lane FIFO 2 > spinner FIFO 1, no signal)"}
	equal := row{id: "4b", name: "SCHED_FIFO equal, wake first", interval: "write, SIGSTOP → lane runs (lane and spinner FIFO 1)"}
	if err := errors.Join(setThreadPolicy(unix.SCHED_FIFO, 1), setThreadPolicy(unix.SCHED_NORMAL, 0)); err != nil {
		stacked.skip = "skipped: " + err.Error()
		equal.skip = stacked.skip
		return []row{stacked, equal}, nil
	}
	if err := b.fifoPhase(&stacked, 2, false); err != nil {
		return nil, err
	}
	if err := b.fifoPhase(&equal, 1, true); err != nil {
		return nil, err
	}
	return []row{stacked, equal}, nil
}

// fifoPhase measures r with a spinner at SCHED_FIFO 1 and an idle lane at
// lanePrio, stopping the spinner after the write if stop.
func (b *bench) fifoPhase(r *row, lanePrio int, stop bool) error {
	// The lane first: a FIFO spinner would hold CPU 1 against its start.
	ln, err := b.spawn(roleLane, lanePrio)
	if err != nil {
		return err
	}
	defer ln.close()
	sp, err := b.spawn(roleSpinner, 1, b.page.file)
	if err != nil {
		return err
	}
	defer sp.close()
	stray := 0
	for range b.rounds {
		if !stop {
			if err := b.ready(ln, sp); err != nil {
				return fmt.Errorf("%s: %w", r.name, err)
			}
		} else if err := b.readyEqual(ln, sp, &stray); err != nil {
			return fmt.Errorf("%s: %w", r.name, err)
		}
		t0 := now()
		err := ln.poke()
		if stop {
			err = errors.Join(err, unix.Kill(sp.pid, unix.SIGSTOP))
		}
		if err != nil {
			return err
		}
		t1, err := ln.answer()
		if err != nil {
			return err
		}
		r.ns = append(r.ns, t1-t0)
		if !stop {
			continue
		}
		// Resume only once the lane is back in its read: at equal FIFO
		// priority a runnable lane waits behind the spinner until it stops.
		if err := sp.waitState('T'); err != nil {
			return fmt.Errorf("%s: %w", r.name, err)
		}
		if err := ln.waitBlocked(); err != nil {
			return fmt.Errorf("%s: %w", r.name, err)
		}
		if err := unix.Kill(sp.pid, unix.SIGCONT); err != nil {
			return err
		}
	}
	if stray > 0 {
		r.note = fmt.Sprintf("in %d of %d rounds the idle lane was found out of its read before the write; "+
			"at the spinner's priority it could not get back in until the spinner was stopped", stray, b.rounds)
	}
	return nil
}

// readyEqual is ready for a lane at the spinner's FIFO priority. Such a lane
// can be woken inside its read with nothing to read (seen on Linux 6.18 with
// no signal pending) and then waits behind the spinner. If so the spinner is
// stopped until the lane is back in its read, and *stray counts it.
func (b *bench) readyEqual(ln, sp *child, stray *int) error {
	if err := b.ready(nil, sp); err != nil {
		return err
	}
	ok, err := ln.blocked()
	if ok || err != nil {
		return err
	}
	*stray++
	if err := unix.Kill(sp.pid, unix.SIGSTOP); err != nil {
		return err
	}
	if err := errors.Join(sp.waitState('T'), ln.waitBlocked()); err != nil {
		return err
	}
	if err := unix.Kill(sp.pid, unix.SIGCONT); err != nil {
		return err
	}
	return b.page.waitChange(b.page.ctr.Load())
}

// freezer measures rows 5a–5e: stopping the spinner with SIGSTOP against
// freezing a cgroup v1 freezer group that holds it, and thawing it.
//
// The kernel's cost of a freeze depends on whether another group is frozen
// already (the first freeze and the last thaw cost milliseconds more), so
// the freezer is measured twice: first while an empty group beside it is held
// FROZEN, alternating with SIGSTOP; then, for -alone-rounds rounds, with no
// other group frozen.
func (b *bench) freezer() ([]row, error) {
	stop := row{id: "5a", name: "SIGSTOP", interval: "SIGSTOP → spinner thread in state T"}
	freeze := row{id: "5b", name: "freezer v1 freeze", interval: "write FROZEN → freezer.state reads FROZEN (another group frozen)"}
	thaw := row{id: "5c", name: "freezer v1 thaw", interval: "write THAWED → spinner runs (another group frozen)"}
	freezeAlone := row{id: "5d", name: "freezer v1 freeze, alone", interval: "write FROZEN → freezer.state reads FROZEN (no other group frozen)"}
	thawAlone := row{id: "5e", name: "freezer v1 thaw, alone", interval: "write THAWED → spinner runs (no other group frozen)"}
	rows := []*row{&stop, &freeze, &thaw, &freezeAlone, &thawAlone}
	result := func(skip string) []row {
		var rs []row
		for _, r := range rows {
			if skip != "" {
				r.skip = "skipped: " + skip
			}
			rs = append(rs, *r)
		}
		return rs
	}
	if !isFreezerMount(freezerRoot) {
		return result("no cgroup v1 freezer hierarchy at " + freezerRoot), nil
	}
	base := filepath.Join(freezerRoot, fmt.Sprintf("hyper-sched-preempt-%d", os.Getpid()))
	hold, err := b.freezerGroup(base + "-hold")
	if err != nil {
		return result(err.Error()), nil
	}
	defer hold.remove()
	g, err := b.freezerGroup(base)
	if err != nil {
		return result(err.Error()), nil
	}
	defer g.remove()
	sp, err := b.spawn(roleSpinner, 0, b.page.file)
	if err != nil {
		return nil, err
	}
	// Deferred after g.remove, so it runs first: thaw, kill, then rmdir (a
	// task frozen by the v1 freezer does not die of SIGKILL until thawed).
	defer sp.close()
	defer g.set("THAWED")
	if err := os.WriteFile(filepath.Join(g.dir, "cgroup.procs"), []byte(strconv.Itoa(sp.pid)), 0); err != nil {
		return result("join " + g.dir + ": " + err.Error()), nil
	}

	if err := hold.set("FROZEN"); err != nil {
		return nil, err
	}
	for i := range 2 * b.rounds {
		if err := b.ready(nil, sp); err != nil {
			return nil, fmt.Errorf("freezer: %w", err)
		}
		if i%2 == 0 {
			t0 := now()
			if err := unix.Kill(sp.pid, unix.SIGSTOP); err != nil {
				return nil, err
			}
			if err := sp.waitState('T'); err != nil {
				return nil, fmt.Errorf("%s: %w", stop.name, err)
			}
			stop.ns = append(stop.ns, now()-t0)
			if err := unix.Kill(sp.pid, unix.SIGCONT); err != nil {
				return nil, err
			}
			continue
		}
		if err := b.freezeThaw(g, &freeze, &thaw); err != nil {
			return nil, err
		}
	}
	if err := hold.set("THAWED"); err != nil {
		return nil, err
	}
	for range b.alone {
		if err := b.ready(nil, sp); err != nil {
			return nil, fmt.Errorf("freezer: %w", err)
		}
		if err := b.freezeThaw(g, &freezeAlone, &thawAlone); err != nil {
			return nil, err
		}
	}
	return result(""), nil
}

// freezeThaw freezes g, which holds the spinner, and thaws it, and appends
// both latencies.
func (b *bench) freezeThaw(g *group, freeze, thaw *row) error {
	buf := make([]byte, 64)
	t0 := now()
	if err := g.set("FROZEN"); err != nil {
		return err
	}
	for {
		n, err := unix.Pread(g.state, buf, 0)
		if err != nil {
			return fmt.Errorf("read %s/freezer.state: %w", g.dir, err)
		}
		if bytes.HasPrefix(buf[:n], []byte("FROZEN")) {
			break
		}
		if now()-t0 > int64(pollTimeout) {
			return fmt.Errorf("freeze %s: still %q after %v", g.dir, bytes.TrimSpace(buf[:n]), pollTimeout)
		}
	}
	freeze.ns = append(freeze.ns, now()-t0)
	c0 := b.page.ctr.Load()
	t1 := now()
	if err := g.set("THAWED"); err != nil {
		return err
	}
	if err := b.page.waitChange(c0); err != nil {
		return fmt.Errorf("thaw: %w", err)
	}
	thaw.ns = append(thaw.ns, now()-t1)
	return nil
}

// group is a cgroup v1 freezer group made for this run.
type group struct {
	dir    string
	state  int // freezer.state, open read-write
	stderr io.Writer
}

func (b *bench) freezerGroup(dir string) (*group, error) {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, err
	}
	state, err := unix.Open(filepath.Join(dir, "freezer.state"), unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		os.Remove(dir)
		return nil, err
	}
	return &group{dir: dir, state: state, stderr: b.stderr}, nil
}

func (g *group) set(state string) error {
	if _, err := unix.Pwrite(g.state, []byte(state), 0); err != nil {
		return fmt.Errorf("write %s to %s/freezer.state: %w", state, g.dir, err)
	}
	return nil
}

// remove thaws the group and removes it; it must be empty by then.
func (g *group) remove() {
	err := errors.Join(g.set("THAWED"), unix.Close(g.state), os.Remove(g.dir))
	if err != nil {
		fmt.Fprintf(g.stderr, "preempt: remove %s: %v\n", g.dir, err)
	}
}

// kill measures rows 6a–6b: a deadline kill of the running lane and the next
// job on an idle lane, kill first or wake first (alternating). Each round
// starts a new spinner.
func (b *bench) kill() ([]row, error) {
	killFirst := row{id: "6a", name: "deadline kill, then wake", interval: "SIGKILL, write → lane runs"}
	wakeFirst := row{id: "6b", name: "wake, then deadline kill", interval: "write, SIGKILL → lane runs"}
	ln, err := b.spawn(roleLane, 0)
	if err != nil {
		return nil, err
	}
	defer ln.close()
	for i := range 2 * b.rounds {
		sp, err := b.spawn(roleSpinner, 0, b.page.file)
		if err != nil {
			return nil, err
		}
		if err := b.ready(ln, sp); err != nil {
			sp.close()
			return nil, fmt.Errorf("kill: %w", err)
		}
		t0 := now()
		if i%2 == 0 {
			err = errors.Join(unix.Kill(sp.pid, unix.SIGKILL), ln.poke())
		} else {
			err = errors.Join(ln.poke(), unix.Kill(sp.pid, unix.SIGKILL))
		}
		if err != nil {
			sp.close()
			return nil, err
		}
		t1, err := ln.answer()
		sp.close()
		if err != nil {
			return nil, err
		}
		if i%2 == 0 {
			killFirst.ns = append(killFirst.ns, t1-t0)
		} else {
			wakeFirst.ns = append(wakeFirst.ns, t1-t0)
		}
	}
	return []row{killFirst, wakeFirst}, nil
}

// ready sleeps 0.2–1 ms (so rounds do not lock to the tick), then waits
// until the lane, if any, is blocked in its read and the spinner, if any, is
// running.
func (b *bench) ready(ln, sp *child) error {
	if err := b.ctx.Err(); err != nil {
		return err
	}
	time.Sleep(200*time.Microsecond + rand.N(800*time.Microsecond))
	if ln != nil {
		if err := ln.waitBlocked(); err != nil {
			return err
		}
	}
	if sp != nil {
		return b.page.waitChange(b.page.ctr.Load())
	}
	return nil
}

// pair starts a spinner and an idle lane.
func (b *bench) pair() (sp, ln *child, err error) {
	sp, err = b.spawn(roleSpinner, 0, b.page.file)
	if err != nil {
		return nil, nil, err
	}
	ln, err = b.spawn(roleLane, 0)
	if err != nil {
		sp.close()
		return nil, nil, err
	}
	return sp, ln, nil
}

// child is a spinner or lane process as the signaller sees it.
type child struct {
	cmd  *exec.Cmd
	pid  int
	tid  int // the thread that spins or reads
	sock int // the signaller's end of the socketpair; the child's is its fd 3
	stat int // /proc/PID/task/TID/stat
	sys  int // /proc/PID/task/TID/syscall
	// inRead is how the syscall file starts while the lane waits for a job.
	inRead []byte
}

// spawn re-executes this binary in role on the lane CPU, under SCHED_FIFO at
// prio if prio > 0, with one end of a new socketpair as fd 3 and extra as fd
// 4…, and reads the thread id the child announces.
func (b *bench) spawn(role string, prio int, extra ...*os.File) (*child, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("spawn %s: socketpair: %w", role, err)
	}
	theirs := os.NewFile(uintptr(fds[1]), role)
	c := &child{sock: fds[0], stat: -1, sys: -1, inRead: fmt.Appendf(nil, "%d 0x3 ", unix.SYS_READ)}
	c.cmd = exec.Command("/proc/self/exe", role)
	c.cmd.Stderr = os.Stderr
	c.cmd.ExtraFiles = append([]*os.File{theirs}, extra...)
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	// Fork from this locked thread while it has the child's CPU and policy,
	// so the child and every thread it makes are born with them (a walk over
	// /proc/PID/task can miss a thread being cloned: docs/isolation.md).
	err = pinThread(b.laneCPU)
	if err == nil && prio > 0 {
		err = setThreadPolicy(unix.SCHED_FIFO, prio)
	}
	if err == nil {
		err = c.cmd.Start()
	}
	theirs.Close() // the child has its copy; its exit now reads as EOF here
	if perr := errors.Join(pinThread(b.sigCPU), setThreadPolicy(unix.SCHED_NORMAL, 0)); perr != nil && err == nil {
		err = fmt.Errorf("restore the signaller's thread: %w", perr)
	}
	if err != nil {
		if c.cmd.Process != nil {
			c.cmd.Process.Kill()
			c.cmd.Wait()
		}
		unix.Close(c.sock)
		return nil, fmt.Errorf("spawn %s: %w", role, err)
	}
	c.pid = c.cmd.Process.Pid
	if err := b.hello(c); err != nil {
		c.close()
		return nil, fmt.Errorf("spawn %s: %w", role, err)
	}
	if attr, err := unix.SchedGetAttr(c.tid, 0); err != nil || (prio > 0 && (attr.Policy != unix.SCHED_FIFO || attr.Priority != uint32(prio))) {
		c.close()
		return nil, fmt.Errorf("spawn %s: thread %d not at SCHED_FIFO %d: %+v, %v", role, c.tid, prio, attr, err)
	}
	return c, nil
}

func (b *bench) hello(c *child) error {
	if err := unix.SetsockoptTimeval(c.sock, unix.SOL_SOCKET, unix.SO_RCVTIMEO, ptr(unix.NsecToTimeval(int64(pollTimeout)))); err != nil {
		return fmt.Errorf("receive timeout: %w", err)
	}
	tid, err := c.answer()
	if err != nil {
		return fmt.Errorf("hello: %w", err)
	}
	c.tid = int(tid)
	task := fmt.Sprintf("/proc/%d/task/%d/", c.pid, c.tid)
	if c.stat, err = unix.Open(task+"stat", unix.O_RDONLY|unix.O_CLOEXEC, 0); err != nil {
		return err
	}
	if c.sys, err = unix.Open(task+"syscall", unix.O_RDONLY|unix.O_CLOEXEC, 0); err != nil {
		return err
	}
	return nil
}

// close kills the child, reaps it and closes the signaller's descriptors.
func (c *child) close() {
	c.cmd.Process.Kill()
	c.cmd.Wait()
	for _, fd := range []int{c.sock, c.stat, c.sys} {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
}

// poke sends the lane its one-byte job.
func (c *child) poke() error {
	_, err := unix.Write(c.sock, []byte{1})
	return err
}

// answer reads the 8-byte little-endian number the child writes back.
func (c *child) answer() (int64, error) {
	var buf [8]byte
	for n := 0; n < len(buf); {
		m, err := unix.Read(c.sock, buf[n:])
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return 0, fmt.Errorf("read from pid %d: %w", c.pid, err)
		case m == 0:
			return 0, fmt.Errorf("read from pid %d: %w", c.pid, io.ErrUnexpectedEOF)
		}
		n += m
	}
	return int64(binary.LittleEndian.Uint64(buf[:])), nil
}

// waitState polls the thread's state letter in /proc until it is want.
func (c *child) waitState(want byte) error {
	buf := make([]byte, 512)
	t0 := now()
	for {
		n, err := unix.Pread(c.stat, buf, 0)
		if err != nil {
			return fmt.Errorf("read stat of %d: %w", c.tid, err)
		}
		// "TID (comm) S …": the state follows the last ')'.
		i := bytes.LastIndexByte(buf[:n], ')')
		if i >= 0 && i+2 < n && buf[i+2] == want {
			return nil
		}
		if now()-t0 > int64(pollTimeout) {
			return fmt.Errorf("thread %d not in state %c after %v", c.tid, want, pollTimeout)
		}
	}
}

// waitBlocked polls until the lane's thread sleeps in read(3, …): the kernel
// shows the syscall and its arguments only for a blocked task, and "running"
// otherwise.
func (c *child) waitBlocked() error {
	t0 := now()
	for {
		ok, err := c.blocked()
		if ok || err != nil {
			return err
		}
		if now()-t0 > int64(pollTimeout) {
			return fmt.Errorf("lane %d not blocked in read after %v", c.tid, pollTimeout)
		}
	}
}

// blocked reports whether the lane's thread sleeps in read(3, …) now.
func (c *child) blocked() (bool, error) {
	var buf [128]byte
	n, err := unix.Pread(c.sys, buf[:], 0)
	if err != nil {
		return false, fmt.Errorf("read syscall of %d: %w", c.tid, err)
	}
	return bytes.HasPrefix(buf[:n], c.inRead), nil
}

// page is the shared memfd page whose first word the spinner increments.
type page struct {
	file *os.File
	ctr  *atomic.Uint64
}

func newPage() (*page, error) {
	fd, err := unix.MemfdCreate("preempt-counter", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("memfd: %w", err)
	}
	if err := unix.Ftruncate(fd, pageSize); err != nil {
		return nil, fmt.Errorf("memfd: %w", err)
	}
	mem, err := unix.Mmap(fd, 0, pageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap memfd: %w", err)
	}
	return &page{file: os.NewFile(uintptr(fd), "preempt-counter"), ctr: (*atomic.Uint64)(unsafe.Pointer(&mem[0]))}, nil
}

// waitChange spins until the counter differs from c0: the spinner ran.
func (p *page) waitChange(c0 uint64) error {
	t0 := now()
	for p.ctr.Load() == c0 {
		if now()-t0 > int64(pollTimeout) {
			return fmt.Errorf("spinner did not run for %v", pollTimeout)
		}
	}
	return nil
}

// spinner is the running lane: it announces its thread on fd 3, then stores
// an increasing counter in the page at fd 4 forever, in user mode.
func spinner() int {
	runtime.LockOSThread()
	mem, err := unix.Mmap(4, 0, pageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		fmt.Fprintf(os.Stderr, "spinner: mmap: %v\n", err)
		return 1
	}
	if err := tell(uint64(unix.Gettid())); err != nil {
		fmt.Fprintf(os.Stderr, "spinner: hello: %v\n", err)
		return 1
	}
	ctr := (*atomic.Uint64)(unsafe.Pointer(&mem[0]))
	for v := ctr.Load(); ; {
		v++
		ctr.Store(v)
	}
}

// lane is the idle lane: it announces its thread on fd 3, then answers each
// byte read from fd 3 with its CLOCK_MONOTONIC time, taken first thing after
// the read returns.
func lane() int {
	runtime.LockOSThread()
	if err := tell(uint64(unix.Gettid())); err != nil {
		fmt.Fprintf(os.Stderr, "lane: hello: %v\n", err)
		return 1
	}
	var in [1]byte
	for {
		n, err := unix.Read(3, in[:])
		if err == unix.EINTR {
			continue
		}
		if err != nil || n == 0 {
			return 0 // the signaller is gone
		}
		if err := tell(uint64(now())); err != nil {
			return 0
		}
	}
}

// tell writes v to fd 3, 8 bytes little-endian.
func tell(v uint64) error {
	var buf [8]byte
	binary.LittleEndian.PutUint64(buf[:], v)
	_, err := unix.Write(3, buf[:])
	return err
}

// now is CLOCK_MONOTONIC in ns, comparable across processes.
func now() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		panic(err) // CLOCK_MONOTONIC always exists on Linux
	}
	return ts.Nano()
}

// clockCost is the mean cost of one now(), in µs.
func clockCost() float64 {
	const n = 100000
	t0 := now()
	for range n {
		now()
	}
	return float64(now()-t0) / n / 1e3
}

func ptr[T any](v T) *T { return &v }

func cpuSet(cpu int) *unix.CPUSet {
	var s unix.CPUSet
	s.Set(cpu)
	return &s
}

// pinThread pins the calling thread.
func pinThread(cpu int) error { return unix.SchedSetaffinity(0, cpuSet(cpu)) }

// pinProcess pins every thread of this process; threads made later inherit
// it from the thread that makes them.
func pinProcess(cpu int) error {
	tids, err := tasks(os.Getpid())
	if err != nil {
		return err
	}
	for _, tid := range tids {
		if err := unix.SchedSetaffinity(tid, cpuSet(cpu)); err != nil {
			return fmt.Errorf("thread %d: %w", tid, err)
		}
	}
	return nil
}

// setThreadPolicy sets the calling thread's scheduling policy.
func setThreadPolicy(policy, prio int) error {
	attr := unix.SchedAttr{Policy: uint32(policy), Priority: uint32(prio)}
	if err := unix.SchedSetAttr(0, &attr, 0); err != nil {
		return fmt.Errorf("sched_setattr policy %d priority %d: %w", policy, prio, err)
	}
	return nil
}

func tasks(pid int) ([]int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return nil, err
	}
	var tids []int
	for _, e := range ents {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids, nil
}

// isFreezerMount reports whether dir is a mounted cgroup v1 hierarchy with
// the freezer controller.
func isFreezerMount(dir string) bool {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	for line := range strings.Lines(string(data)) {
		// "… mountpoint … - fstype source superoptions"
		pre, post, ok := strings.Cut(line, " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 5 || len(g) < 3 || f[4] != dir || g[0] != "cgroup" {
			continue
		}
		if slices.Contains(strings.Split(g[2], ","), "freezer") {
			return true
		}
	}
	return false
}

func printTable(w io.Writer, rows []row) {
	fmt.Fprintln(w, "| # | mechanism | interval | n | p50 µs | p90 µs | p99 µs | max µs |")
	fmt.Fprintln(w, "|---|---|---|--:|--:|--:|--:|--:|")
	for _, r := range rows {
		if r.skip != "" {
			fmt.Fprintf(w, "| %s | %s | %s | 0 | %s | | | |\n", r.id, r.name, r.interval, r.skip)
			continue
		}
		s := slices.Clone(r.ns)
		slices.Sort(s)
		us := func(p float64) string {
			// Nearest rank.
			i := int(p*float64(len(s))+0.999999) - 1
			return fmt.Sprintf("%.1f", float64(s[max(i, 0)])/1e3)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %d | %s | %s | %s | %s |\n",
			r.id, r.name, r.interval, len(s), us(0.50), us(0.90), us(0.99), us(1))
	}
	for _, r := range rows {
		if r.note != "" {
			fmt.Fprintf(w, "\n- %s: %s\n", r.id, r.note)
		}
	}
}

func kernel() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "Linux ?"
	}
	return "Linux " + unix.ByteSliceToString(u.Release[:])
}

func cpuModel() string {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "cpu ?"
	}
	for line := range strings.Lines(string(data)) {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "cpu ?"
}

func loadavg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(data))
	return strings.Join(f[:min(3, len(f))], " ")
}
