package supervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hyper-sched/hyper-sched/dispatch"
	"github.com/hyper-sched/hyper-sched/ipc"
	"github.com/hyper-sched/hyper-sched/isolate"
)

// Roles of the children: the supervisor re-executes its own binary with
// a title as argv[0] (childTitle), from which the child learns its role.
const (
	RoleWorker = "worker"
	RoleBenchd = "benchd"
)

// titlePrefix starts every child's argv[0], which is what ps shows, as
// nginx names its processes: "hyper-sched: worker-1 lane 0".
const titlePrefix = "hyper-sched: "

// childTitle is c's argv[0].
func childTitle(c *child) string {
	if c.core < 0 {
		return titlePrefix + c.name
	}
	return fmt.Sprintf("%s%s lane %d", titlePrefix, c.group, c.lane)
}

// ChildRole returns the role a child process was started for, read from
// its argv[0]; ok is false for the supervisor itself.
func ChildRole(argv0 string) (role string, ok bool) {
	rest, ok := strings.CutPrefix(argv0, titlePrefix)
	switch {
	case !ok:
		return "", false
	case rest == "benchd":
		return RoleBenchd, true
	case strings.HasPrefix(rest, "worker-"):
		return RoleWorker, true
	}
	return "", false
}

// ChildComm is the short name (/proc/PID/comm, at most 15 bytes) a child
// gives itself, for top and ps -e, which would otherwise show "exe".
func ChildComm(argv0 string) string {
	rest, _ := strings.CutPrefix(argv0, titlePrefix)
	rest = strings.Replace(rest, " lane ", ":", 1)
	return ("hs " + rest)[:min(15, 3+len(rest))]
}

// startSecs is supervisord's startsecs: an exit sooner than this after the
// start counts as a failed start. startRetries failed starts in a row make
// the child FATAL.
const (
	startSecs    = time.Second
	startRetries = 5
	helloTimeout = 10 * time.Second
)

// child is one supervised process: benchd or a worker. Fields below mu are
// guarded by the Supervisor's mu.
type child struct {
	name  string // "benchd", "worker-<cpu>:<lane>"
	group string // its cgroup, shared by a CPU's lanes: "benchd", "worker-<cpu>"
	role  string
	cpu   int   // worker CPU; -1 for benchd
	cpus  []int // affinity
	core  int   // index into the scheduler's cores; -1 for benchd
	lane  int   // lane index on its core
	log   *slog.Logger
	errs  ring // last stderr lines

	// guarded by Supervisor.mu
	state     State
	wanted    bool
	gen       int // incremented per spawn; stale exits are ignored
	pid       int
	out       *outbox
	nc        net.Conn
	proc      *os.Process
	started   time.Time
	failures  int // quick failures in a row
	restarts  int
	lastExit  string
	lp        *laneProc     // a worker lane's generation as the dispatcher knows it
	resultFor atomic.Uint64 // id of the last result read from the socket
	// killedByUs is set when the supervisor kills the process (a job past
	// its deadline, a benchd request past its limit) until its exit is seen.
	killedByUs atomic.Bool
	upAt       time.Time
	// tookJob is set when a job frame is sent to this generation: an exit
	// after it is that job's crash, never a failed start.
	tookJob atomic.Bool
	// loaded is what this generation of a worker lane has compiled (name →
	// sha256); nil while it is not up.
	loaded map[string]string
	// resourceFails counts starts in a row that failed for want of
	// descriptors or memory: retried with backoff, never FATAL.
	resourceFails int
	// errsAt is errs' line count when this generation started.
	errsAt uint64
	// loads are the installs waiting for this lane's Loaded answers, by
	// load id (install.go).
	loads map[uint64]chan *ipc.Loaded
}

// laneProc is one generation of a worker lane process, as the dispatcher
// drives it (dispatch.Lane). Signals go through os.Process, which uses a
// pidfd: a recycled pid is never signalled.
type laneProc struct {
	c    *child
	proc *os.Process
	out  *outbox
	nc   net.Conn
	pc   *pollConn // nil in tests without a socket of ours
	job  ipc.Job   // the frame of a job written at once (Start)
}

// directFrame is the most input bytes a job frame carries to be written
// by the dispatcher's caller (outbox.send); a larger one goes through the
// outbox goroutine.
const directFrame = 16 << 10

// Start sends t's job frame.
func (l *laneProc) Start(t *dispatch.Task) {
	tk := t.Payload.(*task)
	l.c.tookJob.Store(true)
	in := tk.in
	direct := len(in.stdin)+len(in.args)+len(in.env) <= directFrame
	if direct {
		// Written at once from the lane's own frame, reused: Start runs
		// under the dispatcher's lock, one job of a lane at a time.
		l.job = ipc.Job{ID: tk.id, Module: append(l.job.Module[:0], tk.module.Name...),
			Export: append(l.job.Export[:0], tk.export...), Params: tk.params, Stdin: in.stdin, Args: in.args, Env: in.env}
		direct = l.out.trySend(ipc.KindJob, &l.job)
	}
	if !direct {
		// Behind other frames, or so large its write would hold the
		// dispatcher while the lane reads it: the outbox's goroutine.
		l.out.push(ipc.KindJob, &ipc.Job{ID: tk.id, Module: []byte(tk.module.Name), Export: []byte(tk.export),
			Params: tk.params, Stdin: in.stdin, Args: in.args, Env: in.env})
	}
	if l.pc != nil {
		l.pc.kick() // its reader polls for the answer
	}
}

// Park tells the lane to stop polling for a job and block.
func (l *laneProc) Park() { l.out.send(ipc.KindPark, &ipc.Park{}) }

// Stop stops the lane's process.
func (l *laneProc) Stop() { l.signal(syscall.SIGSTOP) }

// Resume resumes it.
func (l *laneProc) Resume() { l.signal(syscall.SIGCONT) }

// Kill kills it; its exit is then an ordinary one, restarted at once. It
// is stopped at once, then put under SCHED_IDLE and killed off the
// dispatcher's path: its teardown (unmapping its heap and compiled code)
// runs on the worker CPU in its own context, and must not delay the lane
// that runs next there.
func (l *laneProc) Kill() {
	l.c.killedByUs.Store(true)
	l.signal(syscall.SIGSTOP)
	go func() {
		if err := isolate.SetIdlePolicy(l.proc.Pid); err != nil {
			l.c.log.Debug("kill: idle policy", "err", err)
		}
		l.c.kill(l.proc, "") // the call's answer says why, and finish logs it
	}()
}

func (l *laneProc) signal(sig os.Signal) {
	if l.proc == nil {
		return // a unit test's lane without a process
	}
	if err := l.proc.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		l.c.log.Warn("signal lane", "signal", sig, "err", err)
	}
}

// Finishing reports whether job id's result was read or waits unread in
// the socket: it ended, and a kill now would lose its answer.
func (l *laneProc) Finishing(id uint64) bool {
	return l.c.resultFor.Load() == id || pendingBytes(l.nc) > 0
}

// spawned is a started child process, before and after its hello.
type spawned struct {
	conn *ipc.Conn
	nc   net.Conn
	pc   *pollConn // nc, as conn reads it
	proc *os.Process
	wait chan error // receives cmd.Wait's result once
	// stderr is closed once the child's stderr is read to its end: its
	// last lines are in the log before its exit is.
	stderr chan struct{}
	// offCore: started on the housekeeping CPUs, to be placed (cgroup,
	// affinity, policy) once it is up (see spawn).
	offCore bool
	// unwatch stops closing the socket when the context ends.
	unwatch func() bool
}

// reap waits for the child's exit and for the rest of its stderr, which a
// process it left behind may hold open: that wait is bounded.
func (sp *spawned) reap() error {
	err := <-sp.wait
	sp.drain()
	return err
}

// drain waits, boundedly, for the end of the child's stderr.
func (sp *spawned) drain() {
	select {
	case <-sp.stderr:
	case <-time.After(stderrDrain):
	}
}

// stderrDrain bounds how long an exit waits for the child's stderr to end.
const stderrDrain = 2 * time.Second

// spawn starts the child process with one end of a socketpair as fd 3,
// sends the hello and waits for the child's. The child does nothing before
// the hello, so placing it (affinity, cgroup) first leaves no unconfined
// window. The process is c's (c.proc) from its start, so that a stop or a
// shutdown during the start kills it; the hello is bounded by
// helloTimeout. On an error the process is gone (killed and reaped).
//
// With offCore (a worker lane respawned while its CPU goes on with its
// other lanes) the child is instead started where the supervisor runs, on
// the housekeeping CPUs, and told no CPU: its runtime start and module
// loads (bringUp) must not take the worker CPU from the job running there,
// which admission does not charge for them. place confines it once it is
// up, before it joins its core; an idle lane starts no threads, so the
// per-thread policy walk has nothing to race with.
func (s *Supervisor) spawn(ctx context.Context, c *child, gen int, offCore bool) (*spawned, error) {
	// Out of descriptors, the reserve kept for this moment lets the child
	// start.
	var sp *spawned
	err := s.fds.retry(func() (err error) {
		sp, err = s.startChild(c, offCore)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("spawn %s: %w", c.name, err)
	}
	s.mu.Lock()
	if c.gen == gen {
		c.pid, c.proc, c.nc = sp.proc.Pid, sp.proc, sp.nc
	}
	s.mu.Unlock()
	// Shutdown may come at any time from now on: closing the socket is
	// the child's stop signal, and ends a start in progress.
	sp.unwatch = context.AfterFunc(ctx, func() { sp.nc.Close() })
	fail := func(err error) (*spawned, error) {
		sp.unwatch()
		c.kill(sp.proc, "")
		sp.nc.Close()
		sp.reap()
		return nil, fmt.Errorf("spawn %s: %w", c.name, err)
	}
	cpu := c.cpu
	if offCore {
		cpu = -1 // it must not pin itself before it is up
		// Its start must not slow the supervisor either, which shares the
		// housekeeping CPUs: SCHED_IDLE until it is placed, as benchd.
		if err := isolate.SetIdlePolicy(sp.proc.Pid); err != nil {
			c.log.Debug("warm-up idle policy", "err", err)
		}
	} else {
		if c.core >= 0 && s.nice.Load() != nil {
			// Set, not inherited: the supervisor's own nice changes with
			// its load (nice.go). Without a governor it is fixed, and
			// the lane inherits it.
			if err := isolate.SetNice(sp.proc.Pid, laneNice); err != nil {
				c.log.Warn("lane nice", "pid", sp.proc.Pid, "err", err)
			}
		}
		if err := s.place(c, sp.proc.Pid); err != nil {
			c.log.Warn("place child", "pid", sp.proc.Pid, "err", err)
		}
	}
	sp.nc.SetDeadline(time.Now().Add(helloTimeout))
	var spin time.Duration
	if c.core >= 0 {
		spin = max(s.cfg.WorkerSpin, 0)
	}
	if err := sp.conn.Write(ipc.KindHello, &ipc.Hello{Version: ipc.Version, Role: "supervisor",
		Proc: c.name, Pid: os.Getpid(), CPU: cpu, Engine: s.engineConfig(), Limits: s.limits(), SpinNs: spin.Nanoseconds()}); err != nil {
		return fail(err)
	}
	if _, err := ipc.ReadHello(sp.conn); err != nil {
		return fail(err)
	}
	sp.nc.SetDeadline(time.Time{})
	return sp, nil
}

// startChild starts c's process: a socketpair for its frames, a pipe for
// its stderr, its cgroup (born inside it on v2), its title. Every
// descriptor it made is closed again on an error.
func (s *Supervisor) startChild(c *child, offCore bool) (*spawned, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socketpair: %w", err)
	}
	mine := os.NewFile(uintptr(fds[0]), c.name+"-supervisor")
	theirs := os.NewFile(uintptr(fds[1]), c.name)
	defer theirs.Close()
	nc, err := net.FileConn(mine)
	mine.Close()
	if err != nil {
		return nil, err
	}
	// Our own pipe rather than cmd.StderrPipe, which Wait closes: the
	// child's last lines are read to the end after its exit.
	errR, errW, err := os.Pipe()
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("stderr pipe: %w", err)
	}
	defer errW.Close()
	// On cgroup v2 the child is born inside its cgroup (CLONE_INTO_CGROUP).
	pl := s.prepareChild(c)
	defer pl.Release()
	command := func() (*exec.Cmd, error) {
		cmd := exec.Command(s.cfg.Exe)
		cmd.Args = []string{childTitle(c)}
		cmd.ExtraFiles = []*os.File{theirs}
		cmd.Stderr = errW
		cmd.Env = []string{} // settings travel in the hello, not the environment
		// Pdeathsig fires when the forking thread exits; Cgroups.Start
		// forks from a thread that is never ended.
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if !offCore {
			pl.StartInside(cmd.SysProcAttr)
		}
		if offCore {
			return cmd, cmd.Start() // the supervisor's group, CPUs and policy
		}
		return cmd, s.iso.cgroups().Start(c.group, cmd, c.cpus)
	}
	cmd, err := command()
	if err != nil && cmd.SysProcAttr.UseCgroupFD && !isResourceErr(err) {
		// clone3 refused (ENOSYS from a seccomp filter such as systemd's
		// RestrictNamespaces=): start outside, place moves the child in
		// before its hello.
		s.startFailedInside(c, err)
		pl.Release()
		cmd, err = command()
	}
	if err != nil {
		nc.Close()
		errR.Close()
		return nil, err
	}
	var spin time.Duration
	if c.core >= 0 {
		spin = min(max(s.cfg.WorkerSpin, 0), resultSpin)
	}
	pc := newPollConn(nc, spin)
	pc.quiet = &s.quiet
	sp := &spawned{conn: ipc.NewConn(pc, 0), nc: nc, pc: pc, proc: cmd.Process, wait: make(chan error, 1),
		stderr: make(chan struct{}), offCore: offCore}
	sp.conn.SetLimits(s.limits())
	go forward(c, errR, sp.stderr)
	go func() {
		awaitExit(cmd.Process) // not in waitid, which would hold the P
		sp.wait <- cmd.Wait()
	}()
	return sp, nil
}

// isResourceErr reports whether err is the system running short of
// descriptors, memory or processes: a start that failed for it is retried
// with a growing delay, and does not count towards FATAL.
func isResourceErr(err error) bool {
	for _, e := range []syscall.Errno{unix.EMFILE, unix.ENFILE, unix.ENOMEM, unix.EAGAIN, unix.ENOBUFS} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// kill is the one way the supervisor kills a child process: SIGKILL
// through the process's pidfd, so a recycled pid is never hit. why, when
// not empty, is logged; the exit is reaped by the child's supervise loop
// (spawned.reap), which knows from killedByUs that it was ours.
func (c *child) kill(proc *os.Process, why string) {
	if proc == nil {
		return
	}
	c.killedByUs.Store(true)
	if why != "" {
		c.log.Info("killing", "pid", proc.Pid, "why", why)
	}
	if err := proc.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		c.log.Warn("kill", "pid", proc.Pid, "err", err)
	}
}

// place confines a freshly started child before its hello, which it waits
// for before doing anything: into its cgroup where it was not born there
// (v1), pinned to its CPUs (the floor of the ladder), and SCHED_FIFO where
// wanted (isolation.go). The child was born with its policy and affinity
// (Cgroups.Start), so this checks and repairs.
func (s *Supervisor) place(c *child, pid int) error {
	if s.iso.cgroups() == nil {
		return isolate.SetAffinity(pid, c.cpus)
	}
	return s.iso.cgroups().Place(c.group, pid)
}
