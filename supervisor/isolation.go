package supervisor

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hyper-sched/hyper-sched/isolate"
	"github.com/hyper-sched/hyper-sched/systemd"
)

// This file is the supervisor's side of the isolation ladder (package
// isolate: cgroup v2 → v1 cpuset → affinity, DESIGN.md §1) and of
// systemd's notify protocol (package systemd, §7).

// isolation is the Supervisor's isolation state, a field of Supervisor.
type isolation struct {
	// cg is set by startIsolation before any child starts and never
	// replaced; nil (affinity only) when Serve did not run, as in tests
	// that spawn children directly.
	cg atomic.Pointer[isolate.Cgroups]
	// noCgroupFD is set once a start inside a cgroup (clone3 with
	// CLONE_INTO_CGROUP) failed: later starts go outside and are moved in
	// by place, which says so in status.
	noCgroupFD atomic.Bool
}

// cgroups returns the ladder's groups; nil before startIsolation.
func (iso *isolation) cgroups() *isolate.Cgroups { return iso.cg.Load() }

// supervisorNice is the supervisor's nice value while it has calls
// queueing or a deadline call in hand (nice.go): it reads the lanes'
// answers and sends their next jobs, so on the housekeeping CPUs it goes
// before benchd, lanes warming up and other processes (docs/isolation.md).
const supervisorNice = -5

// laneNice is a SCHED_OTHER lane's nice value, the busy supervisor's: where
// the isolation rung cannot keep other tasks off a worker CPU (cgroup v1,
// where the root cpuset's tasks may run anywhere; affinity only), the
// lane's weight puts them behind its job. A lane is given it at its start
// (spawn), or once it has warmed up under SCHED_IDLE (settle), rather than
// inheriting the supervisor's, which changes (nice.go). Real-time lanes do
// not need it.
const laneNice = supervisorNice

// isolationOptions derives the ladder's options from the configuration.
func (s *Supervisor) isolationOptions() isolate.Options {
	return isolate.Options{Name: s.cfg.CgroupName, Housekeeping: s.choice.Housekeeping,
		Best: s.cfg.Isolation, RealTime: s.cfg.RealTime, WorkerMemoryMax: s.cfg.WorkerMemoryMax}
}

// startIsolation sets up the ladder, moving the supervisor into its group
// on the housekeeping CPUs, and starts telling systemd how the daemon is
// doing. The returned function undoes both; call it after every child has
// exited.
func (s *Supervisor) startIsolation(ctx context.Context) (stop func()) {
	cg, err := isolate.Setup(s.isolationOptions())
	if err != nil {
		// Invalid options are a programmer's error here; pin at least.
		s.log.Error("isolation", "err", err)
		if err := isolate.SetAffinity(os.Getpid(), s.choice.Housekeeping); err != nil {
			s.log.Warn("pin supervisor to housekeeping cpus", "err", err)
		}
	}
	for _, e := range cg.Skipped() {
		s.log.Warn("isolation rung not taken", "err", e)
	}
	for _, dir := range cg.Cleaned() {
		s.log.Info("removed the cgroups of a previous run", "path", dir)
	}
	sup := cg.Inspect(isolate.Supervisor, os.Getpid())
	s.log.Info("isolation", "mode", cg.Mode(), "path", sup.Path, "cpus", sup.CPUs, "mems", sup.Mems)
	if sup.Err != "" {
		s.log.Warn("place supervisor", "err", sup.Err)
	}
	// Ahead of everything else on the housekeeping CPUs: a lane's answer
	// read late is a call answered late.
	if err := isolate.SetNice(os.Getpid(), supervisorNice); err != nil {
		s.log.Warn("supervisor priority on the housekeeping CPUs not raised", "nice", supervisorNice, "err", err)
	} else {
		s.nice.Store(newNiceGovernor(func(n int) error { return isolate.SetNice(os.Getpid(), n) },
			func(n int, err error) { s.log.Warn("supervisor nice not changed", "nice", n, "err", err) }))
	}
	s.iso.cg.Store(cg) // read without the lock, from the control socket's handlers too
	stopNotify := s.startNotify(ctx)
	return func() {
		stopNotify()
		if err := cg.Close(); err != nil {
			s.log.Error("isolation", "err", err)
		}
	}
}

// prepareChild makes c's group before its start. The returned placement
// goes into the child's SysProcAttr (StartInside) and is released after
// the start.
func (s *Supervisor) prepareChild(c *child) isolate.Placement {
	p, err := s.iso.cgroups().Prepare(c.group, c.cpus)
	if err != nil {
		c.log.Warn("isolation", "err", err)
	} else if p.Err != "" {
		c.log.Warn("isolation step not taken", "path", p.Path, "err", p.Err)
	}
	if s.iso.noCgroupFD.Load() {
		p.Release()
	}
	return p
}

// startFailedInside records that a start inside a cgroup failed, so that
// the retry starts outside it and is moved in.
func (s *Supervisor) startFailedInside(c *child, err error) {
	if !s.iso.noCgroupFD.Swap(true) {
		c.log.Warn("start inside its cgroup (clone3 CLONE_INTO_CGROUP) failed; children start outside and are moved in", "err", err)
	}
}

// isolationOf describes where c runs now: mode, cgroup path, cpuset,
// partition state, affinity and scheduling policy, as the kernel reports
// them (GET /status, hyper-schedctl status). It reads files and needs no
// lock: pid is c's pid as read under s.mu.
func (s *Supervisor) isolationOf(c *child, pid int) isolate.Placement {
	p := s.iso.cgroups().Inspect(c.group, pid)
	if s.iso.cgroups() == nil {
		p.CPUs = isolate.FormatList(c.cpus)
	}
	return p
}

// supervisorIsolation describes where the supervisor itself runs.
func (s *Supervisor) supervisorIsolation() isolate.Placement {
	return s.iso.cgroups().Inspect(isolate.Supervisor, os.Getpid())
}

// isolationSkipped lists the better rungs of the ladder Setup did not take,
// with the reasons, for GET /status.
func (s *Supervisor) isolationSkipped() []string {
	var out []string
	for _, err := range s.iso.cgroups().Skipped() {
		out = append(out, err.Error())
	}
	return out
}

// startNotify keeps systemd (Type=notify) informed until ctx ends:
// READY=1 once every worker is RUNNING, a STATUS= line whenever a child
// changes state, and WATCHDOG=1 at half of WatchdogSec — sent only after
// taking the supervisor's lock, so a deadlocked supervisor stops pinging
// and systemd restarts it. Without NOTIFY_SOCKET it does nothing.
func (s *Supervisor) startNotify(ctx context.Context) (stop func()) {
	if !systemd.Enabled() {
		return func() {}
	}
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		var tick <-chan time.Time
		if iv, ok := systemd.WatchdogInterval(); ok {
			t := time.NewTicker(iv / 2)
			defer t.Stop()
			tick = t.C
		}
		var (
			ready, ping, failed bool
			last                string
		)
		send := func(err error) {
			if err != nil && !failed { // once: the socket will not heal
				failed = true
				s.log.Warn("notify systemd", "err", err)
			}
		}
		for {
			s.mu.Lock()
			// READY also waits for --module-dir's first load, as /healthz.
			wake, up, running, benchd := s.wake, s.ready && s.mdir.ready(), s.runningWorkers(), s.benchd.state
			s.mu.Unlock()
			text := s.notifyStatus(running, benchd)
			if ping {
				send(systemd.Watchdog())
				ping = false
			}
			if text != last {
				send(systemd.Status(text))
				last = text
			}
			if up && !ready {
				send(systemd.Ready())
				ready = true
			}
			select {
			case <-ctx.Done():
				send(systemd.Notify("STOPPING=1\nSTATUS=shutting down"))
				return
			case <-done:
				return
			case <-wake:
			case <-tick:
				ping = true
			}
		}
	}()
	return func() {
		close(done)
		<-exited
	}
}

// runningWorkers counts the workers in RUNNING; s.mu held.
func (s *Supervisor) runningWorkers() int {
	n := 0
	for _, w := range s.workers {
		if w.state == Running {
			n++
		}
	}
	return n
}

// notifyStatus is the one-line STATUS= text, from what was read under s.mu.
// It reads cgroup files, so it runs without s.mu, as Status does: workers
// and their names are fixed after New, and cg has its own lock.
func (s *Supervisor) notifyStatus(running int, benchd State) string {
	// Groups are a CPU's, shared by its lanes: count each once.
	isolated := 0
	for i, w := range s.workers {
		if i > 0 && s.workers[i-1].group == w.group {
			continue
		}
		if s.iso.cgroups().Inspect(w.group, 0).Partition == "isolated" {
			isolated++
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d/%d workers running, benchd %s; isolation %s", running, len(s.workers), benchd, s.iso.cgroups().Mode())
	if isolated > 0 {
		fmt.Fprintf(&b, " (%d isolated partitions)", isolated)
	}
	fmt.Fprintf(&b, "; %d modules", s.store.len())
	return b.String()
}
