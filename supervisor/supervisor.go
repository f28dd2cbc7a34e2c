// Package supervisor is hyper-sched's main process: it chooses the worker
// CPUs, starts and restarts benchd and one coreworker per CPU, owns every
// piece of scheduling state (admission, per-core EDF queues, estimates),
// kills a worker whose job passes its firm deadline, keeps the module store,
// and serves the HTTP API.
//
// Workers and benchd are executors; nothing they hold is needed to answer a
// call, so losing one loses at most its running job.
package supervisor

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hyper-sched/hyper-sched/dispatch"
	"github.com/hyper-sched/hyper-sched/httpapi"
	"github.com/hyper-sched/hyper-sched/ipc"
	"github.com/hyper-sched/hyper-sched/isolate"
	"github.com/hyper-sched/hyper-sched/sched"
)

// Config is the supervisor's configuration. The zero value of each field
// means its default.
type Config struct {
	Listen     string // HTTP address; default 127.0.0.1:3001
	StateDir   string // modules and calibrations; default /var/lib/hyper-sched
	CacheDir   string // wazero compilation cache; default /var/cache/hyper-sched
	RuntimeDir string // control socket; default /run/hyper-sched
	CPUs       []int  // worker CPUs; nil = DESIGN.md §1 rules
	Exe        string // binary re-executed for children; default /proc/self/exe

	// Grace is how long past its deadline a running job may go before its
	// lane is killed: timer slack. Default 2ms.
	Grace time.Duration
	// KillCost is how long after that kill admission assumes the core is
	// still taken: the kill, the killed lane's teardown, waking the next
	// lane. Default 2ms (docs/benchmarks.md: deadline kill → next job).
	KillCost time.Duration
	// DispatchOverhead is added to every deadline job's estimate in the
	// admission test: the supervisor→worker→supervisor round trip, which
	// the worker's measured run time does not contain. Zero, the default:
	// measured on each core when the daemon starts (probe.go), with
	// fallbackOverhead until then, and the wake-up of a core whose lanes
	// sleep measured and charged with it.
	DispatchOverhead time.Duration
	// WorkerSpin is how long a lane polls its socket for the next job
	// after answering one before it sleeps: on its own CPU, a lane that
	// sleeps makes the next job wait for the CPU to wake (DESIGN.md §2a).
	// Negative: never. Default 300µs.
	WorkerSpin time.Duration
	// BestEffortCap bounds a call without a deadline (run time). Default 1s.
	BestEffortCap time.Duration
	// Lanes is the number of lane processes per worker CPU: the depth of
	// preemption (DESIGN.md §2a). 1 is the non-preemptive mode. Default 3.
	Lanes int
	// Quantum is the best-effort round-robin time slice. Default 10ms.
	Quantum time.Duration
	// PreemptCost is charged to a call that preempts another: waking a
	// lane, stopping one, resuming it later. Default 500µs, the p99 of wake
	// plus resume measured on the 2-vCPU VM (docs/preemption.md).
	PreemptCost time.Duration
	// MemoryLimitPages caps each instance's linear memory (64 KiB pages).
	// Default 4096 (256 MiB).
	MemoryLimitPages uint32
	// MaxUpload bounds a module upload. Default 32 MiB; it must stay below
	// the IPC frame cap, since modules travel to children in one frame.
	MaxUpload int64
	// MaxInput bounds a call's stdin (input, input_base64, the body of
	// /run), and MaxOutput what is kept of its stdout and, separately, of
	// its stderr. Default 1 MiB each; at most ipc.MaxIO (30 MiB).
	MaxInput, MaxOutput int
	// CalibrationBudget bounds the measuring of one call in benchd; a call
	// still running at twice this (plus a second) gets benchd killed.
	// Default 2s.
	CalibrationBudget time.Duration

	// ControlGroup, a group name or number, may use the control socket
	// besides root and the daemon's user; the socket is then mode 0660
	// owned by it. Default: none, mode 0600.
	ControlGroup string
	// LogRing, if not nil, holds the daemon's last log lines for
	// hyper-schedctl maintail; Log should write through LogRing.Handler.
	LogRing *LogRing
	// Version is reported by hyper-schedctl version. Default "dev".
	Version string

	// MaxModules bounds the registered modules. Default 1000.
	MaxModules int
	// MaxInFlight bounds the calls admitted and not yet answered; beyond
	// it a call is answered 503 at once. Default 10000.
	MaxInFlight int

	// Isolation is the best rung of the isolation ladder to try
	// (cgroup2, cgroup1-cpuset, affinity). Default cgroup2.
	Isolation isolate.Mode
	// RealTime decides SCHED_FIFO for workers on dedicated CPUs: auto (on
	// where the CPU is isolated), on, off. Default auto.
	RealTime isolate.RealTime
	// WorkerMemoryMax, if positive, caps each worker's memory (cgroup v2
	// memory.max, bytes). Default 0: none.
	WorkerMemoryMax int64
	// CgroupName names the group created when run by hand:
	// /sys/fs/cgroup/<name>. Default "hyper-sched".
	CgroupName string

	// Token, when set, is required as a bearer token by /register, /test
	// and DELETE /modules/… (httpapi.Options.Token).
	Token string
	// InitDir, when set, lets GET /init register the files under it
	// (httpapi.Options.InitDir); it must be an existing directory.
	// Default "": /init is off.
	InitDir string
	// NodeName, when set, is sent as the Hyper-Node header of every HTTP
	// answer (httpapi.Options.Node): which node of a fleet answered.
	NodeName string
	// ModuleDir, when set, is a read-only directory of .wasm files kept
	// registered (moduledir.go); default "": none.
	ModuleDir string
	// ModuleDirInterval is how often ModuleDir is scanned; default 2s.
	ModuleDirInterval time.Duration

	// MaxConnections bounds the HTTP connections open at once; one more
	// is answered 503 and closed (httpapi.LimitListener). Default 4096,
	// lowered at start to what RLIMIT_NOFILE leaves once the daemon's own
	// descriptors are counted (connectionCap).
	MaxConnections int
	// IdleTimeout closes a keep-alive connection idle this long. Default
	// 90s: longer than the 60s nginx and HAProxy keep idle upstream
	// connections, so a proxy, not the daemon, closes them.
	IdleTimeout time.Duration
	// ReadTimeout bounds reading a request, its head and its body (Go's
	// http.Server.ReadTimeout); the answer is not bounded by it, so a
	// call may run longer. Default 30s.
	ReadTimeout time.Duration

	Log *slog.Logger // default: discard
}

// Defaults is the Config that a zero field stands for; the daemon's flags
// show the same values.
func Defaults() Config {
	return Config{
		Listen:            "127.0.0.1:3001",
		StateDir:          "/var/lib/hyper-sched",
		CacheDir:          "/var/cache/hyper-sched",
		RuntimeDir:        "/run/hyper-sched",
		Exe:               "/proc/self/exe",
		Grace:             2 * time.Millisecond,
		KillCost:          2 * time.Millisecond,
		WorkerSpin:        300 * time.Microsecond,
		BestEffortCap:     time.Second,
		Lanes:             3,
		Quantum:           10 * time.Millisecond,
		PreemptCost:       500 * time.Microsecond,
		MemoryLimitPages:  4096,
		MaxUpload:         32 << 20,
		MaxInput:          ipc.DefaultMaxIO,
		MaxOutput:         ipc.DefaultMaxIO,
		CalibrationBudget: 2 * time.Second,
		MaxModules:        1000,
		MaxInFlight:       10000,
		MaxConnections:    4096,
		IdleTimeout:       90 * time.Second,
		ReadTimeout:       30 * time.Second,
		Version:           "dev",
		Log:               slog.New(slog.DiscardHandler),
	}
}

func (c Config) withDefaults() (Config, error) {
	d := Defaults()
	c.Listen = cmp.Or(c.Listen, d.Listen)
	c.StateDir = cmp.Or(c.StateDir, d.StateDir)
	c.CacheDir = cmp.Or(c.CacheDir, d.CacheDir)
	c.RuntimeDir = cmp.Or(c.RuntimeDir, d.RuntimeDir)
	c.Exe = cmp.Or(c.Exe, d.Exe)
	c.ModuleDirInterval = cmp.Or(c.ModuleDirInterval, 2*time.Second)
	if c.ModuleDirInterval < 0 {
		return c, fmt.Errorf("config: module dir interval %v is negative", c.ModuleDirInterval)
	}
	c.Grace = cmp.Or(c.Grace, d.Grace)
	c.KillCost = cmp.Or(c.KillCost, d.KillCost)
	c.WorkerSpin = cmp.Or(c.WorkerSpin, d.WorkerSpin)
	c.BestEffortCap = cmp.Or(c.BestEffortCap, d.BestEffortCap)
	c.Lanes = cmp.Or(c.Lanes, d.Lanes)
	c.Quantum = cmp.Or(c.Quantum, d.Quantum)
	c.PreemptCost = cmp.Or(c.PreemptCost, d.PreemptCost)
	c.MemoryLimitPages = cmp.Or(c.MemoryLimitPages, d.MemoryLimitPages)
	c.MaxUpload = cmp.Or(c.MaxUpload, d.MaxUpload)
	c.MaxInput = cmp.Or(c.MaxInput, d.MaxInput)
	c.MaxOutput = cmp.Or(c.MaxOutput, d.MaxOutput)
	c.CalibrationBudget = cmp.Or(c.CalibrationBudget, d.CalibrationBudget)
	c.MaxModules = cmp.Or(c.MaxModules, d.MaxModules)
	c.MaxInFlight = cmp.Or(c.MaxInFlight, d.MaxInFlight)
	c.MaxConnections = cmp.Or(c.MaxConnections, d.MaxConnections)
	c.IdleTimeout = cmp.Or(c.IdleTimeout, d.IdleTimeout)
	c.ReadTimeout = cmp.Or(c.ReadTimeout, d.ReadTimeout)
	c.Version = cmp.Or(c.Version, d.Version)
	if c.Log == nil {
		c.Log = d.Log
	}
	if c.MaxConnections < 0 || c.IdleTimeout < 0 || c.ReadTimeout < 0 {
		return c, errors.New("config: max connections, idle timeout and read timeout must not be negative")
	}
	if c.MaxModules < 0 || c.MaxInFlight < 0 || c.Grace < 0 || c.KillCost < 0 || c.DispatchOverhead < 0 || c.BestEffortCap < 0 || c.Quantum < 0 || c.PreemptCost < 0 || c.MaxUpload < 0 || c.CalibrationBudget < 0 {
		return c, errors.New("config: durations and sizes must not be negative")
	}
	if c.Lanes < 1 || c.Lanes > sched.MaxLanes {
		return c, fmt.Errorf("config: lanes %d not in [1, %d]", c.Lanes, sched.MaxLanes)
	}
	if c.MaxInput < 0 || c.MaxOutput < 0 || c.MaxInput > ipc.MaxIO || c.MaxOutput > ipc.MaxIO {
		return c, fmt.Errorf("config: max input %d and max output %d must be from 1 to %d bytes", c.MaxInput, c.MaxOutput, ipc.MaxIO)
	}
	if c.MaxUpload > ipc.DefaultMaxFrame-4096 {
		return c, fmt.Errorf("config: max upload %d exceeds the IPC frame cap", c.MaxUpload)
	}
	if err := checkInitDir(c.InitDir); err != nil {
		return c, err
	}
	return c, nil
}

// limits are the bounds of a call's input and output on the wire, sent to
// every child in its hello.
func (s *Supervisor) limits() ipc.Limits {
	return ipc.Limits{MaxInput: s.cfg.MaxInput, MaxOutput: s.cfg.MaxOutput}
}

// Supervisor is the running daemon. Create it with New, run it with Run.
type Supervisor struct {
	cfg    Config
	log    *slog.Logger
	epoch  time.Time
	mono0  int64 // CLOCK_MONOTONIC at epoch (monoOf)
	choice isolate.Choice
	store  *store
	bench  benchClient
	met    *metrics
	iso    isolation // cgroups and systemd notify; isolation.go
	// nice sets the supervisor's nice by the calls in hand (nice.go);
	// nil until startIsolation, and when the nice cannot be set. Atomic:
	// the control socket serves /status before startIsolation.
	nice atomic.Pointer[niceGovernor]

	disp    *dispatch.Dispatcher // admission, lanes, deadlines; its own lock
	mu      sync.Mutex           // guards everything below, and child fields; taken before disp's
	est     *sched.Estimator
	workers []*child // lanes, by core then lane (Supervisor.lane)
	benchd  *child
	tasks   map[uint64]*task // in flight
	names   map[string]*task // in-flight unique names
	recent  recentTasks      // finished, for /uname
	// unrecorded are finished calls not yet in recent and warm
	// (recordFinished).
	unrecorded []finishedCall
	nextID     uint64
	wake       chan struct{} // closed and replaced when a child changes state
	shutting   bool
	count      counters
	warm       warmStats
	ready      bool
	// starts are the last lane start times; their maximum is what
	// admission charges a kill that leaves a core without a lane.
	starts []time.Duration
	// overhead is the dispatch overhead charged to every deadline job
	// (Config.DispatchOverhead, or measured: probing), ns.
	overhead atomic.Int64
	// quiet is half the fastest round trip measured on any core, ns:
	// how long after sending a job its lane's socket is not polled
	// (pollConn).
	quiet      atomic.Int64
	probing    bool
	probed     []bool       // by core: its hop is measured, or being measured
	probingNow []bool       // by core: a lane measures its hop now
	probes     []probeCosts // every core's measurement

	// remeasured holds when a refused shape was last sent to be measured
	// again (remeasure).
	remeasured map[string]time.Time
	// calib holds the calibrations in flight, shared by concurrent
	// callers, and the bounded background queue (calibqueue.go). It has
	// its own lock.
	calib calibrator
	// fds are descriptors kept for starting children when the process has
	// no others left (fdreserve.go).
	fds fdReserve
	// installing holds the modules being loaded on the running lanes
	// (installOnWorkers) before they are served: a lane that starts
	// meanwhile loads them too.
	installing map[string]*Module
	installMu  sync.Mutex // one install at a time: a lane has one hold
	reload     reloads    // SIGHUP requests, coalesced
	// installHook, if not nil, is called first by installOnWorkers, and
	// an error it returns is the install's. Tests inject failures with
	// it; nil in the daemon.
	installHook func(m *Module) error
	// mdir keeps Config.ModuleDir registered (moduledir.go); nil without
	// one.
	mdir *moduleDir
}

// New validates cfg, chooses CPUs and opens the state dir. Nothing is
// started until Run.
func New(cfg Config) (*Supervisor, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	allowed, err := isolate.Allowed()
	if err != nil {
		return nil, err
	}
	choice, err := isolate.Choose(cfg.CPUs, isolate.Isolated(), allowed)
	if err != nil {
		return nil, err
	}
	for _, d := range []string{cfg.StateDir, cfg.CacheDir, cfg.RuntimeDir} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return nil, fmt.Errorf("create %s: %w", d, err)
		}
	}
	st, errs := openStore(cfg.StateDir)
	for _, e := range errs {
		cfg.Log.Error("module store", "err", e)
	}
	disp, err := dispatch.New(dispatch.Config{Cores: len(choice.Workers), Grace: cfg.Grace, Spin: max(cfg.WorkerSpin, 0), Sched: sched.Config{
		BestEffortCap: cfg.BestEffortCap.Nanoseconds(),
		// From a deadline until the core runs something else: the timer's
		// grace, then the kill itself.
		Grace:       (cfg.Grace + cfg.KillCost).Nanoseconds(),
		Lanes:       cfg.Lanes,
		Quantum:     cfg.Quantum.Nanoseconds(),
		PreemptCost: cfg.PreemptCost.Nanoseconds(),
	}})
	if err != nil {
		return nil, err
	}
	epoch := time.Now()
	// Learned estimates age: an outlier stops counting after MaxAge.
	est, err := sched.NewEstimator(sched.EstimatorConfig{Now: func() int64 { return time.Since(epoch).Nanoseconds() }})
	if err != nil {
		return nil, err
	}
	s := &Supervisor{
		cfg: cfg, log: cfg.Log, epoch: epoch, mono0: ipc.Monotonic(), choice: choice, store: st,
		disp: disp, est: est, tasks: map[uint64]*task{}, names: map[string]*task{},
		wake: make(chan struct{}),
	}
	s.bench.s = s
	s.recent.init(recentKeep)
	s.overhead.Store(int64(cmp.Or(cfg.DispatchOverhead, fallbackOverhead)))
	s.probing, s.probed = cfg.DispatchOverhead == 0, make([]bool, len(choice.Workers))
	s.probingNow = make([]bool, len(choice.Workers))
	for i, cpu := range choice.Workers {
		group := fmt.Sprintf("worker-%d", cpu)
		for lane := range cfg.Lanes {
			name := fmt.Sprintf("%s:%d", group, lane)
			s.workers = append(s.workers, &child{name: name, group: group, role: RoleWorker, cpu: cpu, cpus: []int{cpu},
				core: i, lane: lane, log: cfg.Log.With("proc", name, "cpu", cpu), wanted: true})
		}
	}
	s.benchd = &child{name: "benchd", group: "benchd", role: RoleBenchd, cpu: -1, cpus: choice.Housekeeping, core: -1,
		log: cfg.Log.With("proc", "benchd"), wanted: true}
	s.met = newMetrics(s)
	if cfg.ModuleDir != "" {
		if fi, err := os.Stat(cfg.ModuleDir); err != nil || !fi.IsDir() {
			if err == nil {
				err = errors.New("not a directory")
			}
			return nil, fmt.Errorf("config: module dir %s: %w", cfg.ModuleDir, cutPathErr(err))
		}
		s.mdir = newModuleDir(s)
	}
	for _, m := range st.all() {
		s.seedEstimates(m)
	}
	return s, nil
}

// Run starts the children and serves HTTP until ctx ends, then shuts down:
// new calls are refused, admitted calls are answered, children stopped.
func (s *Supervisor) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	return s.Serve(ctx, ln)
}

// Serve is Run on an existing listener.
func (s *Supervisor) Serve(ctx context.Context, ln net.Listener) error {
	ctx, shutdown := context.WithCancel(ctx) // also hyper-schedctl shutdown
	defer shutdown()
	ctl, err := s.listenControl(shutdown)
	if err != nil {
		ln.Close()
		return err
	}
	defer ctl.close() // last: status works while calls drain
	go ctl.serve()
	s.log.Info("starting", "listen", ln.Addr().String(), "workers", isolate.FormatList(s.choice.Workers),
		"housekeeping", isolate.FormatList(s.choice.Housekeeping), "cpus_from", s.choice.Source,
		"modules", s.store.len())
	if tcp, ok := ln.Addr().(*net.TCPAddr); ok && !tcp.IP.IsLoopback() && s.cfg.Token == "" {
		s.log.Warn("listening beyond loopback without an API token: anyone who can reach " + ln.Addr().String() +
			" can register and delete modules; set --token-file")
	}
	defer s.startIsolation(ctx)() // cgroups, pinning, sd_notify; undone once the children are gone
	childCtx, stopChildren := context.WithCancel(context.Background())
	defer s.calib.stop() // background calibrations; runs after the children are gone
	var wg sync.WaitGroup
	for _, c := range s.children() {
		wg.Add(1)
		go func() { defer wg.Done(); s.supervise(childCtx, c) }()
	}
	if s.mdir != nil {
		go s.mdir.run(ctx) // ends with ctx, before the children stop
	}
	maxConns, nofile := connectionCap(s.cfg.MaxConnections, len(s.children()))
	if maxConns < s.cfg.MaxConnections {
		s.log.Warn("--max-connections lowered to what RLIMIT_NOFILE leaves; raise LimitNOFILE= (ulimit -n) for more",
			"max_connections", maxConns, "asked", s.cfg.MaxConnections, "nofile", nofile)
	}
	// ReadTimeout, not WriteTimeout nor a deadline per request: it bounds
	// the head and the body of a request from its first byte (a body sent
	// at 1 B/s is cut), and net/http lifts it once the handler has read the
	// body to its end, so a call that runs longer than it is answered.
	srv := &http.Server{
		Handler: httpapi.New(s, httpapi.Options{MaxUpload: s.cfg.MaxUpload, Log: s.log, URL: "http://" + ln.Addr().String(), Token: s.cfg.Token,
			Metrics: s.met.handler(), Uploads: httpapi.NewUploads(s.store.uploads, httpapi.FormCap(s.cfg.MaxUpload)),
			InitDir: s.cfg.InitDir, MaxInput: s.cfg.MaxInput, Node: s.cfg.NodeName}),
		ReadHeaderTimeout: min(10*time.Second, s.cfg.ReadTimeout),
		ReadTimeout:       s.cfg.ReadTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
	}
	ln = httpapi.LimitListener(ln, maxConns, s.log)
	srvErr := make(chan error, 1)
	go func() { srvErr <- srv.Serve(ln) }()

	select {
	case <-ctx.Done():
	case err := <-srvErr:
		stopChildren()
		wg.Wait()
		return fmt.Errorf("serve http: %w", err)
	}
	s.log.Info("shutting down")
	s.mu.Lock()
	s.shutting = true
	s.mu.Unlock()
	// Admitted calls finish (they are bounded by their deadlines or the
	// best-effort cap); the HTTP server waits for their handlers.
	shCtx, cancel := context.WithTimeout(context.Background(), s.cfg.BestEffortCap+10*time.Second)
	defer cancel()
	srv.Shutdown(shCtx)
	s.mu.Lock()
	s.disp.Abort("stopped before this call could finish")
	s.benchd.wanted = false
	for _, w := range s.workers {
		w.wanted = false
	}
	s.mu.Unlock()
	stopChildren()
	s.killChildren()
	wg.Wait()
	return nil
}

func (s *Supervisor) engineConfig() ipc.EngineConfig {
	return ipc.EngineConfig{CacheDir: filepath.Join(s.cfg.CacheDir, "wazero"), MemoryLimitPages: s.cfg.MemoryLimitPages}
}

// monoOf returns t on CLOCK_MONOTONIC, the clock lanes report in
// (ipc.Result.StartMono).
func (s *Supervisor) monoOf(t time.Time) int64 { return s.mono0 + t.Sub(s.epoch).Nanoseconds() }

// broadcast wakes everyone waiting on a child state change; s.mu held.
func (s *Supervisor) broadcast() {
	close(s.wake)
	s.wake = make(chan struct{})
}

// children returns benchd and the workers, in status order. The slice is
// fresh; the children are fixed after New.
func (s *Supervisor) children() []*child {
	return append([]*child{s.benchd}, s.workers...)
}

// killChildren kills every child still running.
func (s *Supervisor) killChildren() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.children() {
		if c.nc != nil {
			c.nc.Close() // EOF: a clean stop for the child
		}
		c.kill(c.proc, "")
	}
}
