// Command hyper-sched runs the hyper-sched daemon: the supervisor, which
// serves the HTTP API and re-executes this binary with a hidden role
// argument to start benchd and one coreworker per worker CPU.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"
	"unicode"

	"github.com/hyper-sched/hyper-sched/benchd"
	"github.com/hyper-sched/hyper-sched/coreworker"
	"github.com/hyper-sched/hyper-sched/internal/rawsock"
	"github.com/hyper-sched/hyper-sched/isolate"
	"github.com/hyper-sched/hyper-sched/supervisor"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	// A child is started with a title as argv[0] ("hyper-sched: worker-1
	// lane 0"), which ps shows, and which says its role.
	if role, ok := supervisor.ChildRole(os.Args[0]); ok {
		os.Exit(child(context.Background(), role, os.Args[0], os.Stderr))
	}
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(supervisorGCPercent)
	}
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// supervisorGCPercent is the supervisor's GOGC unless the environment sets
// one. Its live heap is ~6 MB, most of it /uname's last 10,000 timelines,
// and a call allocates ~8 KB: at the default 100 the collector marked that
// heap every ~600 calls, 4.9 µs of the housekeeping CPU a call, which a
// client sharing that CPU waited through; at 400, 1.5 µs, for a heap of
// ~30 MB (docs/benchmarks.md, "Third pass"). Children set their own
// (package session).
const supervisorGCPercent = 400

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, logLevel, err := parseFlags(args, stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errShowVersion):
		fmt.Fprintln(stdout, "hyper-sched", version)
		return 0
	case err != nil:
		fmt.Fprintln(stderr, "hyper-sched:", err)
		return 2
	}
	cfg.LogRing = &supervisor.LogRing{} // hyper-schedctl maintail
	cfg.Log = slog.New(cfg.LogRing.Handler(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: logLevel})))
	cfg.Version = version
	// Registered before New so that an early SIGHUP does not kill the daemon.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	s, err := supervisor.New(cfg)
	if err != nil {
		cfg.Log.Error("start", "err", err)
		return 1
	}
	ctx, shutdown := context.WithCancel(ctx)
	defer shutdown()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	// The first SIGTERM or SIGINT shuts down cleanly: every admitted call
	// is answered first. A second one, or a shutdown longer than any call
	// may run, exits at once; children die with us (Pdeathsig).
	var force <-chan time.Time
	for {
		select {
		case err := <-done:
			if err != nil {
				cfg.Log.Error("run", "err", err)
				return 1
			}
			return 0
		case <-force:
			cfg.Log.Error("shutdown took too long; exiting now")
			return 1
		case sig := <-sigs:
			switch {
			case sig == syscall.SIGHUP:
				s.RequestReload()
			case force == nil:
				cfg.Log.Info("signal: shutting down; send it again to exit at once", "signal", sig.String())
				shutdown()
				force = time.After(max(cfg.BestEffortCap, time.Second) + 30*time.Second)
			default:
				cfg.Log.Warn("second signal: exiting now", "signal", sig.String())
				return 1
			}
		}
	}
}

// child runs a hidden role on the socket the supervisor passed as fd 3.
// Children log to stderr, which the supervisor forwards with their name.
func child(ctx context.Context, role, title string, stderr io.Writer) int {
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	// The process name top and ps -e show, which would be "exe" (the
	// supervisor starts /proc/self/exe).
	if err := os.WriteFile("/proc/self/comm", []byte(supervisor.ChildComm(title)), 0); err != nil {
		log.Debug("set process name", "err", err)
	}
	f := os.NewFile(3, "supervisor")
	if f == nil {
		fmt.Fprintln(stderr, "hyper-sched: no supervisor socket on fd 3; this role is started by the supervisor")
		return 2
	}
	conn := supervisorConn(f)
	// The supervisor closing the socket is the stop signal; SIGTERM from a
	// process-group kill is ignored so that in-flight work ends cleanly.
	signal.Ignore(syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	if role == supervisor.RoleWorker {
		return coreworker.Run(ctx, conn, log)
	}
	return benchd.Run(ctx, conn, log)
}

// supervisorConn makes the socket on fd 3 a connection whose reads and
// writes are raw system calls and that waits in the runtime's poller
// (rawsock). As the blocking descriptor os/exec hands a child, every read
// that waited for the next frame was a read(2) in the runtime's syscall
// state: its P was handed to another thread, the frame that ended the wait
// was run on that thread after a wake-up, and the lane's sysmon, woken,
// checked on the process every 20 µs for a millisecond, taking the CPU
// from the spinning lane each time (docs/benchmarks.md, "Sixth pass"). A
// descriptor that is not a socket is used as it is.
func supervisorConn(f *os.File) io.ReadWriter {
	nc, err := net.FileConn(f) // a non-blocking duplicate, in the poller
	if err != nil {
		return f
	}
	f.Close()
	return rawsock.Wrap(nc)
}

// errShowVersion is parseFlags' answer to --version: print the version
// and exit 0.
var errShowVersion = errors.New("--version given")

// parseFlags reads flags, each but --version also settable as
// HYPER_SCHED_<FLAG> (--max-in-flight: HYPER_SCHED_MAX_IN_FLIGHT). The
// command line wins over the environment; a malformed value in either is
// an error naming the flag or the variable.
func parseFlags(args []string, stderr io.Writer) (supervisor.Config, slog.Level, error) {
	var cfg supervisor.Config
	d := supervisor.Defaults()
	fs := flag.NewFlagSet("hyper-sched", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.Listen, "listen", d.Listen, "HTTP listen address")
	fs.StringVar(&cfg.StateDir, "state-dir", d.StateDir, "registered modules and calibrations")
	fs.StringVar(&cfg.CacheDir, "cache-dir", d.CacheDir, "wazero compilation cache")
	fs.StringVar(&cfg.RuntimeDir, "runtime-dir", d.RuntimeDir, "control socket directory")
	fs.StringVar(&cfg.ControlGroup, "control-group", "", "group (name or gid) allowed to use the control socket, made mode 0660 (default: root and the daemon's user, mode 0600)")
	cpus := fs.String("cpus", "", "worker CPUs, e.g. 2-3 (default: isolated CPUs, else all but the first)")
	grace := fs.Duration("grace", d.Grace, "how long past its deadline a job may run before its lane is killed")
	killCost := fs.Duration("kill-cost", d.KillCost, "how long after a deadline kill admission counts the core as still taken")
	overhead := fs.Duration("dispatch-overhead", d.DispatchOverhead, "added to every deadline job's estimate for the IPC round trip (0: measured on each worker CPU at start)")
	spin := fs.Duration("worker-spin", d.WorkerSpin, "how long a lane polls for its next job before it sleeps (0: never)")
	beCap := fs.Duration("best-effort-cap", d.BestEffortCap, "runtime cap of a call without a deadline")
	lanes := fs.Int("lanes", d.Lanes, "lane processes per worker CPU: how deep calls can preempt each other (1: never)")
	quantum := fs.Duration("quantum", d.Quantum, "round-robin time slice of best-effort calls")
	preemptCost := fs.Duration("preempt-cost", d.PreemptCost, "charged by admission to a call that preempts another")
	calib := fs.Duration("calibration-budget", d.CalibrationBudget, "time spent measuring one call in benchd")
	maxUpload := fs.Int64("max-upload", d.MaxUpload, "largest module accepted, bytes")
	fs.IntVar(&cfg.MaxInput, "max-input", d.MaxInput, "largest stdin of a call (input, input_base64, the body of /run), bytes; a larger one is answered 413")
	fs.IntVar(&cfg.MaxOutput, "max-output", d.MaxOutput, "bytes of a call's stdout, and separately of its stderr, kept for the answer; the rest is cut and the answer says so")
	maxModules := fs.Int("max-modules", d.MaxModules, "most modules registered at once")
	maxInFlight := fs.Int("max-in-flight", d.MaxInFlight, "most calls admitted and not yet answered")
	maxConns := fs.Int("max-connections", d.MaxConnections, "most HTTP connections open at once, one more is answered 503 (lowered to what RLIMIT_NOFILE allows)")
	idleTimeout := fs.Duration("idle-timeout", d.IdleTimeout, "close a keep-alive HTTP connection idle this long")
	readTimeout := fs.Duration("read-timeout", d.ReadTimeout, "most time to read a request, its head and body (the answer may take longer)")
	workerMem := fs.Int64("worker-memory-max", 0, "memory.max of each worker's cgroup in bytes (cgroup v2; default: none)")
	memPages := fs.Uint("memory-pages", uint(d.MemoryLimitPages), "most linear memory of one instance, in 64 KiB pages; tables, globals and the call stack add at most about 190 MiB more (docs/RATIONALE.md: What bounds an instance's memory?)")
	tokenFile := fs.String("token-file", "", "file holding the bearer token required by /register, /test and DELETE /modules/… (default: no token)")
	host, _ := os.Hostname()
	fs.StringVar(&cfg.NodeName, "node-name", host, "sent as the Hyper-Node header of every answer, naming the node behind a proxy (\"\": no header)")
	fs.StringVar(&cfg.ModuleDir, "module-dir", "", "read-only directory of .wasm files kept registered under their file names, rescanned on change and SIGHUP (default: none)")
	fs.DurationVar(&cfg.ModuleDirInterval, "module-dir-interval", 2*time.Second, "how often --module-dir is scanned for changes")
	fs.StringVar(&cfg.InitDir, "init-dir", d.InitDir, "directory whose files GET /init may register, the prototype's way (default: /init off)")
	isolation := fs.String("isolation", "cgroup2", "best isolation rung to try: cgroup2, cgroup1-cpuset or affinity")
	realtime := fs.String("realtime", "auto", "SCHED_FIFO for workers: auto (on isolated CPUs), on, off")
	fs.StringVar(&cfg.CgroupName, "cgroup-name", "hyper-sched", "cgroup created when not run under systemd: /sys/fs/cgroup/<name>")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	showVersion := fs.Bool("version", false, "print the version and exit")
	// The environment is applied before the command line, which overrides
	// it, and becomes the default that --help shows. Its error waits until
	// after Parse so that --help and --version still work.
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		name := envName(f.Name)
		v, ok := os.LookupEnv(name)
		if !ok || f.Name == "version" || envErr != nil {
			return
		}
		if err := f.Value.Set(v); err != nil {
			envErr = fmt.Errorf("invalid value %q for %s: %w", v, name, err)
			return
		}
		f.DefValue = f.Value.String()
	})
	if err := fs.Parse(args); err != nil {
		return cfg, 0, err
	}
	if fs.NArg() > 0 {
		return cfg, 0, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *showVersion {
		return cfg, 0, errShowVersion
	}
	if envErr != nil {
		return cfg, 0, envErr
	}
	if *cpus != "" {
		list, err := isolate.ParseList(*cpus)
		if err != nil {
			return cfg, 0, fmt.Errorf("--cpus: %w", err)
		}
		if len(list) == 0 {
			return cfg, 0, errors.New("--cpus: empty list")
		}
		cfg.CPUs = list
	}
	cfg.DispatchOverhead = *overhead
	cfg.Lanes, cfg.Quantum, cfg.PreemptCost = *lanes, *quantum, *preemptCost
	cfg.WorkerSpin = *spin
	if cfg.WorkerSpin == 0 {
		cfg.WorkerSpin = -1 // off; the Config's zero means its default
	}
	cfg.MaxModules, cfg.MaxInFlight = *maxModules, *maxInFlight
	if *maxConns < 1 {
		return cfg, 0, fmt.Errorf("--max-connections: %d is not positive", *maxConns)
	}
	if *idleTimeout <= 0 || *readTimeout <= 0 {
		return cfg, 0, fmt.Errorf("--idle-timeout %v, --read-timeout %v: both must be positive", *idleTimeout, *readTimeout)
	}
	cfg.MaxConnections, cfg.IdleTimeout, cfg.ReadTimeout = *maxConns, *idleTimeout, *readTimeout
	if cfg.ModuleDirInterval <= 0 {
		return cfg, 0, fmt.Errorf("--module-dir-interval: %v is not positive", cfg.ModuleDirInterval)
	}
	if *workerMem < 0 {
		return cfg, 0, fmt.Errorf("--worker-memory-max: %d is negative", *workerMem)
	}
	cfg.WorkerMemoryMax = *workerMem
	if *memPages == 0 || *memPages > 65536 {
		return cfg, 0, fmt.Errorf("--memory-pages: %d is not between 1 and 65536", *memPages)
	}
	cfg.MemoryLimitPages = uint32(*memPages)
	cfg.Grace, cfg.BestEffortCap, cfg.CalibrationBudget, cfg.MaxUpload = *grace, *beCap, *calib, *maxUpload
	cfg.KillCost = *killCost
	_, tokenFileSet := os.LookupEnv(envName("token-file"))
	fs.Visit(func(f *flag.Flag) { tokenFileSet = tokenFileSet || f.Name == "token-file" })
	var err error
	if cfg.Token, err = apiToken(*tokenFile, tokenFileSet); err != nil {
		return cfg, 0, err
	}
	if cfg.Isolation, err = isolate.ParseMode(*isolation); err != nil {
		return cfg, 0, fmt.Errorf("--isolation: %w", err)
	}
	if cfg.RealTime, err = isolate.ParseRealTime(*realtime); err != nil {
		return cfg, 0, fmt.Errorf("--realtime: %w", err)
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		return cfg, 0, fmt.Errorf("--log-level: %w", err)
	}
	return cfg, lv, nil
}

// apiToken returns the API token: the contents of file if one is named,
// else HYPER_SCHED_TOKEN, without the blanks around it; "" when neither is
// set. A token that is given but blank is an error, never "no token": a
// misquoted HYPER_SCHED_TOKEN="   " once turned authentication off without
// a word. fileSet says --token-file or its variable was given, even empty.
func apiToken(file string, fileSet bool) (string, error) {
	if fileSet && strings.TrimSpace(file) == "" {
		return "", errors.New("--token-file is set but empty: name the file that holds the token, " +
			"or unset it (and HYPER_SCHED_TOKEN_FILE) to run without a token")
	}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("--token-file: %w", err)
		}
		t := strings.TrimSpace(string(b))
		if t == "" {
			return "", fmt.Errorf("--token-file: %s is empty", file)
		}
		return t, checkToken("--token-file", t)
	}
	t, ok := os.LookupEnv("HYPER_SCHED_TOKEN")
	if !ok {
		return "", nil
	}
	if t = strings.TrimSpace(t); t == "" {
		return "", errors.New("HYPER_SCHED_TOKEN is set but blank: set a token, or unset the variable to run without one")
	}
	return t, checkToken("HYPER_SCHED_TOKEN", t)
}

// checkToken refuses a token that no client could send in an
// Authorization header: one with a control character, such as the line
// break of a two-line token file.
func checkToken(from, t string) error {
	if i := strings.IndexFunc(t, unicode.IsControl); i >= 0 {
		return fmt.Errorf("%s: the token contains the control character %U, which an Authorization header cannot carry", from, []rune(t[i:])[0])
	}
	return nil
}

// envName is the environment variable of a flag: log-level is
// HYPER_SCHED_LOG_LEVEL.
func envName(flagName string) string {
	return "HYPER_SCHED_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}
