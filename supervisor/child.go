package supervisor

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hyper-sched/hyper-sched/dispatch"
	"github.com/hyper-sched/hyper-sched/ipc"
	"github.com/hyper-sched/hyper-sched/isolate"
)

// Roles are the hidden first arguments with which the supervisor re-executes
// its own binary.
const (
	RoleWorker = "__coreworker"
	RoleBenchd = "__benchd"
)

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
}

// laneProc is one generation of a worker lane process, as the dispatcher
// drives it (dispatch.Lane). Signals go through os.Process, which uses a
// pidfd: a recycled pid is never signalled.
type laneProc struct {
	c    *child
	proc *os.Process
	out  *outbox
	nc   net.Conn
}

// Start sends t's job frame.
func (l *laneProc) Start(t *dispatch.Task) {
	tk := t.Payload.(*task)
	l.out.push(ipc.KindJob, &ipc.Job{ID: tk.id, Module: []byte(tk.module.Name), Export: []byte(tk.export), Params: tk.params})
}

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
		l.signal(syscall.SIGKILL)
	}()
}

func (l *laneProc) signal(sig os.Signal) {
	if err := l.proc.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		l.c.log.Warn("signal lane", "signal", sig, "err", err)
	}
}

// Finishing reports whether job id's result was read or waits unread in
// the socket: it ended, and a kill now would lose its answer.
func (l *laneProc) Finishing(id uint64) bool {
	return l.c.resultFor.Load() == id || pendingBytes(l.nc) > 0
}

// spawned is a child process that answered its hello.
type spawned struct {
	conn *ipc.Conn
	nc   net.Conn
	proc *os.Process
	wait chan error // receives cmd.Wait's result once
	// offCore: started on the housekeeping CPUs, to be placed (cgroup,
	// affinity, policy) once it is up (see spawn).
	offCore bool
}

// abort kills a spawned child that will not be served and waits for its exit.
func (sp *spawned) abort() {
	sp.proc.Kill()
	sp.nc.Close()
	<-sp.wait
}

// spawn starts the child process with one end of a socketpair as fd 3,
// sends the hello and waits for the child's. The child does nothing before
// the hello, so placing it (affinity, cgroup) first leaves no unconfined
// window.
//
// With offCore (a worker lane respawned while its CPU goes on with its
// other lanes) the child is instead started where the supervisor runs, on
// the housekeeping CPUs, and told no CPU: its runtime start and module
// loads (bringUp) must not take the worker CPU from the job running there,
// which admission does not charge for them. place confines it once it is
// up, before it joins its core; an idle lane starts no threads, so the
// per-thread policy walk has nothing to race with.
func (s *Supervisor) spawn(ctx context.Context, c *child, offCore bool) (*spawned, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("spawn %s: socketpair: %w", c.name, err)
	}
	mine := os.NewFile(uintptr(fds[0]), c.name+"-supervisor")
	theirs := os.NewFile(uintptr(fds[1]), c.name)
	defer theirs.Close()
	nc, err := net.FileConn(mine)
	mine.Close()
	if err != nil {
		return nil, fmt.Errorf("spawn %s: %w", c.name, err)
	}
	// On cgroup v2 the child is born inside its cgroup (CLONE_INTO_CGROUP).
	pl := s.prepareChild(c)
	defer pl.Release()
	command := func() (*exec.Cmd, io.ReadCloser, error) {
		cmd := exec.Command(s.cfg.Exe, c.role)
		cmd.ExtraFiles = []*os.File{theirs}
		cmd.Env = []string{} // settings travel in the hello, not the environment
		// Pdeathsig fires when the forking thread exits; Cgroups.Start
		// forks from a thread that is never ended.
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if !offCore {
			pl.StartInside(cmd.SysProcAttr)
		}
		stderr, err := cmd.StderrPipe()
		switch {
		case err != nil:
		case offCore:
			err = cmd.Start() // the supervisor's group, CPUs and policy
		default:
			err = s.iso.cg.Start(c.group, cmd, c.cpus)
		}
		return cmd, stderr, err
	}
	cmd, stderr, err := command()
	if err != nil && cmd.SysProcAttr.UseCgroupFD {
		// clone3 refused (ENOSYS from a seccomp filter such as systemd's
		// RestrictNamespaces=): start outside, place moves the child in
		// before its hello.
		s.startFailedInside(c, err)
		pl.Release()
		cmd, stderr, err = command()
	}
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("spawn %s: %w", c.name, err)
	}
	pl.Release()
	go forward(c, stderr)
	sp := &spawned{conn: ipc.NewConn(nc, 0), nc: nc, proc: cmd.Process, wait: make(chan error, 1), offCore: offCore}
	go func() { sp.wait <- cmd.Wait() }()

	fail := func(err error) (*spawned, error) {
		sp.abort()
		return nil, fmt.Errorf("spawn %s: %w", c.name, err)
	}
	cpu := c.cpu
	if offCore {
		cpu = -1 // it must not pin itself before it is up
		// Its start must not slow the supervisor either, which shares the
		// housekeeping CPUs: SCHED_IDLE until it is placed, as benchd.
		if err := isolate.SetIdlePolicy(cmd.Process.Pid); err != nil {
			c.log.Debug("warm-up idle policy", "err", err)
		}
	} else if err := s.place(c, cmd.Process.Pid); err != nil {
		c.log.Warn("place child", "pid", cmd.Process.Pid, "err", err)
	}
	nc.SetDeadline(time.Now().Add(helloTimeout))
	if err := sp.conn.Write(ipc.KindHello, &ipc.Hello{Version: ipc.Version, Role: "supervisor",
		Proc: c.name, Pid: os.Getpid(), CPU: cpu, Engine: s.engineConfig()}); err != nil {
		return fail(err)
	}
	if _, err := ipc.ReadHello(sp.conn); err != nil {
		return fail(err)
	}
	nc.SetDeadline(time.Time{})
	return sp, nil
}

// forward copies a child's stderr lines into the supervisor's log, tagged
// with the child's name, and into its ring for status and tail.
func forward(c *child, r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 64<<10)
	for sc.Scan() {
		line := sc.Text()
		c.errs.add(line)
		c.log.Info("child stderr", "line", line)
	}
}

// place confines a freshly started child before its hello, which it waits
// for before doing anything: into its cgroup where it was not born there
// (v1), pinned to its CPUs (the floor of the ladder), and SCHED_FIFO where
// wanted (isolation.go). The child was born with its policy and affinity
// (Cgroups.Start), so this checks and repairs.
func (s *Supervisor) place(c *child, pid int) error {
	if s.iso.cg == nil {
		return isolate.SetAffinity(pid, c.cpus)
	}
	return s.iso.cg.Place(c.group, pid)
}
